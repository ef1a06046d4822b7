# SPDX-License-Identifier: GPL-2.0-only
"""The UDP cells of `make bench` (bench/udp.py, BENCH_PARTS=udp): every cell
against the UDP baseline, echosrv and socat in network namespaces that come
and go with the run, and a server that fails a cell shown as failed with
the reason, never dropped.  Figures are never asserted."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import BUILD, ROOT
from netns import require_netns

RUN = os.path.join(ROOT, "bench", "run.py")
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.dont_write_bytecode = True
import report           # noqa: E402
import udp              # noqa: E402

TINY = {"BENCH_PARTS": "udp", "BENCH_DURATION": "0.2", "BENCH_WARMUP": "0.05",
        "BENCH_ENGINES": "epoll"}


def bench_namespaces():
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                         timeout=10).stdout
    return {l.split()[0] for l in out.splitlines() if l.startswith("esrvb-")}


def bench(tmp_path, **env):
    e = dict(os.environ, **TINY)
    e.update(env)
    # Only this run's namespaces: another bench on the machine has its own.
    before = bench_namespaces()
    p = subprocess.run([sys.executable, RUN, "--build", BUILD, "--out", str(tmp_path)],
                       env=e, capture_output=True, text=True, timeout=600)
    (d,) = os.listdir(str(tmp_path))
    with open(os.path.join(str(tmp_path), d, "results.json")) as f:
        data = json.load(f)
    with open(os.path.join(str(tmp_path), d, "results.md")) as f:
        md = f.read()
    out = p.stdout + p.stderr
    left = bench_namespaces() - before
    assert not left, left
    return p.returncode, data["runs"], md, out


def row(md, cell, server):
    want = "| %d | %d | %d | %s | " % (cell + (server,))
    rows = [l for l in md.splitlines() if l.startswith(want)]
    assert len(rows) == 1, (want, md)
    return rows[0]


@pytest.mark.root
def test_udp_cells_in_netns(tmp_path):
    require_netns()
    socat = shutil.which("socat") is not None
    rc, runs, md, out = bench(tmp_path, BENCH_PEERS="socat" if socat else "none")
    assert rc == 0, out
    assert {r["part"] for r in runs} == {"udp"}
    servers = ["baseline", "epoll"] + (["socat"] if socat else [])
    for cell in udp.CELLS:
        for name in servers:
            (r,) = [r for r in runs if (r["size"], r["connections"], r["pipeline"]) == cell
                    and r["server"] == name]
            assert r["placement"] == "netns"
            line = row(md, cell, name)
            if r["kind"] == "peer" and r["failure"]:
                assert "| failed: %s |" % r["failure"] in line
                continue
            assert r["failure"] is None, r
            res = r["result"]
            assert res["mode"] == "udp" and res["options"]["address"].startswith("198.18.")
            assert res["echoed"] > 0 and set(res["cpu_us_per_datagram"]) == {"0"}
            assert "server_cpu_us_per_datagram" in res
    assert "## UDP (netns)" in md and "Median dgram/s ratio" in md


@pytest.mark.root
def test_a_failing_udp_cell_is_shown_with_its_reason(tmp_path):
    """echosrv told to drop datagrams over 1,000 bytes: its large cells echo
    nothing, and say so; the small ones pass; the run exits 1."""
    require_netns()
    rc, runs, md, out = bench(tmp_path, BENCH_PEERS="none",
                              BENCH_SERVER_ARGS="--udp-max-size 1000")
    assert rc == 1, out
    for cell in udp.CELLS:
        (r,) = [r for r in runs if r["server"] == "epoll" and r["size"] == cell[0]
                and r["connections"] == cell[1]]
        if cell[0] > 1000:
            assert r["failure"] == "nothing echoed", r
            assert "| failed: nothing echoed |" in row(md, cell, "epoll")
        else:
            assert r["failure"] is None, r


def fake(server, kind="echosrv", failure=None, dgrams=1000.0):
    return {"server": server, "kind": kind, "placement": "netns", "part": "udp",
            "size": 64, "connections": 64, "pipeline": 4, "failure": failure,
            "result": None if failure else {
                "echoed_per_second": dgrams, "latency_us": {"p99": 10.0}, "lost": 3,
                "sent": 500, "reordered": 0, "server_cpu_us_per_datagram": 2.0,
                "machine_cpu_us_per_datagram": {"total": 4.0, "user": 1.0, "system": 2.0,
                                                "softirq": 1.0}}}


def test_a_failed_udp_peer_is_shown_not_dropped():
    runs = [fake("baseline", "baseline"), fake("epoll", dgrams=2000.0),
            fake("socat", "peer", failure="7 corrupted (7 another source's, 0 wrong "
                 "bytes, 0 wrong length)")]
    md = "\n".join(udp.section({"settings": {"placement": "netns"}}, runs, report))
    assert "| 64 | 64 | 4 | socat | failed: 7 corrupted (7 another source's" in md
    assert "| 64 | 64 | 4 | epoll | 2k (2.00) |" in md
    assert "socat - (1 cells failed)" in md


def test_udp_failure_reasons():
    ok = {"corrupted": 0, "duplicated": 0, "echoed": 5,
          "corrupted_kinds": {"size": 0, "source": 0, "bytes": 0}}
    assert udp.failure(0, ok, "") is None
    assert udp.failure(0, dict(ok, echoed=0), "") == "nothing echoed"
    assert udp.failure(1, dict(ok, duplicated=2), "") == "2 duplicated"
    assert udp.failure(1, dict(ok, corrupted=3, corrupted_kinds={
        "size": 1, "source": 0, "bytes": 2}), "").startswith("3 corrupted (0 another")
    assert udp.failure(-1, None, "").startswith("stall")
    assert udp.failure(3, None, "echosrv-bench: nothing echoed: x answers port "
                       "unreachable") == "could not start: nothing echoed: x answers " \
                                         "port unreachable"
