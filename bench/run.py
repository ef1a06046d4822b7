#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""bench/run.py - the standard benchmark matrix behind `make bench`.

Places the servers and the load (bench/placement.py: by default a network
namespace each, joined by a veth pair with each side's receive work steered
to its own CPU; or loopback), starts echosrv once per engine this build and
kernel accept, the plain epoll baseline and the peers a user would
otherwise run (bench/peers.py: socat, xinetd, ncat), all pinned to the
server CPU, and keeps all but the one under load stopped (SIGSTOP).  Then,
for every cell of the matrix (message size x connections x
messages in flight), it runs echosrv-bench pinned to the load CPU against
each server in turn; the order of the servers rotates from cell to cell and
round to round, so noise hits all alike.  A churn cell (new connections at a
fixed rate, each for a few messages) follows, and in a standard run the
echosrv engines and the baseline are measured once more on loopback over a
few cells, to show what the placement changes.  Then the UDP cells
(bench/udp.py): datagrams of 64, 1,472 and 65,000 bytes from 1 or 64
sources against the UDP baseline, echosrv per engine and socat, placed
like the TCP cells, in namespaces of their own.

Every figure beside msg/s is per echoed message: the machine's CPU time
(all CPUs, from /proc/stat, user + system + softirq), the server CPU's alone
(its softirq work included) and the server's process tree's (/proc).

Writes bench/results/<UTC time>/: results.json (every run, raw),
results.md (the tables) and plot.png/plot.svg (bench/plot.py, matplotlib).
A standard run (no engine, server-argument, peer or matrix override)
refreshes bench/latest.md, latest.png and latest.svg, which the README shows.

Settings come from the environment so that `make bench` can pass them:
  BENCH_QUICK=1         short matrix (under 5 minutes)
  BENCH_PLACEMENT=netns netns (default) or loopback
  BENCH_ENGINES=a,b     engines to measure (default: every one that works)
  BENCH_PEERS=socat,xinetd,ncat  peers to measure ("none": none)
  BENCH_SERVER_ARGS=... extra echosrv arguments, e.g. --busy-poll
  BENCH_REPEAT=N        rounds per cell and server; the median is reported
  BENCH_GIVE_UP=S       echosrv-bench --give-up: a stall is this long (quick 1, full 2);
                        in the UDP cells, a datagram not back in it is lost
  BENCH_COMPARE=0       skip the loopback comparison of a netns run
  BENCH_PARTS=tcp,udp   what to run (default both): udp alone is the UDP cells
  BENCH_DURATION=S, BENCH_WARMUP=S, BENCH_SIZES=1,128, BENCH_CONNS=1,50,
  BENCH_PIPELINES=1,16  override the matrix
  BENCH_SERVER_CPU=0, BENCH_CLIENT_CPU=1

