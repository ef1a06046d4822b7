# SPDX-License-Identifier: GPL-2.0-only
"""Shared fixtures for the integration tests.

Every test starts the real echosrv binary on port 0 and learns the port from
--port-file (never a fixed port), and every test has a time limit
(pytest-timeout, set in pytest.ini).  Tests that take the `engine` fixture run
once per engine this build and kernel support (epoll, io_uring and, where root
and BPF allow, sockmap); ECHOSRV_ENGINES=epoll,io_uring narrows the list.
"""
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("ECHOSRV_BUILD", "build"))
ECHOSRV = os.path.join(BUILD, "echosrv")
ALL_ENGINES = ["epoll", "io_uring", "sockmap"]
# An engine the kernel or the privileges do not allow (sockmap without root
# or BPF) is left out by available_engines(), which asks `--check`.
DEFAULT_ENGINES = ALL_ENGINES


def _engine_works(name):
    r = subprocess.run([ECHOSRV, "--engine", name, "--check"],
                       capture_output=True, timeout=10)
    return r.returncode == 0


def available_engines():
    wanted = os.environ.get("ECHOSRV_ENGINES")
    names = wanted.split(",") if wanted else DEFAULT_ENGINES
    return [e for e in names if _engine_works(e)]


def pytest_generate_tests(metafunc):
    if "engine" in metafunc.fixturenames:
        metafunc.parametrize("engine", available_engines())


def wait_for(pred, timeout=10.0, interval=0.02, what="condition"):
    """Poll pred() until it returns a true value; fail the test after timeout.
    ECHOSRV_TIMEOUT_SCALE stretches every timeout (valgrind runs are slow)."""
    timeout *= float(os.environ.get("ECHOSRV_TIMEOUT_SCALE", "1"))
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)


