# SPDX-License-Identifier: GPL-2.0-only
"""The metrics listener under a hostile peer and a stressed host: what an
operator relies on must still hold.

- A 405 says which methods are allowed.
- Out of descriptors, a scrape on an open connection still has the
  process_* families (process_open_fds is the one an operator looks at).
- Out of descriptors, a new probe connection is still answered (a
  liveness probe that times out gets the process killed for an overload).
- A scrape takes no mutex a worker takes: tests/helpers/preload_locks.c
  records every mutex locked both by the metrics thread and by a worker.
- A scrape does not wait for a stuck worker (sockmap's byte counters
  are refreshed by each worker for a scrape): the same thread answers the
  probes, which a scrape must not hold up.
- /readyz and /healthz name the phase they see: stopping is not draining.
- A fallback reason with quotes, backslashes and a newline is escaped
  (tests/helpers/preload_strerror.c puts them into the reason)."""
import os
import re
import shutil
import socket
import subprocess
import threading

import pytest

from conftest import BUILD, ECHOSRV, wait_for
from ops_common import ctl, metric, metrics_url, samples, scrape
from test_ops_health import _ask, _low_nofile, base_of, get, one_line, stall_env

LOCKS_SHIM = os.path.join(BUILD, "helpers", "preload_locks.so")


def _raw(url, data):
    host, port = url.split("/")[2].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(data)
    out = b""
    while True:
        part = s.recv(65536)
        if not part:
            break
        out += part
    s.close()
    return out


def test_405_names_the_allowed_methods(start_server):
    srv = start_server("--metrics", "127.0.0.1:0")
    url = metrics_url(srv)
    for method in (b"POST", b"OPTIONS", b"DELETE", b"PUT"):
        out = _raw(url, method + b" /readyz HTTP/1.0\r\nContent-Length: 0\r\n\r\n")
        head, _, body = out.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 405"), out
        headers = {l.split(b":")[0].strip().lower(): l.split(b":", 1)[1].strip()
                   for l in head.split(b"\r\n")[1:]}
        assert headers.get(b"allow") == b"GET, HEAD", head
        assert body == b"use GET or HEAD\n"


def test_process_metrics_stay_while_descriptors_run_out(start_server, engine):
    """The scrape rides on a connection opened before the descriptors ran
    out; it must not need a descriptor of its own to read /proc."""
    srv = start_server("--metrics", "127.0.0.1:0", "--max-conns", "1000", "--backlog", "512",
                       engine=engine, preexec=_low_nofile(64))
    url = metrics_url(srv)
    host, port = url.split("/")[2].rsplit(":", 1)
    probe = socket.create_connection((host, int(port)), timeout=10)
    last = socket.create_connection((host, int(port)), timeout=10)
    status, text = _ask(last, "/metrics")
    assert status == 200 and metric(text, "process_max_fds") == 64
    last.close()
    socks = [srv.connect() for _ in range(100)]
    wait_for(lambda: srv.stderr().count("pausing accepts") >= 1, what="an EMFILE pause")
    status, text = _ask(probe, "/metrics")
    assert status == 200
    for name in ("process_open_fds", "process_max_fds", "process_cpu_seconds_total",
                 "process_resident_memory_bytes", "process_virtual_memory_bytes",
                 "process_start_time_seconds"):
        assert samples(text, name), "%s is missing out of descriptors" % name
    # Every descriptor is in use, or all but the few freed since.
    assert metric(text, "process_open_fds") >= 60
    _promtool_check(text)
    for s in socks + [probe]:
        s.close()


