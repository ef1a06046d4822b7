#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""What the PROXY protocol costs echosrv, per engine, alone and behind haproxy.

For each engine one echosrv serves a plain listener and a proxy listener.
Two ways in, each measured plain, with a v1 header and with a v2 header:

- direct: echosrv-bench connects to echosrv itself and, for v1 and v2,
  sends the header a balancer would (--proxy): this is echosrv's own cost,
  with nothing else on the way;
- haproxy: one haproxy with three frontends, `plain` (no header, to the
  plain listener), `v1` (send-proxy) and `v2` (send-proxy-v2), both to the
  proxy listener: what a user behind a balancer sees, haproxy's own work
  included.

Each way is measured with
- connection churn: echosrv-bench --connect-rate far above what the machine
  can open, 16 slots, one 64-byte echo per connection, from eight source
  addresses: connections per second, and echosrv's CPU per connection (its
  process, all threads);
- 1 KiB round-trip latency: echosrv-bench -c 1 -s 1k, p50 and p99.

Rounds alternate the six cells so that the machine's noise falls on all
alike; the table shows the medians over the rounds and the ratio to plain.

    bench/proxy.py [--engines epoll,io_uring,sockmap] [--rounds 3] [--secs 3]
"""
import argparse
import json
import os
import signal
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

MODES = ("plain", "v1", "v2")


def bench(port, secs, args, proxy=None):
    cmd = [str(BUILD / "echosrv-bench"), "-a", "127.0.0.1:%d" % port, "-d", str(secs),
           "-w", "0.5", "--json"] + args
    if proxy:
        cmd += ["--proxy", proxy]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 60)
    try:
        j = json.loads(r.stdout)
    except ValueError:
        j = None
    # Not an assert: python3 -O would measure a failing server as a fast one.
    if r.returncode != 0 or not j or j["errors"] or j["mismatches"]:
        raise Failed("%s: exit status %d: %s" % (" ".join(cmd), r.returncode,
                                                 (r.stderr.strip() or r.stdout)[-500:]))
    return j


# Churn leaves its closed connections in TIME_WAIT for a minute, and a
# source port is not reused for a second: on one source address the
# connect()s of a later cell would search a crowded port range and be
# slower for it than an earlier cell's.  Eight addresses give each cell room.
SOURCES = ",".join("127.0.0.%d" % i for i in range(2, 10))


def churn(port, secs, pid, proxy):
    j = bench(port, secs, ["-s", "64", "-c", "16", "--connect-rate", "1000000",
                           "--bind", SOURCES, "--server-pid", str(pid)], proxy)
    c = j["churn"]
    if c["failed"]:                 # no_slot is the bench's own limit, not a failure
        raise Failed("churn to port %d: %d connects failed" % (port, c["failed"]))
    return c["connections_per_second"], j.get("server_cpu_us_per_message")


def latency(port, secs, proxy):
    j = bench(port, secs, ["-s", "1k", "-c", "1"], proxy)
    return j["latency_us"]["p50"], j["latency_us"]["p99"]


def start_echosrv(engine, tmp):
    port_file = tmp / "ports"
    srv = subprocess.Popen([str(BUILD / "echosrv"), "--engine", engine, "--listen", "127.0.0.1:0",
                            "--proxy-listen", "127.0.0.1:0", "--proxy-from", "127.0.0.0/8",
                            "--port-file", str(port_file)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(1000):
        if port_file.exists() and len(port_file.read_text().split()) == 2:
            plain, proxy = [int(a.rsplit(":", 1)[1]) for a in port_file.read_text().split()]
            return srv, plain, proxy
        if srv.poll() is not None:
            break
        time.sleep(0.01)
    stop(srv)
    raise Failed("echosrv --engine %s did not start (exit status %s)" % (engine, srv.returncode))


def stop(srv):
    if srv.poll() is None:
        srv.terminate()
        try:
            srv.wait(timeout=30)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()


def one_engine(engine, rounds, secs):
    tmp = Path(tempfile.mkdtemp(prefix="echosrv-proxy-bench."))
    srv, plain, proxy = start_echosrv(engine, tmp)
    h = None
    try:
        # Inside the try: an haproxy that does not come up (or a signal
        # meanwhile) must not leave echosrv running.
        h = Haproxy(tmp, {"plain": ("", [("127.0.0.1", plain)]),
                          "v1": ("send-proxy", [("127.0.0.1", proxy)]),
                          "v2": ("send-proxy-v2", [("127.0.0.1", proxy)])})
        # (way, mode) -> (port, header the bench sends itself)
        cells = {("direct", "plain"): (plain, None), ("direct", "v1"): (proxy, "v1"),
                 ("direct", "v2"): (proxy, "v2")}
        for m in MODES:
            cells[("haproxy", m)] = (h.ports[m], None)
        res = {k: {"cps": [], "cpu": [], "p50": [], "p99": []} for k in cells}
        h.wait_all_up()
        for _ in range(rounds):
            for k, (port, hdr) in cells.items():
                cps, cpu = churn(port, secs, srv.pid, hdr)
                p50, p99 = latency(port, secs, hdr)
                for name, v in (("cps", cps), ("cpu", cpu), ("p50", p50), ("p99", p99)):
                    res[k][name].append(v)
    finally:
        if h:
            h.stop()
        stop(srv)
    return {k: {m: statistics.median(v) if None not in v else None for m, v in r.items()}
            for k, r in res.items()}


def ratio(v, base):
    """v / base, or "-" where there is no base (0 or unknown: no server CPU)."""
    return "%.3f" % (v / base) if v is not None and base else "-"


def num(fmt, v):
    return "-" if v is None else fmt % v


class Failed(Exception):
    pass


def on_signal(signum, frame):
    # SIGTERM's default would end the process at once, the finally: blocks
    # unrun, and leave echosrv and haproxy behind; later signals would cut
    # the (bounded) cleanup short.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt("signal %d" % signum)


def main():
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        return run()
    except KeyboardInterrupt:
        print("bench/proxy.py: interrupted; servers stopped", file=sys.stderr)
    except Failed as e:
        print("bench/proxy.py: failed: %s" % e, file=sys.stderr)
    return 1


def run():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", default="epoll,io_uring,sockmap")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--secs", type=float, default=3)
    a = ap.parse_args()
    print("| engine | way | header | connections/s | vs plain | echosrv CPU µs/conn "
          "| vs plain | 1 KiB RTT p50 µs | p99 µs | p50 vs plain |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for e in a.engines.split(","):
        r = one_engine(e, a.rounds, a.secs)
        for way in ("direct", "haproxy"):
            base = r[(way, "plain")]
            for m in MODES:
                x = r[(way, m)]
                print("| %s | %s | %s | %.0f | %s | %s | %s | %.1f | %.1f | %s |" % (
                    e, way, m, x["cps"], ratio(x["cps"], base["cps"]), num("%.1f", x["cpu"]),
                    ratio(x["cpu"], base["cpu"]), x["p50"], x["p99"],
                    ratio(x["p50"], base["p50"])))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
