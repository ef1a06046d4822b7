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

With --rate N the churn opens N connections a second instead of as many
as it can: every cell then does the same work, and CPU per connection
compares like with like (a saturated run's rate, and with it how much
each wake-up batches, varies with the machine's noise).  Behind haproxy
the table also gives haproxy's own CPU per connection (its process over
the whole run, warm-up included), so what the header costs the balancer
is told apart from what it costs echosrv.

Rounds rotate the cells' order so that the machine's noise falls on all
alike.  The table shows each figure's median over the rounds and, against
plain, the median of the rounds' own ratios with their lowest and highest:
a cell is compared with the plain cell of its own round, seconds apart, so
the machine's slower drifts cancel, and the range shows what noise is left.
--ways haproxy measures only the balancer's path (half the time a round).

--idle-poll keeps the CPUs out of their idle states while it runs, by
holding /dev/cpu_dma_latency at 0 (root only; the kernel lets go when the
process ends, however it ends).  In a virtual machine a CPU that halts
when idle takes tens of microseconds to wake, and a round trip through
haproxy wakes four processes: on a 2-CPU guest that put the 1 KiB p50
anywhere from 20 to 250 µs, run to run, which hides any few-percent
difference.  Polling idle CPUs costs power, not the figures' meaning.

    bench/proxy.py [--engines epoll,io_uring,sockmap] [--ways direct,haproxy]
                   [--rounds 3] [--secs 3] [--rate N] [--idle-poll]
"""
import argparse
import json
import os
import signal
import statistics
import struct
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


def cpu_seconds(pid):
    """A process's user + system CPU so far (all its threads), from /proc."""
    if not pid:
        return 0.0
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def churn(port, secs, pid, proxy, rate, hapid):
    """Connections per second, echosrv's CPU per connection (its own
    measurement window) and haproxy's (over the whole run, warm-up too)."""
    before, t0 = cpu_seconds(hapid), time.monotonic()
    j = bench(port, secs, ["-s", "64", "-c", "16", "--connect-rate", str(rate or 1000000),
                           "--bind", SOURCES, "--server-pid", str(pid)], proxy)
    spent, took = cpu_seconds(hapid) - before, time.monotonic() - t0
    c = j["churn"]
    if c["failed"]:                 # no_slot is the bench's own limit, not a failure
        raise Failed("churn to port %d: %d connects failed" % (port, c["failed"]))
    cps = c["connections_per_second"]
    ha = spent / (cps * took) * 1e6 if hapid and cps else None
    return cps, j.get("server_cpu_us_per_message"), ha


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


def one_engine(engine, ways, rounds, secs, rate):
    tmp = Path(tempfile.mkdtemp(prefix="echosrv-proxy-bench."))
    srv, plain, proxy = start_echosrv(engine, tmp)
    h = None
    try:
        # Inside the try: an haproxy that does not come up (or a signal
        # meanwhile) must not leave echosrv running.
        # (way, mode) -> (port, header the bench sends itself)
        cells = {}
        if "direct" in ways:
            cells = {("direct", "plain"): (plain, None), ("direct", "v1"): (proxy, "v1"),
                     ("direct", "v2"): (proxy, "v2")}
        if "haproxy" in ways:
            h = Haproxy(tmp, {"plain": ("", [("127.0.0.1", plain)]),
                              "v1": ("send-proxy", [("127.0.0.1", proxy)]),
                              "v2": ("send-proxy-v2", [("127.0.0.1", proxy)])})
            for m in MODES:
                cells[("haproxy", m)] = (h.ports[m], None)
            h.wait_all_up()
        res = {k: {"cps": [], "cpu": [], "ha": [], "p50": [], "p99": []} for k in cells}
        order = list(cells)
        for r in range(rounds):
            # Each round starts one cell later, so no cell always runs
            # first (after the machine idled) or right after another.
            for k in order[r % len(order):] + order[:r % len(order)]:
                port, hdr = cells[k]
                hapid = h.proc.pid if k[0] == "haproxy" else None
                cps, cpu, ha = churn(port, secs, srv.pid, hdr, rate, hapid)
                p50, p99 = latency(port, secs, hdr)
                for name, v in (("cps", cps), ("cpu", cpu), ("ha", ha), ("p50", p50),
                                ("p99", p99)):
                    res[k][name].append(v)
    finally:
        if h:
            h.stop()
        stop(srv)
    return res


