# SPDX-License-Identifier: GPL-2.0-only
"""PROXY protocol: --proxy-listen, --proxy-from, --proxy-timeout,
under every engine.  The tests play the load balancer themselves: they
connect from 127.0.0.1 (trusted with --proxy-from 127.0.0.0/8) and write
the header a balancer would, for clients at documentation addresses."""
import json
import os
import socket
import struct
import subprocess
import time

import pytest

from conftest import ECHOSRV, assert_echoes, assert_rejected, connect_or_none, echo_roundtrip, \
    read_to_eof, send_all_then_read, wait_for
from ops_common import ctl, metrics_url, scrape, stats

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(proto, src, dst, sport, dport):
    return ("PROXY %s %s %s %d %d\r\n" % (proto, src, dst, sport, dport)).encode()


def v2(src, dst, sport, dport, tlvs=b"", cmd=0x21):
    if ":" in src:
        fam, body = 0x21, socket.inet_pton(socket.AF_INET6, src) + \
            socket.inet_pton(socket.AF_INET6, dst)
    else:
        fam, body = 0x11, socket.inet_aton(src) + socket.inet_aton(dst)
    body += struct.pack("!HH", sport, dport) + tlvs
    return SIG + bytes([cmd, fam]) + struct.pack("!H", len(body)) + body


def v2_local():
    return SIG + b"\x20\x00\x00\x00"


HEADERS = {
    "v1-ipv4": (v1("TCP4", "192.0.2.7", "198.51.100.1", 50007, 7), "192.0.2.7:50007"),
    "v1-ipv6": (v1("TCP6", "2001:db8::7", "2001:db8::1", 50007, 7), "[2001:db8::7]:50007"),
    "v2-ipv4": (v2("192.0.2.7", "198.51.100.1", 50007, 7), "192.0.2.7:50007"),
    "v2-ipv6": (v2("2001:db8::7", "2001:db8::1", 50007, 7), "[2001:db8::7]:50007"),
}


def proxy_server(start_server, tmp_path, engine, *extra, proxy_from="127.0.0.0/8"):
    """A server with a plain listener (addrs[0]) and a proxy one (addrs[1])."""
    ctl_path = tmp_path / ("ctl.%d" % len(list(tmp_path.iterdir())))
    srv = start_server("--listen", "127.0.0.1:0", "--proxy-listen", "127.0.0.1:0",
                       "--proxy-from", proxy_from, "--ctl", str(ctl_path),
                       "--trace", "error,conn", *extra, engine=engine)
    srv.ctl = ctl_path
    srv.proxy_addr = srv.addrs[1]
    return srv


def config_server(start_server, tmp_path, engine, *lines):
    """A server run from a configuration file of these lines, with a
    control socket (srv.ctl); returns it and write(*lines), which rewrites
    the file for the next reload."""
    conf, sock = tmp_path / "p.conf", tmp_path / "ctl"

    def write(*new):
        conf.write_text("".join(line + "\n" for line in new))
    write(*lines)
    srv = start_server("--config", str(conf), "--ctl", str(sock), engine=engine,
                       cli_defaults=False)
    srv.ctl = sock
    return srv, write


def all_taken_in(srv):
    """Return once the worker has taken in every connection made to the proxy
    listener before this call, so that counts read after it are not short of
    connections still in the accept queue.  The barrier is a connection from
    an untrusted source (127.0.0.2), accepted after them (one worker accepts
    in order) and refused; the server must trust 127.0.0.1 alone."""
    refused = lambda: stats(srv.ctl)["rejected"]["proxy_untrusted"]
    before = refused()
    s = connect_or_none(srv.proxy_addr, source="127.0.0.2")
    if s is not None:
        assert closed_without_echo(s)
        s.close()
    wait_for(lambda: refused() > before, what="the untrusted barrier refused")


def conns(srv):
    return json.loads(ctl(srv.ctl, "conns", "--json").stdout)["connections"]


