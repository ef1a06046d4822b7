#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""What the PROXY protocol costs behind a real haproxy, per engine.

For each engine one echosrv serves a plain listener and a proxy listener;
one haproxy has three frontends in front of it: `plain` (no header, to the
plain listener), `v1` (send-proxy) and `v2` (send-proxy-v2), both to the
proxy listener.  Through each frontend, in rounds that alternate the three
so that the machine's noise falls on all alike:

- connections per second: a Python loop in PROCS processes that connects,
  sends 16 bytes, reads them back and closes, for SECS seconds
  (echosrv-bench has no connection-churn mode);
- 1 KiB round-trip latency: echosrv-bench -c 1 -s 1k, p50 and p99.

Prints one table with the medians over the rounds and the ratio to plain.

    bench/proxy.py [--engines epoll,io_uring,sockmap] [--rounds 3] [--secs 3]
"""
import argparse
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / os.environ.get("ECHOSRV_BUILD", "build")
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from haproxy import Haproxy  # noqa: E402


def churn(port, secs, out):
    n, end = 0, time.monotonic() + secs
    while time.monotonic() < end:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"0123456789abcdef")
        got = b""
        while len(got) < 16:
            part = s.recv(16)
            if not part:
                raise SystemExit("closed early")
            got += part
        assert got == b"0123456789abcdef"
        s.close()
        n += 1
    out.put(n)


def conns_per_s(port, secs, procs):
    q = multiprocessing.Queue()
    ps = [multiprocessing.Process(target=churn, args=(port, secs, q)) for _ in range(procs)]
    for p in ps:
        p.start()
    total = sum(q.get(timeout=secs + 30) for _ in ps)
    for p in ps:
        p.join()
    return total / secs


def latency(port, secs):
    r = subprocess.run([str(BUILD / "echosrv-bench"), "-a", "127.0.0.1:%d" % port, "-s", "1k",
                        "-c", "1", "-d", str(secs), "-w", "0.5", "--json"],
                       capture_output=True, text=True, timeout=secs + 60)
    j = json.loads(r.stdout)
    assert j["errors"] == 0 and j["mismatches"] == 0, r.stdout
    return j["latency_us"]["p50"], j["latency_us"]["p99"]


def one_engine(engine, rounds, secs, procs):
    tmp = Path(tempfile.mkdtemp(prefix="echosrv-proxy-bench."))
    port_file = tmp / "ports"
    srv = subprocess.Popen([str(BUILD / "echosrv"), "--engine", engine, "--listen", "127.0.0.1:0",
                            "--proxy-listen", "127.0.0.1:0", "--proxy-from", "127.0.0.1/32",
                            "--port-file", str(port_file)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(500):
        if port_file.exists() and len(port_file.read_text().split()) == 2:
            break
        time.sleep(0.01)
    plain, proxy = [("127.0.0.1", int(a.rsplit(":", 1)[1])) for a in port_file.read_text().split()]
    h = Haproxy(tmp, {"plain": ("", [plain]), "v1": ("send-proxy", [proxy]),
                      "v2": ("send-proxy-v2", [proxy])})
    res = {k: {"cps": [], "p50": [], "p99": []} for k in ("plain", "v1", "v2")}
    try:
        h.wait_all_up()
        for _ in range(rounds):
            for k in res:
                res[k]["cps"].append(conns_per_s(h.ports[k], secs, procs))
                p50, p99 = latency(h.ports[k], secs)
                res[k]["p50"].append(p50)
                res[k]["p99"].append(p99)
    finally:
        h.stop()
        srv.terminate()
        srv.wait(timeout=30)
    return {k: {m: statistics.median(v) for m, v in r.items()} for k, r in res.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", default="epoll,io_uring,sockmap")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--secs", type=float, default=3)
    ap.add_argument("--procs", type=int, default=2)
    a = ap.parse_args()
    print("| engine | frontend | connections/s | vs plain | 1 KiB RTT p50 µs | p99 µs | p50 vs plain |")
    print("|---|---|---|---|---|---|---|")
    for e in a.engines.split(","):
        r = one_engine(e, a.rounds, a.secs, a.procs)
        base = r["plain"]
        for k in ("plain", "v1", "v2"):
            x = r[k]
            print("| %s | %s | %.0f | %.3f | %.1f | %.1f | %.3f |" % (
                e, k, x["cps"], x["cps"] / base["cps"], x["p50"], x["p99"],
                x["p50"] / base["p50"]))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
