"""io_uring-specific behaviour: the real fallback to epoll when io_uring is
refused, the exit status when it is demanded but refused, busy polling, and
running out of provided buffers without losing a byte.

The fallback tests run echosrv under tests/helpers/no_uring, which installs
a seccomp filter refusing the io_uring system calls (as a hardened service
manager or container runtime would) and execs it."""
import os
import selectors
import socket
import subprocess
import time

import pytest

from conftest import BUILD, ECHOSRV, assert_echoes, available_engines, send_all_then_read

NO_URING = os.path.join(BUILD, "helpers", "no_uring")

needs_uring = pytest.mark.skipif("io_uring" not in available_engines(),
                                 reason="io_uring is not available on this kernel")


@pytest.mark.parametrize("err", ["EPERM", "ENOSYS"])
def test_auto_falls_back_to_epoll_when_io_uring_is_refused(start_server, err):
    env = dict(os.environ, NO_URING_ERRNO=err)
    srv = start_server(wrapper=[NO_URING], env=env)
    log = srv.stderr()
    lines = [l for l in log.splitlines() if "io_uring is not available" in l]
    assert len(lines) == 1, log
    assert "io_uring_setup" in lines[0] and os.strerror(getattr(__import__("errno"), err)) in lines[0]
    assert "engine epoll" in log, log
    s = srv.connect()
    assert_echoes(s, b"still echoing without io_uring")
    s.close()


def test_forced_io_uring_refused_is_a_configuration_error(tmp_path):
    """--engine io_uring where io_uring cannot run: exit 2 (bad configuration
    for this host) with one line saying why, before binding anything."""
    r = subprocess.run([NO_URING, ECHOSRV, "--engine", "io_uring", "--listen", "127.0.0.1:0"],
                       capture_output=True, timeout=20)
    assert r.returncode == 2, r
    err = r.stderr.decode()
    assert err.count("\n") == 1 and "io_uring cannot run here" in err, err


@needs_uring
def test_auto_picks_io_uring_where_it_works(start_server):
    srv = start_server()
    assert "engine io_uring" in srv.stderr()
    assert "not available" not in srv.stderr()


def test_busy_poll_echoes_and_stops(start_server, engine):
    srv = start_server("--busy-poll", engine=engine)
    s = srv.connect()
    for i in range(50):
        assert_echoes(s, b"poll %d" % i)
    assert send_all_then_read(s, os.urandom(300000)) != b""
    s.close()


def _many_senders(addr, n_conns, per_conn, deadline_s=60):
    """Open n_conns connections, have each send per_conn bytes at once and
    read everything back; returns {index: bytes received}."""
    sel = selectors.DefaultSelector()
    payload, sent, got = {}, {}, {}
    for i in range(n_conns):
        s = socket.create_connection(addr, timeout=10)
        s.setblocking(False)
        payload[i] = os.urandom(per_conn)
        sent[i], got[i] = 0, bytearray()
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, i)
    deadline = time.monotonic() + deadline_s
    open_ = n_conns
    while open_ and time.monotonic() < deadline:
        for key, ev in sel.select(timeout=1):
            s, i = key.fileobj, key.data
            if ev & selectors.EVENT_WRITE and sent[i] < per_conn:
                try:
                    sent[i] += s.send(payload[i][sent[i]:sent[i] + 65536])
                except BlockingIOError:
                    pass
                if sent[i] == per_conn:
                    s.shutdown(socket.SHUT_WR)
                    sel.modify(s, selectors.EVENT_READ, i)
            if ev & selectors.EVENT_READ:
                try:
                    part = s.recv(1 << 20)
                except BlockingIOError:
                    continue
                got[i] += part
                if not part:
                    sel.unregister(s)
                    s.close()
                    open_ -= 1
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    return payload, got


@needs_uring
def test_buffer_exhaustion_slows_but_loses_nothing(start_server):
    """With a provided-buffer ring of 8 buffers of 1 KiB
    (ECHOSRV_URING_BUFS=8x1024), 40 connections sending 200 KB each at once
    run the ring dry over and over; every byte still comes back, in order."""
    env = dict(os.environ, ECHOSRV_URING_BUFS="8x1024")
    srv = start_server("--conn-buffer", "4k", engine="io_uring", env=env)
    payload, got = _many_senders((srv.host, srv.port), 40, 200000)
    for i in payload:
        assert bytes(got[i]) == payload[i], "connection %d: %d of %d bytes" % (
            i, len(got[i]), len(payload[i]))


def _fill_until_blocked(socks, quiet_rounds=20, limit=64 << 20):
    """Write on every socket without reading until the kernel has refused
    more on all of them for quiet_rounds rounds in a row (the server has
    stopped receiving from them); returns the bytes written on each."""
    chunk = b"s" * 65536
    total = [0] * len(socks)
    for s in socks:
        s.setblocking(False)
    quiet = 0
    while quiet < quiet_rounds and min(total) < limit:
        moved = False
        for i, s in enumerate(socks):
            try:
                while total[i] < limit:
                    total[i] += s.send(chunk)
                    moved = True
            except BlockingIOError:
                pass
        quiet = 0 if moved else quiet + 1
        time.sleep(0.05)
    return total


@needs_uring
@pytest.mark.parametrize("limit", ["limit", "cancel"])
def test_slow_readers_do_not_pin_the_buffer_ring(start_server, limit):
    """Sixteen peers that write but never read, against a ring of 8 buffers:
    their unsent bytes move to per-connection buffers (at most --conn-buffer
    each) and the ring buffers go back, so a newcomer is still served.
    Both ways of stopping a receive at --conn-buffer: the kernel's multishot
    byte limit, and (ECHOSRV_URING_NO_LIMIT, as on kernels before 6.17)
    cancelling it, with a spill buffer for what arrives meanwhile."""
    env = dict(os.environ, ECHOSRV_URING_BUFS="8x1024")
    if limit == "cancel":
        env["ECHOSRV_URING_NO_LIMIT"] = "1"
    srv = start_server("--conn-buffer", "1k", engine="io_uring", env=env)
    hogs = [srv.connect() for _ in range(16)]
    for h in hogs:  # one at a time, so each reaches the stuck state
        assert _fill_until_blocked([h], quiet_rounds=10)[0] > 0
    s = srv.connect()
    s.settimeout(10)  # a starved newcomer fails here, not at the test timeout
    s.sendall(b"x" * 5000)
    got = b""
    while len(got) < 5000:
        part = s.recv(5000)
        assert part, "connection closed after %d bytes" % len(got)
        got += part
    assert got == b"x" * 5000
    s.close()
    for h in hogs:
        h.close()


@needs_uring
def test_connections_hold_no_descriptors(start_server, tmp_path):
    """Admitted sockets move to the ring's registered file table: 300 open
    connections cost the process (almost) no descriptors, and still echo,
    half-close and close properly."""
    srv = start_server(engine="io_uring")
    base = srv.fd_count()
    socks = [srv.connect() for _ in range(300)]
    for s in socks:
        assert_echoes(s, b"direct")
    assert srv.fd_count() < base + 10, "%d descriptors for 300 connections" % (
        srv.fd_count() - base)
    for s in socks[:100]:
        assert send_all_then_read(s, b"half-close " * 1000) == b"half-close " * 1000
        s.close()
    for s in socks[100:]:
        s.close()
    s = srv.connect()
    assert_echoes(s)
    s.close()
