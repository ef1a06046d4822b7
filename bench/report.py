# SPDX-License-Identifier: GPL-2.0-only
"""bench/report.py - bench/run.py's tables (Markdown) and its progress lines.

Every table row is the median round (by msg/s) of one server in one cell;
each figure is followed by its ratio to the baseline's in the same cell and
placement.  A server that failed a cell shows "failed: <why>" there, one
that sat it out "not run: <why>": nothing is dropped.
"""
import os
import platform
import statistics
import subprocess
import sys



def not_run(rc, result, err):
    """Why echosrv-bench gave no result at all (timed out, could not start),
    for TCP and UDP runs alike; None when it gave one."""
    if rc == -1:
        return "stall (echosrv-bench timed out)"
    if result is None:
        first = (err.strip().splitlines() or ["no output"])[0]
        return "could not start: " + first.replace("echosrv-bench: ", "")
    return None

def fmt_count(v):
    if v is None:
        return "-"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            return "%.3g%s" % (v / div, suffix)
    return "%.3g" % v


def fmt_num(v):
    return "-" if v is None else ("%.3g" % v if v < 1000 else "%.0f" % v)


def ratio(v, base):
    if v is None or not base:
        return ""
    return " (%.2f)" % (v / base)


def figures(run):
    """The figures of one run the tables use, or None if it did not pass."""
    r = run.get("result")
    if not r or run.get("failure"):
        return None
    mc = r.get("machine_cpu_us_per_message", {})
    cpus = r.get("cpu_us_per_message", {})
    one = next(iter(cpus.values()), {}) if cpus else {}
    f = {"msgs": r["messages_per_second"], "p99": r["latency_us"]["p99"],
         "machine": mc.get("total"), "m_user": mc.get("user"), "m_sys": mc.get("system"),
         "m_soft": mc.get("softirq"), "cpu": one.get("total"),
         "proc": r.get("server_cpu_us_per_message"), "retrans": r.get("retransmits", 0)}
    ch = r.get("churn")
    if ch:
        f.update(cps=ch["connections_per_second"], setup50=ch["setup_us"]["p50"],
                 setup99=ch["setup_us"]["p99"], failed=ch["failed"])
    return f


def progress(run):
    head = "%-8s %-7s %6d B %5d conns %2d in flight  %-9s" % (
        run.get("part", ""), run["placement"], run["size"], run["connections"],
        run["pipeline"], run["server"])
    if run.get("skipped"):
        return head + " not run: " + run["skipped"]
    f = figures(run)
    if not f:
        return head + " FAILED: %s" % run.get("failure")
    return head + " %8s msg/s  machine %7.2f us/msg  cpu%s %7.2f  process %7.2f  p99 %8.1f us" % (
        fmt_count(f["msgs"]), f["machine"] or 0, "", f["cpu"] or 0, f["proc"] or 0, f["p99"])


def cell_of(run):
    return (run["size"], run["connections"], run["pipeline"])


