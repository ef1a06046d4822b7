# SPDX-License-Identifier: GPL-2.0-only
"""PROXY protocol under attack: headers that are almost valid,
peers that stall, stop or reset halfway, a reload and a drain while headers
are still coming, and the counters afterwards, under every engine.  As in
test_proxy.py the tests play the balancer from 127.0.0.1."""
import os
import signal
import socket
import struct
import time

import pytest

from conftest import assert_echoes, connect_or_none, send_all_then_read, wait_for
from ops_common import ctl, stats
from test_proxy import (HEADERS, SIG, all_taken_in, closed_without_echo, config_server, conns,
                        proxy_server, v1, v2)

SCALE = float(os.environ.get("ECHOSRV_TIMEOUT_SCALE", "1"))


def rejected(srv, reason):
    return stats(srv.ctl)["rejected"][reason]


# Each is refused (proxy-bad) and nothing of it, or of what follows, echoed.
ALMOST = {
    "v1-nul-in-address": b"PROXY TCP4 192.0.2.7\x00junk 198.51.100.1 1 7\r\n",
    "v1-nul-after-address": b"PROXY TCP6 2001:db8::7\x00 2001:db8::1 1 7\r\n",
    "v1-three-part-ipv4": b"PROXY TCP4 192.0.2 198.51.100.1 1 7\r\n",
    "v1-leading-zero-ipv4": b"PROXY TCP4 192.0.2.07 198.51.100.1 1 7\r\n",
    "v1-port-99999": b"PROXY TCP4 192.0.2.7 198.51.100.1 99999 7\r\n",
    "v1-ipv6-zone": b"PROXY TCP6 fe80::1%lo 2001:db8::1 1 7\r\n",
    "v1-tcp4-with-ipv6": b"PROXY TCP4 2001:db8::7 198.51.100.1 1 7\r\n",
    "v1-108-bytes": b"PROXY UNKNOWN " + b"a" * 92 + b"\r\n",
    "v1-cr-without-lf": b"PROXY TCP4 192.0.2.7 198.51.100.1 1 7\rX\r\n",
    "v1-tab": b"PROXY TCP4 192.0.2.7\t198.51.100.1 1 7\r\n",
    "v2-version-1": SIG + b"\x11\x11\x00\x0c" + bytes(12),
    "v2-unix": SIG + b"\x21\x31\x00\xd8" + bytes(216),
    "v2-inet6-length-for-inet": SIG + b"\x21\x21\x00\x0c" + bytes(12),
    "v2-tlv-one-past-the-end": v2("192.0.2.7", "198.51.100.1", 1, 7, tlvs=b"\x01\x00\x02a"),
    "v2-crc-wrong-by-one-bit": None,	# built below from a right one
}


def crc32c(b):
    c = 0xffffffff
    for x in b:
        c ^= x
        for _ in range(8):
            c = (c >> 1) ^ (0x82f63b78 if c & 1 else 0)
    return c ^ 0xffffffff


def with_crc(tlvs=b""):
    h = v2("192.0.2.9", "198.51.100.1", 4242, 7, tlvs=tlvs + b"\x03\x00\x04" + bytes(4))
    return h[:-4] + struct.pack("!I", crc32c(h))


ALMOST["v2-crc-wrong-by-one-bit"] = with_crc()[:-1] + bytes([with_crc()[-1] ^ 1])


@pytest.mark.parametrize("kind", sorted(ALMOST))
def test_almost_valid_header_refused(start_server, tmp_path, engine, kind):
    srv = proxy_server(start_server, tmp_path, engine)
    s = srv.connect(srv.proxy_addr)
    s.sendall(ALMOST[kind] + b"payload")
    assert closed_without_echo(s)
    wait_for(lambda: rejected(srv, "proxy_bad") == 1, what="proxy_bad counted")
    assert stats(srv.ctl)["connections_total"] == 0


