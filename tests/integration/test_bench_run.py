# SPDX-License-Identifier: GPL-2.0-only
"""bench/run.py (`make bench`) on a tiny matrix: its namespaces come and go
with it (also when it is interrupted), each run says where it ran, and a
server that fails a cell is shown as failed with the reason.

Figures are never asserted, only that they exist and how they are labelled.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import BUILD, ROOT, wait_for
from netns import require_netns

RUN = os.path.join(ROOT, "bench", "run.py")
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.dont_write_bytecode = True
import report           # noqa: E402
import run as bench_run  # noqa: E402

TINY = {"BENCH_SIZES": "64", "BENCH_CONNS": "2", "BENCH_PIPELINES": "1",
        "BENCH_DURATION": "0.2", "BENCH_WARMUP": "0.05", "BENCH_ENGINES": "epoll"}


def our_namespaces(pid):
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    return [l.split()[0] for l in r.stdout.splitlines()
            if l.startswith("esrvb-%d-" % pid)]


def start(tmp_path, **env):
    e = dict(os.environ, **TINY)
    e.update(env)
    return subprocess.Popen([sys.executable, RUN, "--build", BUILD, "--out", str(tmp_path)],
                            env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def results(tmp_path):
    (d,) = os.listdir(str(tmp_path))
    with open(os.path.join(str(tmp_path), d, "results.json")) as f:
        return json.load(f), os.path.join(str(tmp_path), d)


@pytest.mark.root
def test_netns_run_places_and_cleans_up(tmp_path):
    require_netns()
    peers = [p for p in ("socat", "xinetd") if shutil.which(p)]
    p = start(tmp_path, BENCH_PEERS=",".join(peers) or "none")
    out, _ = p.communicate(timeout=240)
    assert p.returncode == 0, out
    assert our_namespaces(p.pid) == []
    data, d = results(tmp_path)
    runs = data["runs"]
    names = {r["server"] for r in runs}
    assert {"baseline", "epoll"} | set(peers) <= names
    for r in runs:
        res = r["result"]
        assert r["failure"] is None, r
        assert res["placement"] == r["placement"]
        assert res["machine_cpu_us_per_message"]["total"] > 0
        assert set(res["cpu_us_per_message"]) == {"0"}
    places = {(r["part"], r["placement"]) for r in runs}
    assert places == {("matrix", "netns"), ("churn", "netns"), ("compare", "loopback")}
    # The servers listened on the veth pair's server end, not on loopback.
    assert all(r["result"]["options"]["address"].startswith("198.18.")
               for r in runs if r["placement"] == "netns")
    assert any(r["result"].get("churn") for r in runs if r["part"] == "churn")
    md = open(os.path.join(d, "results.md")).read()
    assert "## Placement: netns against loopback" in md and "## Churn" in md
    if report.plot_all is not None and os.path.exists(os.path.join(d, "plot.png")):
        assert os.path.getsize(os.path.join(d, "plot.svg")) > 0


@pytest.mark.root
def test_interrupted_run_removes_its_namespaces(tmp_path):
    require_netns()
    p = start(tmp_path, BENCH_DURATION="30", BENCH_PEERS="none", BENCH_COMPARE="0")
    try:
        wait_for(lambda: our_namespaces(p.pid), timeout=60, what="the bench's namespaces")
        wait_for(lambda: subprocess.run(["pgrep", "-f", "bench-baseline 198.18.10.1"],
                                        capture_output=True).returncode == 0,
                 timeout=30, what="the baseline to start")
        time.sleep(0.5)
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode != 0
    assert our_namespaces(p.pid) == []
    assert "interrupted" in out


def strays(tag, pids=()):
    """Processes of a run still alive: by a path of its own in their command
    line (port files, logs), or by pid."""
    r = subprocess.run(["pgrep", "-f", tag], capture_output=True, text=True, timeout=10)
    left = [int(x) for x in r.stdout.split()]
    return left + [p for p in pids if os.path.exists("/proc/%d" % p)]


@pytest.mark.root
def test_interrupted_while_the_servers_start(tmp_path):
    """SIGTERM while a peer is still coming up (this socat never listens):
    the servers already started (the baseline, echosrv) and the peer itself
    must go too, or they outlive the bench in its deleted namespace."""
    require_netns()
    bindir, mark = tmp_path / "bin", tmp_path / "socat.pid"
    bindir.mkdir()
    (bindir / "socat").write_text("#!/bin/sh\necho $$ > %s\nexec sleep 60\n" % mark)
    (bindir / "socat").chmod(0o755)
    out_dir = tmp_path / "out"
    p = start(out_dir, BENCH_PEERS="socat", BENCH_COMPARE="0",
              PATH="%s:%s" % (bindir, os.environ["PATH"]))
    try:
        wait_for(lambda: mark.exists() and mark.read_text().strip(), timeout=60,
                 what="the fake socat to start")
        fake = int(mark.read_text())
        assert strays(str(out_dir)), "the baseline and echosrv should be up"
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode != 0 and "interrupted" in out, out
    assert our_namespaces(p.pid) == []
    assert strays(str(out_dir), [fake]) == []


STUBBORN_SOCAT = """#!/usr/bin/python3
# A socat that listens where it is told but ignores SIGTERM, like a peer
# with children stuck in a write: stopping it takes the bench's full wait.
import signal, socket, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
spec = sys.argv[3].split(":", 1)[1].split(",")
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((spec[1].split("=")[1], int(spec[0])))
s.listen()
open("%s", "w").write("up")
time.sleep(120)
"""


@pytest.mark.root
def test_a_second_signal_does_not_cut_the_cleanup_short(tmp_path):
    """An impatient operator: SIGTERM, then another while the bench waits
    for a slow peer to stop; the cleanup must still finish."""
    require_netns()
    bindir, mark = tmp_path / "bin", tmp_path / "socat.up"
    bindir.mkdir()
    (bindir / "socat").write_text(STUBBORN_SOCAT % mark)
    (bindir / "socat").chmod(0o755)
    out_dir = tmp_path / "out"
    p = start(out_dir, BENCH_DURATION="30", BENCH_PEERS="socat", BENCH_COMPARE="0",
              PATH="%s:%s" % (bindir, os.environ["PATH"]))
    try:
        wait_for(mark.exists, timeout=60, what="the stubborn socat to listen")
        time.sleep(1)
        p.send_signal(signal.SIGTERM)
        time.sleep(2)                   # now in the wait for socat to stop
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode != 0, out
    assert our_namespaces(p.pid) == []
    assert strays(str(out_dir)) == [] and strays(str(bindir)) == []


def fake_run(server, kind="echosrv", failure=None, msgs=1000.0, skipped=None):
    r = {"server": server, "kind": kind, "placement": "netns", "part": "matrix",
         "size": 64, "connections": 2, "pipeline": 1, "failure": failure, "rc": 0,
         "result": None if failure or skipped else {
             "messages_per_second": msgs, "latency_us": {"p99": 10.0},
             "machine_cpu_us_per_message": {"total": 5.0, "user": 1, "system": 2,
                                            "softirq": 2},
             "cpu_us_per_message": {"0": {"total": 3.0}},
             "server_cpu_us_per_message": 1.0}}
    if skipped:
        r["skipped"] = skipped
    return r


def test_failure_reasons():
    assert bench_run.failure(1, {"mismatches": 3, "error_kinds": {}}, "") == "corrupted bytes"
    assert bench_run.failure(1, {"mismatches": 0, "error_kinds": {"missing": 2}}, "") \
        .startswith("stall")
    assert bench_run.failure(-1, None, "").startswith("stall")
    assert bench_run.failure(3, None, "echosrv-bench: connect to x: Connection refused") \
        == "could not start: connect to x: Connection refused"
    assert bench_run.failure(0, {"mismatches": 0, "error_kinds": {}}, "") is None
    assert bench_run.failure(0, {"mismatches": 0, "error_kinds": {}, "messages": 0}, "") \
        == "stall (nothing echoed in the measured time)"
    assert bench_run.failure(0, {"mismatches": 0, "error_kinds": {}, "messages": 5}, "") is None


def test_a_failed_peer_is_shown_not_dropped():
    runs = [fake_run("baseline", "baseline"), fake_run("epoll", msgs=2000.0),
            fake_run("socat", "peer", failure="stall (echoes never came back)"),
            fake_run("ncat", "peer", skipped="not run above 500 connections")]
    t = report.table(runs, "matrix", "netns")
    rows = report.matrix_rows(t, report.cells_in(runs, "matrix"), report.servers_in(runs))
    text = "\n".join(rows)
    assert "| socat | failed: stall (echoes never came back) |" in text
    assert "| ncat | not run: not run above 500 connections |" in text
    assert "2k (2.00)" in text
    summary = "\n".join(report.summary_rows(t, report.cells_in(runs, "matrix"),
                                            report.servers_in(runs)))
    assert "| socat | 0 of 1 |" in summary and "| ncat | 0 of 0 |" in summary


@pytest.mark.parametrize("env", [
    {"BENCH_SIZES": "abc"}, {"BENCH_SIZES": "0"}, {"BENCH_CONNS": "1,,2"},
    {"BENCH_CONNS": "200000"}, {"BENCH_PIPELINES": "1,1"}, {"BENCH_REPEAT": "0"},
    {"BENCH_REPEAT": "x"}, {"BENCH_DURATION": "-1"}, {"BENCH_DURATION": "nan"},
    {"BENCH_GIVE_UP": "0"}, {"BENCH_PLACEMENT": "bogus"}, {"BENCH_PEERS": "nginx"},
    {"BENCH_SERVER_CPU": "4096"}, {"BENCH_SERVER_ARGS": "--trace 'unclosed"},
])
def test_bad_settings_are_refused_before_anything_starts(tmp_path, env):
    """A typo in a BENCH_* variable: one line naming it and exit status 2,
    no traceback, no namespaces, no results directory."""
    p = start(tmp_path, **dict({"BENCH_PEERS": "none"}, **env))
    out, _ = p.communicate(timeout=60)
    (name,) = env
    assert p.returncode == 2, out
    assert "Traceback" not in out and ("bench: %s: " % name) in out, out
    assert os.listdir(str(tmp_path)) == []


def test_a_missing_peer_is_named_in_the_report(tmp_path, monkeypatch):
    """socat not installed: the run goes on without it, and the report says
    so rather than showing a table that simply lacks it."""
    import peers
    import placement
    monkeypatch.setenv("PATH", str(tmp_path))         # no socat in it
    left, servers = [], []
    try:
        peers.start_all(BUILD, [], [], placement.Loopback(None, None), str(tmp_path),
                        None, peers=["socat"], out=servers, left=left)
    finally:
        for s in servers:
            s.stop()
    assert [s.name for s in servers] == ["baseline"]
    assert left == ["socat (loopback): socat is not installed (scripts/deps.sh bench)"]
    meta = {"settings": dict(bench_run.QUICK, quick=True, repeat=1, server_cpu=0,
                             client_cpu=1, placement="netns", server_args=[],
                             churn=bench_run.CHURN, churn_rate=1000),
            "machine": {"commit": "x", "cpu": "y", "cpus": 2, "memory_gib": 1,
                        "kernel": "6.1"},
            "started": "now", "command": "make bench", "left_out": left}
    md = report.markdown(meta, [fake_run("baseline", "baseline")], "p.png")
    assert "Left out of this run: socat (loopback): socat is not installed" in md
