# SPDX-License-Identifier: GPL-2.0-only
"""The sockmap engine's own problems (issue 7): bytes that arrive before the
socket is in the map, a peer that sends without reading, half-close with
data still queued in the kernel, accounting from TCP_INFO, privileges, and
no BPF object left behind when the server is killed.  The generic suite
(echo, limits, ACLs, drain, tracing) already runs under this engine through
the `engine` fixture."""
import array
import ctypes
import errno
import os
import platform
import re
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import ECHOSRV, assert_echoes, available_engines, read_to_eof, fdinfos, wait_for

ENGINE = "sockmap"


def _sockmap_usable():
    """As for the `engine` fixture: asked for (ECHOSRV_ENGINES, default all)
    and accepted by `echosrv --engine sockmap --check`."""
    return ENGINE in available_engines()


pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not _sockmap_usable(),
                                 reason="sockmap engine left out by ECHOSRV_ENGINES or not usable here (needs root and BPF)")]


def _pattern(nbytes):
    """Bytes in which every 8-byte word is its own index: any loss,
    duplication or reordering shows."""
    return array.array("Q", range(nbytes // 8)).tobytes()


def _tcp_bytes(sock):
    """(bytes_acked, bytes_received) from this socket's TCP_INFO."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return struct.unpack_from("QQ", info, 120)


def test_first_bytes_right_after_connect(start_server):
    srv = start_server(engine=ENGINE)
    for i in range(50):
        s = srv.connect(timeout=5)
        msg = b"first message %d" % i
        s.sendall(msg)
        got = b""
        while len(got) < len(msg):
            part = s.recv(100)
            assert part, "connection closed after %r" % got
            got += part
        assert got == msg
        s.close()


@pytest.mark.parametrize("fin", [False, True], ids=["data", "data+fin"])
def test_bytes_that_arrive_before_accept(start_server, fin):
    """With the server stopped, the kernel completes the handshake and
    queues the client's bytes (and FIN) before user space has even accepted
    the socket, let alone put it in the SOCKHASH."""
    srv = start_server(engine=ENGINE)
    srv.signal(signal.SIGSTOP)
    try:
        s = srv.connect(timeout=10)
        s.sendall(b"early bytes")
        if fin:
            s.shutdown(socket.SHUT_WR)
        time.sleep(0.2)
    finally:
        srv.signal(signal.SIGCONT)
    if fin:
        assert read_to_eof(s) == b"early bytes"
    else:
        got = b""
        while len(got) < 11:
            part = s.recv(100)
            assert part
            got += part
        assert got == b"early bytes"
        assert_echoes(s, b"and later ones")
    s.close()


def test_unread_peer_memory_is_bounded_then_everything_arrives(start_server):
    """A client that sends 64 MiB without reading: the server must stop
    taking data (TCP flow control), not queue it in the kernel.  What the
    server holds is what its TCP acknowledged minus what came back to us."""
    srv = start_server("--trace", "error", engine=ENGINE)
    data = _pattern(64 << 20)
    view = memoryview(data)
    s = srv.connect(timeout=10)
    s.setblocking(False)
    sent, last, t0 = 0, time.monotonic(), time.monotonic()
    while sent < len(data) and time.monotonic() - last < 1.5 and time.monotonic() - t0 < 30:
        try:
            sent += s.send(view[sent:sent + (1 << 20)])
            last = time.monotonic()
        except BlockingIOError:
            time.sleep(0.01)
    time.sleep(0.3)
    acked, received = _tcp_bytes(s)
    held = acked - received
    assert sent < len(data), "the server took all 64 MiB without the client reading"
    # Typically about 5 MiB (the socket's own buffers, as with epoll); the
    # bound leaves room for buffers grown under load.
    assert held < (32 << 20), "server holds %.1f MiB for one connection" % (held / 2**20)
    # Now read: every byte comes back once, in order, then EOF after ours.
    s.setblocking(True)
    s.settimeout(30)

    def rest():
        s.sendall(view[sent:])
        s.shutdown(socket.SHUT_WR)
    t = threading.Thread(target=rest, daemon=True)
    t.start()
    out = read_to_eof(s)
    t.join(30)
    s.close()
    if out != data:
        _xfail_if_kernel_duplicated(srv, len(out) - len(data))
    assert len(out) == len(data) and out == data


def _xfail_if_kernel_duplicated(srv, extra):
    """Known kernel problem, not ours: under loss and retransmission the
    kernel can hand the verdict program a segment overlapping bytes it
    already delivered (the program then sees more bytes than TCP received,
    which the server logs at close).  Any other difference is a failure."""
    try:
        wait_for(lambda: "the kernel delivered" in srv.stderr(), timeout=3)
    except AssertionError:
        return
    pytest.xfail("kernel delivered an overlapping segment to the verdict (%d extra bytes)"
                 % extra)


def test_half_close_with_data_still_queued(start_server):
    """Write 8 MiB and FIN before reading anything: the server must send all
    8 MiB and only then its FIN, although most of it is still queued in the
    kernel when the FIN arrives."""
    srv = start_server("--trace", "conn", engine=ENGINE)
    data = _pattern(8 << 20)
    s = srv.connect(timeout=30)
    t = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)),
                         daemon=True)
    t.start()
    got = read_to_eof(s)
    t.join(30)
    assert got == data
    s.close()
    wait_for(lambda: re.search(r"close conn=\w+ .* in=8388608 out=8388608 .*reason=peer-closed",
                               srv.stderr()), what="close line with exact byte counts")


def test_byte_counts_of_kernel_echoed_traffic(start_server):
    """Bytes echoed in the kernel never pass through user space; the
    counters come from TCP_INFO and must still be exact."""
    srv = start_server("--trace", "conn", engine=ENGINE)
    s = srv.connect()
    for _ in range(16):
        assert_echoes(s, b"x" * 65536)
    s.close()
    wait_for(lambda: re.search(r"close conn=\w+ .* in=1048576 out=1048576 ", srv.stderr()),
             what="close line with in=out=1 MiB")


def test_auto_never_picks_sockmap():
    r = subprocess.run([ECHOSRV, "--check"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0
    assert "sockmap" not in r.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop privileges")
def test_without_privileges_fails_with_a_clear_message():
    def drop():
        os.setgid(65534)
        os.setuid(65534)
    r = subprocess.run([ECHOSRV, "--engine", ENGINE, "--check"], capture_output=True,
                       text=True, timeout=10, preexec_fn=drop)
    assert r.returncode == 2
    assert "CAP_BPF" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


# --- no BPF object outlives the server ---------------------------------------

BPF_PROG_GET_FD_BY_ID = 13
BPF_MAP_GET_FD_BY_ID = 14
SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(platform.machine())


def _bpf_ids(pid):
    """(prog ids, map ids) held by process pid, from /proc/PID/fdinfo."""
    progs, maps = set(), set()
    for info in fdinfos(pid):
        for key, ids in (("prog_id", progs), ("map_id", maps)):
            m = re.search(r"^%s:\s+(\d+)" % key, info, re.M)
            if m:
                ids.add(int(m.group(1)))
    return progs, maps


def _bpf_id_exists(cmd, ident):
    libc = ctypes.CDLL(None, use_errno=True)
    attr = ctypes.create_string_buffer(struct.pack("III", ident, 0, 0), 16)
    fd = libc.syscall(SYS_BPF, cmd, attr, 12)
    if fd >= 0:
        os.close(fd)
        return True
    return ctypes.get_errno() != errno.ENOENT


@pytest.mark.skipif(SYS_BPF is None, reason="bpf syscall number unknown here")
def test_maps_and_programs_are_gone_after_sigkill(start_server):
    srv = start_server("--workers", "2", engine=ENGINE)
    s = srv.connect()
    assert_echoes(s, b"in the kernel")
    progs, maps = _bpf_ids(srv.proc.pid)
    assert len(progs) >= 2 and len(maps) >= 8, (progs, maps)   # one set per worker
    assert all(_bpf_id_exists(BPF_PROG_GET_FD_BY_ID, i) for i in progs)
    srv.proc.kill()
    srv.proc.wait(10)
    srv.expect_rc = -signal.SIGKILL
    wait_for(lambda: not any(_bpf_id_exists(BPF_PROG_GET_FD_BY_ID, i) for i in progs) and
             not any(_bpf_id_exists(BPF_MAP_GET_FD_BY_ID, i) for i in maps),
             timeout=20, what="the killed server's BPF programs and maps to be freed")
    # Its connection went with it.
    s.settimeout(10)
    try:
        assert s.recv(16) == b""
    except ConnectionResetError:
        pass
    s.close()
