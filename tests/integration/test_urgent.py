# SPDX-License-Identifier: GPL-2.0-only
"""Urgent data (MSG_OOB) is echoed inline, in order, as ordinary bytes, under
every engine.  Without SO_OOBINLINE TCP takes the urgent byte out of
the stream: the epoll and io_uring engines never saw it (abc, urgent X, def
came back abcdef) while sockmap, which moves whole skbs, echoed it."""
import socket
import threading
import time

from conftest import read_to_eof

# (bytes, urgent?) in the order the client sends them: urgent bytes at the
# start, in the middle, back to back (only the last of two urgent bytes in a
# row is urgent to TCP, the other becomes ordinary data) and at the end.
PIECES = [(b"U", True), (b"abc", False), (b"X", True), (b"def", False), (b"gh", False),
          (b"Y", True), (b"Z", True), (b"ij", False), (b"!", True)]


def _read_until(sock, want, timeout=5.0):
    """What has come back once len(want) bytes are in, or at the timeout
    (a dropped byte then shows as a short or different result)."""
    got = b""
    deadline = time.monotonic() + timeout
    while len(got) < len(want) and time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            part = sock.recv(4096)
        except socket.timeout:
            break
        if not part:
            break
        got += part
    return got


def test_urgent_bytes_echo_inline_in_order(start_server, engine):
    srv = start_server(engine=engine)
    s = srv.connect()
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    want = b""
    # Piece by piece, each echo awaited, so the server meets every urgent
    # byte in a receive of its own as well as in the middle of the stream.
    for data, urgent in PIECES:
        s.send(data, socket.MSG_OOB if urgent else 0)
        want += data
        got = _read_until(s, data)
        assert got == data, "sent %r (urgent %s), got back %r; so far %r" % (
            data, urgent, got, want)
    # All at once: the urgent bytes arrive among ordinary ones in one read.
    for data, urgent in PIECES:
        s.send(data, socket.MSG_OOB if urgent else 0)
    s.shutdown(socket.SHUT_WR)
    s.settimeout(10)
    assert read_to_eof(s) == b"".join(d for d, _ in PIECES)
    s.close()


def test_urgent_bytes_in_a_bulk_stream(start_server, engine):
    # Large blocks with an urgent byte after each: the io_uring engine moves
    # such a stream by splice, which stops at the urgent mark (and at the
    # FIN reports the end of the stream there).  The last urgent byte comes
    # right before the FIN.  Every byte back, in order, then EOF, no reset.
    srv = start_server(engine=engine)
    s = srv.connect()
    s.settimeout(30)
    blocks = [bytes([65 + i]) * (256 << 10) for i in range(8)]
    err = []

    def writer():
        try:
            for blk in blocks:
                s.sendall(blk)
                s.send(b"!", socket.MSG_OOB)
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            err.append(e)

    t = threading.Thread(target=writer)
    t.start()
    got = read_to_eof(s)
    t.join(30)
    assert not t.is_alive() and not err, err
    want = b"".join(blk + b"!" for blk in blocks)
    assert len(got) == len(want) and got.count(b"!") == len(blocks)
    assert got == want
    s.close()
