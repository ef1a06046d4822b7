# SPDX-License-Identifier: GPL-2.0-only
"""UDP echo (docs/udp.md): every datagram back once, unchanged, from the
address it was sent to; the reflection guards drop and count; the rate
table stays bounded.  Every case runs under each engine.

Forged sources are sent with a raw socket on loopback (127.0.0.0/8 is the
loopback interface's, so the kernel delivers them) or, for what only a
real interface shows (broadcast, loopback arriving from outside), from a
network namespace on a veth pair (netns.py, 198.18.0.0/15)."""
import os
import signal
import socket
import struct
import subprocess
import time

import pytest

from conftest import BUILD, ECHOSRV, free_port, wait_for
from netns import SERVER_IP, CLIENT_IP, netns, require_netns  # noqa: F401 (fixture)
from ops_common import ctl, metric, metrics_url, scrape, stats

SANITIZED = "san-" in os.environ.get("ECHOSRV_BUILD", "")
SIZES = [0, 1, 1472, 9000, 65507]


def udp_server(start_server, tmp_path, engine, *args, listen="[::]:0", wrapper=None):
    ctl = str(tmp_path / ("ctl.%d" % len(os.listdir(tmp_path))))
    srv = start_server("--udp-listen", listen, "--ctl", ctl, *args, engine=engine,
                       wrapper=wrapper)
    srv.ctl = ctl
    srv.uport = srv.udp_addrs[0][1]
    return srv


def counters(srv):
    return stats(srv.ctl)


def client(host="127.0.0.1", port=0, family=socket.AF_INET, timeout=5):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((host, port))
    s.settimeout(timeout)
    return s


def pattern(n, seed=0):
    return bytes((i * 7 + seed) & 0xff for i in range(n))


def nothing_back(sock, wait=0.5):
    """True when no datagram arrives within wait seconds (a port-unreachable
    error counts as nothing: the socket is gone)."""
    sock.settimeout(wait)
    try:
        sock.recvfrom(70000)
    except (socket.timeout, ConnectionRefusedError):
        return True
    return False


def counter(c, name):
    """A counter of `stats` by name; "udp_dropped/REASON" for a drop reason."""
    group, _, key = name.partition("/")
    return c[group][key] if key else c[name]


def wait_counter(srv, name, at_least=1):
    def enough():
        c = counters(srv)
        return counter(c, name) >= at_least and c
    return wait_for(enough, what="%s >= %d" % (name, at_least))


