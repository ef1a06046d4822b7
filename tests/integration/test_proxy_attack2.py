# SPDX-License-Identifier: GPL-2.0-only
"""PROXY protocol under attack, second round: the one recv() that reads
a header and the client bytes after it (echoed by the worker before the
engine takes the socket), the proxy_headers_waiting gauge, and
bench/proxy.py's --rate.  As in test_proxy.py the tests play the balancer
from 127.0.0.1."""
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from conftest import ECHOSRV, read_to_eof, send_all_then_read, wait_for
from ops_common import NotifySocket, ctl, metrics_url, scrape, stats
from test_proxy import HEADERS, all_taken_in, closed_without_echo, config_server, proxy_server, v2
from test_proxy_attack import with_crc

SCALE = float(os.environ.get("ECHOSRV_TIMEOUT_SCALE", "1"))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def big_tlv_header(n):
    """A valid v2 header longer than one 2 KiB read: an unknown TLV of n bytes."""
    return v2("192.0.2.7", "198.51.100.1", 50007, 7,
              tlvs=b"\xee" + struct.pack("!H", n) + bytes((i * 3) & 0xff for i in range(n)))


def close_lines(srv):
    return re.findall(r"close conn=(\w+) peer=\S+ via=\S+ worker=\d+ in=(\d+) out=(\d+) "
                      r"duration=\S+ reason=(\S+)", srv.stderr())


def test_counters_exact_around_the_read(start_server, tmp_path, engine):
    """Headers short and longer than one read, then 0..1 MiB of client
    bytes ending just before, at and after the read's end, then FIN: every
    byte back, then the FIN; the CONN line, the DATA trace and the stats
    count the client's bytes exactly once (sockmap: TCP's counters less
    the header, with the worker's own echo not counted twice)."""
    srv = proxy_server(start_server, tmp_path, engine, "--trace", "error,conn,data")
    cases = []
    for header in (HEADERS["v1-ipv4"][0], HEADERS["v2-ipv6"][0], big_tlv_header(3000)):
        room = (-len(header)) % 2048 or 2048
        for n in (0, 1, room - 1, room, room + 1, 2048 + room, 1 << 20):
            cases.append((header, n))
    total = 0
    for i, (header, n) in enumerate(cases):
        payload = bytes((j * 31 + n) & 0xff for j in range(n))
        s = srv.connect(srv.proxy_addr)
        assert send_all_then_read(s, header + payload) == payload, (len(header), n)
        s.close()
        total += n
        wait_for(lambda: len(close_lines(srv)) == i + 1, what="close line %d" % i)
        cid, cin, cout, why = close_lines(srv)[-1]
        assert (int(cin), int(cout), why) == (n, n, "peer-closed"), (len(header), n)
        if n < 1 << 20:		# the DATA lines of the kernel's echo come from TCP_INFO
            err = srv.stderr()
            rin = sum(map(int, re.findall(r"recv conn=%s worker=\d+ bytes=(\d+)" % cid, err)))
            rout = sum(map(int, re.findall(r"send conn=%s worker=\d+ bytes=(\d+)" % cid, err)))
            assert (rin, rout) == (n, n), (len(header), n)
    st = stats(srv.ctl)
    assert (st["bytes_received_total"], st["bytes_sent_total"]) == (total, total)
    assert st["errors_total"] == 0 and st["resets_total"] == 0
    assert st["proxy_headers_waiting"] == 0


def test_big_crc_header_then_data(start_server, tmp_path, engine):
    """A v2 header with a CRC32C and a UNIQUE_ID, long enough to take
    several reads, followed by client bytes: the CRC is checked across the
    reads, the bytes after it echoed; one bit off and nothing is."""
    srv = proxy_server(start_server, tmp_path, engine)
    for n in (2000, 5000, 60000):
        h = with_crc(b"\xee" + struct.pack("!H", n) + bytes((i * 3) & 0xff for i in range(n)) +
                     b"\x05\x00\x04abcd")
        for extra in (1, 2047, 3000):
            payload = bytes((j * 5 + n) & 0xff for j in range(extra))
            s = srv.connect(srv.proxy_addr)
            assert send_all_then_read(s, h + payload) == payload, (n, extra)
            s.close()
    s = srv.connect(srv.proxy_addr)
    s.sendall(h[:-1] + bytes([h[-1] ^ 1]) + b"never echoed")
    assert closed_without_echo(s)


