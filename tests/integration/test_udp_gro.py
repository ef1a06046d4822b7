# SPDX-License-Identifier: GPL-2.0-only
"""UDP_GRO in, UDP_SEGMENT out (docs/udp.md, src/engine/udp_gso.c).

The clients send with UDP_SEGMENT, so over loopback (and a veth pair) the
kernel hands echosrv's UDP_GRO socket each send as one coalesced receive;
the server's udp_gro_receives_total counter proves that it did.  The
clients receive without UDP_GRO, so every echoed datagram arrives on its
own and must have exactly its original size and bytes.  The counters,
the rate limit and too-big count datagrams, not receives."""
import socket
import struct

import pytest

from conftest import wait_for
from netns import SERVER_IP, CLIENT_IP, netns, require_netns  # noqa: F401 (fixture)
from test_udp import client, nothing_back, pattern, udp_server, wait_counter

SOL_UDP = getattr(socket, "SOL_UDP", 17)
UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)


def send_segmented(sock, data, seg, addr):
    """One sendmsg of data, which the kernel cuts into seg-byte datagrams
    (the last one shorter when seg does not divide it)."""
    sock.sendmsg([data], [(SOL_UDP, UDP_SEGMENT, struct.pack("=H", seg))], 0, addr)


def cut(data, seg):
    return [data[i:i + seg] for i in range(0, len(data), seg)] or [b""]


def receive(sock, n):
    return [sock.recvfrom(70000)[0] for _ in range(n)]


# (segment size, total bytes): 1, 100 and 1,472-byte datagrams, odd last
# ones, and at most 64 segments a send (the kernel's limit on older kernels).
CASES = [(1, 64), (1, 37), (100, 1050), (100, 6400), (1472, 1472 * 40 + 7),
         (1472, 1472 * 44), (1472, 2 * 1472 + 1), (999, 999 * 3 + 998)]


def test_coalesced_receives_echoed_datagram_by_datagram(start_server, tmp_path, engine):
    srv = udp_server(start_server, tmp_path, engine, "--udp-rate", "0", "--trace", "error,data",
                     listen="127.0.0.1:0")
    s = client()
    total = 0
    for seg, n in CASES:
        data = pattern(n, seg)
        send_segmented(s, data, seg, ("127.0.0.1", srv.uport))
        want = cut(data, seg)
        got = receive(s, len(want))
        assert [len(d) for d in got] == [len(d) for d in want], (seg, n)
        assert got == want, (seg, n)
        total += len(want)
    assert nothing_back(s, 0.2)
    c = wait_counter(srv, "udp_datagrams_sent_total", total)
    assert c["udp_gro_receives_total"] == len(CASES), "each send reached echosrv coalesced"
    assert c["udp_datagrams_received_total"] == c["udp_datagrams_sent_total"] == total
    assert c["udp_bytes_sent_total"] == sum(n for _, n in CASES)
    # A DATA line per datagram, with its own size (the 1-byte ones: 64,
    # 37, and the last of 2 x 1,472 + 1).
    peer = "udp echo peer=127.0.0.1:%d " % s.getsockname()[1]

    def lines():
        found = [ln for ln in srv.stderr().splitlines() if peer in ln]
        return len(found) >= total and found
    found = wait_for(lines, what="%d DATA lines" % total)
    assert len(found) == total
    assert sum(ln.endswith("bytes=1") for ln in found) == 64 + 37 + 1
    s.close()


