#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Does a flood of control-socket or metrics requests slow the echo path?

Usage: scripts/ops_ctl_load.py [BUILD_DIR]   (default build)

Measures 64-byte echo round trips (3000 per run, one connection) while two
other processes hammer `stats`, `conns` (with 200 idle connections open to
list) or /metrics, and, as the yardstick, while two processes only burn
CPU.  Three rounds; prints medians and the ratio to the quiet runs.  On a
machine with few cores any extra process slows the echo; what matters is
that the control traffic costs no more than plain CPU contention."""
import os, tempfile, socket, statistics, subprocess, sys, threading, time, urllib.request
if len(sys.argv) > 1 and sys.argv[1] == "--hammer":
    ctlp, murl, kind, secs = sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
    end = time.monotonic() + secs; n = 0
    while time.monotonic() < end:
        if kind == "metrics":
            urllib.request.urlopen(murl, timeout=5).read()
        else:
            s = socket.socket(socket.AF_UNIX); s.connect(ctlp)
            s.sendall(kind.encode() + b"\n")
            while s.recv(65536): pass
            s.close()
        n += 1
    print(n)
    sys.exit(0)
B = sys.argv[1] if len(sys.argv) > 1 else "build"
tmp = tempfile.mkdtemp()
ctlp = tmp + "/ctl"
log = open(tmp + "/log", "w+")
p = subprocess.Popen([B + "/echosrv", "--listen", "127.0.0.1:0", "--port-file", tmp + "/port",
                      "--ctl", ctlp, "--metrics", "127.0.0.1:0"], stdout=log, stderr=log)
while not os.path.exists(tmp + "/port"): time.sleep(0.05)
port = int(open(tmp + "/port").read().split()[0].rsplit(":", 1)[1])
time.sleep(0.2); log.seek(0)
murl = [l.split("metrics at ")[1].strip() for l in log if "metrics at" in l][0]
held = [socket.create_connection(("127.0.0.1", port)) for _ in range(200)]  # for conns to list
def run():
    s = socket.create_connection(("127.0.0.1", port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    lat = []
    for _ in range(3000):
        t = time.perf_counter_ns(); s.sendall(b"x" * 64); n = 0
        while n < 64: n += len(s.recv(64 - n))
        lat.append(time.perf_counter_ns() - t)
    s.close(); lat.sort()
    return statistics.median(lat) / 1000, lat[int(len(lat) * .99)] / 1000
kinds = ["quiet", "stats", "metrics", "conns", "busy2", "busy3"]
res = {k: [] for k in kinds}
for rnd in range(3):
    for k in kinds:
        hs = []
        if k.startswith("busy"):   # CPU pressure that has nothing to do with echosrv
            hs = [subprocess.Popen([sys.executable, "-c", "import time\nend=time.monotonic()+1.5\nwhile time.monotonic()<end: pass"]) for _ in range(int(k[4]))]
        elif k != "quiet":
            hs = [subprocess.Popen([sys.executable, __file__, "--hammer", ctlp, murl, k, "1.5"], stdout=subprocess.PIPE, text=True) for _ in range(2)]
        time.sleep(0.15)
        res[k].append(run())
        outs = [h.communicate()[0] for h in hs]
        if k in ("stats", "metrics", "conns"): print(rnd, k, "requests:", [o.strip() for o in outs])
q = statistics.median(a for a, b in res["quiet"])
for k in kinds:
    m = statistics.median(a for a, b in res[k]); p99 = statistics.median(b for a, b in res[k])
    print("%-8s median %.1f us (x%.2f of quiet), p99 %.1f us" % (k, m, m / q, p99))
p.terminate(); p.wait()