def spoof(src, sport, dst, dport, payload=b"x", raw=None):
    """One IPv4/UDP datagram with a forged source, through a raw socket
    (the kernel fills in the IP checksum; a UDP checksum of 0 means none)."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    own = raw is None
    raw = raw or socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    try:
        raw.sendto(ip + udp, (dst, 0))
    finally:
        if own:
            raw.close()


# --- echo ------------------------------------------------------------------

def echo_every_size(port):
    """Each of SIZES over IPv4 and IPv6 to one dual-stack port: it comes
    back whole, from the address and port it was sent to."""
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        s = client(host, family=family)
        for n in SIZES:
            data = pattern(n, n)
            s.sendto(data, (host, port))
            got, frm = s.recvfrom(70000)
            assert got == data, "%d bytes over %s" % (n, host)
            assert frm[0] == host and frm[1] == port
        s.close()


def test_sizes_on_one_dual_stack_listener(start_server, tmp_path, engine):
    srv = udp_server(start_server, tmp_path, engine)
    echo_every_size(srv.uport)
    # A reply is counted after its send returns: the client can hold the
    # last one a moment before the count shows it.
    c = wait_counter(srv, "udp_datagrams_sent_total", 2 * len(SIZES))
    assert c["udp_datagrams_received_total"] == c["udp_datagrams_sent_total"] == 2 * len(SIZES)
    assert c["udp_bytes_sent_total"] == 2 * sum(SIZES)
    assert sum(w["udp_datagrams_sent_total"] for w in c["per_worker"]) == 2 * len(SIZES)


@pytest.mark.workers
def test_many_sources_every_datagram_checked(start_server, tmp_path, engine):
    srv = udp_server(start_server, tmp_path, engine, "--workers", "2")
    socks = [client("127.0.0.%d" % (2 + i)) for i in range(40)]
    per = 25
    got = [set() for _ in socks]
    # A round at a time: 40 datagrams in flight at once, which the
    # server's socket buffer always holds (a burst of 1,000 need not).
    for k in range(per):
        for i, s in enumerate(socks):
            s.sendto(b"%d:%d:" % (i, k) + pattern(100 + k, i), ("127.0.0.1", srv.uport))
        for i, s in enumerate(socks):
            data, frm = s.recvfrom(70000)
            assert frm == ("127.0.0.1", srv.uport)
            head, _, body = data.partition(b":")
            n, _, body = body.partition(b":")
            assert int(head) == i and int(n) == k and body == pattern(100 + k, i)
            got[i].add(k)
    for i, s in enumerate(socks):
        assert got[i] == set(range(per)), "source %d: each datagram once" % i
        assert nothing_back(s, 0.05)
        s.close()
    c = wait_counter(srv, "udp_datagrams_sent_total", 40 * per)
    assert c["udp_datagrams_sent_total"] == 40 * per
    assert sum(w["udp_datagrams_sent_total"] for w in c["per_worker"]) == 40 * per


@pytest.mark.workers
def test_ipv4_fallback_when_ipv6_is_missing(start_server, tmp_path, engine):
    """[::]:PORT falls back to 0.0.0.0:PORT where socket(AF_INET6) fails
    (tests/helpers/no_ipv6), as the TCP listener does."""
    srv = udp_server(start_server, tmp_path, engine, "--workers", "2",
                     wrapper=[os.path.join(BUILD, "helpers", "no_ipv6")])
    assert srv.udp_addrs[0][0] == "0.0.0.0"
    s = client()
    s.sendto(b"v4 only", ("127.0.0.1", srv.uport))
    assert s.recvfrom(100)[0] == b"v4 only"
    srv.wait_log("UDP on IPv4 0.0.0.0 only")


def test_ipv4_fallback_keeps_the_other_addresses(start_server, tmp_path, engine):
    """The fallback of a second address leaves the first one's sockets open
    (it closed the worker's whole row)."""
    srv = udp_server(start_server, tmp_path, engine, "--udp-listen", "[::]:0",
                     listen="127.0.0.1:0", wrapper=[os.path.join(BUILD, "helpers", "no_ipv6")])
    assert [h for h, _ in srv.udp_addrs] == ["127.0.0.1", "0.0.0.0"]
    s = client("127.0.0.2")
    for _, port in srv.udp_addrs:
        s.sendto(b"both", ("127.0.0.1", port))
        assert s.recvfrom(100)[0] == b"both"


def test_reply_from_the_address_it_was_sent_to(start_server, tmp_path, engine):
    """A wildcard listener answers a request to 127.0.0.2 from 127.0.0.2,
    not from the address the routing table would pick (127.0.0.1)."""
    srv = udp_server(start_server, tmp_path, engine)
    s = client("127.0.0.1")
    for dst in ("127.0.0.2", "127.0.0.1", "127.0.0.3"):
        s.sendto(dst.encode(), (dst, srv.uport))
        data, frm = s.recvfrom(100)
        assert data == dst.encode() and frm == (dst, srv.uport)
    s6 = client("::", family=socket.AF_INET6)
    s6.sendto(b"v4-mapped", ("::ffff:127.0.0.2", srv.uport))
    data, frm = s6.recvfrom(100)
    assert data == b"v4-mapped" and frm[0] == "::ffff:127.0.0.2"


# --- guards ----------------------------------------------------------------

def low_port_socket():
    for port in range(1023, 600, -1):
        try:
            return client("127.0.0.1", port)
        except OSError:
            continue
    pytest.skip("no free port below 1024")


def test_low_source_port_dropped(start_server, tmp_path, engine):
    srv = udp_server(start_server, tmp_path, engine, "--trace", "error",
                     "--metrics", "127.0.0.1:0")
    s = low_port_socket()
    s.sendto(b"from a low port", ("127.0.0.1", srv.uport))
    assert nothing_back(s)
    c = wait_counter(srv, "udp_dropped/low-port")
    assert c["udp_datagrams_sent_total"] == 0
    wait_for(lambda: "dropped: low-port" in srv.stderr(), what="the ERROR line")
    text = scrape(metrics_url(srv))[2]
    assert metric(text, 'echosrv_udp_dropped_total{worker="0",reason="low-port"}') == 1
    assert metric(text, 'echosrv_udp_datagrams_received_total{worker="0"}') == 1


def test_low_source_port_allowed(start_server, tmp_path, engine):
    srv = udp_server(start_server, tmp_path, engine, "--udp-allow-low-ports")
    s = low_port_socket()
    s.sendto(b"from a low port", ("127.0.0.1", srv.uport))
    assert s.recvfrom(100)[0] == b"from a low port"


def test_loop_port_dropped(start_server, tmp_path, engine):
    """A source port echosrv serves is never answered, low ports allowed or
    not (FreeBSD's loop check)."""
    srv = udp_server(start_server, tmp_path, engine, "--udp-allow-low-ports",
                     listen="127.0.0.1:0")
    s = client("127.0.0.2", srv.uport)
    s.sendto(b"loop?", ("127.0.0.1", srv.uport))
    assert nothing_back(s)
    assert wait_counter(srv, "udp_dropped/loop")["udp_datagrams_sent_total"] == 0


def test_two_instances_facing_each_other(start_server, tmp_path, engine):
    """A datagram forged to come from instance B, sent to instance A (both
    on the same port, as echo services are): A drops it and B never sees
    anything, so there is no loop at all."""
    a = udp_server(start_server, tmp_path, engine, listen="127.0.0.1:0")
    b = udp_server(start_server, tmp_path, engine, listen="127.0.0.2:%d" % a.uport)
    spoof("127.0.0.2", a.uport, "127.0.0.1", a.uport, b"bounce")
    wait_counter(a, "udp_dropped/loop")
    time.sleep(0.3)
    assert counters(a)["udp_datagrams_sent_total"] == 0
    assert counters(b)["udp_datagrams_received_total"] == 0


def test_acl_applies_to_udp(start_server, tmp_path, engine):
    srv = udp_server(start_server, tmp_path, engine, "--deny", "127.0.0.2")
    bad, good = client("127.0.0.2"), client("127.0.0.3")
    bad.sendto(b"no", ("127.0.0.1", srv.uport))
    good.sendto(b"yes", ("127.0.0.1", srv.uport))
    assert good.recvfrom(10)[0] == b"yes"
    assert nothing_back(bad)
    assert wait_counter(srv, "udp_dropped/acl")["udp_dropped"]["acl"] == 1


def test_too_big_dropped(start_server, tmp_path, engine):
    srv = udp_server(start_server, tmp_path, engine, "--udp-max-size", "100",
                     "--trace", "error,data")
    s = client()
    s.sendto(pattern(100), ("127.0.0.1", srv.uport))
    assert s.recvfrom(200)[0] == pattern(100)
    s.sendto(pattern(101), ("127.0.0.1", srv.uport))
    s.sendto(pattern(9000), ("127.0.0.1", srv.uport))
    assert nothing_back(s)
    c = wait_counter(srv, "udp_dropped/too-big", 2)
    assert c["udp_datagrams_sent_total"] == 1 and c["udp_dropped"]["too-big"] == 2
    err = wait_for(lambda: "dropped: too-big" in srv.stderr() and srv.stderr(),
                   what="the ERROR line")
    assert err.count("udp echo peer=127.0.0.1:%d" % s.getsockname()[1]) == 1, err
    assert 1 <= err.count("dropped: too-big") <= 2	# at most one a second: a slow run may see both


def test_rate_limit_per_source(start_server, tmp_path, engine):
    """A source far above --udp-rate gets about its rate back (its burst,
    plus what the time it took refilled); another source is unaffected."""
    rate, sent = 20, 200
    srv = udp_server(start_server, tmp_path, engine, "--udp-rate", str(rate))
    fast, other = client("127.0.0.2"), client("127.0.0.3")
    t0 = time.monotonic()
    for i in range(sent):
        fast.sendto(b"%d" % i, ("127.0.0.1", srv.uport))
    got, last = 0, t0
    while not nothing_back(fast, 0.5):
        got += 1
        last = time.monotonic()
    for i in range(10):
        other.sendto(b"o%d" % i, ("127.0.0.1", srv.uport))
    assert sorted(other.recvfrom(10)[0] for _ in range(10)) == sorted(b"o%d" % i for i in range(10))
    assert rate <= got <= rate + rate * (last - t0) + 1, (got, last - t0)
    c = wait_counter(srv, "udp_datagrams_sent_total", got + 10)
    assert c["udp_dropped"]["rate"] > 0
    assert c["udp_datagrams_sent_total"] == got + 10


def test_drain_closes_udp_at_once(start_server, tmp_path, engine):
    srv = udp_server(start_server, tmp_path, engine, "--trace", "error,info",
                     "--drain-timeout", "20")
    s = client()
    s.connect(("127.0.0.1", srv.uport))
    s.send(b"before")
    assert s.recv(10) == b"before"
    held = srv.connect()	# keeps the drain going
    srv.signal(signal.SIGTERM)
    # The worker logs this after it closed its sockets (main says "draining" sooner).
    wait_for(lambda: "worker 0: draining" in srv.stderr(), what="the worker to drain")
    s.send(b"after")
    assert nothing_back(s)
    held.close()
    assert srv.wait() == 0


def replies(sock, port, n, payload=b"r"):
    """How many of n datagrams to 127.0.0.1:port came back."""
    for i in range(n):
        sock.sendto(payload, ("127.0.0.1", port))
    got = 0
    while not nothing_back(sock, 0.3):
        got += 1
    return got


def test_reload_changes_the_guard_in_place(start_server, tmp_path, engine):
    """A reload applies --udp-rate, --udp-max-size and the ACL to UDP at
    once, on the same sockets; what needs a restart (--udp-sources, the
    rate table's size) is named and kept (test_reload_udp.py: the sockets)."""
    conf = tmp_path / "echosrv.conf"
    conf.write_text("udp-rate 0\n")
    srv = udp_server(start_server, tmp_path, engine, "--config", str(conf),
                     "--trace", "error,info", listen="127.0.0.1:0")
    a, b, c = client("127.0.0.2"), client("127.0.0.3"), client("127.0.0.4")
    p = srv.uport
    assert replies(a, p, 30) == 30		# unlimited
    conf.write_text("udp-rate 5\nudp-max-size 100\ndeny 127.0.0.3\nudp-sources 1024\n")
    assert ctl(srv.ctl, "reload").stdout == "reloaded\n"
    wait_for(lambda: "configuration 2 in force" in srv.stderr(), what="the reload")
    srv.wait_log("a restart is needed to change udp-sources")
    t0 = time.monotonic()
    got = replies(c, p, 30)
    assert 5 <= got <= 5 + 5 * (time.monotonic() - t0) + 1, got
    assert replies(b, p, 1) == 0		# denied now
    assert replies(a, p, 1, b"x" * 101) == 0 and replies(a, p, 1, b"x" * 100) == 1
    d = counters(srv)["udp_dropped"]
    assert d["acl"] == 1 and d["too-big"] == 1 and d["rate"] >= 20


def test_activation_with_a_datagram_socket(tmp_path):
    import shutil
    activate = shutil.which("systemd-socket-activate")
    if not activate:
        pytest.skip("systemd-socket-activate not installed (package systemd)")
    log = open(str(tmp_path / "log"), "w+b")
    port = free_port()
    p = subprocess.Popen([activate, "--datagram", "-l", "127.0.0.1:%d" % port, ECHOSRV,
                          "--udp-listen", "127.0.0.1:1"], stdout=log, stderr=log)
    try:
        s = client(timeout=0.5)

        def echoed():
            s.sendto(b"activated", ("127.0.0.1", port))
            try:
                return s.recvfrom(100)[0] == b"activated"
            except (socket.timeout, ConnectionRefusedError):
                return False
        wait_for(echoed, what="an echo from the activated socket")
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=20)
    log.seek(0)
    assert b"--udp-listen ignored" in log.read()


