# SPDX-License-Identifier: GPL-2.0-only
"""bench/udp.py - the UDP cells of `make bench` (bench/run.py).

The servers: the UDP baseline (bench/baseline_udp.c, a plain
recvmmsg/sendmmsg loop), echosrv once per engine (its UDP listener, with
--udp-rate 0: the rate guard is for the open Internet, not a load test),
and socat's UDP echo.  The load is `echosrv-bench --udp`, pinned and placed
as for the TCP cells (bench/placement.py): a cell is a datagram size, a
number of sources (sockets, each its own port) and the datagrams each keeps
in flight.

socat: `socat -b SIZE -T 0.5 UDP-LISTEN:PORT,fork,reuseaddr PIPE`, one per
datagram size.  UDP-LISTEN with fork gives each source a process of its
own (as its TCP echo gives each connection one), which echoes through a
pipe.  A pipe is a byte stream: with several datagrams in flight, socat
reads two of them from it at once and sends them back as one (the bench
sees corrupted datagrams), unless each read is exactly one datagram long,
which -b SIZE makes it.  `UDP-RECVFROM,fork EXEC:cat`, the form often
quoted, forks a process per datagram.  -T 0.5 ends a source's process after
half a second without datagrams, so a cell's processes are gone before the
next cell.

A run fails when a datagram came back corrupted or twice, nothing came
back, port unreachable came back (the server died mid-cell), or
echosrv-bench did not finish; lost datagrams are a figure in the
table (UDP allows loss: a full receive queue drops), not a failure.
"""
import json
import os
import shlex
import socket
import statistics
import subprocess

import peers
import report

# (size, sources, in flight per source)
CELLS = [(64, 1, 32), (64, 64, 4), (1472, 1, 32), (1472, 64, 4), (65000, 1, 8)]
FULL = dict(duration=2.0, warmup=0.5, give_up=0.5)
QUICK = dict(duration=0.3, warmup=0.1, give_up=0.3)
SOCAT_PORT = 7111           # netns: + the size's index in CELLS' sizes


def sizes():
    out = []
    for c in CELLS:
        if c[0] not in out:
            out.append(c[0])
    return out


def free_udp_port(ip):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def start_all(build, engines, server_args, place, outdir, cpu, use_socat, out, left):
    """The UDP servers into out; one that cannot start goes into left."""
    ip = place.server_ip

    def add(name, kind, cmd, label=None, **kw):
        label = label or name
        try:
            s = peers.Server(name, kind, cmd, place, cpu,
                             os.path.join(outdir, "udp-" + label + ".log"), udp=True, **kw)
            out.append(s)
            return s
        except (RuntimeError, OSError) as e:
            left.append("%s (UDP, %s): %s (see udp-%s.log)" % (name, place.name, e, label))
            print("bench: UDP %s left out: %s" % (name, e), flush=True)
            return None

    log = os.path.join(outdir, "udp-baseline.log")
    add("baseline", "baseline", [os.path.join(build, "bench-baseline-udp"), ip, "0"],
        port_file=log)
    for e in engines:
        pf = os.path.join(outdir, "udp-%s.port" % e)
        add(e, "echosrv", [os.path.join(build, "echosrv"), "--engine", e, "--listen",
                           ip + ":0", "--udp-listen", ip + ":0", "--udp-rate", "0",
                           "--port-file", pf] + server_args, port_file=pf)
    if not use_socat:
        return
    if not peers.shutil.which("socat"):
        left.append("socat (UDP, %s): socat is not installed (scripts/deps.sh bench)"
                    % place.name)
        return
    for i, size in enumerate(sizes()):
        port = SOCAT_PORT + i if place.name == "netns" else free_udp_port(ip)
        s = add("socat", "peer", ["socat", "-b", str(size), "-T", "0.5",
                                  "UDP-LISTEN:%d,bind=%s,fork,reuseaddr" % (port, ip), "PIPE"],
                label="socat-%d" % size, port=port)
        if s:
            s.only_size = size


def failure(rc, r, err):
    """Why a UDP run failed, in a few words; None if it passed."""
    early = report.not_run(rc, r, err)
    if early:
        return early
    why = []
    if r["corrupted"]:
        k = r["corrupted_kinds"]
        why.append("%d corrupted (%d another source's, %d wrong bytes, %d wrong length)"
                   % (r["corrupted"], k["source"], k["bytes"], k["size"]))
    if r["duplicated"]:
        why.append("%d duplicated" % r["duplicated"])
    if not r["echoed"]:
        why.append("nothing echoed")
    if r.get("refused"):
        why.append("%d port unreachable (the server went away)" % r["refused"])
    if rc != 0 and not why:
        why.append("exit status %d" % rc)
    return ", ".join(why) or None


