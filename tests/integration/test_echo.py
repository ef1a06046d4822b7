# SPDX-License-Identifier: GPL-2.0-only
"""Echo semantics and listening, under every engine."""
import concurrent.futures
import os
import random
import socket
import struct
import threading
import time

import pytest

from conftest import (assert_echoes, echo_roundtrip, read_to_eof,
                      send_all_then_read, wait_for)


def test_echo_ipv4_and_ipv6_on_one_dual_stack_listener(start_server, engine):
    srv = start_server("--listen", "[::]:0", engine=engine)
    for host in ("127.0.0.1", "::1"):
        s = srv.connect((host, srv.port))
        data = os.urandom(10000)
        assert echo_roundtrip(s, data) == data
        s.close()
    srv.wait_log("IPv4 and IPv6")


def test_several_listen_addresses(start_server, engine):
    srv = start_server("--listen", "127.0.0.1:0", "--listen", "[::1]:0", engine=engine)
    assert len(srv.addrs) == 2
    for addr in srv.addrs:
        s = srv.connect(addr)
        assert_echoes(s, b"hello " + addr[0].encode())
        s.close()


@pytest.mark.parametrize("size", [0, 1, 2048, 6 << 20])
def test_half_close_echoes_everything_then_fin(start_server, engine, size):
    srv = start_server(engine=engine)
    s = srv.connect()
    data = os.urandom(size)
    assert send_all_then_read(s, data) == data
    s.close()


def _integrity_client(addr, size, seed):
    rnd = random.Random(seed)
    data = rnd.randbytes(size)
    s = socket.create_connection(addr, timeout=60)
    try:
        got = send_all_then_read(s, data)
    finally:
        s.close()
    assert got == data, "connection %d: %d bytes sent, %d back" % (seed, size, len(got))
    return size


def run_integrity(srv, conns=300):
    sizes = [1, 7, 128, 1500, 4096, 65536, 300000, 1 << 20, 3 << 20]
    rnd = random.Random(1)
    plan = [rnd.choice(sizes[:6]) for _ in range(conns - 6)] + [3 << 20] * 3 + [1 << 20] * 3
    with concurrent.futures.ThreadPoolExecutor(max_workers=conns) as ex:
        futs = [ex.submit(_integrity_client, (srv.host, srv.port), n, i)
                for i, n in enumerate(plan)]
        total = sum(f.result(timeout=100) for f in futs)
    return total


def test_integrity_under_concurrent_load(start_server, engine):
    srv = start_server(engine=engine)
    assert run_integrity(srv) > 12 << 20


def test_slow_reader_is_throttled_and_others_are_served(start_server, engine):
    """A client writes 64 MiB without reading: server memory stays bounded,
    another client is served meanwhile, and every byte comes back once the
    first client reads."""
    srv = start_server("--conn-buffer", "64k", engine=engine)
    rss0 = srv.rss_kib()
    total = 64 << 20
    block = os.urandom(1 << 20)
    hog = srv.connect()
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 << 10)
    sent = [0]

    def writer():
        for _ in range(total // len(block)):
            hog.sendall(block)
            sent[0] += len(block)
        hog.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    # The writer stalls once TCP's windows are full: far below 64 MiB.
    wait_for(lambda: _stalled(sent), timeout=20, what="the writer to stall")
    assert sent[0] < total
    other = srv.connect()
    assert_echoes(other, os.urandom(100000))
    other.close()
    grown = srv.rss_kib() - rss0
    assert grown < 16 << 10, "server RSS grew by %d KiB" % grown
    got = 0
    expect_idx = 0
    while True:
        part = hog.recv(1 << 20)
        if not part:
            break
        # Every byte in order: the stream is `block` repeated.
        off = expect_idx % len(block)
        n = min(len(part), len(block) - off)
        assert part[:n] == block[off:off + n]
        rest = part[n:]
        while rest:
            m = min(len(rest), len(block))
            assert rest[:m] == block[:m]
            rest = rest[m:]
        expect_idx += len(part)
        got += len(part)
    t.join(10)
    assert got == total


def _stalled(sent, _last=[None]):
    now = sent[0]
    prev, _last[0] = _last[0], now
    if prev != now:
        time.sleep(0.3)
        return False
    return now > 0


def test_resets_mid_stream_give_descriptors_back(start_server, engine, tmp_path):
    """Peers that reset with data in flight: every connection is released
    (counted by the server itself, since the io_uring engine keeps its
    sockets in a registered file table rather than as descriptors) and no
    descriptor is left behind."""
    from ops_common import stats
    ctl = str(tmp_path / "ctl")
    srv = start_server("--ctl", ctl, engine=engine)
    base = srv.fd_count()
    socks = []
    for _ in range(500):
        s = srv.connect()
        s.sendall(os.urandom(3000))
        socks.append(s)
    wait_for(lambda: stats(ctl)["connections_active"] == 500, what="500 connections")
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    wait_for(lambda: stats(ctl)["connections_active"] == 0, what="connections to be released")
    wait_for(lambda: srv.fd_count() == base, what="descriptors to come back")
    s = srv.connect()
    assert_echoes(s)
    s.close()


def test_default_port_and_no_arguments(tmp_path, engine):
    """`echosrv` with no arguments serves [::]:40007 (skipped if taken)."""
    import subprocess
    from conftest import ECHOSRV
    probe = socket.socket(socket.AF_INET6)
    # As echosrv does: TIME_WAIT left by this test under another engine
    # must not count as "in use".
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(("::", 40007))
    except OSError:
        pytest.skip("port 40007 is in use on this machine")
    finally:
        probe.close()
    p = subprocess.Popen([ECHOSRV, "--engine", engine], stderr=subprocess.PIPE)
    try:
        s = wait_for(lambda: _try_connect(("127.0.0.1", 40007)), what="port 40007")
        assert_echoes(s)
        s.close()
        s6 = socket.create_connection(("::1", 40007), timeout=5)
        assert_echoes(s6)
        s6.close()
    finally:
        p.terminate()
        assert p.wait(timeout=15) == 0


def _try_connect(addr):
    try:
        return socket.create_connection(addr, timeout=2)
    except OSError:
        return None
