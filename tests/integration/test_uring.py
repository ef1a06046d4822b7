# SPDX-License-Identifier: GPL-2.0-only
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

from conftest import (BUILD, ECHOSRV, assert_echoes, available_engines, echo_roundtrip,
                      read_to_eof, send_all_then_read, wait_for)

NO_URING = os.path.join(BUILD, "helpers", "no_uring")

needs_uring = pytest.mark.skipif(
    "io_uring" not in available_engines(),
    reason="io_uring is not under test: not available here, or left out by ECHOSRV_ENGINES")


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
    srv.wait_log("engine io_uring")
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


# --- bulk mode: socket -> pipe -> socket by splice (src/engine/uring/bulk.c) -------

def _bulk_server(start_server, *args, direct=True, env_extra=None):
    env = dict(os.environ)
    env.pop("ECHOSRV_URING_SPLICE", None)   # a benchmark setting must not leak in
    if not direct:
        env["ECHOSRV_URING_DIRECT"] = "0"
    env.update(env_extra or {})
    srv = start_server("--trace", "error,info,conn", *args, engine="io_uring", env=env)
    if direct and "bulk splice off (no fd install)" in srv.stderr():
        pytest.skip("registered sockets stay on ring buffers on kernels before 6.8")
    return srv


def _wait_log(srv, text, count=1, timeout=10):
    return wait_for(lambda: srv.stderr().count(text) >= count, timeout=timeout,
                    what="%d x %r in the log" % (count, text))


@needs_uring
@pytest.mark.parametrize("direct", [True, False], ids=["registered", "plain"])
def test_bulk_transfer_is_spliced_byte_exact(start_server, direct):
    """A large transfer switches to splice (the log says so), every byte
    comes back in order, the half-close after it gets its FIN only after the
    last byte, and the close line counts every byte both ways.  Both with a
    registered socket (a descriptor is installed for splice) and a plain
    one."""
    srv = _bulk_server(start_server, direct=direct)
    data = os.urandom(20 << 20)
    s = srv.connect()
    assert send_all_then_read(s, data) == data
    s.close()
    _wait_log(srv, "reason=peer-closed")
    log = srv.stderr()
    assert "bulk mode: splice" in log, log[-2000:]
    assert "in=%d out=%d" % (len(data), len(data)) in log, log[-2000:]


@needs_uring
def test_bulk_half_close_with_unsent_data_waits_for_the_slow_reader(start_server):
    """The peer writes 8 MB and half-closes at once but reads only after a
    pause: the pipe fills, the server waits for room to send, and the FIN
    comes only after the last byte."""
    import threading
    srv = _bulk_server(start_server, "--conn-buffer", "32k")
    data = os.urandom(8 << 20)
    s = srv.connect()
    s.settimeout(30)

    def writer():
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    _wait_log(srv, "bulk mode: splice")
    time.sleep(0.5)
    got = bytearray()
    while True:
        part = s.recv(1 << 16)
        if not part:
            break
        got += part
        if len(got) < len(data) // 2:
            time.sleep(0.001)   # a slow reader for the first half
    t.join(30)
    assert bytes(got) == data
    s.close()


@needs_uring
def test_bulk_slow_reader_holds_at_most_conn_buffer(start_server, tmp_path):
    """A peer that writes but never reads, in bulk mode: the server holds at
    most --conn-buffer unsent bytes (received minus sent, from the control
    socket), then TCP throttles the peer; once the peer reads, everything
    comes back."""
    ctl = str(tmp_path / "ctl")
    srv = _bulk_server(start_server, "--conn-buffer", "16k", "--ctl", ctl)
    s = srv.connect()
    written = _fill_until_blocked([s])[0]
    srv.wait_log("bulk mode: splice")
    r = subprocess.run([os.path.join(BUILD, "echosrvctl"), "--ctl", ctl, "conns", "--json"],
                       capture_output=True, text=True, timeout=20)
    import json
    conn = json.loads(r.stdout)["connections"][0]
    assert 0 <= conn["bytes_received"] - conn["bytes_sent"] <= 16384, conn
    s.setblocking(True)
    s.settimeout(30)
    s.shutdown(socket.SHUT_WR)
    got = read_to_eof(s)
    assert len(got) == written and got == b"s" * written
    s.close()


@needs_uring
def test_idle_bulk_connection_gives_its_pipe_back(start_server):
    """A bulk connection that moves nothing for a while goes back to ring
    buffers and closes its pipe (descriptors back to where they were),
    echoes small messages exactly as before, and goes bulk again on the
    next large transfer."""
    srv = _bulk_server(start_server)
    s = srv.connect()
    base = srv.fd_count()
    data = os.urandom(4 << 20)
    assert echo_roundtrip(s, data) == data
    _wait_log(srv, "bulk mode: splice")
    _wait_log(srv, "bulk mode ends: idle")
    wait_for(lambda: srv.fd_count() <= base, what="the pipe's descriptors to close")
    for i in range(20):
        assert_echoes(s, b"small %d" % i)
    assert echo_roundtrip(s, data) == data
    _wait_log(srv, "bulk mode: splice", count=2)
    s.close()


