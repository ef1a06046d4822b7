#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""The UDP cells: echosrv against the plain recvmmsg/sendmmsg loop
(bench/baseline_udp.c), measured by echosrv-bench-udp.

Each cell runs each server ROUNDS times, alternating, and reports medians:
echoed datagrams per second, server CPU per echoed datagram (utime+stime
from /proc), RTT p99, and lost.  The server is pinned to CPU 0 and the
load generator to CPU 1 (taskset), so they do not share a core; PIN=0
leaves placement to the scheduler.

  python3 bench/udp_cells.py [BUILD]        (default build/)
"""
import json
import os
import statistics
import subprocess
import sys
import time

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
ROUNDS = int(os.environ.get("ROUNDS", "3"))
# PIN=0 leaves placement to the scheduler (a shared, busy machine).
PIN = os.environ.get("PIN", "1") == "1"
TASKSET0 = ["taskset", "-c", "0"] if PIN else []
TASKSET1 = ["taskset", "-c", "1"] if PIN else []
# size, sources, window per source, datagrams per source[, datagrams per
# send: the client's UDP_SEGMENT, which echosrv receives coalesced (UDP_GRO)
# and echoes with UDP_SEGMENT; the baseline receives them one by one]
CELLS = [(64, 1, 32, 60000), (64, 64, 4, 1500), (1472, 1, 32, 40000),
         (1472, 64, 4, 1000), (65000, 1, 8, 4000),
         (1472, 1, 32, 40000, 16), (1472, 64, 4, 1000, 4)]
# ONLY=1472,65000: just the cells of those sizes.
if os.environ.get("ONLY"):
    CELLS = [c for c in CELLS if str(c[0]) in os.environ["ONLY"].split(",")]


def cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(kind, tmp):
    if kind == "echosrv":
        pf = os.path.join(tmp, "pf")
        if os.path.exists(pf):
            os.unlink(pf)
        p = subprocess.Popen(TASKSET0 + [os.path.join(BUILD, "echosrv"), "--engine",
                              "epoll", "--listen", "127.0.0.1:0", "--udp-listen", "127.0.0.1:0",
                              "--udp-rate", "0", "--port-file", pf],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(500):
            if os.path.exists(pf):
                break
            time.sleep(0.01)
        line = [l for l in open(pf).read().split() if l.startswith("udp:")][0]
    else:
        p = subprocess.Popen(TASKSET0 + [os.path.join(BUILD, "bench-baseline-udp"),
                              "127.0.0.1", "0"], stdout=subprocess.PIPE, text=True)
        line = p.stdout.readline().strip()
    return p, int(line.rsplit(":", 1)[1])


def one(kind, cell, tmp):
    size, sources, window, count = cell[:4]
    gso = cell[4] if len(cell) > 4 else 1
    p, port = start(kind, tmp)
    try:
        c0 = cpu(p.pid)
        r = subprocess.run(TASKSET1 + [os.path.join(BUILD, "echosrv-bench-udp"),
                            "--host", "127.0.0.1", "--port", str(port), "--size", str(size),
                            "--sources", str(sources), "--bind", "127.0.0.2",
                            "--window", str(window), "--count", str(count), "--give-up", "1000",
                            "--gso", str(gso)],
                           capture_output=True, text=True, timeout=120, check=True)
        out = json.loads(r.stdout)
        out["cpu_us_per_dgram"] = (cpu(p.pid) - c0) * 1e6 / max(out["echoed"], 1)
        return out
    finally:
        p.kill()
        p.wait()


def main():
    tmp = "/tmp/udp_cells.%d" % os.getpid()
    os.makedirs(tmp, exist_ok=True)
    print("| cell | server | echoed/s | CPU us/dgram | p99 us | lost | ratio dgram/s |")
    print("|---|---|---|---|---|---|---|")
    for cell in CELLS:
        runs = {"echosrv": [], "baseline": []}
        for _ in range(ROUNDS):
            for kind in runs:
                runs[kind].append(one(kind, cell, tmp))
        med = {k: {m: statistics.median(r[m] for r in v) for m in
                   ("echoed_per_sec", "cpu_us_per_dgram", "rtt_p99_us", "lost")}
               for k, v in runs.items()}
        for kind in ("echosrv", "baseline"):
            m = med[kind]
            ratio = m["echoed_per_sec"] / med["baseline"]["echoed_per_sec"]
            gso = " gso %d" % cell[4] if len(cell) > 4 else ""
            print("| %d B x %d src%s | %s | %.0f | %.2f | %.0f | %d | %.2f |"
                  % (cell[0], cell[1], gso, kind, m["echoed_per_sec"], m["cpu_us_per_dgram"],
                     m["rtt_p99_us"], m["lost"], ratio))


if __name__ == "__main__":
    main()