def _promtool_check(text):
    promtool = shutil.which("promtool")
    if not promtool:
        return
    r = subprocess.run([promtool, "check", "metrics"], input=text,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_new_probe_is_answered_out_of_descriptors(start_server, engine):
    """Each probe on a connection of its own, as kubelet and load balancers
    make them, while the echo clients hold every descriptor."""
    srv = start_server("--metrics", "127.0.0.1:0", "--max-conns", "1000", "--backlog", "512",
                       engine=engine, preexec=_low_nofile(64))
    host, port = metrics_url(srv).split("/")[2].rsplit(":", 1)

    def probe(path):
        s = socket.create_connection((host, int(port)), timeout=10)
        try:
            return _ask(s, path)
        finally:
            s.close()
    socks = [srv.connect() for _ in range(100)]
    wait_for(lambda: srv.stderr().count("pausing accepts") >= 1, what="an EMFILE pause")
    status, body = probe("/healthz")
    assert status == 200 and one_line(body).startswith("alive"), body
    # It may have resumed for a moment, found none and paused again.
    answers = [probe("/readyz") for _ in range(3)]
    assert any(st == 503 and "out of descriptors" in one_line(body) for st, body in answers), \
        answers
    status, text = probe("/metrics")
    assert status == 200 and metric(text, "echosrv_accepting") in (0, 1)
    _promtool_check(text)
    for s in socks:
        s.close()
    wait_for(lambda: probe("/readyz")[0] == 200, timeout=30, interval=0.2,
             what="/readyz to say 200 again")


@pytest.mark.workers
def test_a_scrape_takes_no_lock_a_worker_takes(start_server, engine, tmp_path):
    """Connection tracing makes every worker write log lines (the log
    queue's mutex); scrapes meanwhile must not lock what they lock."""
    if not os.path.exists(LOCKS_SHIM):
        pytest.skip("helper not built: make %s" % os.path.relpath(LOCKS_SHIM))
    out = tmp_path / "shared-locks"
    env = dict(os.environ, LOCKS_OUT=str(out), LD_PRELOAD=LOCKS_SHIM)
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0").lstrip(":")
    srv = start_server("--metrics", "127.0.0.1:0", "--workers", "2", "--trace", "error,conn",
                       engine=engine, env=env)
    url = metrics_url(srv)
    for _ in range(3):
        held = []
        for _ in range(10):
            s = srv.connect()
            s.sendall(b"ping")
            assert s.recv(4) == b"ping"
            held.append(s)
        for _ in range(5):
            assert scrape(url)[0] == 200
        for s in held:
            s.close()
    wait_for(lambda: sum(samples(scrape(url)[2], "echosrv_connections_active").values()) == 0,
             what="the closes to show")
    shared = out.read_text() if out.exists() else ""
    assert shared == "", "mutexes locked by both the metrics thread and a worker:\n" + shared


@pytest.mark.workers
def test_probes_say_stopping_not_draining(start_server, engine, tmp_path):
    """`echosrvctl stop` with worker 1 held still (preload_stall.c): the
    server is stopping (closing everything now) until that worker ends."""
    trigger = tmp_path / "stall"
    sock = tmp_path / "ctl.sock"
    srv = start_server("--metrics", "127.0.0.1:0", "--workers", "2", "--ctl", str(sock),
                       engine=engine,
                       env=stall_env(STALL_THREAD="echosrv-w1", STALL_TRIGGER=trigger))
    base = base_of(srv)
    assert get(base, "/readyz")[0] == 200
    trigger.touch()
    try:
        # Held still only once it next waits: the health check wakes it.
        wait_for(lambda: get(base, "/healthz")[0] == 503, timeout=20, interval=0.2,
                 what="worker 1 to be held still")
        ctl(sock, "stop")
        wait_for(lambda: get(base, "/readyz")[0] == 503, what="/readyz to say 503")
        status, body = get(base, "/readyz")
        assert status == 503 and one_line(body) == "not ready: stopping\n", body
        status, body = get(base, "/healthz")
        assert status == 200 and one_line(body) == "alive: stopping\n", body
        _promtool_check(scrape(base + "/metrics")[2])
    finally:
        trigger.unlink()
    assert srv.wait(timeout=30) == 0


def test_fallback_reason_is_escaped(start_server, tmp_path):
    build = os.path.dirname(ECHOSRV)
    no_uring = os.path.join(build, "helpers", "no_uring")
    shim = os.path.join(build, "helpers", "preload_strerror.so")
    for helper in (no_uring, shim):
        if not os.path.exists(helper):
            pytest.skip("helper not built: make %s" % os.path.relpath(helper))
    env = dict(os.environ, LD_PRELOAD=shim, STRERROR_EPERM='say "no" \\ to\nit')
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0").lstrip(":")
    srv = start_server("--metrics", "127.0.0.1:0", "--engine", "auto", wrapper=[no_uring],
                       env=env)
    text = scrape(metrics_url(srv))[2]
    line, = [l for l in text.splitlines() if l.startswith("echosrv_engine_info{")]
    assert 'fallback_reason="io_uring is not available (io_uring_setup: say \\"no\\" ' \
           '\\\\ to\\nit' in line, line
    if not shutil.which("promtool"):
        pytest.skip("promtool not installed (Debian package prometheus; scripts/deps.sh)")
    _promtool_check(text)


@pytest.mark.workers
def test_scrapes_with_a_stuck_worker_do_not_hold_up_probes(start_server, engine, tmp_path):
    """Worker 1 held still (preload_stall.c) for over two health periods;
    six scrapes at once (from three loopback addresses: the endpoint takes
    four connections from one), then a probe.  Before, under sockmap each
    scrape waited 2 s for worker 1 in the thread that answers probes, so
    the probe waited behind them for up to 12 s.  The probe's timeout is
    generous (5 s, for a noisy machine under the sanitizers)."""
    trigger = tmp_path / "stall"
    srv = start_server("--metrics", "127.0.0.1:0", "--workers", "2", engine=engine,
                       env=stall_env(STALL_THREAD="echosrv-w1", STALL_TRIGGER=trigger))
    base = base_of(srv)

    def stuck_ms():
        status, body = get(base, "/healthz")
        m = re.search(r"has not run its loop for (\d+) ms", body)
        return int(m.group(1)) if status == 503 and m else 0
    trigger.touch()
    try:
        wait_for(lambda: stuck_ms() > 2500, timeout=30, interval=0.2,
                 what="worker 1 to be stuck for over two health periods")
        host, port = base.split("/")[2].rsplit(":", 1)
        results = []

        def scrape_from(src):
            s = socket.create_connection((host, int(port)), timeout=60, source_address=(src, 0))
            try:
                results.append(_ask(s, "/metrics")[0])
            finally:
                s.close()
        scrapers = [threading.Thread(target=scrape_from, args=("127.0.0.%d" % (2 + i % 3),))
                    for i in range(6)]
        for t in scrapers:
            t.start()
        status, body = get(base, "/readyz", timeout=5)
        assert status == 200, body
        for t in scrapers:
            t.join(timeout=60)
        assert results == [200] * 6
    finally:
        trigger.unlink()