def closed_without_echo(sock, timeout=10):
    """The server closed or reset sock and echoed nothing of what was sent."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1 << 16) == b""
    except ConnectionResetError:
        return True


@pytest.mark.parametrize("kind", sorted(HEADERS))
def test_header_consumed_client_is_the_peer(start_server, tmp_path, engine, kind):
    header, client = HEADERS[kind]
    srv = proxy_server(start_server, tmp_path, engine)
    s = srv.connect(srv.proxy_addr)
    # The header and the first bytes in one segment, as balancers send them.
    s.sendall(header + b"first bytes\r\n")
    got = b""
    while len(got) < 13:
        part = s.recv(100)
        assert part, "closed after %r" % got
        got += part
    assert got == b"first bytes\r\n"	# the header itself never comes back
    assert_echoes(s, b"and then more")
    listed = conns(srv)
    assert [c["peer"] for c in listed] == [client]
    assert listed[0]["via"].startswith("127.0.0.1:")
    assert listed[0]["bytes_received"] == 13 + 13	# the header is not counted
    # The first 13 may have been read with the header and echoed before
    # the engine took the socket (preamble.h): they count all the same.
    assert listed[0]["bytes_sent"] == 13 + 13
    s.close()
    wait_for(lambda: "peer=%s via=127.0.0.1:" % client in srv.stderr() and
             "reason=peer-closed" in srv.stderr(), what="the CONN close line")
    srv.wait_log("accept conn=", "peer=%s via=127.0.0.1" % client)
    assert stats(srv.ctl)["proxy_connections_total"] == 1


@pytest.mark.parametrize("kind", ["v1-ipv4", "v2-ipv6"])
def test_header_one_byte_at_a_time(start_server, tmp_path, engine, kind):
    header, client = HEADERS[kind]
    srv = proxy_server(start_server, tmp_path, engine)
    s = srv.connect(srv.proxy_addr)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for b in header:
        s.send(bytes([b]))
        time.sleep(0.002)	# separate segments, not one coalesced write
    assert_echoes(s, b"after a slow header")
    assert [c["peer"] for c in conns(srv)] == [client]


def test_bulk_bytes_with_the_header_echoed_exactly(start_server, tmp_path, engine):
    """Everything sent in the same write as the header, well beyond one
    socket buffer, comes back byte for byte (sockmap: from the kernel,
    once the socket is in the map)."""
    srv = proxy_server(start_server, tmp_path, engine)
    payload = bytes((i * 7 + i // 251) & 0xff for i in range(1 << 20))
    s = srv.connect(srv.proxy_addr)
    got = send_all_then_read(s, HEADERS["v2-ipv4"][0] + payload)
    assert got == payload


@pytest.mark.parametrize("conn_buffer", [None, "1024"])
def test_bytes_read_with_the_header_echoed_first(start_server, tmp_path, engine, conn_buffer):
    """The header's read takes up to 2 KiB: the client bytes in it are
    echoed first (by the worker, or by io_uring from a copy that starts
    the connection), the rest by the engine, in order, whether the read
    ends inside them, right after them or before them; also when they are
    more than the --conn-buffer that a connection may hold (1 KiB)."""
    extra = ("--conn-buffer", conn_buffer) if conn_buffer else ()
    srv = proxy_server(start_server, tmp_path, engine, *extra)
    for kind in ("v1-ipv4", "v2-ipv6"):
        header = HEADERS[kind][0]
        room = 2048 - len(header)
        for n in (1, room - 1, room, room + 1, 3 * room):
            payload = bytes((i * 13 + n) & 0xff for i in range(n))
            s = srv.connect(srv.proxy_addr)
            assert send_all_then_read(s, header + payload) == payload, (kind, n)
            s.close()
    assert stats(srv.ctl)["proxy_connections_total"] == 10


def test_plain_listener_never_reads_a_header(start_server, tmp_path, engine):
    srv = proxy_server(start_server, tmp_path, engine)
    s = srv.connect(srv.addrs[0])
    header = HEADERS["v1-ipv4"][0]
    assert echo_roundtrip(s, header + b"x") == header + b"x"	# just bytes here
    assert conns(srv)[0]["peer"].startswith("127.0.0.1:")
    assert "via" not in conns(srv)[0]


def test_local_and_unknown_are_health_checks(start_server, tmp_path, engine):
    srv = proxy_server(start_server, tmp_path, engine)
    a = srv.connect(srv.proxy_addr)
    a.sendall(v2_local() + b"hc")
    b = srv.connect(srv.proxy_addr)
    b.sendall(b"PROXY UNKNOWN\r\nhc")
    c = srv.connect(srv.proxy_addr)
    c.sendall(v2("0.0.0.0", "0.0.0.0", 0, 0)[:12] + b"\x21\x00\x00\x00hc")	# PROXY, UNSPEC
    for s in (a, b, c):
        s.settimeout(10)
        assert s.recv(2) == b"hc"
    listed = conns(srv)
    assert len(listed) == 3
    assert all(x["peer"].startswith("127.0.0.1:") for x in listed)	# the balancer's own
    st = stats(srv.ctl)
    assert st["proxy_health_checks_total"] == 3
    assert st["proxy_connections_total"] == 0
    assert st["errors_total"] == 0 and st["rejected"]["proxy_bad"] == 0


def test_connect_and_close_is_a_tcp_health_check(start_server, tmp_path, engine):
    """A balancer's plain TCP check (connect, close, no header: what cloud
    balancers send) is a health check, not a bad header; a close after
    part of a header still is."""
    srv = proxy_server(start_server, tmp_path, engine)
    for _ in range(3):
        s = srv.connect(srv.proxy_addr)
        s.close()
    wait_for(lambda: stats(srv.ctl)["proxy_health_checks_total"] == 3, what="3 health checks")
    srv.wait_log("reason=peer-closed")
    part = srv.connect(srv.proxy_addr)
    part.sendall(b"PROXY ")
    part.shutdown(socket.SHUT_WR)
    assert closed_without_echo(part)
    wait_for(lambda: stats(srv.ctl)["rejected"]["proxy_bad"] == 1, what="the half header bad")
    st = stats(srv.ctl)
    assert st["proxy_health_checks_total"] == 3 and st["connections_active"] == 0
    assert_echoes(srv.connect(srv.addrs[0]), b"plain unaffected")


BAD = {
    "not-a-header": b"GET / HTTP/1.0\r\n\r\n",
    "v1-no-crlf-in-107": b"PROXY UNKNOWN " + b"a" * 100,
    "v1-lf-only": b"PROXY TCP4 192.0.2.7 198.51.100.1 50007 7\n",
    "v1-leading-zero": b"PROXY TCP4 192.0.2.7 198.51.100.1 050007 7\r\n",
    "v1-bad-address": b"PROXY TCP4 192.0.2.256 198.51.100.1 50007 7\r\n",
    "v1-wrong-family": b"PROXY TCP6 192.0.2.7 198.51.100.1 50007 7\r\n",
    "v1-port-range": b"PROXY TCP4 192.0.2.7 198.51.100.1 65536 7\r\n",
    "v1-protocol": b"PROXY UDP4 192.0.2.7 198.51.100.1 50007 7\r\n",
    "v2-signature": SIG[:11] + b"X" + b"\x21\x11\x00\x0c" + bytes(12),
    "v2-version": SIG + b"\x11\x11\x00\x0c" + bytes(12),
    "v2-command": SIG + b"\x2f\x11\x00\x0c" + bytes(12),
    "v2-family": SIG + b"\x21\x31\x00\x0c" + bytes(12),
    "v2-dgram": SIG + b"\x21\x12\x00\x0c" + bytes(12),
    "v2-short-length": SIG + b"\x21\x21\x00\x0c" + bytes(12),
    "v2-tlv-overrun": v2("192.0.2.7", "198.51.100.1", 1, 7, tlvs=b"\x01\x00\x10ab"),
    "v2-crc-mismatch": v2("192.0.2.7", "198.51.100.1", 1, 7, tlvs=b"\x03\x00\x04abcd"),
    "closed-mid-header": b"PROXY TCP4 192.0.2.7",
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_header_closes(start_server, tmp_path, engine, kind):
    srv = proxy_server(start_server, tmp_path, engine)
    s = srv.connect(srv.proxy_addr)
    s.sendall(BAD[kind] + b"payload")
    if kind == "closed-mid-header":
        s.shutdown(socket.SHUT_WR)
    assert closed_without_echo(s)
    wait_for(lambda: stats(srv.ctl)["rejected"]["proxy_bad"] == 1, what="proxy_bad counted")
    srv.wait_log("reason=proxy-bad")
    assert stats(srv.ctl)["connections_total"] == 0
    good = srv.connect(srv.proxy_addr)
    good.sendall(HEADERS["v1-ipv4"][0])
    assert_echoes(good, b"still serving")


def test_v2_crc_and_unique_id(start_server, tmp_path, engine):
    """A header whose CRC32C is right is served; its UNIQUE_ID shows in the
    accept line."""
    def crc32c(b):
        c = 0xffffffff
        for x in b:
            c ^= x
            for _ in range(8):
                c = (c >> 1) ^ (0x82f63b78 if c & 1 else 0)
        return c ^ 0xffffffff
    h = v2("192.0.2.9", "198.51.100.1", 4242, 7, tlvs=b"\x05\x00\x06req-42" + b"\x03\x00\x04" + bytes(4))
    h = h[:-4] + struct.pack("!I", crc32c(h))
    srv = proxy_server(start_server, tmp_path, engine)
    s = srv.connect(srv.proxy_addr)
    s.sendall(h)
    assert_echoes(s, b"checked")
    assert conns(srv)[0]["peer"] == "192.0.2.9:4242"
    srv.wait_log("id=req-42")


def test_slow_header_times_out(start_server, tmp_path, engine):
    srv = proxy_server(start_server, tmp_path, engine, "--proxy-timeout", "1")
    s = srv.connect(srv.proxy_addr)
    s.sendall(b"PROXY TCP4 192.0.2.7 ")	# and then nothing
    assert closed_without_echo(s, timeout=20)
    wait_for(lambda: "reason=proxy-timeout" in srv.stderr(), what="the timeout's CONN line")
    st = stats(srv.ctl)
    assert st["rejected"]["proxy_timeout"] == 1 and st["rejected"]["proxy_bad"] == 0


def test_waiting_headers_are_shown(start_server, tmp_path, engine):
    """A connection whose header has not come is no active connection yet,
    but stats and the metrics show it waiting, until the header admits it."""
    srv = proxy_server(start_server, tmp_path, engine, "--metrics", "127.0.0.1:0")
    waiting = [srv.connect(srv.proxy_addr) for _ in range(3)]
    for s in waiting:
        s.sendall(b"PROXY TCP4 192.0.2.7 ")	# half a header
    wait_for(lambda: stats(srv.ctl)["proxy_headers_waiting"] == 3, what="3 headers waiting")
    assert stats(srv.ctl)["connections_active"] == 0
    metrics = scrape(metrics_url(srv))[2]
    assert "echosrv_proxy_headers_waiting{worker=\"0\"} 3\n" in metrics
    for s in waiting:
        s.sendall(b"198.51.100.1 50007 7\r\n")
        assert_echoes(s, b"admitted")
    # The gauge is published after the batch of headers it ended, and bytes
    # read with a header are echoed inside that batch (epoll, sockmap).
    st = wait_for(lambda: (lambda st: st["proxy_headers_waiting"] == 0 and st)(stats(srv.ctl)),
                  what="no header waiting")
    assert st["proxy_headers_waiting"] == 0 and st["connections_active"] == 3


def test_untrusted_balancer_is_reset(start_server, tmp_path, engine):
    srv = proxy_server(start_server, tmp_path, engine, proxy_from="198.18.0.0/15")
    s = connect_or_none(srv.proxy_addr)
    if s is not None:
        s.settimeout(10)
        try:
            s.sendall(HEADERS["v1-ipv4"][0] + b"x")
            data = s.recv(16)
            pytest.fail("an untrusted connection got %r, not a reset" % data)
        except (ConnectionResetError, BrokenPipeError):
            pass
    wait_for(lambda: stats(srv.ctl)["rejected"]["proxy_untrusted"] == 1, what="proxy_untrusted")
    srv.wait_log("reason=proxy-untrusted")
    assert_echoes(srv.connect(srv.addrs[0]), b"plain still works")


def test_acl_applies_to_the_client(start_server, tmp_path, engine):
    srv = proxy_server(start_server, tmp_path, engine, "--deny", "192.0.2.66/32")
    bad = srv.connect(srv.proxy_addr)
    bad.sendall(v1("TCP4", "192.0.2.66", "198.51.100.1", 1000, 7) + b"x")
    assert closed_without_echo(bad)
    ok = srv.connect(srv.proxy_addr)
    ok.sendall(v1("TCP4", "192.0.2.67", "198.51.100.1", 1000, 7))
    assert_echoes(ok, b"allowed")	# though both came from the same balancer
    wait_for(lambda: "reason=acl" in srv.stderr(), what="the ACL's CONN line")
    srv.wait_log("peer=192.0.2.66:1000")
    assert stats(srv.ctl)["rejected"]["acl"] == 1


def test_per_ip_limit_counts_clients(start_server, tmp_path, engine):
    srv = proxy_server(start_server, tmp_path, engine, "--max-conns-per-ip", "1")
    first = srv.connect(srv.proxy_addr)
    first.sendall(v2("192.0.2.7", "198.51.100.1", 1, 7))
    assert_echoes(first, b"one")
    second = srv.connect(srv.proxy_addr)
    second.sendall(v2("192.0.2.7", "198.51.100.1", 2, 7) + b"x")
    assert closed_without_echo(second)
    other = srv.connect(srv.proxy_addr)	# another client, the same balancer
    other.sendall(v2("192.0.2.8", "198.51.100.1", 3, 7))
    assert_echoes(other, b"two")
    assert stats(srv.ctl)["rejected"]["max_conns_per_ip"] == 1
    assert sorted(c["peer"] for c in conns(srv)) == ["192.0.2.7:1", "192.0.2.8:3"]


def test_max_conns_counts_at_accept(start_server, tmp_path, engine):
    """A connection still waiting for its header holds its --max-conns place."""
    srv = proxy_server(start_server, tmp_path, engine, "--max-conns", "1")
    waiting = srv.connect(srv.proxy_addr)
    waiting.sendall(b"PROXY TCP4 ")
    # Let the server accept it first (nothing to wait on: it is not served yet).
    time.sleep(0.3 * float(os.environ.get("ECHOSRV_TIMEOUT_SCALE", "1")))
    assert_rejected(connect_or_none(srv.addrs[0]))
    waiting.sendall(b"192.0.2.7 198.51.100.1 1 7\r\n")
    assert_echoes(waiting, b"admitted")
    assert stats(srv.ctl)["rejected"]["max_conns"] >= 1


def test_silent_connection_waits_in_the_kernel(start_server, tmp_path, engine):
    """A proxy listener takes a connection once its first bytes are in
    (TCP_DEFER_ACCEPT): until then it holds no --max-conns place, and once
    it speaks it is served as usual."""
    srv = proxy_server(start_server, tmp_path, engine, "--max-conns", "1")
    silent = srv.connect(srv.proxy_addr)
    # Not scaled: the kernel hands a silent connection over after about a
    # second (its SYN-ACK retransmit); an accept without the deferral would
    # have taken the only place well within this.
    time.sleep(0.3)
    plain = connect_or_none(srv.addrs[0])
    assert plain is not None, "the silent proxy connection took the only place"
    assert_echoes(plain, b"the place was free")
    plain.close()
    wait_for(lambda: stats(srv.ctl)["connections_active"] == 0, what="the plain one gone")
    silent.sendall(HEADERS["v1-ipv4"][0])
    assert_echoes(silent, b"served once it spoke")
    assert stats(srv.ctl)["rejected"]["max_conns"] == 0


def test_options(tmp_path):
    def run(*args):
        return subprocess.run([ECHOSRV] + list(args), capture_output=True, text=True, timeout=20)
    r = run("--proxy-listen", "127.0.0.1:0", "--check")
    assert r.returncode == 2 and "--proxy-from" in r.stderr
    r = run("--proxy-listen", "127.0.0.1:0", "--proxy-from", "10.0.0.0/8", "--proxy-timeout",
            "5", "--check")
    assert r.returncode == 0, r.stderr
    assert run("--proxy-from", "10.0.0.0/33", "--check").returncode == 2
    assert run("--proxy-timeout", "0", "--check").returncode == 2
    assert run("--proxy-listen", "nowhere", "--proxy-from", "::/0", "--check").returncode == 2
    r = run("--listen", "127.0.0.1:7001", "--proxy-listen", "127.0.0.1:7001",
            "--proxy-from", "::/0", "--check")
    assert r.returncode == 2
    h = run("--help").stdout
    assert "--proxy-listen" in h and "--proxy-from" in h and "--proxy-timeout" in h


@pytest.mark.workers
def test_several_workers(start_server, tmp_path, engine):
    """Headers read and clients admitted by whichever worker accepted."""
    srv = proxy_server(start_server, tmp_path, engine, "--workers", "3")
    for round_ in range(4):
        socks = []
        for i in range(16):
            s = srv.connect(srv.proxy_addr)
            header = v1("TCP4", "192.0.2.%d" % (i + 1), "198.51.100.1", 1000 + round_, 7) \
                if i % 2 else v2("192.0.2.%d" % (i + 1), "198.51.100.1", 1000 + round_, 7)
            s.sendall(header + b"n%d.%d" % (round_, i))
            socks.append(s)
        for i, s in enumerate(socks):
            want = b"n%d.%d" % (round_, i)
            s.settimeout(10)
            got = b""
            while len(got) < len(want):
                part = s.recv(64)
                assert part
                got += part
            assert got == want
        assert len(conns(srv)) == 16
        for s in socks:
            s.close()
    wait_for(lambda: stats(srv.ctl)["connections_closed_total"] == 64, what="all closed")
    assert stats(srv.ctl)["proxy_connections_total"] == 64


def test_socket_activation_named_proxy(engine, tmp_path):
    """A passed socket with FileDescriptorName=proxy is a proxy listener."""
    import shutil
    from conftest import free_port
    activate = shutil.which("systemd-socket-activate")
    if not activate:
        pytest.skip("systemd-socket-activate not installed (package systemd)")
    log = open(tmp_path / "log", "w+")
    path = tmp_path / "ctl"
    port = free_port()
    p = subprocess.Popen([activate, "--fdname=proxy", "-l", "127.0.0.1:%d" % port, ECHOSRV,
                          "--engine", engine, "--proxy-from", "127.0.0.1/32", "--ctl", str(path),
                          "--drain-timeout", "3"], stdout=log, stderr=log)
    try:
        def connect():
            assert p.poll() is None, open(tmp_path / "log").read()
            try:
                return socket.create_connection(("127.0.0.1", port), timeout=5)
            except OSError:
                return None
        s = wait_for(connect, what="the activation socket")
        s.sendall(v2("192.0.2.44", "198.51.100.1", 4444, 7) + b"activated")
        s.settimeout(10)
        assert s.recv(9) == b"activated"
        wait_for(lambda: path.exists(), what="the control socket")
        assert [c["peer"] for c in json.loads(ctl(path, "conns", "--json").stdout)["connections"]] == \
            ["192.0.2.44:4444"]
        s.close()
    finally:
        p.terminate()
        p.wait(timeout=20)
    # Without --proxy-from the socket named proxy is refused at start.
    port = free_port()
    p = subprocess.Popen([activate, "--fdname=proxy", "-l", "127.0.0.1:%d" % port, ECHOSRV,
                          "--engine", engine], stdout=log, stderr=log)
    try:
        s = wait_for(connect, what="the activation socket")	# starts echosrv
        assert p.wait(timeout=20) != 0
        s.close()
        assert "--proxy-from" in open(tmp_path / "log").read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_counters_in_metrics(start_server, tmp_path, engine):
    from ops_common import metric, metrics_url, scrape
    srv = proxy_server(start_server, tmp_path, engine, "--metrics", "127.0.0.1:0")
    ok = srv.connect(srv.proxy_addr)
    ok.sendall(HEADERS["v2-ipv6"][0])
    assert_echoes(ok, b"counted")
    hc = srv.connect(srv.proxy_addr)
    hc.sendall(v2_local())
    assert_echoes(hc, b"check")
    bad = srv.connect(srv.proxy_addr)
    bad.sendall(b"nonsense\r\n")
    assert closed_without_echo(bad)
    wait_for(lambda: stats(srv.ctl)["rejected"]["proxy_bad"] == 1, what="the bad header counted")
    text = scrape(metrics_url(srv))[2]
    assert metric(text, 'echosrv_proxy_connections_total{worker="0"}') == 1
    assert metric(text, 'echosrv_proxy_health_checks_total{worker="0"}') == 1
    assert metric(text, 'echosrv_rejected_total{reason="proxy_bad"}') == 1
    assert metric(text, 'echosrv_rejected_total{reason="proxy_untrusted"}') == 0
    assert metric(text, 'echosrv_rejected_total{reason="proxy_timeout"}') == 0


def test_config_file_show_config_and_reload(start_server, tmp_path, engine):
    """The three options in a --config file; `show config` writes them;
    a reload changes --proxy-from and --proxy-timeout in place, and
    refuses to change which listeners are proxy ones."""
    base = ["listen 127.0.0.1:0", "proxy-listen 127.0.0.1:0", "trace error,conn",
            "drain-timeout 2"]
    srv, write = config_server(start_server, tmp_path, engine, *base,
                               "proxy-from 198.18.0.0/15", "proxy-timeout 5")
    shown = ctl(srv.ctl, "show", "config").stdout.splitlines()
    assert "proxy-listen 127.0.0.1:0" in shown and "listen 127.0.0.1:0" in shown
    assert "proxy-from 198.18.0.0/15" in shown and "proxy-timeout 5" in shown
    proxy_addr = srv.addrs[1]
    s = connect_or_none(proxy_addr)	# 127.0.0.1 is not trusted yet
    if s is not None:
        assert closed_without_echo(s)
    wait_for(lambda: stats(srv.ctl)["rejected"]["proxy_untrusted"] == 1, what="untrusted")
    write(*base, "proxy-from 127.0.0.0/8", "proxy-timeout 1")
    ctl(srv.ctl, "reload")
    s = srv.connect(proxy_addr)
    s.sendall(HEADERS["v1-ipv4"][0])
    assert_echoes(s, b"trusted now")
    slow = srv.connect(proxy_addr)
    slow.sendall(b"PROXY ")
    assert closed_without_echo(slow, timeout=20)	# the new, shorter timeout
    wait_for(lambda: "reason=proxy-timeout" in srv.stderr(), what="the timeout")
    write(*base, "proxy-listen 127.0.0.1:0", "proxy-from 127.0.0.0/8")
    r = ctl(srv.ctl, "reload", check=False)
    assert r.returncode != 0 and "--proxy-listen cannot change" in (r.stderr + r.stdout)
    assert_echoes(s, b"still served")
