# SPDX-License-Identifier: GPL-2.0-only
"""p99 of a sockmap echo with 3,000 idle connections held, with and without
a scrape flood (4 processes: 2 scraping /metrics, 2 `stats` on the control
socket, as fast as they can).  usage: meas.py BUILD_DIR LABEL"""
import json, os, re, socket, subprocess, sys, time, multiprocessing, urllib.request

build, label = sys.argv[1], sys.argv[2]
d = "/tmp/smf_meas/" + label
os.makedirs(d, exist_ok=True)
ctl, pf = d + "/ctl", d + "/port"
for f in (ctl, pf):
    if os.path.exists(f): os.unlink(f)
log = open(d + "/log", "w")
srv = subprocess.Popen([build + "/echosrv", "--engine", "sockmap", "-w", "1", "--listen", "127.0.0.1:0",
                        "--port-file", pf, "--metrics", "127.0.0.1:0", "--ctl", ctl], stdout=log, stderr=log)
while not (os.path.exists(pf) and open(pf).read().strip()): time.sleep(0.05)
port = int(open(pf).read().split()[0].rsplit(":", 1)[1])
while not re.search(r"metrics at (http://\S+)", open(d + "/log").read()): time.sleep(0.05)
url = re.search(r"metrics at (http://\S+)", open(d + "/log").read()).group(1)
held = [socket.create_connection(("127.0.0.1", port)) for _ in range(3000)]

def flood(kind, stop_at, q):
    n = 0
    while time.monotonic() < stop_at:
        if kind == "m":
            urllib.request.urlopen(url, timeout=10).read()
        else:
            s = socket.socket(socket.AF_UNIX); s.connect(ctl); s.sendall(b"stats\n")
            while s.recv(65536): pass
            s.close()
        n += 1
    q.put(n)

def bench():
    r = subprocess.run([build + "/echosrv-bench", "-a", "127.0.0.1:%d" % port, "-c", "1", "-d", "5",
                        "-w", "1", "--json"], capture_output=True, text=True)
    return json.loads(r.stdout)

def p99(j):
    return "p50 %.1f p99 %.1f us" % (j["latency_us"]["p50"], j["latency_us"]["p99"])

out = {}
for rep in range(2):
    out["quiet%d" % rep] = bench()
    q = multiprocessing.Queue()
    stop_at = time.monotonic() + 7
    ps = [multiprocessing.Process(target=flood, args=(k, stop_at, q)) for k in "mmss"]
    for p in ps: p.start()
    out["flood%d" % rep] = bench()
    for p in ps: p.join()
    out["flood%d_scrapes" % rep] = sum(q.get() for _ in ps)
st = subprocess.run([build + "/echosrvctl", "--ctl", ctl, "stats", "--json"], capture_output=True, text=True).stdout
srv.terminate(); srv.wait()
json.dump(out, open(d + "/out.json", "w"), indent=1)
for k, v in out.items():
    print(label, k, v if isinstance(v, int) else p99(v))
m = re.search(r'"report_refreshes_total": (\d+)', st)
print(label, "report_refreshes_total", m.group(1) if m else "n/a")