def test_peer_with_the_smallest_window_not_reading(start_server, tmp_path, engine):
    """A client with the smallest receive and send buffers sends its header
    and more than it can take back, and reads only later: the worker's echo
    of the bytes read with the header never fails or drops a byte."""
    srv = proxy_server(start_server, tmp_path, engine, "--conn-buffer", "4096")
    for n in (2000, 1 << 18):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
        s.settimeout(30 * SCALE)
        s.connect(srv.proxy_addr)
        payload = bytes((j * 7 + 3) & 0xff for j in range(n))
        data = HEADERS["v1-ipv4"][0] + payload
        t = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)),
                             daemon=True)
        t.start()
        time.sleep(1)		# not reading: the server's echo has nowhere to go
        assert read_to_eof(s) == payload, n
        t.join(30)
        s.close()
    st = stats(srv.ctl)
    assert st["errors_total"] == 0 and st["resets_total"] == 0


def test_reset_right_after_header_and_data(start_server, tmp_path, engine):
    """Header and data, then a reset at once, many times: what was admitted
    closes as a reset (the worker's echo may meet the reset), nothing is
    left waiting or open, and the server serves on."""
    srv = proxy_server(start_server, tmp_path, engine, proxy_from="127.0.0.1/32")
    for i in range(30):
        s = srv.connect(srv.proxy_addr)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.sendall(HEADERS["v2-ipv4"][0] + b"x" * (i * 97 % 3000))
        s.close()
    all_taken_in(srv)
    wait_for(lambda: stats(srv.ctl)["connections_active"] == 0, what="all closed")
    st = stats(srv.ctl)
    assert st["proxy_headers_waiting"] == 0 and st["errors_total"] == 0
    assert st["connections_closed_total"] == st["connections_total"]
    s = srv.connect(srv.proxy_addr)
    assert send_all_then_read(s, HEADERS["v1-ipv4"][0] + b"still up") == b"still up"


def stopped(pid):
    """Every thread of pid is stopped (SIGSTOP has taken effect)."""
    states = []
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
            states.append(f.read().rsplit(")", 1)[1].split()[0])
    return all(st in ("T", "t") for st in states)


def test_many_headers_ready_at_once(start_server, tmp_path, engine):
    """300 headers that complete while the worker is stopped (SIGSTOP), so
    they are all readable at its next wake-up, more than one call of
    preamble_ready() takes (8 x 32): every one is admitted without waiting
    for its timeout (io_uring's multishot poll of the set's epoll
    descriptor gave no second wake-up for those left ready)."""
    srv = proxy_server(start_server, tmp_path, engine, "--proxy-timeout", "60")
    socks = []
    for _ in range(300):
        s = srv.connect(srv.proxy_addr)
        s.sendall(b"PROXY TCP4 192.0.2.")
        socks.append(s)
    wait_for(lambda: stats(srv.ctl)["proxy_headers_waiting"] == 300, what="300 waiting")
    srv.signal(signal.SIGSTOP)
    try:
        wait_for(lambda: stopped(srv.proc.pid), what="the server stopped")
        for i, s in enumerate(socks):
            s.sendall(b"%d 198.51.100.1 1 7\r\nhi" % (i % 200 + 1))
    finally:
        srv.signal(signal.SIGCONT)
    late, deadline = 0, time.monotonic() + 20 * SCALE	# far below the 60 s timeout
    for s in socks:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            assert s.recv(2) == b"hi"
        except socket.timeout:
            late += 1
    assert late == 0, "%d not admitted; %d headers waiting" % (
        late, stats(srv.ctl)["proxy_headers_waiting"])


def test_stats_table_shows_headers_waiting(start_server, tmp_path, engine):
    """`echosrvctl stats` (the table, not only --json) shows the headers
    waiting, as docs/deploy.md says."""
    srv = proxy_server(start_server, tmp_path, engine)
    waiting = [srv.connect(srv.proxy_addr) for _ in range(2)]
    for s in waiting:
        s.sendall(b"PROXY TCP4 192.0.2.7 ")
    wait_for(lambda: stats(srv.ctl)["proxy_headers_waiting"] == 2, what="2 waiting")
    out = ctl(srv.ctl, "stats").stdout
    assert "proxy headers waiting: 2\n" in out, out
    for s in waiting:
        s.close()
    wait_for(lambda: stats(srv.ctl)["proxy_headers_waiting"] == 0, what="none waiting")
    assert "proxy headers waiting" not in ctl(srv.ctl, "stats").stdout


