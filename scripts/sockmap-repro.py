#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Reproducer for issue 7 (the sockmap engine echoing retransmitted bytes
twice), bounded in rounds and time.

    scripts/sockmap-repro.py [--build DIR] [--rounds N] [--secs S] [--loss P]
                             [--size BYTES] [--pipeline K] [--engine E]
                             [--give-up SECS]  (root)

It builds a pair of network namespaces joined by a veth pair addressed from
198.18.0.0/15 (tests/integration/netns.py), with one TCP segment per packet
(gso_max_segs 1) and P% random loss each way (nftables), starts
`echosrv --engine sockmap` in one, and runs echosrv-bench, which checks every
byte, from the other for S seconds per round.  Loss of single segments makes
the client retransmit segments the server has partly received, which TCP
queues whole, starting before the next expected byte: the case the verdict
program must cut (bpf/echo.bpf.c).  Before that fix about 2 rounds in 3
failed; the summary also counts the server's own diagnostics (bytes cut,
and "more than TCP received" errors) and its mode switches.  A round fails
only for a wrong, extra or missing byte or a broken connection: the drain
waits up to --give-up (30 s) for late echoes, since on this path TCP's
retransmission backoff sometimes holds one back for longer than
echosrv-bench's own default of 2 s, with every engine; each round prints
its longest wait.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from netns import NetnsPair, SERVER_IP  # noqa: E402


def start_server(pair, build, tmp, engine):
    port_file = os.path.join(tmp, "port")
    log = open(os.path.join(tmp, "log"), "w+b")
    proc = subprocess.Popen(pair.wrapper() + [
        os.path.join(build, "echosrv"), "--engine", engine, "--listen", SERVER_IP + ":0",
        "--port-file", port_file, "--trace", "error,data", "--conn-buffer", "64k"],
        stdout=log, stderr=log)
    for _ in range(200):
        if os.path.exists(port_file) and open(port_file).read().strip():
            return proc, log, int(open(port_file).read().split()[0].rsplit(":", 1)[1])
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    log.seek(0)
    raise SystemExit("echosrv did not start: " + log.read().decode(errors="replace"))


def summary(text):
    lines = text.splitlines()
    cut = [int(l.split(" cut ")[1].split()[0]) for l in lines if " retransmitted bytes" in l]
    return ("server: %d connections had overlaps cut (%d bytes); %d 'more than TCP received' "
            "errors; %d switches to user mode, %d back"
            % (len(cut), sum(cut), sum("more than TCP" in l for l in lines),
               sum("not reading" in l for l in lines), sum("kernel again" in l for l in lines)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--secs", type=int, default=2)
    ap.add_argument("--loss", type=int, default=5)
    ap.add_argument("--size", default="64k")
    ap.add_argument("--pipeline", type=int, default=8)
    ap.add_argument("--engine", default="sockmap", help="another engine, to compare")
    ap.add_argument("--give-up", type=float, default=30,
                    help="echosrv-bench's drain give-up time (its own default is 2 s, which "
                    "TCP's retransmission backoff on this path sometimes exceeds with any "
                    "engine); each round prints the drain's longest wait for a byte")
    a = ap.parse_args()
    pair = NetnsPair()
    tmp = tempfile.mkdtemp(prefix="sockmap-repro-")
    proc = None
    try:
        proc, log, port = start_server(pair, a.build, tmp, a.engine)
        pair.one_segment_per_packet()
        pair.lossy(a.loss)
        fails = 0
        drains = []
        for r in range(a.rounds):
            t0, wall0 = time.monotonic(), time.time()
            p = subprocess.run(pair.client_wrapper() + [
                os.path.join(a.build, "echosrv-bench"), "-a", "%s:%d" % (SERVER_IP, port),
                "-c", "4", "-s", a.size, "-p", str(a.pipeline), "-d", str(a.secs), "-w", "0", "--give-up", str(a.give_up)],
                capture_output=True, text=True, timeout=a.secs + a.give_up + 90)
            gap = [l for l in p.stdout.splitlines() if "longest wait for a byte" in l]
            drains.append(float(gap[0].split("longest wait for a byte ")[1].split()[0])
                          if gap else time.monotonic() - t0 - a.secs)
            fails += p.returncode != 0
            last = (p.stderr.strip().splitlines() or [""])[0] if p.returncode else "ok"
            print("round %d at %.1f: %s (drain's longest wait for a byte %.2f s)"
                  % (r, wall0, last, drains[-1]), flush=True)
        drains.sort()
        print("FAILED %d of %d rounds; drain's longest wait for a byte: median %.2f s, "
              "max %.2f s, over 2 s in %d rounds"
              % (fails, a.rounds, drains[len(drains) // 2], drains[-1],
                 sum(d > 2 for d in drains)))
    finally:
        if proc:
            proc.terminate()
            proc.wait(15)
            log.seek(0)
            print(summary(log.read().decode(errors="replace")))
            print("server log: %s" % log.name)
        pair.close()
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
