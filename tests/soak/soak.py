# SPDX-License-Identifier: GPL-2.0-only
"""make soak: mixed load against one echosrv for SOAK_SECONDS (default 600).

Runs at the same time, all checking every byte that comes back:
- echosrv-bench (when built) at several message sizes and pipeline depths,
  long-lived connections; without it, Python clients doing the same;
- churn: connections opened and closed all the time, each sending a random
  amount, half-closing and reading everything back to EOF;
- slow readers: peers that send a lot and read it back slowly, so the server
  holds back (--conn-buffer) and TCP throttles them;
- resets: peers that send without reading and reset mid-stream.

Every few seconds it prints the server's RSS and descriptor count.  It fails
(exit 1) on any integrity error, if the descriptors are not all given back
when the load stops, or if RSS still grows in the last quarter of the run by
more than max(2 MiB, 10%) (growth after warm-up, a fifth of the run, is
printed too: a buffer pool that fills its pages on first use steps up and
stops, a leak does not stop).
"""
import argparse
import multiprocessing as mp
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.join(ROOT, os.environ.get("ECHOSRV_BUILD", "build"))
ECHOSRV = os.path.join(BUILD, "echosrv")
BENCH = os.path.join(BUILD, "echosrv-bench")
BLOCK = os.urandom(1 << 20)  # the bytes every client sends, from an offset

# (message size, pipeline depth, connections) for the long-lived load.
STEADY = [(1, 16, 16), (128, 4, 16), (1024, 16, 8), (16384, 4, 4), (65536, 1, 4)]


def stream(off, n):
    """n bytes of the sending pattern starting at offset off."""
    off %= len(BLOCK)
    out = BLOCK[off:off + n]
    while len(out) < n:
        out += BLOCK[:n - len(out)]
    return out


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        part = s.recv(n - len(buf))
        if not part:
            raise EOFError("EOF after %d of %d bytes" % (len(buf), n))
        buf += part
    return bytes(buf)


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def steady(port, deadline, size, depth, conns, q):
    """Python stand-in for echosrv-bench: closed loop, depth messages in
    flight on each of conns connections, checked byte for byte."""
    ops = errors = 0
    socks = [connect(port) for _ in range(conns)]
    offs = [random.randrange(len(BLOCK)) for _ in socks]
    while time.monotonic() < deadline:
        for i, s in enumerate(socks):
            data = stream(offs[i], size * depth)
            try:
                s.sendall(data)
                if recv_exact(s, len(data)) != data:
                    errors += 1
            except (OSError, EOFError):
                errors += 1
                socks[i] = connect(port)
            offs[i] += len(data)
            ops += depth
    for s in socks:
        s.close()
    q.put(("steady %d x%d" % (size, depth), ops, errors))


def churn(port, deadline, q):
    ops = errors = 0
    rnd = random.Random(os.getpid())
    while time.monotonic() < deadline:
        n = rnd.choice([0, 1, 100, 4096, 65536, rnd.randrange(300000)])
        data = stream(rnd.randrange(len(BLOCK)), n)
        try:
            s = connect(port)
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            got = bytearray()
            while True:
                part = s.recv(1 << 16)
                if not part:
                    break
                got += part
            s.close()
            errors += bytes(got) != data
        except OSError:
            errors += 1
        ops += 1
    q.put(("churn", ops, errors))


def slow_reader(port, deadline, q):
    """Send 1 MiB, read it back 4 KiB at a time with pauses: the server
    must stop reading from us, not buffer without bound."""
    ops = errors = 0
    while time.monotonic() < deadline:
        s = connect(port)
        data = stream(random.randrange(len(BLOCK)), 1 << 20)
        sender = threading.Thread(target=_send_all, args=(s, data))
        sender.start()
        got = bytearray()
        try:
            while len(got) < len(data) and time.monotonic() < deadline + 60:
                part = s.recv(4096)
                if not part:
                    break
                got += part
                time.sleep(0.002)
            errors += bytes(got) != data
        except OSError:
            errors += 1
        sender.join(30)
        s.close()
        ops += 1
    q.put(("slow-reader", ops, errors))


def _send_all(s, data):
    try:
        s.sendall(data)
    except OSError:
        pass


def resetter(port, deadline, q):
    """Peers that vanish with a reset mid-stream: some after sending
    without reading, some after reading part of the echo."""
    ops = errors = 0
    rnd = random.Random(os.getpid())
    linger0 = struct.pack("ii", 1, 0)
    while time.monotonic() < deadline:
        try:
            s = connect(port)
            s.setblocking(False)
            data = stream(rnd.randrange(len(BLOCK)), rnd.choice([1000, 100000, 1 << 20]))
            try:
                s.send(data)
            except BlockingIOError:
                pass
            if rnd.random() < 0.5:
                time.sleep(0.005)
                try:
                    s.recv(rnd.randrange(1, 5000))
                except BlockingIOError:
                    pass
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger0)
            s.close()
        except OSError:
            errors += 1
        ops += 1
        time.sleep(0.002)
    q.put(("reset", ops, errors))


