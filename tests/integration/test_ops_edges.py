# SPDX-License-Identifier: GPL-2.0-only
"""The control and metrics threads at the edges: out of
descriptors they pause instead of spinning, a slow scraper cannot lock out
the others, a hostile --ctl path cannot hang start-up, and echosrvctl shows
the server's refusals."""
import os
import resource
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import ECHOSRV, wait_for
from ops_common import ctl, metrics_url, raw_ctl, scrape

NOFILE = 64
SCALE = float(os.environ.get("ECHOSRV_TIMEOUT_SCALE", "1"))


def _low_nofile():
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


def _threads(pid):
    """{tid: (name, cpu ticks)} of every thread of pid."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                text = f.read()
        except FileNotFoundError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        out[tid] = (name, int(fields[11]) + int(fields[12]))
    return out


def _assert_no_thread_spins(srv, seconds=3.0):
    """A spin detector, not a speed test: over a few seconds no thread may
    use more than a fifth of the wall time (a spinning one uses all of it).
    Returns {name: share of wall time}."""
    hz = os.sysconf("SC_CLK_TCK")
    before = _threads(srv.proc.pid)
    t0 = time.monotonic()
    time.sleep(seconds)
    after = _threads(srv.proc.pid)
    wall = time.monotonic() - t0
    shares = {}
    for tid, (name, ticks) in after.items():
        if tid in before:
            shares[name] = max(shares.get(name, 0), (ticks - before[tid][1]) / hz / wall)
    spinning = {n: round(s, 2) for n, s in shares.items() if s > 0.2}
    assert not spinning, "threads spun while out of descriptors: %s" % spinning
    return shares


def _fill_descriptors(srv):
    """Connect until the server is out of descriptors (its workers pause);
    the sockets, to be closed by the caller."""
    socks = []
    for _ in range(NOFILE + 40):
        socks.append(srv.connect())
    wait_for(lambda: srv.fd_count() >= NOFILE, what="the server to use every descriptor")
    wait_for(lambda: "pausing accepts" in srv.stderr(), what="an EMFILE pause")
    return socks


def test_ctl_thread_pauses_on_emfile(start_server, engine, tmp_path):
    path = tmp_path / "ctl"
    srv = start_server("--ctl", str(path), "--max-conns", "1000", "--backlog", "512",
                       engine=engine, preexec=_low_nofile)
    socks = _fill_descriptors(srv)
    waiting = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    waiting.settimeout(30 * SCALE)
    waiting.connect(str(path))      # queued in the backlog: accept gets EMFILE
    waiting.sendall(b"trace\n")
    time.sleep(0.5)     # let a spin (if any) begin: it is what is looked for
    shares = _assert_no_thread_spins(srv)
    assert "echosrv-ctl" in shares
    srv.wait_log("control: accept")    # it did meet EMFILE, and said so
    for s in socks:
        s.close()
    reply = b""
    while not reply.endswith(b")\n"):   # "ok\n0x1 (error)\n", then EOF
        part = waiting.recv(100)
        if not part:
            break
        reply += part
    assert reply.startswith(b"ok\n0x1"), reply
    waiting.close()
    assert ctl(path, "trace").stdout.startswith("0x1")


def test_metrics_thread_pauses_on_emfile(start_server, engine):
    srv = start_server("--metrics", "127.0.0.1:0", "--max-conns", "1000", "--backlog", "512",
                       engine=engine, preexec=_low_nofile)
    url = metrics_url(srv)
    host, port = url.split("/")[2].rsplit(":", 1)
    socks = _fill_descriptors(srv)
    waiting = socket.create_connection((host, int(port)), timeout=30 * SCALE)
    waiting.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
    time.sleep(0.5)     # let a spin (if any) begin: it is what is looked for
    shares = _assert_no_thread_spins(srv)
    assert "echosrv-metrics" in shares
    srv.wait_log("metrics: accept")    # it did meet EMFILE, and said so
    for s in socks:
        s.close()
    reply = b""
    while True:
        part = waiting.recv(65536)
        if not part:
            break
        reply += part
    assert reply.startswith(b"HTTP/1.1 200") and b"echosrv_connections_active" in reply
    waiting.close()
    assert scrape(url)[0] == 200


class Slowloris:
    """Connections that each send one header byte every `every` seconds,
    reconnecting when closed, until stop()."""

    def __init__(self, host, port, sources, every=1.0):
        self.addr, self.sources, self.every = (host, port), sources, every
        self.done = threading.Event()
        self.opened = 0
        self.threads = [threading.Thread(target=self._run, args=(s,)) for s in sources]
        for t in self.threads:
            t.start()

    def _run(self, source):
        deadline = time.monotonic() + 60
        while not self.done.is_set() and time.monotonic() < deadline:
            try:
                s = socket.create_connection(self.addr, timeout=5, source_address=(source, 0))
                self.opened += 1
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-a: ")
                while not self.done.wait(self.every):
                    s.sendall(b"a")
            except OSError:
                self.done.wait(0.2)
                continue
            s.close()

    def stop(self):
        self.done.set()
        for t in self.threads:
            t.join(timeout=20)


def _scrape_ok(url, timeout):
    try:
        return scrape(url, timeout=timeout)[0] == 200
    except OSError:
        return False


def test_scrape_succeeds_during_slowloris(start_server):
    """Eight slow connections (four from the scraper's own address, one
    each from four others) hold every slot and more than the per-address
    share; scrapes still succeed, since a new scraper ends the oldest slow
    connection, and none lives longer than the endpoint's deadline."""
    srv = start_server("--metrics", "127.0.0.1:0")
    url = metrics_url(srv)
    host, port = url.split("/")[2].rsplit(":", 1)
    sources = ["127.0.0.1"] * 4 + ["127.0.0.%d" % i for i in range(2, 6)]
    attack = Slowloris(host, int(port), sources)
    try:
        wait_for(lambda: attack.opened >= len(sources), what="the slow connections")
        time.sleep(1.5)     # older than the age at which they may be ended
        results = []
        for _ in range(4):
            results.append(_scrape_ok(url, timeout=5 * SCALE))
            # Spaced so that a slow connection ended by one scrape has
            # reconnected (as an attacker would) and grown old by the next.
            time.sleep(1.5)
        assert all(results), "scrapes during slowloris: %s" % results
    finally:
        attack.stop()
    assert _scrape_ok(url, timeout=5 * SCALE)


