# SPDX-License-Identifier: GPL-2.0-only
"""CPU share of the ctl and metrics threads while a client waits at EMFILE.
usage: scripts/ops-threads-emfile.py BUILD_DIR [RUNS]
(docs/reliability.md, "The control and metrics threads at the edges")"""
import os, resource, socket, subprocess, sys, time, re, statistics
build, runs = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3
hz = os.sysconf("SC_CLK_TCK")
def threads(pid):
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        t = open("/proc/%d/task/%s/stat" % (pid, tid)).read()
        f = t.rsplit(")", 1)[1].split()
        out[tid] = (t[t.index("(")+1:t.rindex(")")], int(f[11]) + int(f[12]))
    return out
res = {"ctl": [], "metrics": []}
for run in range(runs):
    d = "/tmp/ops-threads-meas/r%d" % run; os.makedirs(d, exist_ok=True)
    for f in ("ctl", "port"):
        try: os.unlink(os.path.join(d, f))
        except FileNotFoundError: pass
    log = open(d + "/log", "w+")
    p = subprocess.Popen([build + "/echosrv", "--engine", "epoll", "--listen", "127.0.0.1:0", "--port-file", d + "/port",
                          "--ctl", d + "/ctl", "--metrics", "127.0.0.1:0", "--max-conns", "1000", "--backlog", "512"],
                         stdout=log, stderr=log, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)))
    for _ in range(200):
        if os.path.exists(d + "/port") and open(d + "/port").read().strip(): break
        time.sleep(0.02)
    port = int(open(d + "/port").read().split()[0].rsplit(":", 1)[1])
    mport = int(re.search(r"metrics at http://[\d.]+:(\d+)", open(d + "/log").read()).group(1))
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]
    time.sleep(0.5)
    u = socket.socket(socket.AF_UNIX); u.connect(d + "/ctl"); u.send(b"stats\n")
    m = socket.create_connection(("127.0.0.1", mport)); m.send(b"GET /metrics HTTP/1.0\r\n\r\n")
    time.sleep(0.5)
    a = threads(p.pid); t0 = time.monotonic(); time.sleep(3); b = threads(p.pid); wall = time.monotonic() - t0
    for tid, (name, ticks) in b.items():
        share = (ticks - a[tid][1]) / hz / wall
        if name == "echosrv-ctl": res["ctl"].append(share)
        if name in ("echosrv-metrics", "MHD-single"): res["metrics"].append(share)
    for s in socks: s.close()
    u.settimeout(10); m.settimeout(10)
    ok_ctl = u.recv(3) == b"ok\n"; ok_m = m.recv(12).startswith(b"HTTP/1.1 200")
    print("run %d: ctl answered after free: %s, metrics answered: %s" % (run, ok_ctl, ok_m))
    p.terminate(); p.wait(20)
for k, v in res.items():
    print("%s thread CPU share of wall time: runs %s median %.3f" % (k, [round(x, 3) for x in v], statistics.median(v)))
