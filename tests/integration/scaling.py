# SPDX-License-Identifier: GPL-2.0-only
"""Hold many connections against one echosrv and measure it (issue 6).

Used two ways:
- `make scale` runs this file: for each engine, N concurrent connections
  (default 19,000, every one echoing), reporting the server's RSS per
  connection, that every descriptor is given back after close, and the
  accept rate (connections per second, each accepted and echoed once).  Runs
  alternate between engines so that they see the same machine, and the
  median of --repeat runs is printed.
- test_scale.py imports hold() for a smaller, quick version in `make check`.

The clients are build/helpers/connhold (tests/helpers/connhold.c): several processes
(one may hold only 20,000 descriptors) and several loopback source addresses
(127.0.0.2 and up: one has about 28,000 ports towards one server port).
"""
import argparse
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.join(ROOT, os.environ.get("ECHOSRV_BUILD", "build"))
ECHOSRV = os.path.join(BUILD, "echosrv")
CONNHOLD = os.path.join(BUILD, "helpers", "connhold")
PER_PROC = 15000  # client connections per connhold process


def engines_here():
    return [e for e in ("epoll", "io_uring", "sockmap")
            if subprocess.run([ECHOSRV, "--engine", e, "--check"], capture_output=True,
                              timeout=10).returncode == 0]


def _fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def _wait(pred, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def hold(engine, conns, server_args=(), msg=64, rounds=3, timeout=240):
    """One run: start echosrv, hold conns connections, close them.
    Returns a dict of figures; 'ok' is False (with 'why') on any failure."""
    tmp = tempfile.mkdtemp(prefix="echosrv-scale-")
    port_file = os.path.join(tmp, "port")
    log = open(os.path.join(tmp, "stderr"), "w+b")
    srv = subprocess.Popen([ECHOSRV, "--engine", engine, "--listen", "127.0.0.1:0",
                            "--port-file", port_file] + list(server_args),
                           stdout=log, stderr=log)
    res = {"engine": engine, "conns": conns, "ok": False}
    try:
        if not _wait(lambda: os.path.exists(port_file) or srv.poll() is not None, 10) \
                or srv.poll() is not None:
            res["why"] = "echosrv did not start"
            return res
        port = open(port_file).read().split()[0].rsplit(":", 1)[1]
        procs = max(1, -(-conns // PER_PROC))
        sources = max(1, -(-conns // 20000) + 1)
        cmd = [CONNHOLD, "-p", port, "-n", str(conns), "-P", str(procs), "-s", str(sources),
               "-m", str(msg), "-r", str(rounds), "-S", str(srv.pid)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        res["client"] = out.stdout + out.stderr
        samples = dict((m.group(1), (int(m.group(2)), int(m.group(3)))) for m in re.finditer(
            r"server (\w+): rss_kib=(-?\d+) fds=(-?\d+)", out.stdout))
        rate = re.search(r"(\d+) conns/s", out.stdout)
        base_rss, base_fds = samples.get("before", (0, 0))
        hold_rss, hold_fds = samples.get("holding", (0, 0))
        res.update(rate=int(rate.group(1)) if rate else 0, base_rss=base_rss,
                   hold_rss=hold_rss, base_fds=base_fds, hold_fds=hold_fds,
                   kib_per_conn=(hold_rss - base_rss) / conns)
        given_back = _wait(lambda: _fds(srv.pid) == base_fds, 60)
        res["after_fds"] = _fds(srv.pid)
        if out.returncode:
            res["why"] = "client reported errors:\n" + res["client"][-2000:]
        elif not given_back:
            res["why"] = "descriptors not given back: %d before, %d after" % (
                base_fds, res["after_fds"])
        else:
            res["ok"] = True
        return res
    finally:
        if srv.poll() is None:
            srv.send_signal(signal.SIGTERM)
            try:
                srv.wait(30)
            except subprocess.TimeoutExpired:
                srv.kill()
                srv.wait()
        log.seek(0)
        res["server_log"] = log.read().decode(errors="replace")[-3000:]
        res["server_rc"] = srv.returncode
        log.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--conns", type=int, default=19000)
    ap.add_argument("--engines", default=None, help="comma list; default: all that run here")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", default="1")
    ap.add_argument("--max-kib-per-conn", type=float, default=1.0)
    a = ap.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    engines = a.engines.split(",") if a.engines else engines_here()
    args = ["--workers", a.workers]
    if a.conns > 19000:
        args += ["--max-conns", str(a.conns + 100)]
    runs = {e: [] for e in engines}
    bad = False
    for i in range(a.repeat):
        for e in engines:
            r = hold(e, a.conns, args)
            runs[e].append(r)
            print("run %d %-8s conns=%d accept=%6d/s rss %d->%d KiB (%.3f KiB/conn) "
                  "fds %d->%d->%d %s" % (i + 1, e, a.conns, r.get("rate", 0),
                                        r.get("base_rss", 0), r.get("hold_rss", 0),
                                        r.get("kib_per_conn", 0), r.get("base_fds", 0),
                                        r.get("hold_fds", 0), r.get("after_fds", 0),
                                        "ok" if r["ok"] else "FAILED: " + r.get("why", "")))
            sys.stdout.flush()
            if not r["ok"]:
                bad = True
                print(r.get("server_log", ""))
    print("\nengine    workers  conns   accept/s(median)  KiB/conn(median)  fds given back")
    for e in engines:
        ok = [r for r in runs[e] if r["ok"]]
        if not ok:
            print("%-9s %-8s %-7d FAILED" % (e, a.workers, a.conns))
            continue
        kib = statistics.median(r["kib_per_conn"] for r in ok)
        print("%-9s %-8s %-7d %-17d %-17.3f %s" % (
            e, a.workers, a.conns, statistics.median(r["rate"] for r in ok), kib,
            "yes" if len(ok) == len(runs[e]) else "NO"))
        if kib > a.max_kib_per_conn:
            print("  over the budget of %.1f KiB per connection" % a.max_kib_per_conn)
            bad = True
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