# Each is valid and served, at the edge of what the spec allows.
EDGE = {
    "v1-107-bytes": (b"PROXY UNKNOWN " + b"a" * 91 + b"\r\n", None),
    "v1-longest-tcp6": (v1("TCP6", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                           "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, 65535),
                        "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
    "v1-port-0": (v1("TCP4", "192.0.2.7", "198.51.100.1", 0, 7), "192.0.2.7:0"),
    "v2-longest-local": (SIG + b"\x20\x00\xff\xff" + bytes(65535), None),
    "v2-longest-proxy": (v2("192.0.2.7", "198.51.100.1", 5, 7,
                            tlvs=b"\xe0\xff\xf0" + bytes(65520)), "192.0.2.7:5"),
    "v2-crc-right-with-tlvs": (with_crc(b"\x05\x00\x02id\x04\x00\x00"), "192.0.2.9:4242"),
}


@pytest.mark.parametrize("kind", sorted(EDGE))
def test_edge_header_served(start_server, tmp_path, engine, kind):
    header, client = EDGE[kind]
    assert len(header) <= 16 + 65535
    srv = proxy_server(start_server, tmp_path, engine)
    s = srv.connect(srv.proxy_addr)
    got = send_all_then_read(s, header + b"edge payload", shut=True)
    assert got == b"edge payload"
    if client:
        wait_for(lambda: "peer=%s via=127.0.0.1:" % client in srv.stderr(), what="CONN line")
    assert rejected(srv, "proxy_bad") == 0


def test_v4_mapped_client_meets_the_ipv4_acl(start_server, tmp_path, engine):
    """A TCP6 header naming ::ffff:192.0.2.66 is the IPv4 client 192.0.2.66
    for --deny, not a way around it."""
    srv = proxy_server(start_server, tmp_path, engine, "--deny", "192.0.2.66/32")
    s = srv.connect(srv.proxy_addr)
    s.sendall(v1("TCP6", "::ffff:192.0.2.66", "2001:db8::1", 1, 7) + b"x")
    assert closed_without_echo(s)
    wait_for(lambda: rejected(srv, "acl") == 1, what="the ACL refusal")


@pytest.mark.parametrize("kind", ["v1-ipv4", "v2-ipv6"])
def test_header_split_at_every_byte(start_server, tmp_path, engine, kind):
    header, client = HEADERS[kind]
    srv = proxy_server(start_server, tmp_path, engine)
    for cut in range(1, len(header)):
        s = srv.connect(srv.proxy_addr)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(header[:cut])
        time.sleep(0.005)
        s.sendall(header[cut:] + b"cut %d" % cut)
        want = b"cut %d" % cut
        got = b""
        s.settimeout(10)
        while len(got) < len(want):
            part = s.recv(64)
            assert part, "closed at cut %d" % cut
            got += part
        assert got == want
        s.close()
    st = stats(srv.ctl)
    assert st["proxy_connections_total"] == len(header) - 1
    assert st["rejected"]["proxy_bad"] == 0


def test_header_then_fin_before_data(start_server, tmp_path, engine):
    """The header is whole, then the peer closes: a served connection that
    ends at once, not a bad header, and nothing is echoed."""
    srv = proxy_server(start_server, tmp_path, engine)
    s = srv.connect(srv.proxy_addr)
    s.sendall(HEADERS["v2-ipv4"][0])
    s.shutdown(socket.SHUT_WR)
    assert closed_without_echo(s)
    s.close()
    wait_for(lambda: stats(srv.ctl)["connections_closed_total"] == 1, what="the close")
    st = stats(srv.ctl)
    assert st["connections_active"] == 0
    assert st["proxy_connections_total"] == 1 and st["rejected"]["proxy_bad"] == 0
    assert st["bytes_received_total"] == 0 and st["bytes_sent_total"] == 0


def test_header_then_rst_many_times(start_server, tmp_path, engine):
    """Peers that send a header, or half of one, and reset: none stays
    behind and the proxy listener keeps accepting.  (A peer that resets
    before the server looks at it may go uncounted: io_uring's accept gives
    no address, and getpeername() on a reset socket fails.)"""
    srv = proxy_server(start_server, tmp_path, engine, proxy_from="127.0.0.1/32")
    for i in range(50):
        s = srv.connect(srv.proxy_addr)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.sendall(HEADERS["v2-ipv4"][0][:10 + i % 20 * 2])
        s.close()
    all_taken_in(srv)
    wait_for(lambda: stats(srv.ctl)["connections_active"] == 0, what="every one gone")
    # The barrier is refused at its accept; a half header accepted before it
    # may meet its reset only at a later turn of the loop.
    wait_for(lambda: stats(srv.ctl)["proxy_headers_waiting"] == 0, what="no header waiting")
    ok = srv.connect(srv.proxy_addr)
    ok.sendall(HEADERS["v1-ipv4"][0])
    assert_echoes(ok, b"still accepting")
    st = stats(srv.ctl)
    assert st["connections_active"] == 1 and st["rejected"]["proxy_timeout"] == 0


def test_slowloris_held_to_the_timeout_from_accept(start_server, tmp_path, engine):
    """One byte per half timeout never resets the wait: it runs from accept."""
    srv = proxy_server(start_server, tmp_path, engine, "--proxy-timeout", "2")
    s = srv.connect(srv.proxy_addr)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    header = HEADERS["v1-ipv4"][0]
    sent = 0
    closed = False
    for b in header[:-1]:	# never the last byte, so never complete
        try:
            s.send(bytes([b]))
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        sent += 1
        time.sleep(0.5)
    # 2 s of timeout is 4 bytes at this pace; the whole line would be ~20 s.
    assert closed or closed_without_echo(s, timeout=20)
    assert sent < len(header) - 1
    wait_for(lambda: rejected(srv, "proxy_timeout") == 1, what="the timeout")


def test_half_headers_hold_max_conns_and_are_bounded(start_server, tmp_path, engine):
    """Connections that send half a header and wait take --max-conns places,
    no more than that many wait, and --proxy-timeout closes them all; then
    the server serves again and its counters add up."""
    srv = proxy_server(start_server, tmp_path, engine, "--max-conns", "40",
                       "--proxy-timeout", "2")
    socks = []
    for i in range(60):
        s = connect_or_none(srv.proxy_addr)
        if s is not None:
            try:
                s.sendall(b"PROXY TCP4 192.0.2.")
            except OSError:
                pass
            socks.append(s)
    wait_for(lambda: rejected(srv, "max_conns") >= 20, what="the rest refused at max-conns")
    wait_for(lambda: rejected(srv, "proxy_timeout") == 40, timeout=30,
             what="every waiting one timed out")
    for s in socks:
        s.close()
    ok = srv.connect(srv.proxy_addr)
    ok.sendall(HEADERS["v1-ipv4"][0])
    assert_echoes(ok, b"served again")
    st = stats(srv.ctl)
    assert st["rejected"]["max_conns"] == 20
    assert st["rejected"]["proxy_bad"] == 0
    assert st["connections_active"] == 1 and st["connections_total"] == 1


def test_same_client_through_two_balancers_per_ip(start_server, tmp_path, engine):
    """The per-address limit is the client's, whichever balancer it came by."""
    srv = proxy_server(start_server, tmp_path, engine, "--max-conns-per-ip", "1")
    a = connect_or_none(srv.proxy_addr, source="127.0.0.2")
    a.sendall(v1("TCP4", "192.0.2.7", "198.51.100.1", 1, 7))
    assert_echoes(a, b"first")
    b = connect_or_none(srv.proxy_addr, source="127.0.0.3")
    b.sendall(v1("TCP4", "192.0.2.7", "198.51.100.1", 2, 7) + b"x")
    assert closed_without_echo(b)
    wait_for(lambda: rejected(srv, "max_conns_per_ip") == 1, what="the per-IP refusal")
    listed = conns(srv)
    assert [c["peer"] for c in listed] == ["192.0.2.7:1"]
    assert listed[0]["via"].startswith("127.0.0.2:")


def test_reload_shorter_timeout_holds_new_waiters(start_server, tmp_path, engine):
    """A reload that shortens --proxy-timeout bounds the connections that
    come after it by the new timeout, even while one accepted before it
    still waits under the old, longer one."""
    base = ["listen 127.0.0.1:0", "proxy-listen 127.0.0.1:0", "proxy-from 127.0.0.0/8",
            "trace error,conn", "drain-timeout 2"]
    srv, write = config_server(start_server, tmp_path, engine, *base, "proxy-timeout 120")
    old = srv.connect(srv.addrs[1])
    old.sendall(b"PROXY ")
    time.sleep(0.2 * SCALE)	# let the server accept it under the old timeout
    write(*base, "proxy-timeout 1")
    ctl(srv.ctl, "reload")
    new = srv.connect(srv.addrs[1])
    new.sendall(b"PROXY ")
    assert closed_without_echo(new, timeout=20)	# 1 s, not the old one's 120
    assert rejected(srv, "proxy_timeout") == 1
    old.sendall(b"TCP4 192.0.2.7 198.51.100.1 1 7\r\n")
    assert_echoes(old, b"the old one still had time")


def test_reload_untrusting_a_waiting_balancer(start_server, tmp_path, engine):
    """Trust is decided at accept: a connection already waiting when a
    reload stops trusting its balancer finishes its header and is served;
    the next one from there is refused."""
    base = ["listen 127.0.0.1:0", "proxy-listen 127.0.0.1:0", "trace error,conn",
            "drain-timeout 2", "proxy-timeout 30"]
    srv, write = config_server(start_server, tmp_path, engine, *base, "proxy-from 127.0.0.0/8")
    waiting = srv.connect(srv.addrs[1])
    waiting.sendall(b"PROXY TCP4 ")
    time.sleep(0.2 * SCALE)
    write(*base, "proxy-from 198.18.0.0/15")
    ctl(srv.ctl, "reload")
    waiting.sendall(b"192.0.2.7 198.51.100.1 1 7\r\n")
    assert_echoes(waiting, b"admitted as accepted")
    late = connect_or_none(srv.addrs[1])
    if late is not None:
        assert closed_without_echo(late)
    wait_for(lambda: rejected(srv, "proxy_untrusted") == 1, what="the late one refused")


def test_drain_with_headers_pending(start_server, tmp_path, engine):
    """SIGTERM while one header is half in and one is complete: the complete
    one is served until the drain ends, the half one is closed by the end of
    the drain at the latest, and the server exits cleanly."""
    srv = proxy_server(start_server, tmp_path, engine, "--proxy-timeout", "60",
                       "--drain-timeout", "2")
    half = srv.connect(srv.proxy_addr)
    half.sendall(b"PROXY TCP4 192.0.2.")
    whole = srv.connect(srv.proxy_addr)
    whole.sendall(HEADERS["v1-ipv4"][0])
    assert_echoes(whole, b"before the drain")
    time.sleep(0.2 * SCALE)
    srv.signal(signal.SIGTERM)
    assert closed_without_echo(half, timeout=30)
    assert srv.wait(timeout=30) == 0
    srv.wait_log("reason=proxy-timeout")


def test_plain_listener_echoes_a_v2_header(start_server, tmp_path, engine):
    """A v2 header on a plain --listen port is data like any other."""
    srv = proxy_server(start_server, tmp_path, engine)
    s = srv.connect(srv.addrs[0])
    h = HEADERS["v2-ipv4"][0] + b"tail"
    assert send_all_then_read(s, h) == h
    st = stats(srv.ctl)
    assert st["proxy_connections_total"] == 0 and st["bytes_received_total"] == len(h)


def test_counters_add_up_after_a_mix(start_server, tmp_path, engine):
    """Served, health checks and each refusal, counted once each, in stats,
    conns and metrics alike; the header never in bytes_received."""
    srv = proxy_server(start_server, tmp_path, engine, "--proxy-timeout", "1",
                       "--deny", "192.0.2.66/32")
    kept = []
    for kind in sorted(HEADERS):
        s = srv.connect(srv.proxy_addr)
        s.sendall(HEADERS[kind][0] + b"12345")
        s.settimeout(10)
        got = b""
        while len(got) < 5:
            part = s.recv(5 - len(got))
            assert part
            got += part
        kept.append(s)
    hc = srv.connect(srv.proxy_addr)
    hc.sendall(b"PROXY UNKNOWN\r\n")
    assert_echoes(hc, b"hc")
    bad = srv.connect(srv.proxy_addr)
    bad.sendall(b"PROXY TCP4 nope\r\n")
    assert closed_without_echo(bad)
    denied = srv.connect(srv.proxy_addr)
    denied.sendall(v1("TCP4", "192.0.2.66", "198.51.100.1", 1, 7))
    assert closed_without_echo(denied)
    slow = srv.connect(srv.proxy_addr)
    slow.sendall(b"PROXY ")
    assert closed_without_echo(slow, timeout=20)
    wait_for(lambda: rejected(srv, "proxy_timeout") == 1, what="the timeout")
    st = stats(srv.ctl)
    assert st["proxy_connections_total"] == 5	# four served + the denied one
    assert st["proxy_health_checks_total"] == 1
    assert st["rejected"]["proxy_bad"] == 1 and st["rejected"]["acl"] == 1
    assert st["connections_total"] == 5 and st["connections_active"] == 5
    listed = conns(srv)
    assert len(listed) == 5
    assert sum(c["bytes_received"] for c in listed) == 4 * 5 + 2
    assert st["bytes_received_total"] == 4 * 5 + 2


@pytest.mark.workers
def test_two_workers_pending_reload_and_counters(start_server, tmp_path, engine):
    """Two workers: half headers, whole ones and a reload while both wait;
    every connection ends up counted exactly once, across the workers."""
    base = ["listen 127.0.0.1:0", "proxy-listen 127.0.0.1:0", "proxy-from 127.0.0.0/8",
            "trace error,conn", "drain-timeout 2", "workers 2", "max-conns 30"]
    srv, write = config_server(start_server, tmp_path, engine, *base, "proxy-timeout 2")
    half, whole = [], []
    for i in range(40):
        s = connect_or_none(srv.addrs[1])
        if s is None:
            continue
        try:
            if i % 4 == 0:
                s.sendall(v1("TCP4", "192.0.2.%d" % (i + 1), "198.51.100.1", 1, 7) + b"w%02d" % i)
                whole.append((s, b"w%02d" % i))
            else:
                s.sendall(b"PROXY TCP4 192.0.2.")
                half.append(s)
        except OSError:
            pass
        if i == 20:
            write(*base, "proxy-timeout 1")
            ctl(srv.ctl, "reload")
    for s, want in whole:
        s.settimeout(10)
        got = b""
        try:
            while len(got) < len(want):
                part = s.recv(16)
                if not part:
                    break
                got += part
        except ConnectionResetError:
            pass
        assert got in (want, b"")	# echoed, or refused at max-conns
    for s in half:
        assert closed_without_echo(s, timeout=20)

    def settled():
        st = stats(srv.ctl)
        r = st["rejected"]
        return st["proxy_connections_total"] + r["proxy_timeout"] + r["max_conns"] == 40 and st
    st = wait_for(settled, timeout=20, what="every connection counted once")
    assert st["rejected"]["proxy_bad"] == 0 and st["errors_total"] == 0
    assert st["connections_active"] == st["proxy_connections_total"]
    assert len(conns(srv)) == st["connections_active"]