def test_bench_proxy_rate_checked_before_anything_starts(tmp_path):
    """bench/proxy.py --rate: a negative rate, or one above what
    echosrv-bench's --connect-rate takes, is a usage error (exit 2) before
    echosrv or haproxy start, not a failure after the first cell; so are
    no rounds (a traceback from median([]) after the whole run) and no
    seconds, or ways in that are unknown, repeated or none."""
    env = dict(os.environ, ECHOSRV_BUILD=os.path.relpath(os.path.dirname(ECHOSRV), ROOT))
    args = {"--rate": "100", "--rounds": "1", "--secs": "0.1", "--ways": "haproxy"}
    for opt, bad in (("--rate", "-1"), ("--rate", "10000001"), ("--rate", "1e99"),
                     ("--rate", "x"), ("--rounds", "0"), ("--secs", "0"), ("--secs", "-1"),
                     ("--ways", "nginx"), ("--ways", "haproxy,haproxy"), ("--ways", "")):
        words = sum(([k, bad if k == opt else v] for k, v in args.items()), [])
        r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "proxy.py"),
                            "--engines", "epoll"] + words,
                           capture_output=True, text=True, timeout=60, env=env)
        assert r.returncode == 2, (opt, bad, r.returncode, r.stdout, r.stderr[-500:])
        assert opt in r.stderr and "| engine |" not in r.stdout, (opt, bad, r.stderr)


def test_bench_proxy_prints_a_row_per_header(tmp_path):
    """bench/proxy.py measured for real, briefly, through haproxy alone: a
    row for plain, v1 and v2, each with its ratios to plain (plain's own is
    1 in every round), so the table's arithmetic runs in the suite."""
    env = dict(os.environ, ECHOSRV_BUILD=os.path.relpath(os.path.dirname(ECHOSRV), ROOT))
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "proxy.py"),
                        "--engines", "epoll", "--ways", "haproxy", "--rounds", "2",
                        "--secs", "0.2", "--rate", "200"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr[-1000:]
    rows = [line.split("|")[1:-1] for line in r.stdout.splitlines()[2:]]
    assert [(c[0].strip(), c[1].strip(), c[2].strip()) for c in rows] == \
        [("epoll", "haproxy", m) for m in ("plain", "v1", "v2")], r.stdout
    assert rows[0][4].strip() == "1.000 (1.00-1.00)", r.stdout
    for c in rows:
        assert float(c[3]) > 0 and re.fullmatch(r" \d+\.\d{3} \(\d+\.\d\d-\d+\.\d\d\) ", c[4])


def test_idle_timeout_bounds_the_header_wait(start_server, tmp_path, engine):
    """--idle-timeout shorter than --proxy-timeout bounds the wait for the
    header under every engine (sockmap keeps its idle deadlines itself,
    and its worker's idle field is 0): a half header is closed long
    before the 300 s header timeout, counted as proxy-timeout."""
    srv = proxy_server(start_server, tmp_path, engine, "--idle-timeout", "1",
                       "--proxy-timeout", "300")
    s = srv.connect(srv.proxy_addr)
    s.sendall(b"PROXY TCP4 192.0.2.")
    assert closed_without_echo(s, timeout=60 * SCALE)
    # The gauge is published after the expired headers are closed.
    st = wait_for(lambda: (lambda st: st["rejected"]["proxy_timeout"] == 1
                           and st["proxy_headers_waiting"] == 0 and st)(stats(srv.ctl)),
                  what="proxy_timeout counted and no header waiting")
    assert st["rejected"]["proxy_timeout"] == 1 and st["proxy_headers_waiting"] == 0


def gauges(srv):
    text = scrape(metrics_url(srv))[2]
    return [int(v) for v in re.findall(r'echosrv_proxy_headers_waiting\{worker="\d+"\} (\d+)', text)]


@pytest.mark.workers
def test_gauge_two_workers_every_way_out(start_server, tmp_path, engine):
    """Two workers, headers waiting on both: the gauge (stats, per worker
    and the metrics) follows each way a wait ends (a bad header, a reset,
    a FIN, a whole header with data, a reload, the timeout, a drain) and
    is 0 at the end, never negative or stuck."""
    base = ["listen 127.0.0.1:0", "proxy-listen 127.0.0.1:0", "proxy-from 127.0.0.0/8",
            "trace error,conn", "drain-timeout 3", "workers 2", "metrics 127.0.0.1:0"]
    srv, write = config_server(start_server, tmp_path, engine, *base, "proxy-timeout 60")
    socks = [srv.connect(srv.addrs[1]) for _ in range(16)]
    for s in socks:
        s.sendall(b"PROXY TCP4 192.0.2.")
    wait_for(lambda: stats(srv.ctl)["proxy_headers_waiting"] == 16, what="16 waiting")
    assert sum(gauges(srv)) == 16
    assert sum(w["proxy_headers_waiting"] for w in stats(srv.ctl)["per_worker"]) == 16
    socks[0].sendall(b"junk\r\n")
    socks[1].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    socks[1].close()
    socks[2].shutdown(socket.SHUT_WR)
    socks[3].sendall(b"7 198.51.100.1 1 7\r\n" + b"d" * 3000)
    got = b""
    while len(got) < 3000:
        part = socks[3].recv(4096)
        assert part
        got += part
    assert got == b"d" * 3000
    wait_for(lambda: stats(srv.ctl)["proxy_headers_waiting"] == 12, what="12 waiting")
    write(*base, "proxy-timeout 1")
    ctl(srv.ctl, "reload")
    assert stats(srv.ctl)["proxy_headers_waiting"] == 12	# the old ones keep their 60 s
    late = [srv.connect(srv.addrs[1]) for _ in range(4)]
    for s in late:
        s.sendall(b"PROXY ")
    for s in late:
        assert closed_without_echo(s, timeout=30 * SCALE)
    wait_for(lambda: stats(srv.ctl)["proxy_headers_waiting"] == 12, what="the late ones gone")
    assert sum(gauges(srv)) == 12 and min(gauges(srv)) >= 0
    srv.signal(signal.SIGTERM)
    for s in socks[4:]:
        assert closed_without_echo(s, timeout=30 * SCALE)
    assert srv.wait(timeout=30) == 0
    assert "reason=proxy-timeout" in srv.stderr()