def test_coalesced_on_a_dual_stack_listener(start_server, tmp_path, engine):
    """IPv6, and IPv4 (v4-mapped) on the same [::] socket."""
    srv = udp_server(start_server, tmp_path, engine, "--udp-rate", "0")
    data = pattern(1232 * 20 + 5)
    for family, host in ((socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.1")):
        s = client(host, family=family)
        send_segmented(s, data, 1232, (host, srv.uport))
        assert receive(s, 21) == cut(data, 1232), host
        s.close()
    c = wait_counter(srv, "udp_datagrams_sent_total", 42)
    assert c["udp_gro_receives_total"] == 2 and c["udp_datagrams_received_total"] == 42


@pytest.mark.workers
def test_coalesced_under_load_from_many_sources(start_server, tmp_path, engine):
    """16 sources, each 20 rounds of one coalesced send of 2 to 40
    datagrams of varied sizes, every datagram numbered: each comes back
    once, in order, byte- and boundary-exact."""
    srv = udp_server(start_server, tmp_path, engine, "--udp-rate", "0", "--workers", "2",
                     listen="127.0.0.1:0")
    socks = [client("127.0.0.%d" % (2 + i)) for i in range(16)]
    sizes = [17, 100, 1000, 1472, 333]
    expect = 0
    for r in range(20):
        want = []
        for i, s in enumerate(socks):
            seg = sizes[(i + r) % len(sizes)]
            count = 2 + (i * 7 + r * 3) % 39
            parts = [(b"%02d:%02d:%02d:" % (i, r, j) + pattern(seg, i + j))[:seg]
                     for j in range(count)]
            parts[-1] = parts[-1][:max(9, seg - 1 - r)]	# an odd last one
            send_segmented(s, b"".join(parts), seg, ("127.0.0.1", srv.uport))
            want.append(parts)
            expect += count
        for s, parts in zip(socks, want):
            assert receive(s, len(parts)) == parts
    for s in socks:
        assert nothing_back(s, 0.05)
        s.close()
    c = wait_counter(srv, "udp_datagrams_sent_total", expect)
    assert c["udp_gro_receives_total"] >= 16 * 20 // 2, "most sends arrived coalesced"
    assert c["udp_datagrams_received_total"] == c["udp_datagrams_sent_total"] == expect
    assert sum(w["udp_datagrams_sent_total"] for w in c["per_worker"]) == expect


def test_rate_limit_counts_each_coalesced_datagram(start_server, tmp_path, engine):
    """--udp-rate 10 (a burst of 10): a coalesced send of 40 datagrams gets
    its first 10 back and 30 rate drops; another source is unaffected."""
    srv = udp_server(start_server, tmp_path, engine, "--udp-rate", "10", listen="127.0.0.1:0")
    a, b = client("127.0.0.2"), client("127.0.0.3")
    data = b"".join(b"%03d" % j + pattern(97, j) for j in range(40))
    send_segmented(a, data, 100, ("127.0.0.1", srv.uport))
    assert receive(a, 10) == cut(data, 100)[:10]
    assert nothing_back(a, 0.3)
    c = wait_counter(srv, "udp_datagrams_sent_total", 10)
    assert c["udp_gro_receives_total"] == 1
    assert c["udp_datagrams_received_total"] == 40 and c["udp_datagrams_sent_total"] == 10
    assert c["udp_dropped"]["rate"] == 30
    send_segmented(b, data[:500], 100, ("127.0.0.1", srv.uport))
    assert receive(b, 5) == cut(data[:500], 100)
    a.close()
    b.close()


def test_too_big_is_judged_per_datagram(start_server, tmp_path, engine):
    """--udp-max-size 500: of 1,000-byte datagrams coalesced with a
    200-byte last one, the three full ones are too-big, the last is echoed;
    400-byte ones all pass."""
    srv = udp_server(start_server, tmp_path, engine, "--udp-rate", "0", "--udp-max-size", "500",
                     listen="127.0.0.1:0")
    s = client()
    data = pattern(3200)
    send_segmented(s, data, 1000, ("127.0.0.1", srv.uport))
    assert receive(s, 1) == [data[3000:]]
    assert nothing_back(s, 0.3)
    send_segmented(s, data[:2000], 400, ("127.0.0.1", srv.uport))
    assert receive(s, 5) == cut(data[:2000], 400)
    c = wait_counter(srv, "udp_datagrams_sent_total", 6)
    assert c["udp_gro_receives_total"] == 2
    assert c["udp_dropped"]["too-big"] == 3
    assert c["udp_datagrams_received_total"] == 9 and c["udp_datagrams_sent_total"] == 6
    s.close()


@pytest.mark.parametrize("df", [False, True], ids=["fragment", "udp-df"])
def test_reply_route_narrower_than_the_segments(netns, start_server, tmp_path, engine, df):
    """The way back has a smaller MTU (a locked 1,300-byte route to the
    client) than the 1,472-byte datagrams that came in coalesced: the
    kernel refuses UDP_SEGMENT there, so each datagram goes again on its
    own, fragmented like any plain reply, or with --udp-df dropped as
    send-error, one per datagram."""
    netns.ns(netns.srv_ns, "ip", "route", "add", CLIENT_IP + "/32", "dev", "vs", "mtu", "lock",
             "1300")
    extra = ("--udp-df",) if df else ()
    srv = udp_server(start_server, tmp_path, engine, "--udp-rate", "0", *extra,
                     listen=SERVER_IP + ":0", wrapper=netns.wrapper())
    data = pattern(1472 * 5 + 100)

    def exchange():
        s = client(CLIENT_IP)
        send_segmented(s, data, 1472, (SERVER_IP, srv.uport))
        got = receive(s, 1 if df else 6)
        quiet = nothing_back(s, 0.3)
        s.close()
        return got, quiet
    got, quiet = netns.in_client(exchange)
    assert quiet
    c = wait_counter(srv, "udp_datagrams_sent_total", 1 if df else 6)
    assert c["udp_gro_receives_total"] == 1, "the veth pair delivered it coalesced"
    if df:
        # The 100-byte last one fits the route and goes back.
        assert got == [data[-100:]]
        assert c["udp_dropped"]["send-error"] == 5 and c["udp_datagrams_sent_total"] == 1
    else:
        assert got == cut(data, 1472)
        assert c["udp_datagrams_sent_total"] == 6
