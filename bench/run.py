#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""bench/run.py - the standard benchmark matrix behind `make bench`.

Starts echosrv once per engine this build and kernel accept, and the plain
epoll baseline (bench/baseline_epoll.c), all pinned to one CPU, and keeps
all but the one under load stopped (SIGSTOP, so that a busy-polling server
cannot steal the CPU from the one being measured); then, for
every cell of the matrix (SPEC section 10: message size x connections x
messages in flight), runs echosrv-bench pinned to another CPU against each
server in turn, so every server sees the same machine at nearly the same
time.  The order of the servers rotates from cell to cell so that none is
always first.  Writes bench/results/<UTC time>/ with results.json (every
run, raw), results.md (one table, each figure with its ratio to the
baseline) and plot.png (gnuplot: throughput and p99 latency over the
matrix), and prints a line per run as it goes.

Settings come from the environment so that `make bench` can pass them:
  BENCH_QUICK=1         short matrix (about two minutes)
  BENCH_ENGINES=a,b     engines to measure (default: every one that works)
  BENCH_SERVER_ARGS=... extra echosrv arguments, e.g. --busy-poll
  BENCH_REPEAT=N        runs per cell and server; the median is reported
  BENCH_DURATION=S, BENCH_WARMUP=S, BENCH_SIZES=1,128, BENCH_CONNS=1,50,
  BENCH_PIPELINES=1,16  override the matrix
  BENCH_SERVER_CPU=0, BENCH_CLIENT_CPU=1
A standard run (no engine or server-argument override) also refreshes
bench/latest.md and bench/latest.png, which the README shows.

Exit status: 0 when every run passed its integrity check, 1 otherwise.
Standard library only.
"""
import argparse
import datetime
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ENGINES = ["epoll", "io_uring", "sockmap"]

FULL = dict(sizes=[1, 128, 1024, 16384, 65536], conns=[1, 50, 500, 5000],
            pipelines=[1, 16], duration=5.0, warmup=1.0)
QUICK = dict(sizes=[1, 1024, 65536], conns=[1, 50, 500], pipelines=[1, 16],
             duration=1.0, warmup=0.3)


def env_list(name, default):
    v = os.environ.get(name)
    return [int(x) for x in v.split(",")] if v else default


def settings():
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    m = dict(QUICK if quick else FULL)
    m["quick"] = quick
    m["sizes"] = env_list("BENCH_SIZES", m["sizes"])
    m["conns"] = env_list("BENCH_CONNS", m["conns"])
    m["pipelines"] = env_list("BENCH_PIPELINES", m["pipelines"])
    m["duration"] = float(os.environ.get("BENCH_DURATION", m["duration"]))
    m["warmup"] = float(os.environ.get("BENCH_WARMUP", m["warmup"]))
    m["repeat"] = int(os.environ.get("BENCH_REPEAT", "1"))
    m["engines"] = [e for e in os.environ.get("BENCH_ENGINES", "").split(",") if e]
    m["server_args"] = shlex.split(os.environ.get("BENCH_SERVER_ARGS", ""))
    m["server_cpu"] = int(os.environ.get("BENCH_SERVER_CPU", "0"))
    m["client_cpu"] = int(os.environ.get("BENCH_CLIENT_CPU", "1"))
    m["standard"] = not m["engines"] and not m["server_args"] and not any(
        os.environ.get(k) for k in ("BENCH_SIZES", "BENCH_CONNS", "BENCH_PIPELINES",
                                    "BENCH_DURATION", "BENCH_WARMUP"))
    return m


def pin(cpu):
    """preexec_fn: like `taskset -c CPU`, without needing taskset."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