def proc_sample(pid):
    with open("/proc/%d/status" % pid) as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    return rss, len(os.listdir("/proc/%d/fd" % pid))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float,
                    default=float(os.environ.get("SOAK_SECONDS", "600")))
    ap.add_argument("--engine", default="auto")
    ap.add_argument("--workers", default="2")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="echosrv-soak-")
    port_file = os.path.join(tmp, "port")
    log = open(os.path.join(tmp, "stderr"), "w+b")
    srv = subprocess.Popen([ECHOSRV, "--listen", "127.0.0.1:0", "--port-file", port_file,
                            "--engine", a.engine, "--workers", a.workers,
                            "--idle-timeout", "60"], stdout=log, stderr=log)
    for _ in range(100):
        if os.path.exists(port_file) or srv.poll() is not None:
            break
        time.sleep(0.1)
    port = int(open(port_file).read().split()[0].rsplit(":", 1)[1])
    base_rss, base_fds = proc_sample(srv.pid)
    start = time.monotonic()
    deadline = start + a.seconds
    q = mp.Queue()
    procs, benches = [], []
    if os.path.exists(BENCH):
        for size, depth, conns in STEADY:
            benches.append(subprocess.Popen(
                [BENCH, "-a", "127.0.0.1:%d" % port, "-c", str(conns), "-s", str(size),
                 "-p", str(depth), "-w", "0", "-d", "%.1f" % a.seconds],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    else:
        print("soak: %s not built; Python clients stand in for it" % BENCH)
        for size, depth, conns in STEADY:
            procs.append(mp.Process(target=steady,
                                    args=(port, deadline, size, depth, max(1, conns // 4), q)))
    procs += [mp.Process(target=churn, args=(port, deadline, q)) for _ in range(2)]
    procs += [mp.Process(target=slow_reader, args=(port, deadline, q)) for _ in range(2)]
    procs += [mp.Process(target=resetter, args=(port, deadline, q)) for _ in range(2)]
    for p in procs:
        p.start()

    print("soak: echosrv pid %d (engine %s, workers %s), port %d, %.0f s"
          % (srv.pid, a.engine, a.workers, port, a.seconds))
    print("%8s %10s %6s" % ("t(s)", "rss(KiB)", "fds"))
    print("%8.1f %10d %6d   (before load)" % (0, base_rss, base_fds))
    interval = min(30.0, max(2.0, a.seconds / 20))
    samples = []
    while time.monotonic() < deadline:
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        if srv.poll() is not None:
            break
        t = time.monotonic() - start
        rss, fds = proc_sample(srv.pid)
        samples.append((t, rss, fds))
        print("%8.1f %10d %6d" % (t, rss, fds))
        sys.stdout.flush()

    failures = []
    errors = 0
    for b in benches:
        out, _ = b.communicate(timeout=120)
        if b.returncode:
            errors += 1
            failures.append("echosrv-bench exited %d:\n%s" % (b.returncode, out[-1500:]))
        keep = [" ".join(l.split()[:2]) for l in out.splitlines()
                if l.split() and l.split()[0] in ("messages/s", "errors", "mismatches", "result")]
        print("echosrv-bench -c %s -s %s -p %s: %s" % (b.args[4], b.args[6], b.args[8],
                                                       ", ".join(keep) or out[-300:]))
    for p in procs:
        p.join(120)
    while not q.empty():
        name, ops, errs = q.get()
        errors += errs
        print("%-16s ops=%-8d integrity errors=%d" % (name, ops, errs))
    if len([p for p in procs if p.exitcode != 0]):
        failures.append("a load process failed")
    back = False
    for _ in range(300):
        if srv.poll() is not None:
            break
        if proc_sample(srv.pid)[1] == base_fds:
            back = True
            break
        time.sleep(0.1)
    end_rss, end_fds = proc_sample(srv.pid) if srv.poll() is None else (0, -1)
    print("%8.1f %10d %6d   (load stopped)" % (time.monotonic() - start, end_rss, end_fds))
    srv.send_signal(signal.SIGTERM)
    rc = srv.wait(60)
    log.seek(0)
    tail = log.read().decode(errors="replace")[-2000:]
    log.close()

    if errors:
        failures.append("%d integrity errors" % errors)
    if not back:
        failures.append("descriptors not given back: %d before, %d after" % (base_fds, end_fds))
    if rc:
        failures.append("echosrv exited %d:\n%s" % (rc, tail))
    warm = [s for s in samples if s[0] >= a.seconds / 5]
    last = [s for s in samples if s[0] >= a.seconds * 3 / 4]
    if len(warm) >= 2 and len(last) >= 2:
        print("rss after warm-up: %d KiB -> %d KiB (%+d KiB); in the last quarter %+d KiB; "
              "fds %d..%d under load"
              % (warm[0][1], warm[-1][1], warm[-1][1] - warm[0][1], last[-1][1] - last[0][1],
                 min(s[2] for s in warm), max(s[2] for s in warm)))
        # A leak keeps growing; a pool that fills its pages on first use
        # (io_uring's provided buffers) steps up and stops.  So the test is
        # that growth has stopped by the last quarter of the run.
        growth = last[-1][1] - last[0][1]
        if growth > max(2048, last[0][1] / 10):
            failures.append("RSS still growing in the last quarter: %+d KiB" % growth)
    for f in failures:
        print("soak: FAILED: " + f)
    print("soak: %s" % ("FAILED" if failures else "ok: zero integrity errors, "
                        "descriptors all given back, memory flat"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