class Server:
    """One running echosrv process."""

    def __init__(self, tmp_path, args, engine=None, env=None, preexec=None,
                 wrapper=None, cli_defaults=True):
        self.port_file = str(tmp_path / ("port.%d" % id(self)))
        self.log_path = str(tmp_path / ("stderr.%d" % id(self)))
        cmd = [ECHOSRV, "--port-file", self.port_file]
        if engine:
            cmd += ["--engine", engine]
        # cli_defaults=False: a --config file says these (the command
        # line would override the file's).
        if cli_defaults and not any(a.startswith("--listen") for a in args):
            cmd += ["--listen", "127.0.0.1:0"]
        if cli_defaults and "--drain-timeout" not in args:
            cmd += ["--drain-timeout", "3"]   # keep teardown short
        cmd += list(args)
        # ECHOSRV_WRAPPER (e.g. "valgrind --error-exitcode=99 -q") runs
        # every server under a tool; it goes inside any per-test wrapper
        # such as `ip netns exec NS`.
        cmd = list(wrapper or []) + os.environ.get("ECHOSRV_WRAPPER", "").split() + cmd
        self.log = open(self.log_path, "w+b")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log,
                                     env=env, preexec_fn=preexec)
        lines = wait_for(self._read_port_file, what="echosrv to write its port file "
                         "(stderr: %s)" % self._tail)
        self.addrs = [_parse_addr(l) for l in lines if not l.startswith("udp:")]
        self.udp_addrs = [_parse_addr(l[4:]) for l in lines if l.startswith("udp:")]
        self.host, self.port = self.addrs[0]

    def _tail(self):
        return self.stderr()[-2000:]

    def _read_port_file(self):
        if self.proc.poll() is not None:
            raise AssertionError("echosrv exited with %d: %s"
                                 % (self.proc.returncode, self.stderr()))
        try:
            with open(self.port_file) as f:
                lines = f.read().split()
        except FileNotFoundError:
            return None
        return lines or None

    def stderr(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_log(self, *texts, timeout=10.0):
        """Wait until stderr holds every one of texts. Log lines go through
        a queue and a writer thread, so a line about an event the test
        already saw (a counter, a closed socket) may land a moment later."""
        wait_for(lambda: all(t in self.stderr() for t in texts), timeout=timeout,
                 what="log lines %r (stderr: %s)" % (texts, self.stderr()[-1500:]))

    def connect(self, addr=None, timeout=10):
        host, port = addr or (self.host, self.port)
        s = socket.create_connection((host, port), timeout=timeout)
        return s

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=20):
        return self.proc.wait(timeout=timeout)

    def fd_count(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def cpu_seconds(self):
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        return stop_process(self.proc, self.log)


def stop_process(proc, log):
    """SIGTERM, 15 s to exit, then SIGKILL; close its log; its exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log.close()
    return proc.returncode


def _parse_addr(text):
    host, port = text.rsplit(":", 1)
    return host.strip("[]"), int(port)


@pytest.fixture
def start_server(tmp_path):
    """start_server(*args, engine=None, ...) -> Server; all stopped at the end.

    A server that exits with a sanitizer report fails the test: sanitizer
    builds exit non-zero on any finding."""
    servers = []

    def start(*args, **kw):
        s = Server(tmp_path, args, **kw)
        servers.append(s)
        return s

    yield start
    for s in servers:
        rc = s.stop()
        assert rc == 0 or getattr(s, "expect_rc", 0) == rc, \
            "echosrv exited %s: %s" % (rc, s.stderr()[-3000:])


def echo_roundtrip(sock, data, chunk=65536):
    """Send data and read back exactly len(data) bytes, interleaving so that
    neither side's buffers fill; returns what came back."""
    sock.setblocking(True)
    out = bytearray()
    sent = 0
    while sent < len(data) or len(out) < len(data):
        if sent < len(data):
            n = sock.send(data[sent:sent + chunk])
            sent += n
        while len(out) < sent:
            part = sock.recv(min(1 << 20, sent - len(out)))
            if not part:
                return bytes(out)
            out += part
    return bytes(out)


def read_to_eof(sock, limit=1 << 30):
    out = bytearray()
    while len(out) <= limit:
        part = sock.recv(1 << 20)
        if not part:
            break
        out += part
    return bytes(out)


def send_all_then_read(sock, data, shut=True):
    """Write data from a thread (so a large payload cannot deadlock against
    our own unread receive buffer), optionally half-close, and read to EOF."""
    import threading
    err = []

    def writer():
        try:
            sock.sendall(data)
            if shut:
                sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            err.append(e)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    got = read_to_eof(sock)
    t.join(30)
    assert not err, err
    return got


def connect_or_none(addr, source=None, timeout=10):
    """A connected socket, or None when the server refused it so fast that
    the reset arrived before connect() returned (common on loopback)."""
    fam = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    s = socket.socket(fam)
    s.settimeout(timeout)
    try:
        if source:
            s.bind((source, 0))
        s.connect(addr)
        return s
    except ConnectionResetError:
        s.close()
        return None


def assert_rejected(sock, timeout=10):
    """The server closed (or reset) this connection without echoing."""
    if sock is None:
        return
    sock.settimeout(timeout)
    try:
        sock.sendall(b"x")
        data = sock.recv(16)
    except (ConnectionResetError, BrokenPipeError):
        return
    assert data == b"", "rejected connection echoed %r" % data


def assert_echoes(sock, payload=b"ping"):
    assert echo_roundtrip(sock, payload) == payload


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago, for the tests that
    must name a port before the server exists (socket activation, option
    cases); they retry when another process takes it meanwhile."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _try_connect(port, proc):
    if proc.poll() is not None:
        raise AssertionError("systemd-socket-activate exited %d" % proc.returncode)
    try:
        return socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError:
        return None


def socket_activate(args, log):
    """echosrv ARGS under systemd-socket-activate on a free loopback port:
    (process, port, the first connection, which starts echosrv).  Retries
    when another process takes the port between free_port() and bind."""
    activate = shutil.which("systemd-socket-activate")
    if not activate:
        pytest.skip("systemd-socket-activate not installed (package systemd)")
    for _ in range(5):
        port = free_port()
        p = subprocess.Popen([activate, "-l", "127.0.0.1:%d" % port, ECHOSRV] + list(args),
                             stdout=log, stderr=log)
        try:
            first = wait_for(lambda: _try_connect(port, p), timeout=10,
                             what="activation socket")
            return p, port, first
        except AssertionError:
            p.kill()
            p.wait()
    raise AssertionError("no free port for systemd-socket-activate in 5 tries")


def echoing_connection(addr, data):
    """A new connection to addr that echoed data back, or None (refused,
    reset or silent for 2 s): for waiting until the server admits again."""
    s = connect_or_none(addr)
    if s is None:
        return None
    try:
        s.settimeout(2)
        s.sendall(data)
        if s.recv(len(data)) == data:
            return s
    except OSError:
        pass
    s.close()
    return None


def fdinfos(pid):
    """The text of /proc/PID/fdinfo/N for each descriptor pid holds (those
    closed meanwhile are skipped)."""
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                yield f.read()
        except OSError:
            continue
