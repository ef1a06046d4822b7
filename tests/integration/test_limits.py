# SPDX-License-Identifier: GPL-2.0-only
"""Limits: idle timeout, --max-conns, --max-conns-per-ip,
--allow/--deny, and running out of descriptors; under every engine."""
import resource
import time

import pytest

from conftest import assert_echoes, assert_rejected, connect_or_none, echoing_connection, wait_for


def _closed_by_server(sock, timeout):
    sock.settimeout(timeout)
    try:
        return sock.recv(16) == b""
    except ConnectionResetError:
        return True


def test_idle_connection_closes_busy_one_stays(start_server, engine):
    srv = start_server("--idle-timeout", "2", "--trace", "0x5", engine=engine)
    idle = srv.connect()
    busy = srv.connect()
    t0 = time.monotonic()
    # The busy client talks every 0.2 s for 5 s, well past the timeout.
    while time.monotonic() - t0 < 5:
        assert_echoes(busy, b"tick")
        time.sleep(0.2)
    assert _closed_by_server(idle, 10)
    closed_after = time.monotonic() - t0
    assert closed_after >= 1.9, "closed after %.2fs, before its timeout" % closed_after
    assert_echoes(busy, b"still here")
    wait_for(lambda: "reason=idle-timeout" in srv.stderr(), what="idle close trace")
    busy.close()


def test_idle_timeout_zero_means_never(start_server, engine):
    srv = start_server("--idle-timeout", "0", engine=engine)
    s = srv.connect()
    time.sleep(2.5)
    assert_echoes(s, b"after a pause")
    s.close()


def test_max_conns(start_server, engine):
    srv = start_server("--max-conns", "3", "--trace", "0x1", engine=engine)
    keep = [srv.connect() for _ in range(3)]
    for s in keep:
        assert_echoes(s)
    assert_rejected(connect_or_none((srv.host, srv.port)))
    for s in keep:
        assert_echoes(s, b"unharmed")
    srv.wait_log("rejected connection from 127.0.0.1")
    srv.wait_log("max-conns")
    keep.pop().close()
    # The server recovers as soon as it has seen the close.
    keep.append(wait_for(lambda: echoing_connection((srv.host, srv.port), b"again"),
                         what="a slot to free up"))
    for s in keep:
        s.close()


def _connect_from(srv, source):
    return connect_or_none((srv.host, srv.port), source)


def test_max_conns_per_ip(start_server, engine):
    srv = start_server("--listen", "0.0.0.0:0", "--max-conns-per-ip", "2", engine=engine)
    srv.host = "127.0.0.1"
    a = [_connect_from(srv, "127.0.0.1") for _ in range(2)]
    for s in a:
        assert_echoes(s)
    assert_rejected(_connect_from(srv, "127.0.0.1"))
    # Another address is counted on its own.
    b = _connect_from(srv, "127.0.0.2")
    assert_echoes(b)
    for s in a:
        assert_echoes(s)
    a.pop().close()
    wait_for(lambda: _echo_ok(_connect_from(srv, "127.0.0.1")), what="per-ip slot")


def _echo_ok(s):
    if s is None:
        return False
    try:
        s.settimeout(3)
        s.sendall(b"ok")
        return s.recv(2) == b"ok"
    except OSError:
        return False
    finally:
        s.close()


ACL_CASES = [
    # (rules, peer address -> served?)
    (["--allow", "127.0.0.0/8"], {"127.0.0.1": True, "::1": False}),
    (["--allow", "::1"], {"127.0.0.1": False, "::1": True}),
    (["--deny", "127.0.0.2"], {"127.0.0.1": True, "127.0.0.2": False, "::1": True}),
    (["--deny", "::/0"], {"127.0.0.1": True, "::1": False}),
    (["--allow", "127.0.0.0/8", "--deny", "127.0.0.1"],
     {"127.0.0.1": False, "127.0.0.2": True, "::1": False}),
    (["--allow", "::ffff:127.0.0.0/104"], {"127.0.0.3": True, "::1": False}),
]


@pytest.mark.parametrize("rules,peers", ACL_CASES, ids=[" ".join(c[0]) for c in ACL_CASES])
def test_allow_deny(start_server, engine, rules, peers):
    """On a dual-stack listener IPv4 peers arrive v4-mapped and match IPv4
    rules; IPv6 rules only match IPv6 peers."""
    srv = start_server("--listen", "[::]:0", "--trace", "0x5", *rules, engine=engine)
    for peer, served in peers.items():
        dst = "::1" if ":" in peer else "127.0.0.1"
        s = connect_or_none((dst, srv.port), peer)
        if served:
            assert s is not None, "%s was refused" % peer
            assert_echoes(s)
        else:
            assert_rejected(s)
        if s:
            s.close()
    if not all(peers.values()):
        wait_for(lambda: "reason=acl" in srv.stderr(), what="acl close trace")


def _low_nofile(n):
    def pre():
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    return pre


def test_descriptor_exhaustion_pauses_and_recovers(start_server, engine):
    """With a low descriptor limit and --max-conns above it, accept() fails
    with EMFILE: the server keeps serving what it has, stops accepting for a
    while without spinning, and takes the waiting peers once fds free up."""
    srv = start_server("--max-conns", "1000", "--backlog", "512", engine=engine,
                       preexec=_low_nofile(64))
    socks = [srv.connect() for _ in range(100)]
    wait_for(lambda: "pausing accepts" in srv.stderr(), what="an EMFILE pause")
    served = []
    for s in socks[:40]:
        assert_echoes(s)    # the first ones were accepted before the limit
        served.append(s)
    cpu0 = srv.cpu_seconds()
    time.sleep(2)
    spent = srv.cpu_seconds() - cpu0
    assert spent < 0.5, "server spun while out of descriptors: %.2fs CPU in 2s" % spent
    for s in served:
        s.close()
    for s in socks[40:]:
        s.settimeout(20)
        assert_echoes(s, b"late but served")
        s.close()