def median(v):
    return statistics.median(v) if None not in v else None


def ratio(vs, bases):
    """The median of the rounds' ratios vs / bases, with the lowest and the
    highest, or "-" where a round has no base (0 or unknown: no server CPU)."""
    if None in vs or not all(bases):
        return "-"
    q = [v / b for v, b in zip(vs, bases)]
    if len(q) == 1:
        return "%.3f" % q[0]
    return "%.3f (%.2f-%.2f)" % (statistics.median(q), min(q), max(q))


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


# echosrv-bench's --connect-rate takes at most this; a rate it refuses
# would fail only after echosrv and haproxy had started.
MAX_RATE = 10000000


def whole_number(lo, hi):
    """An argparse type: a whole number in [lo, hi], else a usage error."""
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError("'%s' is not a whole number" % text) from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError("%d is not in [%d, %d]" % (v, lo, hi))
        return v
    return parse


def secs_arg(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("'%s' is not a number" % text) from None
    if not 0 < v <= 3600:
        raise argparse.ArgumentTypeError("%s is not in (0, 3600]" % text)
    return v


WAYS = ("direct", "haproxy")


def hold_cpus_awake():
    """Ask for zero wake-up latency until this process ends: the descriptor
    is left open on purpose, and closing it (at exit) withdraws the ask."""
    try:
        fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY | os.O_CLOEXEC)
        os.write(fd, struct.pack("i", 0))
    except OSError as e:
        raise Failed("--idle-poll: /dev/cpu_dma_latency: %s" % e.strerror) from None


def ways_arg(text):
    ways = text.split(",")
    bad = [w for w in ways if w not in WAYS]
    if bad or not ways or len(set(ways)) != len(ways):
        raise argparse.ArgumentTypeError("'%s' is not a list of distinct ways from %s"
                                         % (text, ",".join(WAYS)))
    return [w for w in WAYS if w in ways]


def run():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", default="epoll,io_uring,sockmap")
    ap.add_argument("--rounds", type=whole_number(1, 1000000), default=3)
    ap.add_argument("--secs", type=secs_arg, default=3)
    ap.add_argument("--rate", type=whole_number(0, MAX_RATE), default=0,
                    help="open this many connections a second, at most %d "
                         "(0: as many as the machine can)" % MAX_RATE)
    ap.add_argument("--ways", type=ways_arg, default=WAYS,
                    help="which ways in to measure, of %s" % ",".join(WAYS))
    ap.add_argument("--idle-poll", action="store_true",
                    help="hold /dev/cpu_dma_latency at 0 while measuring (root)")
    a = ap.parse_args()
    if a.idle_poll:
        hold_cpus_awake()
    print("| engine | way | header | connections/s | vs plain | echosrv CPU µs/conn "
          "| vs plain | haproxy CPU µs/conn | vs plain | 1 KiB RTT p50 µs | p99 µs "
          "| p50 vs plain |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for e in a.engines.split(","):
        r = one_engine(e, a.ways, a.rounds, a.secs, a.rate)
        for way in a.ways:
            base = r[(way, "plain")]
            for m in MODES:
                x = r[(way, m)]
                print("| %s | %s | %s | %.0f | %s | %s | %s | %s | %s | %.1f | %.1f | %s |" % (
                    e, way, m, median(x["cps"]), ratio(x["cps"], base["cps"]),
                    num("%.1f", median(x["cpu"])), ratio(x["cpu"], base["cpu"]),
                    num("%.1f", median(x["ha"])), ratio(x["ha"], base["ha"]),
                    median(x["p50"]), median(x["p99"]), ratio(x["p50"], base["p50"])))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