@needs_uring
def test_bulk_reset_and_idle_timeout(start_server):
    """A bulk connection reset by its peer mid-transfer, and one that goes
    silent past --idle-timeout, are closed with those reasons; the server
    keeps serving."""
    srv = _bulk_server(start_server, "--idle-timeout", "1",
                       env_extra={"ECHOSRV_URING_SPIN_US": "0"})
    s = srv.connect()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    _fill_until_blocked([s], quiet_rounds=5)
    _wait_log(srv, "bulk mode: splice")
    s.close()   # unread data and linger 0: a reset
    _wait_log(srv, "reason=reset")
    q = srv.connect()
    data = os.urandom(2 << 20)
    assert echo_roundtrip(q, data) == data
    _wait_log(srv, "bulk mode: splice", count=2)
    _wait_log(srv, "reason=idle-timeout")
    assert q.recv(1) == b""
    q.close()
    s = srv.connect()
    assert_echoes(s)
    s.close()


@needs_uring
def test_bulk_connections_are_capped_per_worker(start_server):
    """24 connections streaming 2 MB each at once: at most 16 of them get a
    pipe (descriptors never grow by more than 16 pipes and installed
    sockets), the rest stay on ring buffers, and every byte of every
    connection comes back in order."""
    import threading
    srv = _bulk_server(start_server)
    base = srv.fd_count()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            try:
                peak[0] = max(peak[0], srv.fd_count())
            except OSError:
                pass
            time.sleep(0.005)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        payload, got = _many_senders((srv.host, srv.port), 24, 2 << 20)
    finally:
        done.set()
        t.join(10)
    for i in payload:
        assert bytes(got[i]) == payload[i], "connection %d: %d of %d bytes" % (
            i, len(got[i]), len(payload[i]))
    srv.wait_log("bulk mode: splice")
    # 24 accepted sockets pass through a descriptor for a moment each.
    assert peak[0] <= base + 16 * 3 + 24, "%d descriptors above the base" % (peak[0] - base)


@needs_uring
@pytest.mark.parametrize("second_signal", [False, True], ids=["drain-timeout", "second-signal"])
def test_bulk_connection_holding_a_pipe_is_cut_cleanly(start_server, second_signal):
    """A stop while a bulk connection holds unsent bytes in its pipe (and,
    registered, an installed descriptor): the drain timeout or a second
    signal ends it, and the server exits 0 with no sanitizer report (a
    pipe or connection released twice, or used after release, would make
    it exit otherwise)."""
    import signal
    srv = _bulk_server(start_server, "--conn-buffer", "64k", "--drain-timeout", "1")
    s = srv.connect()
    _fill_until_blocked([s])
    srv.wait_log("bulk mode: splice")
    srv.signal(signal.SIGTERM)
    _wait_log(srv, "draining")
    if second_signal:
        srv.signal(signal.SIGTERM)
    assert srv.wait(timeout=20) == 0, srv.stderr()[-2000:]
    if not second_signal:
        srv.wait_log("reason=drain")
    s.close()


@needs_uring
@pytest.mark.parametrize("knobs", [
    {}, {"ECHOSRV_URING_NO_LIMIT": "1"}, {"ECHOSRV_URING_DIRECT": "0"},
    {"ECHOSRV_URING_BUFS": "8x1024", "ECHOSRV_URING_NO_LIMIT": "1"}],
    ids=["default", "no-limit", "plain", "tiny-pool-no-limit"])
def test_bulk_stops_and_starts_on_many_connections(start_server, knobs):
    """20 connections (more than the 16 a worker lets into bulk mode) echo
    512 KiB each at once, go quiet until every bulk connection has given
    its pipe back, then do it again: the switch into bulk mode (decided
    after a receive, made by the loop once the receive is over and the
    queue sent) and back (a receive armed again) happen on every round,
    with single-shot receives and a pool so small that receives run out of
    buffers, and every byte comes back in order."""
    import threading
    srv = _bulk_server(start_server, env_extra=knobs)
    base = srv.fd_count()
    socks = [srv.connect() for _ in range(20)]
    entered = 0
    for rnd in range(1, 3):
        errs = []

        def one(s):
            try:
                d = os.urandom(512 << 10)
                if echo_roundtrip(s, d) != d:
                    errs.append("bytes differ")
            except OSError as e:
                errs.append(repr(e))

        ts = [threading.Thread(target=one, args=(s,), daemon=True) for s in socks]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        assert not errs and not any(t.is_alive() for t in ts), (rnd, errs[:3])
        # The line goes through the log queue and its writer thread: it
        # may reach stderr a moment after the echo.
        before = entered
        entered = wait_for(lambda: (lambda n: n > before and n)(
            srv.stderr().count("bulk mode: splice")),
            what="round %d: a connection to go bulk" % rnd)
        _wait_log(srv, "bulk mode ends: idle", count=entered, timeout=15)
        wait_for(lambda: srv.fd_count() <= base + 20, what="the pipes' descriptors to close")
    for s in socks:
        assert_echoes(s, b"small after bulk")
        s.shutdown(socket.SHUT_WR)
        assert read_to_eof(s) == b""
        s.close()