def test_limits_given_back_when_the_echo_meets_a_reset(start_server, tmp_path, engine):
    """Header and data, then a reset, so the worker's echo of the data
    fails (reset, counted): the --max-conns place taken at accept and the
    client's --max-conns-per-ip share are given back each time.  Some of
    the 20 may be refused by the limits while an earlier one is still
    open (io_uring takes several accepts at a time); none is after."""
    srv = proxy_server(start_server, tmp_path, engine, "--max-conns", "2",
                       "--max-conns-per-ip", "1", proxy_from="127.0.0.1/32")
    for _ in range(20):
        s = srv.connect(srv.proxy_addr)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.sendall(HEADERS["v1-ipv4"][0] + b"x" * 500)
        s.close()
    all_taken_in(srv)
    wait_for(lambda: stats(srv.ctl)["connections_active"] == 0, what="all closed")
    before = wait_for(lambda: (lambda st: st["proxy_headers_waiting"] == 0 and st)(
        stats(srv.ctl)), what="none waiting")["rejected"]
    a = srv.connect(srv.proxy_addr)
    a.sendall(HEADERS["v1-ipv4"][0] + b"aa")
    assert a.recv(2) == b"aa"
    b = srv.connect(srv.proxy_addr)
    b.sendall(HEADERS["v2-ipv6"][0] + b"bb")
    assert b.recv(2) == b"bb"
    assert stats(srv.ctl)["rejected"] == before


def test_drain_status_counts_headers_waiting(start_server, tmp_path, engine):
    """systemd's STATUS during a drain names the headers still waiting
    (the drain waits for them too), not only the connections."""
    ns = NotifySocket(tmp_path)
    env = dict(os.environ, NOTIFY_SOCKET=ns.path)
    sock = tmp_path / "ctl"
    srv = start_server("--listen", "127.0.0.1:0", "--proxy-listen", "127.0.0.1:0",
                       "--proxy-from", "127.0.0.0/8", "--ctl", str(sock), "--proxy-timeout", "60",
                       "--drain-timeout", "5", engine=engine, env=env)
    srv.ctl, srv.proxy_addr = sock, srv.addrs[1]
    ns.wait_for(lambda m: "READY=1" in m, "READY=1")
    half = srv.connect(srv.proxy_addr)
    half.sendall(b"PROXY TCP4 192.0.2.")
    wait_for(lambda: stats(srv.ctl)["proxy_headers_waiting"] == 1, what="1 waiting")
    srv.signal(signal.SIGTERM)
    ns.wait_for(lambda m: m == "STATUS=Draining: 0 connections left, 1 PROXY header waiting",
                "the drain's STATUS with the header waiting", timeout=15 * SCALE)
    assert closed_without_echo(half, timeout=30 * SCALE)
    assert srv.wait(timeout=30) == 0
    ns.close()


def test_silent_balancer_never_stops_the_worker(start_server, tmp_path, engine):
    """A trusted balancer that connects and sends nothing is handed over by
    the kernel once TCP_DEFER_ACCEPT runs out (a second or two); the
    header's read must not wait for it (io_uring accepts blocking
    sockets): a plain client on the same worker is still echoed."""
    srv = proxy_server(start_server, tmp_path, engine, "--proxy-timeout", "30")
    silent = socket.create_connection(srv.proxy_addr)
    wait_for(lambda: stats(srv.ctl)["proxy_headers_waiting"] == 1, timeout=15,
             what="the silent connection accepted")
    plain = socket.create_connection(srv.addrs[0], timeout=10 * SCALE)
    plain.sendall(b"still served")
    assert read_exactly(plain, 12) == b"still served"
    plain.close()
    silent.close()


def read_exactly(sock, n):
    out = b""
    while len(out) < n:
        part = sock.recv(n - len(out))
        if not part:
            break
        out += part
    return out