def test_options_in_check():
    ok = subprocess.run([ECHOSRV, "--udp-listen", "[::]:7", "--udp-rate", "0", "--udp-sources",
                         "1024", "--udp-max-size", "1472", "--udp-df", "--udp-allow-low-ports",
                         "--check"], capture_output=True, timeout=10)
    assert ok.returncode == 0, ok.stderr
    for bad in (["--udp-listen", "nowhere"], ["--udp-max-size", "70000"],
                ["--udp-sources", "1"]):
        r = subprocess.run([ECHOSRV, "--check"] + bad, capture_output=True, timeout=10)
        assert r.returncode == 2 and b"--udp-" in r.stderr, (bad, r.stderr)


# --- what only a real interface shows ---------------------------------------

def test_broadcast_request_not_answered(netns, start_server, tmp_path, engine):
    """A request to the veth subnet's broadcast address (198.18.0.3) reaches
    a wildcard listener; answering every such request would make each
    echo host on a LAN an amplifier.  Dropped as bad-source, nothing back."""
    srv = udp_server(start_server, tmp_path, engine, "--listen", SERVER_IP + ":0",
                     wrapper=netns.wrapper())

    def send():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.bind((CLIENT_IP, 0))
        s.sendto(b"to all", ("198.18.0.3", srv.uport))
        quiet = nothing_back(s)
        s.sendto(b"to one", (SERVER_IP, srv.uport))
        s.settimeout(5)
        return quiet, s.recvfrom(100)
    quiet, (data, frm) = netns.in_client(send)
    assert quiet and data == b"to one" and frm == (SERVER_IP, srv.uport)
    c = wait_counter(srv, "udp_datagrams_sent_total")
    assert c["udp_dropped"]["bad-source"] == 1 and c["udp_datagrams_sent_total"] == 1


