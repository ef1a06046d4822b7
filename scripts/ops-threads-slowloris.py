# SPDX-License-Identifier: GPL-2.0-only
"""Scrape success rate under slowloris. usage: scripts/ops-threads-slowloris.py BUILD_DIR
(docs/reliability.md, "The control and metrics threads at the edges")"""
import os, re, socket, subprocess, sys, threading, time, urllib.request
build = sys.argv[1]
def run(sources, label, scrapes=20, every=3.0):
    d = "/tmp/ops-threads-meas/sl"; os.makedirs(d, exist_ok=True)
    log = open(d + "/log", "w+")
    p = subprocess.Popen([build + "/echosrv", "--engine", "epoll", "--listen", "127.0.0.1:0",
                          "--metrics", "127.0.0.1:0"], stdout=log, stderr=log)
    for _ in range(200):
        m = re.search(r"metrics at (http://\S+)", open(d + "/log").read())
        if m: break
        time.sleep(0.02)
    url = m.group(1); host, port = url.split("/")[2].rsplit(":", 1)
    done = threading.Event()
    def attacker(src):
        while not done.is_set():
            try:
                s = socket.create_connection((host, int(port)), timeout=5, source_address=(src, 0))
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-a: ")
                while not done.wait(every): s.sendall(b"a")
            except OSError:
                done.wait(0.2)
    ts = [threading.Thread(target=attacker, args=(s,)) for s in sources]
    for t in ts: t.start()
    time.sleep(2)
    ok = 0
    for i in range(scrapes):
        try:
            with urllib.request.urlopen(url, timeout=5) as r: ok += r.status == 200
        except OSError: pass
        time.sleep(1)
    done.set()
    for t in ts: t.join()
    p.terminate(); p.wait(20)
    print("%s: %d/%d scrapes succeeded" % (label, ok, scrapes))
run(["127.0.0.%d" % i for i in range(2, 10)], "8 slow conns from 8 other addresses")
run(["127.0.0.1"] * 4 + ["127.0.0.%d" % i for i in range(2, 6)], "8 slow conns, 4 from the scraper's address")