def _full_backlog_listener(path):
    """A Unix listener that never accepts, its backlog filled; the sockets."""
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lst.bind(str(path))
    lst.listen(0)
    held = [lst]
    for _ in range(64):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.setblocking(False)
        try:
            c.connect(str(path))
        except BlockingIOError:
            c.close()
            return held
        held.append(c)
    raise AssertionError("the backlog never filled")


def test_ctl_probe_of_a_listener_that_never_accepts(tmp_path):
    path = tmp_path / "ctl"
    held = _full_backlog_listener(path)
    try:
        try:
            r = subprocess.run([ECHOSRV, "--listen", "127.0.0.1:0", "--ctl", str(path)],
                               capture_output=True, text=True, timeout=20 * SCALE)
        except subprocess.TimeoutExpired:
            pytest.fail("echosrv hung at start-up probing --ctl")
        assert r.returncode == 1, r.stderr
        assert "--ctl" in r.stderr and "in use" in r.stderr and "backlog is full" in r.stderr
        assert os.path.exists(path)     # not taken over
        # And a SIGTERM sent during start-up ends it at once.
        p = subprocess.Popen([ECHOSRV, "--listen", "127.0.0.1:0", "--ctl", str(path)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.2)
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(timeout=10 * SCALE)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            pytest.fail("echosrv ignored SIGTERM during start-up")
        assert rc in (1, -signal.SIGTERM)
        p.stderr.close()
    finally:
        for s in held:
            s.close()


def _hold_ctl_slots(path, n=16):
    held = []
    for _ in range(n):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(str(path))
        held.append(c)
    return held


def test_echosrvctl_shows_too_many_clients(start_server, tmp_path):
    path = tmp_path / "ctl"
    start_server("--ctl", str(path))
    for attempt in range(3):    # the held slots time out after 2 s
        held = _hold_ctl_slots(path)
        # Once a raw 17th client is told "too many", every slot is taken.
        assert raw_ctl(path, b"stats\n").startswith(b"error too many control clients")
        r = ctl(path, "stats", check=False)
        for c in held:
            c.close()
        if r.returncode == 0:
            continue    # a slot freed too early (slow machine): again
        assert r.returncode == 1
        assert "too many control clients" in r.stderr, r.stderr
        return
    pytest.fail("the control slots never stayed taken")


def test_echosrvctl_shows_request_too_long(start_server, tmp_path):
    path = tmp_path / "ctl"
    start_server("--ctl", str(path))
    # Commands echosrvctl knows, with too long an argument: the server says.
    for words in (["kill", "a" * 300], ["trace", "y" * 1000]):
        r = ctl(path, *words, check=False)
        assert r.returncode == 1 and "request too long" in r.stderr, r.stderr
    # An unknown command, however long, is bad usage found before asking.
    r = ctl(path, "x" * 300, check=False)
    assert r.returncode == 2 and "unknown command" in r.stderr, r.stderr
    assert ctl(path, "trace").returncode == 0