def test_loopback_source_from_outside_dropped(netns, start_server, tmp_path, engine):
    """127.0.0.5 arriving on the veth (the kernel lets it in with
    route_localnet, as some hosts set it): bad-source, not echoed.  The
    kernel itself drops multicast and 0.0.0.0/8 sources as martians before
    any socket sees them; the unit tests cover those rules."""
    netns.ns(netns.srv_ns, "sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1",
             "net.ipv4.conf.vs.route_localnet=1", "net.ipv4.conf.all.rp_filter=0",
             "net.ipv4.conf.vs.rp_filter=0")
    srv = udp_server(start_server, tmp_path, engine, "--listen", SERVER_IP + ":0",
                     wrapper=netns.wrapper())

    def send():
        # A plain request first: it resolves the neighbour (an ARP request
        # sent on behalf of the forgery would carry 127.0.0.5 and go unanswered).
        s = client(CLIENT_IP)
        s.sendto(b"plain", (SERVER_IP, srv.uport))
        assert s.recvfrom(100)[0] == b"plain"
        spoof("127.0.0.5", 40000, SERVER_IP, srv.uport, b"martian")
    netns.in_client(send)
    c = wait_counter(srv, "udp_dropped/bad-source")
    assert c["udp_datagrams_sent_total"] == 1


