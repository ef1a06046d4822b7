# SPDX-License-Identifier: GPL-2.0-only
"""echosrv-bench's report (issue 17): --version, percentiles, --histogram,
--interval, what the JSON carries, --bind and connection churn.

Against the real echosrv (every engine where the server's behaviour is what
is measured).  Only counts, keys and exit codes are asserted, never speed.
"""
import csv
import os
import platform
import shutil
import socket
import subprocess
import sys
import threading

import pytest

from conftest import wait_for
from test_bench import BENCH, BROKEN, SHORT, Helper, bench


def addr(srv):
    return "127.0.0.1:%d" % srv.port


def test_version():
    r = subprocess.run([BENCH, "--version"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0
    assert r.stdout.startswith("echosrv-bench ") and len(r.stdout.split()) == 2


def test_default_percentiles_reach_p9999(start_server):
    srv = start_server()
    rc, out, err = bench("-a", addr(srv), "-c", "2", *SHORT)
    assert rc == 0, err
    lat = out["latency_us"]
    assert set(lat) == {"p50", "p90", "p99", "p999", "p9999", "max", "mean"}
    assert lat["p50"] <= lat["p99"] <= lat["p999"] <= lat["p9999"] <= lat["max"]


def test_percentiles_list(start_server):
    srv = start_server()
    rc, out, err = bench("-a", addr(srv), "--percentiles", "25,99.5,99.999", *SHORT)
    assert rc == 0, err
    assert set(out["latency_us"]) == {"p25", "p995", "p99999", "max", "mean"}
    assert out["options"]["percentiles"] == [25, 99.5, 99.999]
    r = subprocess.run([BENCH, "-a", addr(srv), "--percentiles", "25,99.5"] + SHORT,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "p25 " in r.stdout and "p99.5 " in r.stdout


def test_histogram_totals_equal_messages(start_server, engine, tmp_path):
    srv = start_server(engine=engine)
    path = str(tmp_path / "lat.csv")
    rc, out, err = bench("-a", addr(srv), "-c", "5", "-p", "2", "--histogram", path, *SHORT)
    assert rc == 0, err
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert rows and list(rows[0]) == ["low_ns", "high_ns", "count"]
    assert sum(int(r["count"]) for r in rows) == out["messages"] > 0
    lows = [int(r["low_ns"]) for r in rows]
    assert lows == sorted(lows)
    assert all(int(r["low_ns"]) <= int(r["high_ns"]) for r in rows)
    # The histogram is the one the percentiles come from.
    assert int(rows[0]["low_ns"]) <= out["latency_us"]["max"] * 1000


def test_histogram_unwritable_is_an_error(start_server, tmp_path):
    srv = start_server()
    rc, out, err = bench("-a", addr(srv), "--histogram", str(tmp_path / "no" / "x.csv"), *SHORT)
    assert rc == 3 and "--histogram" in err


@pytest.mark.workers
def test_interval_lines(start_server, engine):
    srv = start_server(engine=engine)
    r = subprocess.run([BENCH, "-a", addr(srv), "-c", "3", "-d", "1", "-w", "0.1",
                        "--interval", "0.25"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.splitlines() if "msg/s" in l and " p99 " in l]
    assert len(lines) == 4, r.stdout
    assert all("errors 0" in l for l in lines)
    # Two load threads: main takes each one's interval figures under its lock.
    rc, out, err = bench("-a", addr(srv), "-c", "4", "-t", "2", "-d", "0.5", "-w", "0.1",
                         "--interval", "0.2")
    assert rc == 0, err
    iv = out["intervals"]
    assert [round(v["t_s"], 3) for v in iv] == [0.0, 0.2, 0.4]     # the last one is short
    assert [round(v["secs"], 3) for v in iv] == [0.2, 0.2, 0.1]
    # Every message measured is in exactly one interval.
    assert sum(v["messages"] for v in iv) == out["messages"] > 0
    assert all(set(v) == {"t_s", "secs", "messages", "messages_per_second", "p50_us",
                          "p99_us", "errors"} for v in iv)


def test_interval_counts_errors(tmp_path, helper_broken):
    srv = helper_broken("close")
    rc, out, err = bench("-a", srv, "-c", "3", "-s", "4096", "-d", "0.4", "-w", "0",
                         "--interval", "0.1")
    assert rc == 1
    assert sum(v["errors"] for v in out["intervals"]) >= 1


@pytest.fixture
def helper_broken(tmp_path):
    """helper_broken(mode) -> HOST:PORT of a tests/helpers/broken_echo.py."""
    started = []

    def start(mode):
        h = Helper(tmp_path, lambda pf: [sys.executable, BROKEN, "--mode", mode,
                                         "--at", "1000", "--port-file", pf], mode)
        started.append(h)
        return h.addr

    yield start
    for h in started:
        h.stop()


def test_json_says_what_and_where(start_server):
    srv = start_server()
    v = subprocess.run([BENCH, "--version"], capture_output=True, text=True,
                       timeout=10).stdout.split()[1]
    rc, out, err = bench("-a", addr(srv), "-c", "2", "--server-pid", str(srv.proc.pid),
                         "--cpu", "0", *SHORT)
    assert rc == 0, err
    assert out["tool"]["name"] == "echosrv-bench" and out["tool"]["version"] == v
    assert len(out["tool"]["commit"]) >= 7
    assert out["host"]["name"] == socket.gethostname()
    assert out["host"]["kernel"] == platform.release()
    assert out["host"]["cpus"] == os.cpu_count() and out["host"]["cpu_model"]
    assert out["time"].endswith("Z") and out["time"][:2] == "20"
    assert out["placement"] == "loopback"
    o = out["options"]
    assert o["address"] == addr(srv) and o["connections"] == 2 and o["pipeline"] == 1
    assert o["server_pid"] == srv.proc.pid and o["cpu"] == [0]
    # A closed-loop run has no rate, and nothing is said twice.
    assert "rate" not in o and "rate" not in out and "churn" not in out
    for k in ("user", "system", "softirq", "total"):
        assert out["machine_cpu_us_per_message"][k] >= 0
        assert out["cpu_us_per_message"]["0"][k] >= 0
    assert out["machine_cpu_us_per_message"]["total"] > 0


def test_json_open_loop_has_no_pipeline(start_server):
    srv = start_server()
    rc, out, err = bench("-a", addr(srv), "-r", "1000", "--placement", "netns", *SHORT)
    assert rc == 0, err
    assert out["options"]["rate"] == 1000 and "pipeline" not in out["options"]
    assert out["placement"] == "netns"
    assert "server_cpu_us_per_message" not in out


def peer_addresses(port):
    """Source addresses of the established connections to port (ss)."""
    r = subprocess.run(["ss", "-Htn", "state", "established", "( dport = :%d )" % port],
                       capture_output=True, text=True, timeout=10)
    out = []
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) >= 4:
            out.append(f[2].rsplit(":", 1)[0])
    return out


def test_bind_spreads_connections(start_server, engine):
    srv = start_server(engine=engine)
    seen = {}
    run = {}

    def go():
        run["r"] = bench("-a", addr(srv), "-c", "10", "--bind", "127.0.0.2,127.0.0.3",
                         "-d", "3", "-w", "0.1")

    t = threading.Thread(target=go)
    t.start()
    try:
        got = wait_for(lambda: (lambda a: a if len(a) == 10 else None)(
            peer_addresses(srv.port)), timeout=20, what="10 connections in ss")
        for a in got:
            seen[a] = seen.get(a, 0) + 1
    finally:
        t.join(60)
    rc, out, err = run["r"]
    assert rc == 0, err
    assert seen == {"127.0.0.2": 5, "127.0.0.3": 5}
    assert out["options"]["bind"] == "127.0.0.2,127.0.0.3"


def test_bind_address_not_here_is_a_setup_failure(start_server):
    srv = start_server()
    rc, out, err = bench("-a", addr(srv), "--bind", "198.18.0.9", *SHORT)
    assert rc == 3 and "bind" in err and "198.18.0.9" in err


def test_churn_against_a_good_server(start_server, engine):
    srv = start_server(engine=engine)
    rc, out, err = bench("-a", addr(srv), "-c", "20", "--connect-rate", "200",
                         "--lifetime", "3", "-p", "2", "-d", "0.5", "-w", "0.1")
    assert rc == 0, err
    ch = out["churn"]
    assert ch["failed"] == 0 and ch["attempts"] > 0
    assert ch["setup_us"]["p50"] > 0 and ch["setup_us"]["max"] >= ch["setup_us"]["p99"]
    assert out["messages"] > 0 and out["errors"] == 0 and out["mismatches"] == 0
    assert out["options"]["lifetime_messages"] == 3 and out["options"]["connect_rate"] == 200
    rc, out, err = bench("-a", addr(srv), "-c", "20", "--connect-rate", "100",
                         "--lifetime", "0.05s", "-d", "0.4", "-w", "0.1")
    assert rc == 0, err
    assert out["options"]["lifetime_s"] == 0.05 and out["churn"]["failed"] == 0


def test_churn_against_a_server_that_refuses(start_server, engine):
    """An ACL that denies us: every connection is accepted by the kernel and
    closed by echosrv; churn reports them as rejected, not as echo errors."""
    srv = start_server("--deny", "127.0.0.0/8", engine=engine)
    rc, out, err = bench("-a", addr(srv), "-c", "10", "--connect-rate", "100",
                         "-d", "0.3", "-w", "0.1")
    assert rc == 1, err
    ch = out["churn"]
    assert ch["failure_kinds"]["rejected"] >= 1 and ch["failed"] >= 1
    assert out["messages"] == 0 and out["errors"] == 0
    assert "before its first echo" in err


def test_churn_against_no_listener_counts_refused():
    with socket.socket() as s:                 # a port with no listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        rc, out, err = bench("-a", "127.0.0.1:%d" % port, "--connect-rate", "100",
                             "-d", "0.3", "-w", "0.1", timeout=30)
    assert rc == 1, err
    assert out["churn"]["failure_kinds"]["refused"] >= 10
    assert "Connection refused" in err


@pytest.mark.parametrize("args", [
    ["--percentiles", "100"], ["--percentiles", "99,50"], ["--percentiles", ""],
    ["--lifetime", "3"], ["--connect-rate", "10", "-r", "10"],
    ["--connect-rate", "10", "--lifetime", "0"], ["--bind", "::1"],
    ["--bind", "not-an-address"], ["--interval", "9", "-d", "1"],
    ["--cpu", "99999"], ["--placement", 'a"b'],
])
def test_bad_usage(args):
    rc, out, err = bench(*args, timeout=10)
    assert rc == 2 and "echosrv-bench: " in err


@pytest.mark.skipif(not shutil.which("socat"), reason="needs socat (scripts/deps.sh bench)")
def test_server_pid_counts_a_forking_servers_children(tmp_path):
    """socat echoes in one child per connection: its parent's own CPU time
    stays at nothing, its tree's does not."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen(["socat", "-b", "65536", "TCP-LISTEN:%d,bind=127.0.0.1,"
                          "reuseaddr,fork" % port, "PIPE"])
    try:
        wait_for(lambda: subprocess.run(["ss", "-Hltn", "sport = :%d" % port],
                                        capture_output=True, text=True).stdout.strip(),
                 what="socat to listen")
        rc, out, err = bench("-a", "127.0.0.1:%d" % port, "-c", "4", "-p", "4",
                             "--server-pid", str(p.pid), "-d", "0.6", "-w", "0.1")
    finally:
        p.kill()
        p.wait()
    assert rc == 0, err
    assert out["server_cpu_us_per_message"] > 0
