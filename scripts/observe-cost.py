#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""What probes and scrapes cost the echo path (issue 12), measured, never
asserted.  For each engine, rounds of four 5-second runs of echosrv-bench
(1 connection, 64 B messages, closed loop) against one echosrv:
  quiet     nothing else
  probes    100 GET /readyz per second (a new connection each, as a
            Kubernetes probe or a load balancer makes them)
  quiet     again (the rounds interleave so drift hits both sides)
  scrapes   10 clients (from 127.0.0.1 to 127.0.0.10), 100 GET /metrics
            per second each: 1,000 a second
and prints the median p50 and p99 round-trip of each, with the probes and
scrapes actually answered per second.

usage: scripts/observe-cost.py [BUILD_DIR] [--rounds N] [--engines a,b]"""
import argparse
import collections
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def http_get(host, port, path, source):
    s = socket.create_connection((host, port), timeout=5, source_address=(source, 0))
    s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
    n = 0
    while True:
        part = s.recv(65536)
        if not part:
            break
        n += len(part)
    s.close()
    return n


def paced(host, port, path, rate, stop, counts, errors, source):
    """rate requests a second until stop is set (open loop: a slow answer
    does not lower the rate asked for, up to one second behind)."""
    step, nxt = 1.0 / rate, time.monotonic()
    while not stop.is_set():
        now = time.monotonic()
        if now < nxt:
            time.sleep(nxt - now)
            continue
        nxt = max(nxt + step, now - 1.0)
        try:
            http_get(host, port, path, source)
            counts.append(1)
        except OSError as e:
            errors.append(type(e).__name__)


def load(host, port, path, clients, rate_each):
    stop, counts, errors = threading.Event(), [], []
    # Each client from an address of its own, as ten Prometheus servers
    # would be: the endpoint admits at most 4 connections per address.
    ts = [threading.Thread(target=paced, args=(host, port, path, rate_each, stop, counts, errors,
                                               "127.0.0.%d" % (i + 1)),
                           daemon=True) for i in range(clients)]
    for t in ts:
        t.start()
    return stop, ts, counts, errors


def bench(build, port, seconds):
    r = subprocess.run([os.path.join(build, "echosrv-bench"), "-a", "127.0.0.1:%d" % port,
                        "-c", "1", "-s", "64", "-d", str(seconds), "-w", "1", "--json"],
                       capture_output=True, text=True, timeout=seconds + 60)
    j = json.loads(r.stdout)
    return j["latency_us"]["p50"], j["latency_us"]["p99"]


def run_engine(build, engine, rounds, seconds):
    d = tempfile.mkdtemp(prefix="observe-cost-")
    pf, logp = os.path.join(d, "port"), os.path.join(d, "log")
    log = open(logp, "w")
    srv = subprocess.Popen([os.path.join(build, "echosrv"), "--engine", engine, "--workers", "1",
                            "--listen", "127.0.0.1:0", "--port-file", pf,
                            "--metrics", "127.0.0.1:0"], stdout=log, stderr=log)
    try:
        for _ in range(200):
            if os.path.exists(pf) and open(pf).read().strip():
                break
            time.sleep(0.05)
        port = int(open(pf).read().split()[0].rsplit(":", 1)[1])
        m = re.search(r"metrics at http://([\d.]+):(\d+)", open(logp).read())
        mhost, mport = m.group(1), int(m.group(2))
        res = {"quiet": [], "probes": [], "scrapes": []}
        rates = {"probes": [], "scrapes": []}
        for _ in range(rounds):
            for phase in ("quiet", "probes", "quiet", "scrapes"):
                if phase == "quiet":
                    res[phase].append(bench(build, port, seconds))
                    continue
                path, clients, each = ((b"/readyz", 1, 100) if phase == "probes"
                                       else (b"/metrics", 10, 100))
                stop, ts, counts, errors = load(mhost, mport, path, clients, each)
                t0 = time.monotonic()
                res[phase].append(bench(build, port, seconds))
                stop.set()
                for t in ts:
                    t.join()
                rates[phase].append((len(counts) / (time.monotonic() - t0), errors))
        return res, rates
    finally:
        srv.terminate()
        srv.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--engines", default="epoll,io_uring,sockmap")
    a = ap.parse_args()
    print("engine   phase     p50_us  p99_us  (medians of %d runs)  answered/s" % a.rounds)
    for engine in a.engines.split(","):
        try:
            res, rates = run_engine(a.build, engine, a.rounds, a.seconds)
        except Exception as e:     # an engine this machine cannot run
            print("%-8s skipped: %s" % (engine, e))
            continue
        for phase in ("quiet", "probes", "scrapes"):
            p50 = statistics.median(r[0] for r in res[phase])
            p99 = statistics.median(r[1] for r in res[phase])
            extra = ""
            if phase in rates:
                errs = collections.Counter(e for r in rates[phase] for e in r[1])
                extra = "%.0f/s (refused or failed: %s)" % (
                    statistics.median(r[0] for r in rates[phase]),
                    ", ".join("%s %d" % kv for kv in errs.most_common()) or "none")
            print("%-8s %-8s %7.1f %7.1f  %s" % (engine, phase, p50, p99, extra))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
