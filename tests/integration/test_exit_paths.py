# SPDX-License-Identifier: GPL-2.0-only
"""A dead event loop is a failure, and no exit leaves "server up" behind.

A worker's loop is made to fail by tests/helpers/preload_fail_loop.c, an
LD_PRELOAD shim that fails the engine's wait (epoll_wait, or liburing's
submit-and-wait for io_uring) in the threads named by FAIL_LOOP_THREAD once
the file FAIL_LOOP_TRIGGER exists, so clients connect and echo first.
"""
import os
import re
import signal
import socket
import subprocess

import pytest

from conftest import BUILD, ECHOSRV, assert_echoes, wait_for

SHIM = os.path.join(BUILD, "helpers", "preload_fail_loop.so")
N_CLIENTS = 20
SCALE = float(os.environ.get("ECHOSRV_TIMEOUT_SCALE", "1"))   # valgrind runs


def shim_env(thread, trigger):
    if not os.path.exists(SHIM):
        pytest.skip("helper not built: make %s" % os.path.relpath(SHIM))
    env = dict(os.environ)
    env["LD_PRELOAD"] = SHIM
    env["FAIL_LOOP_THREAD"] = thread
    env["FAIL_LOOP_TRIGGER"] = str(trigger)
    # A sanitizer build links its runtime into echosrv; a preloaded library
    # then comes first in the list, which ASan would refuse by default.
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0").lstrip(":")
    return env


def assert_closed(sock, timeout=10):
    """The server closed this connection: EOF or reset within timeout."""
    timeout *= SCALE
    sock.settimeout(timeout)
    try:
        for _ in range(64):
            if sock.recv(4096) == b"":
                return
    except (ConnectionResetError, BrokenPipeError):
        return
    except socket.timeout:
        raise AssertionError("connection still open %ss after the server stopped" % timeout)
    raise AssertionError("connection kept sending data")


@pytest.mark.workers
@pytest.mark.parametrize("failing", ["one", "all"])
def test_failed_loop_exits_1_and_closes_its_clients(start_server, engine, tmp_path, failing):
    trigger = tmp_path / "fail-now"
    ctl = tmp_path / "ctl"
    thread = "echosrv-w1" if failing == "one" else "echosrv-w*"
    srv = start_server("--workers", "2", "--ctl", str(ctl), engine=engine,
                       env=shim_env(thread, trigger))
    srv.expect_rc = 1
    clients = [srv.connect() for _ in range(N_CLIENTS)]
    for s in clients:
        assert_echoes(s, b"a")
    assert os.path.exists(srv.port_file) and ctl.exists()
    trigger.touch()
    # Wake every worker (SO_REUSEPORT gives worker 1 some of 20 clients
    # with probability 1 - 2^-20); a failing one fails at its next wait.
    for s in clients:
        s.sendall(b"b")
    try:
        rc = srv.wait(timeout=20 * SCALE)
    except subprocess.TimeoutExpired:
        raise AssertionError("echosrv still runs with a dead worker: %s" % srv.stderr()[-2000:])
    log = srv.stderr()
    assert rc == 1, log
    if failing == "one":
        assert "worker 1: event loop failed: Input/output error" in log, log
    else:
        assert re.search(r"worker [01]: event loop failed: Input/output error", log), log
    assert "exit status 1" in log
    for s in clients:
        assert_closed(s)
        s.close()
    # item 3: a failed server leaves no "server up" behind
    assert not os.path.exists(srv.port_file)
    assert not ctl.exists()


def test_shim_refuses_a_bad_setting(tmp_path):
    """The injection itself is validated: a typo must not pass as 'no failure'."""
    if not os.path.exists(SHIM):
        pytest.skip("helper not built")
    env = dict(os.environ, LD_PRELOAD=SHIM, FAIL_LOOP_THREAD="echosrv-w1",
               FAIL_LOOP_TRIGGER="relative/path")
    env["ASAN_OPTIONS"] = "verify_asan_link_order=0"
    r = subprocess.run([ECHOSRV, "--check"], env=env, capture_output=True, text=True, timeout=30 * SCALE)
    assert r.returncode != 0
    assert "FAIL_LOOP_TRIGGER" in r.stderr


def test_second_signal_removes_port_file_and_ctl_socket(start_server, engine, tmp_path):
    ctl = tmp_path / "ctl"
    srv = start_server("--drain-timeout", "60", "--ctl", str(ctl), engine=engine)
    s = srv.connect()
    assert_echoes(s)
    assert os.path.exists(srv.port_file) and ctl.exists()
    srv.signal(signal.SIGTERM)
    wait_for(lambda: "draining" in srv.stderr(), what="drain to start")
    srv.signal(signal.SIGTERM)
    assert srv.wait(timeout=10 * SCALE) == 0
    srv.wait_log("exiting now")
    assert not os.path.exists(srv.port_file), "stale port file after a second signal"
    assert not ctl.exists(), "stale control socket after a second signal"
    s.close()


def test_failed_start_leaves_the_running_instance_files_alone(start_server, engine, tmp_path):
    """A second instance that fails to start (its --ctl is taken) must not
    remove the port file of the instance that runs."""
    ctl = tmp_path / "ctl"
    first = start_server("--ctl", str(ctl), engine=engine)
    before = open(first.port_file).read()
    r = subprocess.run([ECHOSRV, "--engine", engine, "--listen", "127.0.0.1:0",
                        "--port-file", first.port_file, "--ctl", str(ctl)],
                       capture_output=True, text=True, timeout=30 * SCALE)
    assert r.returncode == 1, r.stderr
    assert "another server is answering" in r.stderr
    assert open(first.port_file).read() == before
    assert ctl.exists()
    assert_echoes(first.connect())
