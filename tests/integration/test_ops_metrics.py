# SPDX-License-Identifier: GPL-2.0-only
"""Prometheus metrics endpoint (--metrics)."""
import os
import re
import shutil
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import ECHOSRV, assert_rejected, connect_or_none, echo_roundtrip, wait_for
from ops_common import metric, metrics_url, samples, scrape, total


def test_metrics_pass_promtool_and_count_the_echo_path(start_server, engine):
    srv = start_server("--metrics", "127.0.0.1:0", "--deny", "10.0.0.0/8", engine=engine)
    url = metrics_url(srv)
    data = os.urandom(50000)
    s = srv.connect()
    assert echo_roundtrip(s, data) == data
    # The worker counts a send just after it returns, so the peer can have
    # the bytes a moment before the counter does (seen under valgrind).
    wait_for(lambda: total(scrape(url)[2], "echosrv_bytes_sent_total") == 50000,
             what="the echoed bytes to be counted")
    status, ctype, text = scrape(url)
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    assert total(text, "echosrv_connections_active") == 1
    assert total(text, "echosrv_connections_total") == 1
    assert total(text, "echosrv_bytes_received_total") == 50000
    assert total(text, "echosrv_bytes_sent_total") == 50000
    assert metric(text, 'echosrv_rejected_total{reason="acl"}') == 0
    # The version is the one --version prints (git describe or VERSION).
    version = subprocess.run([ECHOSRV, "--version"], capture_output=True,
                             text=True).stdout.split()[1]
    assert re.match(r"\d+\.\d+\.\d+", version), version
    # The commit the binary was built from (scripts/version.sh --commit):
    # the one its version names, when the version names one.
    info = samples(text, "echosrv_build_info")
    assert len(info) == 1 and list(info.values()) == [1]
    m = re.fullmatch(r'\{version="([^"]+)",commit="([0-9a-f]{12}|unknown)",engine="([^"]+)"\}',
                     list(info)[0])
    assert m and m.group(1) == version and m.group(3) == engine, info
    named = re.search(r"g([0-9a-f]{7,})", version)
    if named:
        assert m.group(2).startswith(named.group(1)), (version, m.group(2))
    for family, kind in (("connections_active", "gauge"), ("connections_total", "counter"),
                         ("bytes_received_total", "counter"), ("rejected_total", "counter"),
                         ("idle_closes_total", "counter"), ("errors_total", "counter"),
                         ("uptime_seconds", "gauge")):
        assert "# TYPE echosrv_%s %s\n" % (family, kind) in text
        assert "# HELP echosrv_%s " % family in text
    labels = set(re.findall(r'[{,](\w+)="', text))
    # No per-peer labels: each of these is bounded by the code or --workers.
    assert labels == {"version", "commit", "engine", "fallback_reason", "reason", "worker",
                      "le"}
    s.close()
    wait_for(lambda: total(scrape(url)[2], "echosrv_connections_active") == 0,
             what="the close to show")
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool not installed (Debian package prometheus; scripts/deps.sh)")
    r = subprocess.run([promtool, "check", "metrics"], input=scrape(url)[2],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


def test_other_paths_get_404(start_server):
    srv = start_server("--metrics", "127.0.0.1:0")
    url = metrics_url(srv)
    base = url[: -len("/metrics")]
    for path in ("/metrics/", "/metricsx", "/../metrics", "/favicon.ico"):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(base + path, timeout=10)
        assert e.value.code == 404, path
    req = urllib.request.Request(url, data=b"x=1", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 405


def test_metrics_on_ipv6_and_bad_address(start_server):
    srv = start_server("--metrics", "[::1]:0")
    assert scrape(metrics_url(srv))[0] == 200
    r = subprocess.run([ECHOSRV, "--metrics", "localhost:80", "--check"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "--metrics" in r.stderr
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    r = subprocess.run([ECHOSRV, "--listen", "127.0.0.1:0",
                        "--metrics", "127.0.0.1:%d" % taken.getsockname()[1]],
                       capture_output=True, text=True, timeout=20)
    taken.close()
    assert r.returncode == 1 and "--metrics" in r.stderr and "in use" in r.stderr, r.stderr


def test_slow_and_hostile_scrapers_do_not_stall_echo(start_server, engine):
    srv = start_server("--metrics", "127.0.0.1:0", engine=engine)
    url = metrics_url(srv)
    host, port = url.split("/")[2].rsplit(":", 1)
    hostile = []
    for i in range(30):     # more than the endpoint's connection limit
        try:
            h = socket.create_connection((host, int(port)), timeout=5)
            h.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n" if i % 2 else b"\x16\x03\x01\xff\xff")
            hostile.append(h)
        except OSError:
            pass
    big = socket.create_connection((host, int(port)), timeout=5)
    big.send(b"GET /metrics HTTP/1.1\r\nX-Junk: " + b"a" * 100000 + b"\r\n\r\n")
    e = srv.connect()
    for i in range(50):
        assert echo_roundtrip(e, b"still echoing %d" % i) == b"still echoing %d" % i
    for h in hostile:
        h.close()
    big.close()
    # Once the hostile clients are gone, scrapes work again.
    wait_for(lambda: _scrape_ok(url), timeout=30, interval=0.5, what="a scrape to succeed")
    e.close()


def _scrape_ok(url):
    try:
        return scrape(url, timeout=3)[0] == 200
    except OSError:
        return False


def _linger_reset(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.workers
def test_every_family_has_its_value_after_a_known_sequence(start_server, engine):
    """Two connections echo 1000 bytes and close, three are closed by the
    idle timeout, one is reset by its peer, one is refused by the ACL and
    one by the per-address limit: each family shows exactly that."""
    srv = start_server("--metrics", "127.0.0.1:0", "--workers", "2", "--idle-timeout", "1",
                       "--max-conns", "500", "--max-conns-per-ip", "3",
                       "--deny", "127.0.0.2/32", engine=engine)
    url = metrics_url(srv)
    started = time.time()
    for _ in range(2):
        s = srv.connect()
        assert echo_roundtrip(s, b"a" * 1000) == b"a" * 1000
        s.close()
    wait_for(lambda: metric(scrape(url)[2], 'echosrv_closes_total{reason="peer-closed"}') == 2,
             what="two peer closes")
    idle = [srv.connect() for _ in range(3)]
    for s in idle:
        assert echo_roundtrip(s, b"x") == b"x"
    text = scrape(url)[2]
    assert metric(text, "echosrv_per_ip_table_addresses") == 1    # 127.0.0.1
    assert metric(text, "echosrv_per_ip_table_capacity") >= 500
    # 127.0.0.1 holds 3, its limit: a fourth is refused.
    assert_rejected(connect_or_none((srv.host, srv.port)))
    wait_for(lambda: metric(scrape(url)[2], 'echosrv_closes_total{reason="idle-timeout"}') == 3,
             timeout=20, what="three idle closes")
    for s in idle:
        s.close()
    assert_rejected(connect_or_none((srv.host, srv.port), source="127.0.0.2"))
    r = srv.connect()
    assert echo_roundtrip(r, b"reset me") == b"reset me"
    _linger_reset(r)
    # A close is counted first; its reason, its duration and the per-address
    # share given back follow: the share is the last.
    wait_for(lambda: (lambda t: total(t, "echosrv_connections_closed_total") == 6
                      and metric(t, "echosrv_per_ip_table_addresses") == 0)(scrape(url)[2]),
             what="six served connections closed and given back")
    text = scrape(url)[2]

    closes = samples(text, "echosrv_closes_total")
    want = {"peer-closed": 2, "idle-timeout": 3, "reset": 1, "error": 0, "limit": 1, "acl": 1,
            "drain": 0, "admin": 0}
    if engine == "sockmap":
        # The kernel echoes; user space sees the reset as the end of the
        # stream, so it may be counted as a close by the peer.
        want["peer-closed"] += closes['{reason="reset"}'] == 0
        want["reset"] = closes['{reason="reset"}']
    assert closes == {'{reason="%s"}' % k: v for k, v in want.items()}, closes
    assert samples(text, "echosrv_rejected_total") == {
        '{reason="max_conns"}': 0, '{reason="max_conns_per_ip"}': 1, '{reason="acl"}': 1,
        '{reason="proxy_bad"}': 0, '{reason="proxy_untrusted"}': 0, '{reason="proxy_timeout"}': 0}

    # Per worker: every worker has its series, and they add up.
    for fam, value in (("connections_total", 6), ("connections_closed_total", 6),
                       ("connections_active", 0), ("bytes_received_total", 2000 + 3 + 8),
                       ("bytes_sent_total", 2000 + 3 + 8), ("idle_closes_total", 3)):
        per = samples(text, "echosrv_" + fam)
        assert set(per) == {'{worker="0"}', '{worker="1"}'}, (fam, per)
        assert sum(per.values()) == value, (fam, per)
    busy = samples(text, "echosrv_worker_busy_seconds_total")
    assert set(busy) == {'{worker="0"}', '{worker="1"}'} and all(v > 0 for v in busy.values())

    # The duration histogram: six observations; the idle ones lived a
    # second or more, so at most the other three are in the 0.5 s bucket.
    hist = samples(text, "echosrv_connection_duration_seconds_bucket")
    bounds = [float(k[5:-2]) for k in hist]
    assert bounds == sorted(bounds) and bounds[0] == 0.001 and bounds[-1] == float("inf")
    assert 14400.0 in bounds
    counts = list(hist.values())
    assert counts == sorted(counts) and counts[-1] == 6
    assert hist['{le="0.5"}'] <= 3 and hist['{le="3600"}'] == 6
    assert metric(text, "echosrv_connection_duration_seconds_count") == 6
    assert metric(text, "echosrv_connection_duration_seconds_sum") >= 3.0

    # Saturation.
    assert metric(text, "echosrv_connections_max") == 500
    assert metric(text, "echosrv_accepting") == 1
    assert metric(text, "echosrv_accept_paused_total") == 0
    assert metric(text, "echosrv_per_ip_table_addresses") == 0
    assert metric(text, "echosrv_trace_lines_dropped_total") == 0
    assert metric(text, "echosrv_log_queue_capacity_bytes") > 0
    pool = metric(text, "echosrv_buffer_pool_buffers")
    assert (pool > 0) == (engine == "io_uring"), pool
    assert 0 <= metric(text, "echosrv_buffer_pool_used_buffers") <= pool

    # Build and engine.
    assert metric(text, 'echosrv_engine_info{engine="%s",fallback_reason="none"}' % engine) == 1
    assert len(samples(text, "echosrv_build_info")) == 1

    # Process: the standard names, with the values /proc gives.
    with open("/proc/%d/limits" % srv.proc.pid) as f:
        soft = [l.split()[3] for l in f if l.startswith("Max open files")][0]
    assert metric(text, "process_max_fds") == int(soft)
    assert 0 < metric(text, "process_open_fds") <= int(soft)
    rss = metric(text, "process_resident_memory_bytes")
    assert 0.5 < rss / (srv.rss_kib() * 1024) < 2
    assert metric(text, "process_virtual_memory_bytes") >= rss
    assert 0 <= metric(text, "process_cpu_seconds_total") <= srv.cpu_seconds() + 0.1
    assert abs(metric(text, "process_start_time_seconds") - started) < 60
    for name in ("cpu_seconds_total", "open_fds", "max_fds", "start_time_seconds",
                 "resident_memory_bytes", "virtual_memory_bytes"):
        assert "# TYPE process_%s " % name in text
    _promtool_check(text)


def _promtool_check(text):
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool not installed (Debian package prometheus; scripts/deps.sh)")
    r = subprocess.run([promtool, "check", "metrics"], input=text,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


def test_engine_info_names_the_fallback(start_server):
    """--engine auto where io_uring is refused (tests/helpers/no_uring, as
    in test_uring.py) falls back to epoll and the metric says why."""
    no_uring = os.path.join(os.path.dirname(ECHOSRV), "helpers", "no_uring")
    if not os.path.exists(no_uring):
        pytest.skip("helper not built: make %s" % no_uring)
    srv = start_server("--metrics", "127.0.0.1:0", "--engine", "auto", wrapper=[no_uring])
    text = scrape(metrics_url(srv))[2]
    info = samples(text, "echosrv_engine_info")
    assert len(info) == 1
    (labels, value), = info.items()
    assert value == 1 and 'engine="epoll"' in labels and "io_uring" in labels, labels
    _promtool_check(text)
