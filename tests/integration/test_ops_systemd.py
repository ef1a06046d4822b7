# SPDX-License-Identifier: GPL-2.0-only
"""systemd integration: readiness, status, watchdog and stopping
through a NOTIFY_SOCKET the test binds itself; socket activation through
systemd-socket-activate; the unit files' hardening and syntax."""
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import ECHOSRV, ROOT, echo_roundtrip, wait_for, socket_activate
from ops_common import NotifySocket, ctl, make_install, stats


def test_notify_ready_status_watchdog_stopping(start_server, engine, tmp_path):
    ns = NotifySocket(tmp_path)
    env = dict(os.environ, NOTIFY_SOCKET=ns.path, WATCHDOG_USEC="400000")
    srv = start_server(engine=engine, env=env)
    ns.wait_for(lambda m: "READY=1" in m and "STATUS=Serving 0 connections" in m, "READY=1")
    # Pings at half the interval: several within a few intervals.
    wait_for(lambda: sum(m == "WATCHDOG=1" for m in ns.poll()) >= 3, what="watchdog pings")
    s = srv.connect()
    assert echo_roundtrip(s, b"hello") == b"hello"
    ns.wait_for(lambda m: m.startswith("STATUS=Serving 1 connection (1 since start)"),
                "STATUS with the connection count")
    srv.signal(signal.SIGTERM)
    ns.wait_for(lambda m: "STOPPING=1" in m, "STOPPING=1")
    s.close()
    assert srv.wait() == 0
    ns.close()


PTRACE_SEIZE, PTRACE_INTERRUPT, PTRACE_DETACH = 0x4206, 0x4207, 17


@pytest.mark.root
@pytest.mark.workers
def test_watchdog_stops_while_a_worker_is_stuck(start_server, tmp_path):
    """Freeze one worker thread (ptrace stops just that thread): the pings
    must stop and the log must say which worker; thawed, they resume."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    ns = NotifySocket(tmp_path)
    env = dict(os.environ, NOTIFY_SOCKET=ns.path, WATCHDOG_USEC="400000")
    srv = start_server("--workers", "2", env=env)
    ns.wait_for(lambda m: m == "WATCHDOG=1", "a first ping")
    tid = wait_for(lambda: _thread(srv.proc.pid, "echosrv-w1"), what="worker thread")
    if libc.ptrace(PTRACE_SEIZE, tid, None, None) != 0:
        pytest.skip("cannot ptrace here: %s" % os.strerror(ctypes.get_errno()))
    try:
        assert libc.ptrace(PTRACE_INTERRUPT, tid, None, None) == 0
        os.waitpid(tid, getattr(os, "__WALL", 0x40000000))
        wait_for(lambda: "worker 1 has not run its loop" in srv.stderr(), what="the stuck log line")
        ns.poll()
        ns.messages.clear()
        time.sleep(1.0)     # 5 ping intervals
        assert "WATCHDOG=1" not in ns.poll()
    finally:
        libc.ptrace(PTRACE_DETACH, tid, None, None)
    ns.messages.clear()
    ns.wait_for(lambda m: m == "WATCHDOG=1", "pings to resume")
    ns.close()


def _thread(pid, name):
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
            if f.read().strip() == name:
                return int(tid)
    return None


def test_no_watchdog_pings_unless_asked(start_server, tmp_path):
    ns = NotifySocket(tmp_path)
    env = dict(os.environ, NOTIFY_SOCKET=ns.path)
    env.pop("WATCHDOG_USEC", None)
    start_server(env=env)
    ns.wait_for(lambda m: "READY=1" in m, "READY=1")
    time.sleep(0.5)
    assert not any("WATCHDOG" in m for m in ns.poll())
    ns.close()


def test_ctl_drain_notifies_stopping(start_server, tmp_path):
    ns = NotifySocket(tmp_path)
    path = tmp_path / "ctl"
    srv = start_server("--ctl", str(path), env=dict(os.environ, NOTIFY_SOCKET=ns.path))
    ns.wait_for(lambda m: "READY=1" in m, "READY=1")
    ctl(path, "drain")
    ns.wait_for(lambda m: "STOPPING=1" in m, "STOPPING=1")
    assert srv.wait() == 0
    ns.close()


@pytest.mark.workers
@pytest.mark.parametrize("workers", [1, 2])
def test_socket_activation(engine, workers, tmp_path):
    path = tmp_path / "ctl"
    log = open(tmp_path / "log", "w+")
    p, port, first = socket_activate(["--engine", engine, "--workers", str(workers),
                                      "--ctl", str(path), "--listen", "127.0.0.1:1"], log)
    try:
        # echosrv starts on the first connection and serves it.
        assert echo_roundtrip(first, b"activated") == b"activated"
        socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(20)]
        for i, s in enumerate(socks):
            assert echo_roundtrip(s, b"conn %d" % i) == b"conn %d" % i
        wait_for(lambda: os.path.exists(path), what="the control socket")
        st = stats(path)
        assert st["workers"] == workers and st["connections_total"] == 21
        log.seek(0)
        text = log.read()
        assert "listening on 127.0.0.1:%d (socket from systemd)" % port in text
        assert "--listen ignored" in text
        for s in socks + [first]:
            s.close()
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        log.close()


def test_activation_rejects_a_passed_non_tcp_socket(tmp_path):
    # LISTEN_FDS naming a descriptor that is not a listening TCP socket.
    r = subprocess.run(["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" 3</dev/null', ECHOSRV],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and "not a listening TCP socket" in r.stderr, r.stderr


UNIT_DIR = os.path.join(ROOT, "dist", "systemd")


def _analyze():
    exe = shutil.which("systemd-analyze")
    if not exe:
        pytest.skip("systemd-analyze not installed (package systemd)")
    return exe


def test_service_exposure_at_most_2():
    exe = _analyze()
    r = subprocess.run([exe, "security", "--offline=yes", "--threshold=20",
                        os.path.join(UNIT_DIR, "echosrv.service")],
                       capture_output=True, text=True, timeout=60)
    assert "Overall exposure level" in r.stdout, r.stdout + r.stderr
    level = float(r.stdout.split("Overall exposure level for echosrv.service:")[1].split()[0])
    assert level <= 2.0, r.stdout
    assert r.returncode == 0


def test_units_verify(tmp_path):
    exe = _analyze()
    # Install for real (no DESTDIR) under a temporary prefix so the units
    # name a binary that exists, as they do after `make install`.
    prefix = tmp_path / "prefix"
    make_install(PREFIX=str(prefix), SYSCONFDIR=str(prefix / "etc"))
    unit_dir = prefix / "lib/systemd/system"
    # A template is verified as one of its instances.
    shutil.copy(unit_dir / "echosrv@.service", unit_dir / "echosrv@check.service")
    units = [str(unit_dir / u)
             for u in ("echosrv.service", "echosrv@check.service", "echosrv.socket")]
    r = subprocess.run([exe, "verify", "--man=no"] + units, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