def test_full_send_queue_drops_and_counts(netns, start_server, tmp_path, engine):
    """A slow link (tbf with a queue longer than the socket's send buffer)
    fills echosrv's UDP send queue: the replies that do not fit are dropped
    and counted as send-full, the worker never blocks, and it goes on
    echoing TCP meanwhile."""
    require_netns("tc")
    netns.ns(netns.srv_ns, "tc", "qdisc", "add", "dev", "vs", "root", "tbf", "rate", "10mbit",
             "burst", "32kb", "latency", "2s")
    srv = udp_server(start_server, tmp_path, engine, "--udp-rate", "0",
                     "--listen", SERVER_IP + ":0", wrapper=netns.wrapper())

    def load():
        s = client(CLIENT_IP)
        for _ in range(2000):
            s.sendto(b"x" * 1400, (SERVER_IP, srv.uport))
        t = socket.create_connection((SERVER_IP, srv.port), timeout=30)
        t.sendall(b"tcp meanwhile")
        got = t.recv(100)
        t.close()
        return got
    assert netns.in_client(load) == b"tcp meanwhile"
    c = wait_counter(srv, "udp_dropped/send-full")

    def settled():
        # Received is counted before the send, the send's fate after it.
        c = counters(srv)
        fates = c["udp_datagrams_sent_total"] + c["udp_dropped"]["send-full"]
        return fates == c["udp_datagrams_received_total"] and c
    c = wait_for(settled, what="every datagram's reply sent or counted send-full")
    assert c["udp_dropped"]["send-full"] >= 1 and c["udp_datagrams_sent_total"] >= 1


# --- the bounded table -------------------------------------------------------

@pytest.mark.plain
@pytest.mark.skipif(SANITIZED, reason="a sanitizer's shadow memory says nothing of echosrv's RSS")
def test_spoofed_sources_leave_the_table_bounded(start_server, tmp_path, engine):
    """200,000 forged sources (127.1.0.0 on, each one datagram) after the
    table is already full (--udp-sources 4096): RSS stays flat.  The
    socket's receive buffer may drop some of a flood this fast; at least
    half must reach echosrv."""
    srv = udp_server(start_server, tmp_path, engine, "--udp-sources", "4096",
                     listen="127.0.0.1:0")
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)

    def settled():
        seen = [counters(srv)["udp_datagrams_received_total"]]

        def still():
            time.sleep(0.5)
            seen.append(counters(srv)["udp_datagrams_received_total"])
            return seen[-1] == seen[-2]
        wait_for(still, timeout=60, what="the flood to be taken in")
        return seen[-1]

    def flood(first, n):
        for i in range(first, first + n):
            spoof("127.%d.%d.%d" % (1 + (i >> 16), (i >> 8) & 0xff, i & 0xff), 40000,
                  "127.0.0.1", srv.uport, b"s", raw)
            if i % 32 == 0:
                time.sleep(0.0005)
        return settled()
    before = flood(0, 20000)	# more than the table holds: it is full
    rss0 = srv.rss_kib()
    seen = flood(20000, 200000) - before
    assert seen >= 100000, "only %d of 200,000 reached echosrv" % seen
    grown = srv.rss_kib() - rss0
    assert grown < 2048, "RSS grew by %d KiB" % grown