def run_one(build, place, srv, m, cell, t):
    size, sources, window = cell
    cmd = place.client_prefix() + [
        os.path.join(build, "echosrv-bench"), "--udp", "-a", srv.addr, "-s", str(size),
        "--sources", str(sources), "--window", str(window), "-d", str(t["duration"]),
        "-w", str(t["warmup"]), "--give-up", str(t["give_up"]), "--server-pid", str(srv.pid),
        "--placement", place.name, "--json"]
    if m["pinned"]:
        cmd += ["--cpu", str(m["server_cpu"])]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True,
                           preexec_fn=peers.pin(m["client_cpu"] if m["pinned"] else None),
                           timeout=t["duration"] + t["warmup"] + t["give_up"] + 60)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        rc, out, err = -1, "", "echosrv-bench timed out"
    try:
        result = json.loads(out) if out.strip() else None
    except ValueError:
        result = None
    return {"server": srv.name, "kind": srv.kind, "placement": place.name, "part": "udp",
            "size": size, "connections": sources, "pipeline": window, "rc": rc,
            "result": result, "failure": failure(rc, result, err), "stderr": err[-2000:],
            "command": " ".join(shlex.quote(c) for c in cmd)}


def figures(run):
    r = run.get("result")
    if not r or run.get("failure"):
        return None
    mc = r.get("machine_cpu_us_per_datagram", {})
    one = next(iter(r.get("cpu_us_per_datagram", {}).values()), {})
    return {"dgrams": r["echoed_per_second"], "p99": r["latency_us"]["p99"],
            "machine": mc.get("total"), "m_user": mc.get("user"), "m_sys": mc.get("system"),
            "m_soft": mc.get("softirq"), "cpu": one.get("total"),
            "proc": r.get("server_cpu_us_per_datagram"), "lost": r["lost"],
            "sent": r["sent"], "reordered": r["reordered"]}


def progress(run):
    head = "%-8s %-7s %6d B %3d sources %2d in flight  %-9s" % (
        "udp", run["placement"], run["size"], run["connections"], run["pipeline"],
        run["server"])
    f = figures(run)
    if not f:
        return head + " FAILED: %s" % run.get("failure")
    return head + " %8.0f dgram/s  machine %7.2f us/dgram  cpu %7.2f  process %7.2f  " \
        "p99 %8.1f us  lost %d" % (f["dgrams"], f["machine"] or 0, f["cpu"] or 0,
                                   f["proc"] or 0, f["p99"], f["lost"])


def measure(build, m, mode, outdir, runs, left, placement):
    """The UDP cells in one placement of their own: start, run, take down."""
    t = dict(QUICK if m["quick"] else FULL)
    for k in ("duration", "warmup", "give_up"):
        if m.get("override_" + k) is not None:
            t[k] = m["override_" + k]
    cpu = (m["server_cpu"], m["client_cpu"]) if m["pinned"] else (None, None)
    place = placement.make(mode, *cpu)
    servers = []
    try:
        sub = os.path.join(outdir, mode)
        os.makedirs(sub, exist_ok=True)
        start_all(build, m["engines"], m["server_args"], place, sub, cpu[0],
                  "socat" in m["peers"], servers, left)
        print("bench: UDP, %s: %s" % (mode, ", ".join(
            s.name + ("(%d B)" % s.only_size if getattr(s, "only_size", None) else "")
            for s in servers)), flush=True)
        for i, cell in enumerate(CELLS):
            here = [s for s in servers if getattr(s, "only_size", cell[0]) == cell[0]]
            for rep in range(m["repeat"]):
                k = (i + rep) % len(here) if here else 0
                for srv in here[k:] + here[:k]:
                    for other in servers:
                        other.pause(other is not srv)
                    run = run_one(build, place, srv, m, cell, t)
                    srv.settle()
                    run.update(repeat=rep)
                    runs.append(run)
                    print(progress(run), flush=True)
        return place.describe(), t
    finally:
        for s in servers:
            s.stop()
        place.close()