Exit status: 0 when every run of echosrv and the baseline passed its
integrity check, 1 otherwise (a peer's failures are shown, not fatal), 2
when a BENCH_* setting is not usable (said before anything starts) or a
netns run lacks root.
"""
import argparse
import datetime
import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys

sys.dont_write_bytecode = True      # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers            # noqa: E402
import placement        # noqa: E402
import report           # noqa: E402
import udp              # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ENGINES = ["epoll", "io_uring", "sockmap"]

FULL = dict(sizes=[1, 128, 1024, 16384, 65536], conns=[1, 50, 500, 5000],
            pipelines=[1, 16], duration=3.0, warmup=0.5, churn_rate=2000, give_up=2.0)
QUICK = dict(sizes=[1, 1024, 65536], conns=[1, 50, 500], pipelines=[1, 16],
             duration=0.5, warmup=0.2, churn_rate=1000, give_up=1.0)
CHURN = dict(size=128, slots=200, lifetime=10)     # the churn cell
COMPARE_SIZE = 1024                                 # the placement comparison's


class BadSetting(Exception):
    pass


def env_num(name, default, conv, lo, hi):
    """An environment setting as a number in [lo, hi]; BadSetting names it."""
    v = os.environ.get(name)
    if v is None or v == "":
        return default
    try:
        x = conv(v)
    except ValueError:
        raise BadSetting("%s: '%s' is not a number" % (name, v))
    if not lo <= x <= hi:           # also refuses nan
        raise BadSetting("%s: %s is out of range [%g, %g]" % (name, v, lo, hi))
    return x


def env_list(name, default, lo, hi):
    v = os.environ.get(name)
    if not v:
        return default
    out = []
    for x in v.split(","):
        if not x.strip().isdigit():
            raise BadSetting("%s: '%s' is not a comma list of whole numbers" % (name, v))
        if not lo <= int(x) <= hi:
            raise BadSetting("%s: %s is out of range [%d, %d]" % (name, x, lo, hi))
        out.append(int(x))
    if len(set(out)) != len(out):
        raise BadSetting("%s: '%s' names a value twice" % (name, v))
    return out


def env_names(name, default, allowed):
    """A comma list of names out of allowed, each once; unset or empty is
    the default, as for every BENCH_* setting.  A name twice would start a
    server twice under one name, and the table would mix their rounds."""
    v = os.environ.get(name)
    if not v:
        return list(default)
    out = v.split(",")
    for x in out:
        if x not in allowed:
            raise BadSetting("%s: '%s' is not one of %s" % (name, x, ",".join(allowed)))
    if len(set(out)) != len(out):
        raise BadSetting("%s: '%s' names a value twice" % (name, v))
    return out


def settings():
    """The run's settings, from the environment; BadSetting when one is not
    usable, before anything is started (echosrv-bench's own limits)."""
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    m = dict(QUICK if quick else FULL)
    m["quick"] = quick
    ncpu = os.cpu_count() or 1
    m["sizes"] = env_list("BENCH_SIZES", m["sizes"], 1, 1 << 30)
    m["conns"] = env_list("BENCH_CONNS", m["conns"], 1, 100000)
    m["pipelines"] = env_list("BENCH_PIPELINES", m["pipelines"], 1, 4096)
    m["duration"] = env_num("BENCH_DURATION", m["duration"], float, 0.001, 86400)
    m["warmup"] = env_num("BENCH_WARMUP", m["warmup"], float, 0, 86400)
    m["give_up"] = env_num("BENCH_GIVE_UP", m["give_up"], float, 0.001, 3600)
    m["repeat"] = env_num("BENCH_REPEAT", 1, int, 1, 1000)
    m["engines"] = env_names("BENCH_ENGINES", [], ENGINES)
    m["peers"] = [x for x in env_names("BENCH_PEERS", peers.PEERS, peers.PEERS + ["none"])
                  if x != "none"]
    m["placement"] = os.environ.get("BENCH_PLACEMENT", "netns")
    if m["placement"] not in ("netns", "loopback"):
        raise BadSetting("BENCH_PLACEMENT: '%s' is neither netns nor loopback"
                         % m["placement"])
    try:
        m["server_args"] = shlex.split(os.environ.get("BENCH_SERVER_ARGS", ""))
    except ValueError as e:
        raise BadSetting("BENCH_SERVER_ARGS: %s" % e)
    m["server_cpu"] = env_num("BENCH_SERVER_CPU", 0, int, 0, ncpu - 1)
    m["client_cpu"] = env_num("BENCH_CLIENT_CPU", 1 if ncpu > 1 else 0, int, 0, ncpu - 1)
    m["parts"] = env_names("BENCH_PARTS", ["tcp", "udp"], ["tcp", "udp"])
    # The UDP cells have durations of their own unless these are given.
    m["override_duration"] = m["duration"] if os.environ.get("BENCH_DURATION") else None
    m["override_warmup"] = m["warmup"] if os.environ.get("BENCH_WARMUP") else None
    m["override_give_up"] = m["give_up"] if os.environ.get("BENCH_GIVE_UP") else None
    m["compare"] = ("tcp" in m["parts"] and m["placement"] == "netns"
                    and os.environ.get("BENCH_COMPARE", "1") not in ("", "0"))
    m["standard"] = not m["engines"] and not m["server_args"] and not any(
        os.environ.get(k) for k in ("BENCH_SIZES", "BENCH_CONNS", "BENCH_PIPELINES",
                                    "BENCH_DURATION", "BENCH_WARMUP", "BENCH_PEERS",
                                    "BENCH_PLACEMENT", "BENCH_PARTS"))
    return m


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


def failure(rc, result, err):
    """Why a run failed, in a few words for the table; None if it passed."""
    early = report.not_run(rc, result, err)
    if early:
        return early
    kinds = result.get("error_kinds", {})
    why = []
    if result.get("mismatches") or kinds.get("extra"):
        why.append("corrupted bytes")
    if kinds.get("missing"):
        why.append("stall (echoes never came back)")
    if kinds.get("early_close"):
        why.append("closed early")
    if kinds.get("reset"):
        why.append("reset")
    if kinds.get("io"):
        why.append("socket errors")
    churn = result.get("churn")
    # Every echo owed came back, but none within the measured time: the
    # connection stood still (a TCP retransmit timeout, on a loaded
    # machine) and its 0 msg/s is not a rate to compare.
    if result.get("messages") == 0 and not churn and not why:
        why.append("stall (nothing echoed in the measured time)")
    if churn and churn.get("failed"):
        why.append("%d connects failed" % churn["failed"])
    if rc != 0 and not why:
        why.append("exit status %d" % rc)
    return ", ".join(why) or None


def run_one(build, place, srv, m, cell, extra=()):
    size, conns, pipe = cell
    cmd = place.client_prefix() + [
        os.path.join(build, "echosrv-bench"), "-a", srv.addr, "-c", str(conns),
        "-s", str(size), "-p", str(pipe), "-d", str(m["duration"]), "-w", str(m["warmup"]),
        "--give-up", str(m["give_up"]), "--server-pid", str(srv.pid),
        "--placement", place.name, "--json"] + list(extra)
    if m["pinned"]:
        cmd += ["--cpu", str(m["server_cpu"])]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True,
                           preexec_fn=peers.pin(m["client_cpu"] if m["pinned"] else None),
                           timeout=m["duration"] + m["warmup"] + 60)
        rc, out, err = r.returncode, r.stdout, r.stderr
    except subprocess.TimeoutExpired:
        rc, out, err = -1, "", "echosrv-bench timed out"
    try:
        result = json.loads(out) if out.strip() else None
    except ValueError:
        result = None
    return {"server": srv.name, "kind": srv.kind, "placement": place.name, "size": size,
            "connections": conns, "pipeline": pipe, "rc": rc, "result": result,
            "failure": failure(rc, result, err), "stderr": err[-2000:],
            "command": " ".join(shlex.quote(c) for c in cmd)}


def skipped(srv, place, cell, why):
    return {"server": srv.name, "kind": srv.kind, "placement": place.name,
            "size": cell[0], "connections": cell[1], "pipeline": cell[2],
            "rc": None, "result": None, "failure": None, "skipped": why}


def rounds(build, place, servers, m, cells, runs, label, extra=()):
    """Every cell against every server, m["repeat"] rounds, order rotating."""
    for i, cell in enumerate(cells):
        for rep in range(m["repeat"]):
            k = (i + rep) % len(servers)
            for srv in servers[k:] + servers[:k]:
                why = srv.fits(cell[1])
                if why:
                    run = skipped(srv, place, cell, why)
                else:
                    for other in servers:
                        other.pause(other is not srv)
                    run = run_one(build, place, srv, m, cell, extra)
                    srv.settle()
                run.update(repeat=rep, part=label)
                runs.append(run)
                print(report.progress(run), flush=True)


def measure(build, m, mode, outdir, runs, parts):
    """One placement: start it and its servers, run the parts, take it all down."""
    cpu = (m["server_cpu"], m["client_cpu"]) if m["pinned"] else (None, None)
    place = placement.make(mode, *cpu)
    servers = []
    try:
        sub = os.path.join(outdir, mode)
        os.makedirs(sub, exist_ok=True)
        peers.start_all(build, m["engines"], m["server_args"], place, sub,
                        cpu[0], peers=parts.get("peers", []), out=servers,
                        left=parts["left"])
        print("bench: %s: %s" % (mode, ", ".join(s.name for s in servers)), flush=True)
        for label, cells, extra in parts["runs"]:
            rounds(build, place, servers, m, cells, runs, label, extra)
        return place.describe()
    finally:
        for s in servers:
            s.stop()
        place.close()


def meta_of(m, started, argv_env):
    return {"started": started.strftime("%Y-%m-%d %H:%M"), "machine": report.machine(ROOT),
            "settings": m, "command": ((argv_env + " ") if argv_env else "") + "make bench"}


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def on_signal(signum, frame):
    # The first one interrupts; later ones would cut the cleanup in the
    # finally: blocks short and leave namespaces and servers behind, and
    # the cleanup is bounded (peers.Server.stop, placement._run).
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt("signal %d" % signum)


def main():
    ap = argparse.ArgumentParser(description="echosrv benchmark matrix")
    ap.add_argument("--build", default="build", help="where the binaries are")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    a = ap.parse_args()
    build = os.path.join(ROOT, a.build) if not os.path.isabs(a.build) else a.build
    try:
        m = settings()
    except BadSetting as e:
        print("bench: %s" % e, file=sys.stderr)
        return 2
    m["engines"] = engines_available(build, m["engines"])
    m["pinned"] = (os.cpu_count() or 1) >= 2
    m["churn"] = dict(CHURN)
    if m["placement"] == "netns" and os.geteuid() != 0:
        print("bench: netns placement needs root; BENCH_PLACEMENT=loopback runs without",
              file=sys.stderr)
        return 2
    # 5000 connections need 5000 descriptors in the servers as well.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for sig in STOP_SIGNALS:
        signal.signal(sig, on_signal)       # cleanup runs in the finally: blocks

    started = datetime.datetime.now(datetime.timezone.utc)
    outdir = os.path.join(a.out, started.strftime("%Y%m%dT%H%M%SZ"))
    os.makedirs(outdir, exist_ok=True)
    env = " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in sorted(os.environ.items())
                   if k.startswith("BENCH_"))
    meta = meta_of(m, started, env)
    cells = [(s, c, p) for s in m["sizes"] for c in m["conns"] for p in m["pipelines"]]
    churn_cell = (CHURN["size"], CHURN["slots"], 1)
    churn_args = ["--connect-rate", str(m["churn_rate"]), "--lifetime", str(CHURN["lifetime"])]
    csize = COMPARE_SIZE if COMPARE_SIZE in m["sizes"] else m["sizes"][len(m["sizes"]) // 2]
    compare = [c for c in cells if c[0] == csize and c[1] <= 500] if m["compare"] else []
    runs, where, left = [], {}, []
    print("bench: %s, %s placement%s; results in %s" % (
        " + ".join(p for p, on in (("%d cells + churn" % len(cells), "tcp" in m["parts"]),
                                   ("%d UDP cells" % len(udp.CELLS), "udp" in m["parts"]))
                   if on), m["placement"], " (+ loopback comparison)" if compare else "",
        os.path.relpath(outdir, ROOT)), flush=True)
    interrupted = False
    try:
        if "tcp" in m["parts"]:
            where[m["placement"]] = measure(build, m, m["placement"], outdir, runs, {
                "peers": m["peers"], "left": left,
                "runs": [("matrix", cells, ()), ("churn", [churn_cell], churn_args)]})
        if "udp" in m["parts"]:
            where[m["placement"]], meta["udp"] = udp.measure(
                build, m, m["placement"], outdir, runs, left, placement)
        if compare:
            where["loopback"] = measure(build, m, "loopback", outdir, runs, {
                "left": left, "runs": [("compare", compare, ())]})
    except KeyboardInterrupt:
        interrupted = True
        print("bench: interrupted; writing what was measured", file=sys.stderr)
    meta["placements"] = where
    meta["left_out"] = left
    meta["finished"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump({"meta": meta, "runs": runs}, f, indent=1)
    have_plot = report.plot_all(outdir, runs, meta)
    md = report.markdown(meta, runs, "plot.png")
    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write(md)
    print()
    print(md)
    if m["standard"] and not interrupted:
        with open(os.path.join(HERE, "latest.md"), "w") as f:
            f.write(report.markdown(meta, runs, "latest.png"))
        if have_plot:
            for ext in ("png", "svg"):
                shutil.copyfile(os.path.join(outdir, "plot." + ext),
                                os.path.join(HERE, "latest." + ext))
    ours = [r for r in runs if r["kind"] != "peer" and r.get("failure")]
    print("bench: %d runs, %d of echosrv or the baseline failed, %d of peers; %s" % (
        len(runs), len(ours), len([r for r in runs if r["kind"] == "peer" and r.get("failure")]),
        os.path.relpath(outdir, ROOT)))
    return 1 if ours or not runs or interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