def table(runs, part, place):
    """(cell, server) -> {"f": figures or None, "why": text} of the median round."""
    out = {}
    keys = []
    for r in runs:
        if r.get("part") != part or r["placement"] != place:
            continue
        k = (cell_of(r), r["server"])
        if k not in out:
            out[k] = []
            keys.append(k)
        out[k].append(r)
    res = {}
    for k in keys:
        rs = out[k]
        if rs[0].get("skipped"):
            res[k] = {"f": None, "why": "not run: " + rs[0]["skipped"]}
            continue
        bad = [r for r in rs if not figures(r)]
        if bad:
            res[k] = {"f": None, "why": "failed: %s" % (bad[0].get("failure") or "?")}
            continue
        good = sorted(rs, key=lambda x: x["result"]["messages_per_second"])
        res[k] = {"f": figures(good[(len(good) - 1) // 2]), "why": None}
    return res


def servers_in(runs):
    names = []
    for r in runs:
        if r["server"] not in names:
            names.append(r["server"])
    order = {"baseline": 0, "epoll": 1, "io_uring": 2, "sockmap": 3}
    return sorted(names, key=lambda n: (order.get(n, 9), names.index(n)))


def cells_in(runs, part):
    return sorted({cell_of(r) for r in runs if r.get("part") == part})


def matrix_rows(t, cells, names):
    out = ["| size | conns | in flight | server | msg/s | p99 us | machine CPU us/msg "
           "(user/sys/softirq) | server CPU us/msg | process us/msg |",
           "|---:|---:|---:|:---|---:|---:|---:|---:|---:|"]
    for cell in cells:
        base = (t.get((cell, "baseline")) or {}).get("f") or {}
        for n in names:
            e = t.get((cell, n))
            if not e:
                continue
            row = ["%d" % cell[0], "%d" % cell[1], "%d" % cell[2], n]
            f = e["f"]
            if not f:
                out.append("| " + " | ".join(row + [e["why"], "", "", "", ""]) + " |")
                continue
            b = base if n != "baseline" else {}
            row += [fmt_count(f["msgs"]) + ratio(f["msgs"], b.get("msgs"))
                    + (" †" if f["retrans"] else ""),
                    fmt_num(f["p99"]) + ratio(f["p99"], b.get("p99")),
                    "%s%s (%s/%s/%s)" % (fmt_num(f["machine"]), ratio(f["machine"], b.get("machine")),
                                         fmt_num(f["m_user"]), fmt_num(f["m_sys"]),
                                         fmt_num(f["m_soft"])),
                    fmt_num(f["cpu"]) + ratio(f["cpu"], b.get("cpu")),
                    fmt_num(f["proc"])]
            out.append("| " + " | ".join(row) + " |")
    return out


def summary_rows(t, cells, names):
    """Per server: the median over the cells of its ratios to the baseline."""
    out = ["| server | cells passed | msg/s vs baseline | machine CPU/msg vs baseline "
           "| p99 vs baseline |", "|:---|---:|---:|---:|---:|"]
    for n in names:
        rat = {"msgs": [], "machine": [], "p99": []}
        ok = total = 0
        for cell in cells:
            e, b = t.get((cell, n)), (t.get((cell, "baseline")) or {}).get("f")
            if not e or (e["why"] or "").startswith("not run"):
                continue
            total += 1
            if not e["f"]:
                continue
            ok += 1
            for k in rat:
                if b and b.get(k) and e["f"].get(k) is not None:
                    rat[k].append(e["f"][k] / b[k])
        cols = ["%.2f" % statistics.median(rat[k]) if rat[k] else "-"
                for k in ("msgs", "machine", "p99")]
        out.append("| %s | %d of %d | %s |" % (n, ok, total, " | ".join(cols)))
    return out


def churn_rows(t, names):
    out = ["| server | new connections/s | set-up p50 us | set-up p99 us | failed connects "
           "| msg/s | machine CPU us/msg |", "|:---|---:|---:|---:|---:|---:|---:|"]
    cell = next(iter(k[0] for k in t), None)
    base = (t.get((cell, "baseline")) or {}).get("f") or {}
    for n in names:
        e = t.get((cell, n))
        if not e:
            continue
        f = e["f"]
        if not f:
            out.append("| %s | %s | | | | | |" % (n, e["why"]))
            continue
        b = base if n != "baseline" else {}
        out.append("| %s | %s | %s | %s | %d | %s | %s |" % (
            n, fmt_count(f["cps"]) + ratio(f["cps"], b.get("cps")), fmt_num(f["setup50"]),
            fmt_num(f["setup99"]) + ratio(f["setup99"], b.get("setup99")), f["failed"],
            fmt_count(f["msgs"]), fmt_num(f["machine"]) + ratio(f["machine"], b.get("machine"))))
    return out


def compare_rows(tn, tl, cells, names):
    out = ["| size | conns | in flight | server | msg/s netns | msg/s loopback "
           "| machine CPU us/msg netns | loopback | server CPU us/msg netns | loopback "
           "| process us/msg netns | loopback |",
           "|---:|---:|---:|:---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for cell in cells:
        bn = (tn.get((cell, "baseline")) or {}).get("f") or {}
        bl = (tl.get((cell, "baseline")) or {}).get("f") or {}
        for n in names:
            en, el = tn.get((cell, n)), tl.get((cell, n))
            if not en or not el:
                continue
            fn, fl = en["f"], el["f"]
            row = ["%d" % cell[0], "%d" % cell[1], "%d" % cell[2], n]
            for k, fmt in (("msgs", fmt_count), ("machine", fmt_num), ("cpu", fmt_num),
                           ("proc", fmt_num)):
                for f, b, e in ((fn, bn, en), (fl, bl, el)):
                    if not f:
                        row.append(e["why"])
                    elif n == "baseline" or k == "proc":
                        row.append(fmt(f[k]))
                    else:
                        row.append(fmt(f[k]) + ratio(f[k], b.get(k)))
            out.append("| " + " | ".join(row) + " |")
    return out


def machine(root):
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
        commit = subprocess.run(["git", "-C", root, "describe", "--always", "--dirty"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = "?"
    return {"cpu": cpu, "cpus": os.cpu_count(), "memory_gib": round(mem, 1),
            "kernel": platform.release(), "commit": commit or "?"}


LEGEND = (
    "msg/s: echoed messages per second. p99: 99th percentile round trip. "
    "machine CPU: all CPUs' busy time (user + system + softirq + irq, /proc/stat) "
    "over the measurement per echoed message, load generator included, with its "
    "user/system/softirq split; server CPU: the server CPU's alone (softirq work "
    "steered to it included); process: the server's process tree "
    "(/proc/PID/stat, children included). (x.xx): ratio to the baseline in the same "
    "cell; above 1 is better for msg/s, below 1 for the rest. † : the load "
    "generator's connections retransmitted (queues overflowed), so timeouts, not the "
    "server, dominate that figure. The machine is noisy: read ratios, not absolutes.")


def markdown(meta, runs, image):
    m = meta["settings"]
    mach = meta["machine"]
    main = m["placement"]
    names = servers_in(runs)
    out = ["# echosrv benchmark (%s)" % ("quick" if m["quick"] else "full matrix"), ""]
    out.append("%s UTC, commit `%s`; %s, %d CPUs, %.0f GiB, Linux %s." % (
        meta["started"], mach["commit"], mach["cpu"], mach["cpus"],
        mach["memory_gib"], mach["kernel"]))
    out.append("Each cell: %g s measured after %g s warm-up, %d round(s) per server, "
               "median by msg/s, server order rotating per cell and round; servers pinned "
               "to CPU %d, load (echosrv-bench, 1 thread) to CPU %d; placement: %s.%s" % (
                   m["duration"], m["warmup"], m["repeat"], m["server_cpu"], m["client_cpu"],
                   meta.get("placements", {}).get(main, main),
                   (" echosrv arguments: `%s`." % " ".join(m["server_args"]))
                   if m["server_args"] else ""))
    out += ["Made with `%s`." % meta["command"], ""]
    if meta.get("left_out"):
        # A server that could not run is named, never silently missing.
        out += ["Left out of this run: " + "; ".join(meta["left_out"]) + ".", ""]
    out += [LEGEND, ""]
    t = table(runs, "matrix", main)
    cells = cells_in(runs, "matrix")
    if cells:
        out += ["## Summary (%s)" % main, "",
                "Median over the matrix's cells of each server's ratio to the baseline.", ""]
        out += summary_rows(t, cells, names) + [""]
        out += ["![msg/s, CPU per message and p99 per message size](%s)" % image, ""]
    tc = table(runs, "churn", main)
    if tc:
        out += ["## Churn (%s)" % main, "",
                "%d new connections per second, each echoing %s messages of %d bytes one "
                "at a time and closing, at most %d open at once; set-up: connect() to "
                "established." % (m["churn_rate"], m["churn"]["lifetime"], m["churn"]["size"],
                                  m["churn"]["slots"]), ""]
        out += churn_rows(tc, names) + [""]
    comp = cells_in(runs, "compare")
    if comp:
        tl = table(runs, "compare", "loopback")
        out += ["## Placement: netns against loopback", "",
                "The same cells on loopback, where the receiving socket's kernel work runs "
                "on the sender's CPU: the sockmap engine's echo is then done on the load "
                "generator's CPU and looks free to the server.", ""]
        out += compare_rows(t, tl, comp, [n for n in names if any(
            k[1] == n for k in tl)]) + [""]
    if cells:
        out += ["## Every cell (%s)" % main, ""] + matrix_rows(t, cells, names) + [""]
    import udp          # the UDP cells' table (bench/udp.py)
    out += udp.section(meta, runs, sys.modules[__name__])
    return "\n".join(out)


def plot_all(outdir, runs, meta):
    try:
        import plot
    except ImportError as e:
        print("bench: no plot (%s; scripts/deps.sh bench installs python3-matplotlib)" % e)
        return False
    main = meta["settings"]["placement"]
    t = table(runs, "matrix", main)
    if not t:
        return False        # the UDP cells alone: nothing to plot
    title = "echosrv and peers, %s placement\n%s, commit %s" % (
        main, meta["started"], meta["machine"]["commit"])
    return plot.draw(outdir, t, cells_in(runs, "matrix"), servers_in(runs), title)