class Server:
    """One echo server under test, pinned, listening on 127.0.0.1:<any>."""

    def __init__(self, name, cmd, port_file, cpu, log):
        self.name = name
        self.port_file = port_file
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log,
                                     preexec_fn=pin(cpu))
        self.addr = self._wait_addr()

    def _wait_addr(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %d" % (self.name, self.proc.returncode))
            try:
                with open(self.port_file) as f:
                    line = f.read().split()
                if line:
                    return line[0]
            except FileNotFoundError:
                pass
            time.sleep(0.02)
        raise RuntimeError("%s did not start listening" % self.name)

    def pause(self, paused):
        """Servers not under load are stopped (SIGSTOP), so that one that
        polls instead of sleeping (--busy-poll) cannot steal the CPU from
        the one being measured."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGSTOP if paused else signal.SIGCONT)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.send_signal(signal.SIGCONT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def engines_available(build, wanted):
    names = wanted or ENGINES
    ok = []
    for e in names:
        r = subprocess.run([os.path.join(build, "echosrv"), "--engine", e, "--check"],
                           capture_output=True, timeout=10)
        if r.returncode == 0:
            ok.append(e)
        elif wanted:
            print("bench: engine %s not available here, skipped: %s"
                  % (e, r.stderr.decode(errors="replace").strip()), file=sys.stderr)
    return ok


def start_servers(build, m, outdir, cpu):
    servers = []
    base = os.path.join(outdir, "baseline")
    servers.append(Server("baseline", [os.path.join(build, "bench-baseline"),
                                       "127.0.0.1:0", base + ".port"],
                          base + ".port", cpu, base + ".log"))
    for e in m["engines"]:
        stem = os.path.join(outdir, e)
        cmd = [os.path.join(build, "echosrv"), "--engine", e, "--listen",
               "127.0.0.1:0", "--port-file", stem + ".port"] + m["server_args"]
        try:
            servers.append(Server(e, cmd, stem + ".port", cpu, stem + ".log"))
        except RuntimeError as err:
            print("bench: %s: %s (see %s.log)" % (e, err, stem), file=sys.stderr)
    return servers


def kernel_drops():
    """(loopback backlog drops, TCP retransmitted segments), machine-wide.

    Loopback has no wire to lose packets on, but its per-CPU input queue
    (net.core.netdev_max_backlog) overflows when thousands of connections
    burst at once; the retransmission timeouts that follow, not the server,
    then set the figures.  echosrv-bench counts its own connections'
    retransmits (which mark the cells); these machine-wide counters, kept
    in results.json, also count everything else on the machine."""
    drops = retrans = 0
    try:
        with open("/proc/net/softnet_stat") as f:
            drops = sum(int(line.split()[1], 16) for line in f)
        with open("/proc/net/snmp") as f:
            rows = [line.split() for line in f if line.startswith("Tcp:")]
        retrans = int(rows[1][rows[0].index("RetransSegs")])
    except (OSError, ValueError, IndexError):
        pass
    return drops, retrans


def run_one(build, srv, cell, m, cpu):
    size, conns, pipe = cell
    cmd = [os.path.join(build, "echosrv-bench"), "-a", srv.addr, "-c", str(conns),
           "-s", str(size), "-p", str(pipe), "-d", str(m["duration"]),
           "-w", str(m["warmup"]), "--server-pid", str(srv.proc.pid), "--json"]
    before = kernel_drops()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=pin(cpu),
                           timeout=m["duration"] + m["warmup"] + 120)
        rc, out, err = r.returncode, r.stdout, r.stderr
    except subprocess.TimeoutExpired:
        rc, out, err = -1, "", "echosrv-bench timed out"
    after = kernel_drops()
    try:
        result = json.loads(out) if out.strip() else None
    except ValueError:
        result = None
    return {"server": srv.name, "size": size, "connections": conns, "pipeline": pipe,
            "rc": rc, "result": result, "stderr": err[-2000:],
            "backlog_drops": after[0] - before[0], "tcp_retransmits": after[1] - before[1],
            "command": " ".join(shlex.quote(c) for c in cmd)}


def fmt_count(v):
    if v is None:
        return "-"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            return "%.3g%s" % (v / div, suffix)
    return "%.3g" % v


def fmt_num(v):
    return "-" if v is None else ("%.3g" % v if v < 1000 else "%.0f" % v)


def progress(run):
    r = run["result"]
    head = "%6d B %5d conns %2d in flight  %-9s" % (
        run["size"], run["connections"], run["pipeline"], run["server"])
    if run["rc"] != 0 or not r:
        first = (run["stderr"].strip().splitlines() or ["?"])[0]
        return head + " FAILED (exit %d): %s" % (run["rc"], first)
    return head + " %8s msg/s %8.1f MB/s  server %6.3f us/msg  client %6.3f us/msg  p99 %8.1f us%s" % (
        fmt_count(r["messages_per_second"]), r["bytes_per_second"] / 1e6,
        r.get("server_cpu_us_per_message", float("nan")),
        r["client_cpu_us_per_message"], r["latency_us"]["p99"],
        "  (%d retransmits)" % r["retransmits"] if r.get("retransmits") else "")


def summarise(runs, cells, names):
    """(cell, server) -> the figures of the median run (by messages/s)."""
    table = {}
    for cell in cells:
        for name in names:
            rs = [r for r in runs if (r["size"], r["connections"], r["pipeline"]) == cell
                  and r["server"] == name]
            good = [r for r in rs if r["rc"] == 0 and r["result"]]
            if len(good) < len(rs) or not good:
                table[cell, name] = None
                continue
            good.sort(key=lambda x: x["result"]["messages_per_second"])
            run = good[(len(good) - 1) // 2]
            med = run["result"]
            table[cell, name] = {
                "msgs": med["messages_per_second"],
                "mbs": med["bytes_per_second"] / 1e6,
                "srv": med.get("server_cpu_us_per_message"),
                "cli": med["client_cpu_us_per_message"],
                "p99": med["latency_us"]["p99"],
                "all_msgs": [g["result"]["messages_per_second"] for g in good],
                "retrans": med.get("retransmits", 0),
            }
    return table


def client_cost(runs):
    """Median over the baseline's runs of the load generator's CPU per
    message (total, and user space only) over the baseline server's."""
    tot, user = [], []
    for r in runs:
        res = r["result"]
        if r["server"] != "baseline" or r["rc"] != 0 or not res:
            continue
        srv = res.get("server_cpu_us_per_message")
        if srv:
            tot.append(res["client_cpu_us_per_message"] / srv)
            user.append(res["client_user_cpu_us_per_message"] / srv)
    if not tot:
        return None
    return statistics.median(tot), statistics.median(user)


def ratio(v, base):
    if v is None or not base:
        return ""
    return " (%.2f)" % (v / base)


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    try:
        commit = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = "?"
    return {"cpu": cpu, "cpus": os.cpu_count(), "memory_gib": round(mem, 1),
            "kernel": platform.release(), "commit": commit or "?"}


def markdown(meta, table, cells, names, image, cost):
    m = meta["settings"]
    mach = meta["machine"]
    out = ["# echosrv benchmark (%s)" % ("quick" if m["quick"] else "full matrix"), ""]
    out.append("%s UTC, commit `%s`; %s, %d CPUs, %.0f GiB, Linux %s." % (
        meta["started"], mach["commit"], mach["cpu"], mach["cpus"],
        mach["memory_gib"], mach["kernel"]))
    pinning = ("servers pinned to CPU %d, load (echosrv-bench, 1 thread) to CPU %d"
               % (m["server_cpu"], m["client_cpu"]) if meta["pinned"]
               else "no pinning (fewer than 2 CPUs)")
    out.append("Each cell: %g s measured after %g s warm-up, %d run(s) per server "
               "(median by msg/s); %s; loopback, 127.0.0.1.%s" % (
                   m["duration"], m["warmup"], m["repeat"], pinning,
                   (" echosrv arguments: `%s`." % " ".join(m["server_args"]))
                   if m["server_args"] else ""))
    out.append("Made with `%s`." % meta["command"])
    out.append("")
    out.append("msg/s: echoed messages per second; CPU: the server's CPU time "
               "(user+system, from /proc) per echoed message, in us; p99: 99th "
               "percentile round-trip latency in us. (x.xx) is the ratio to the "
               "baseline (plain epoll echo loop): above 1 is better for msg/s, "
               "below 1 is better for CPU and p99. `-` is a failed run. † marks a "
               "run in which the load generator's connections had to retransmit "
               "(on loopback: the kernel's input queue, net.core.netdev_max_backlog, "
               "or TCP memory overflowed), so that retransmission timeouts, not "
               "the server, dominate its figures.")
    out.append("")
    head = ["size", "conns", "in flight"]
    for n in names:
        head += ["%s msg/s" % n, "%s CPU" % n, "%s p99" % n]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---:|" * len(head))
    for cell in cells:
        row = [str(cell[0]), str(cell[1]), str(cell[2])]
        base = table.get((cell, "baseline"))
        for n in names:
            t = table.get((cell, n))
            if not t:
                row += ["-", "-", "-"]
                continue
            b = base if n != "baseline" and base else {}
            row += [fmt_count(t["msgs"]) + ratio(t["msgs"], b.get("msgs"))
                    + (" †" if t["retrans"] else ""),
                    fmt_num(t["srv"]) + ratio(t["srv"], b.get("srv")),
                    fmt_num(t["p99"]) + ratio(t["p99"], b.get("p99"))]
        out.append("| " + " | ".join(row) + " |")
    if cost:
        out += ["", "The load generator's own CPU time per message, median over the "
                "cells, was %.2f times the baseline server's; its user-space part "
                "(the tool's own code, the rest is the kernel's TCP work, which "
                "mirrors the server's) %.3f times." % cost]
    out += ["", "![throughput and p99 latency across the matrix](%s)" % image, ""]
    return "\n".join(out)


def plot(outdir, table, cells, names, title):
    """plot.png: throughput and p99 over the matrix, one line per server."""
    gp = shutil.which("gnuplot")
    if not gp:
        print("bench: gnuplot not found, no plot (scripts/deps.sh --bench installs it)",
              file=sys.stderr)
        return False
    dat = os.path.join(outdir, "plot.dat")
    with open(dat, "w") as f:
        f.write("# index label " + " ".join("%s_msgs %s_p99" % (n, n) for n in names) + "\n")
        for i, cell in enumerate(cells):
            cols = []
            for n in names:
                t = table.get((cell, n))
                cols += ["%.1f %.1f" % (t["msgs"], t["p99"]) if t else "? ?"]
            f.write('%d "%dB/%dc/%dp" %s\n' % (i, cell[0], cell[1], cell[2], " ".join(cols)))

    def plots(offset):
        return ", ".join("'plot.dat' using 1:%d%s with linespoints lw 2 title '%s'" % (
            3 + 2 * k + offset, ":xtic(2)" if k == 0 else "", n) for k, n in enumerate(names))

    script = "\n".join([
        "set datafile missing '?'",
        "set output 'plot.png'",
        "set multiplot layout 2,1 title '%s'" % title.replace("'", ""),
        "set logscale y", "set grid", "set key outside right top",
        "set xtics rotate by 90 right font ',8'", "set bmargin 7",
        "set ylabel 'messages/s (higher is better)'",
        "plot " + plots(0),
        "set ylabel 'p99 latency, us (lower is better)'",
        "set xlabel 'message bytes / connections / messages in flight'",
        "plot " + plots(1),
        "unset multiplot", ""])
    width = max(1200, 40 * len(cells) + 300)
    for term in ("pngcairo size %d,900 font ',10' noenhanced" % width, "png size %d,900 noenhanced" % width):
        with open(os.path.join(outdir, "plot.gp"), "w") as f:
            f.write("set terminal %s\n" % term + script)
        r = subprocess.run([gp, "plot.gp"], cwd=outdir, capture_output=True, text=True)
        if r.returncode == 0:
            return True
    print("bench: gnuplot failed: %s" % r.stderr.strip(), file=sys.stderr)
    return False


def main():
    ap = argparse.ArgumentParser(description="echosrv benchmark matrix")
    ap.add_argument("--build", default="build", help="where the binaries are")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    a = ap.parse_args()
    build = os.path.join(ROOT, a.build) if not os.path.isabs(a.build) else a.build
    m = settings()
    m["engines"] = engines_available(build, m["engines"])

    # 5000 connections need 5000 descriptors in the servers as well.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    pinned = (os.cpu_count() or 1) >= 2
    scpu, ccpu = (m["server_cpu"], m["client_cpu"]) if pinned else (None, None)
    started = datetime.datetime.now(datetime.timezone.utc)
    outdir = os.path.join(a.out, started.strftime("%Y%m%dT%H%M%SZ"))
    os.makedirs(outdir, exist_ok=True)
    env = " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in sorted(os.environ.items())
                   if k.startswith("BENCH_"))
    meta = {"started": started.strftime("%Y-%m-%d %H:%M"), "machine": machine(),
            "settings": m, "pinned": pinned,
            "command": ((env + " ") if env else "") + "make bench"}

    cells = [(s, c, p) for s in m["sizes"] for c in m["conns"] for p in m["pipelines"]]
    servers = start_servers(build, m, outdir, scpu)
    names = [s.name for s in servers]
    print("bench: %d cells x %d servers (%s) x %d, %g+%g s each; results in %s"
          % (len(cells), len(servers), ", ".join(names), m["repeat"], m["warmup"],
             m["duration"], os.path.relpath(outdir, ROOT)), flush=True)
    runs = []
    try:
        for i, cell in enumerate(cells):
            for rep in range(m["repeat"]):
                k = (i + rep) % len(servers)
                for srv in servers[k:] + servers[:k]:
                    for other in servers:
                        other.pause(other is not srv)
                    run = run_one(build, srv, cell, m, ccpu)
                    run["repeat"] = rep
                    runs.append(run)
                    print(progress(run), flush=True)
    except KeyboardInterrupt:
        print("bench: interrupted; writing what was measured", file=sys.stderr)
    finally:
        for s in servers:
            s.stop()

    table = summarise(runs, cells, names)
    meta["finished"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump({"meta": meta, "runs": runs}, f, indent=1)
    cost = client_cost(runs)
    md = markdown(meta, table, cells, names, "plot.png", cost)
    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write(md)
    title = "echosrv vs. baseline, %s, %s" % (meta["started"], meta["machine"]["cpu"])
    have_plot = plot(outdir, table, cells, names, title)
    print()
    print(md)
    if m["standard"]:
        with open(os.path.join(HERE, "latest.md"), "w") as f:
            f.write(markdown(meta, table, cells, names, "latest.png", cost))
        if have_plot:
            shutil.copyfile(os.path.join(outdir, "plot.png"), os.path.join(HERE, "latest.png"))
    failed = [r for r in runs if r["rc"] != 0]
    print("bench: %d runs, %d failed; %s" % (len(runs), len(failed),
                                             os.path.relpath(outdir, ROOT)))
    return 1 if failed or not runs else 0


if __name__ == "__main__":
    sys.exit(main())
