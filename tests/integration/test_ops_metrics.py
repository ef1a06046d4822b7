# SPDX-License-Identifier: GPL-2.0-only
"""Prometheus metrics endpoint (SPEC 8, --metrics)."""
import os
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import ECHOSRV, echo_roundtrip, wait_for
from ops_common import metric, metrics_url, scrape


def test_metrics_pass_promtool_and_count_the_echo_path(start_server, engine):
    srv = start_server("--metrics", "127.0.0.1:0", "--deny", "10.0.0.0/8", engine=engine)
    url = metrics_url(srv)
    data = os.urandom(50000)
    s = srv.connect()
    assert echo_roundtrip(s, data) == data
    # The worker counts a send just after it returns, so the peer can have
    # the bytes a moment before the counter does (seen under valgrind).
    wait_for(lambda: metric(scrape(url)[2], "echosrv_bytes_sent_total") == 50000,
             what="the echoed bytes to be counted")
    status, ctype, text = scrape(url)
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    assert metric(text, "echosrv_connections_active") == 1
    assert metric(text, "echosrv_connections_total") == 1
    assert metric(text, "echosrv_bytes_received_total") == 50000
    assert metric(text, "echosrv_bytes_sent_total") == 50000
    assert metric(text, 'echosrv_rejected_total{reason="acl"}') == 0
    # The version is the one --version prints (git describe or VERSION).
    version = subprocess.run([ECHOSRV, "--version"], capture_output=True,
                             text=True).stdout.split()[1]
    assert re.match(r"\d+\.\d+\.\d+", version), version
    assert metric(text, 'echosrv_build_info{version="%s",engine="%s"}' % (version, engine)) == 1
    for family, kind in (("connections_active", "gauge"), ("connections_total", "counter"),
                         ("bytes_received_total", "counter"), ("rejected_total", "counter"),
                         ("idle_closes_total", "counter"), ("errors_total", "counter"),
                         ("uptime_seconds", "gauge")):
        assert "# TYPE echosrv_%s %s\n" % (family, kind) in text
        assert "# HELP echosrv_%s " % family in text
    labels = set(re.findall(r'[{,](\w+)="', text))
    assert labels == {"version", "engine", "reason"}    # no per-peer labels
    s.close()
    wait_for(lambda: metric(scrape(url)[2], "echosrv_connections_active") == 0,
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
    for path in ("/", "/metrics/", "/metricsx", "/../metrics", "/favicon.ico"):
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