def table(runs, place):
    """(cell, server) -> {"f": figures of the median round, or None, "why"}."""
    groups, keys = {}, []
    for r in runs:
        if r.get("part") != "udp" or r["placement"] != place:
            continue
        k = ((r["size"], r["connections"], r["pipeline"]), r["server"])
        if k not in groups:
            groups[k] = []
            keys.append(k)
        groups[k].append(r)
    res = {}
    for k in keys:
        rs = groups[k]
        bad = [r for r in rs if not figures(r)]
        if bad:
            res[k] = {"f": None, "why": "failed: %s" % (bad[0].get("failure") or "?")}
            continue
        good = sorted(rs, key=lambda x: x["result"]["echoed_per_second"])
        res[k] = {"f": figures(good[(len(good) - 1) // 2]), "why": None}
    return res


def section(meta, runs, report):
    """The Markdown of the UDP cells, in the TCP tables' style; [] if none ran."""
    place = meta["settings"]["placement"]
    t = table(runs, place)
    if not t:
        return []
    u = meta.get("udp", {})
    names = report.servers_in([r for r in runs if r.get("part") == "udp"])
    out = ["## UDP (%s)" % place, "",
           "`echosrv-bench --udp`: each cell %g s measured after %g s warm-up, a datagram "
           "not back within %g s is lost; echosrv with `--udp-rate 0`; socat is "
           "`socat -b SIZE -T 0.5 UDP-LISTEN:PORT,fork,reuseaddr PIPE` (a process per "
           "source, docs/udp.md). dgram/s: datagrams echoed per second; lost: of those "
           "sent in the measurement (a full receive queue drops; not a failure); "
           "process: the server's process tree, socat's per-source processes included." % (
               u.get("duration", 0), u.get("warmup", 0), u.get("give_up", 0)), "",
           "| size | sources | in flight | server | dgram/s | p99 us | machine CPU us/dgram "
           "(user/sys/softirq) | server CPU us/dgram | process us/dgram | lost |",
           "|---:|---:|---:|:---|---:|---:|---:|---:|---:|---:|"]
    for cell in sorted({k[0] for k in t}):
        base = (t.get((cell, "baseline")) or {}).get("f") or {}
        for n in names:
            e = t.get((cell, n))
            if not e:
                continue
            row = ["%d" % cell[0], "%d" % cell[1], "%d" % cell[2], n]
            f = e["f"]
            if not f:
                out.append("| " + " | ".join(row + [e["why"], "", "", "", "", ""]) + " |")
                continue
            b = base if n != "baseline" else {}
            r = report.ratio
            row += [report.fmt_count(f["dgrams"]) + r(f["dgrams"], b.get("dgrams")),
                    report.fmt_num(f["p99"]) + r(f["p99"], b.get("p99")),
                    "%s%s (%s/%s/%s)" % (report.fmt_num(f["machine"]),
                                         r(f["machine"], b.get("machine")),
                                         report.fmt_num(f["m_user"]), report.fmt_num(f["m_sys"]),
                                         report.fmt_num(f["m_soft"])),
                    report.fmt_num(f["cpu"]) + r(f["cpu"], b.get("cpu")),
                    report.fmt_num(f["proc"]) + r(f["proc"], b.get("proc")),
                    "%d of %s%s" % (f["lost"], report.fmt_count(f["sent"]),
                                    ", %d reordered" % f["reordered"] if f["reordered"] else "")]
            out.append("| " + " | ".join(row) + " |")
    out.append("")
    meds = []
    for n in names:
        if n == "baseline":
            continue
        # A baseline that echoed a few datagrams in a long cell shows 0.0/s
        # (the JSON's one decimal): no ratio to it, as in report.ratio.
        rat = [t[(c, n)]["f"]["dgrams"] / t[(c, "baseline")]["f"]["dgrams"]
               for c in sorted({k[0] for k in t})
               if (t.get((c, n)) or {}).get("f")
               and ((t.get((c, "baseline")) or {}).get("f") or {}).get("dgrams")]
        failed = sum(1 for c in {k[0] for k in t} if (c, n) in t and not t[(c, n)]["f"])
        meds.append("%s %s%s" % (n, "%.2fx" % statistics.median(rat) if rat else "-",
                                 " (%d cells failed)" % failed if failed else ""))
    if meds:
        out += ["Median dgram/s ratio to the baseline over the UDP cells: "
                + ", ".join(meds) + ".", ""]
    return out
