# SPDX-License-Identifier: GPL-2.0-only
"""Start and stop, usage errors, and tracing output."""
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import ECHOSRV, assert_echoes, wait_for


def run_cli(*args, timeout=10):
    return subprocess.run([ECHOSRV, *args], capture_output=True, text=True, timeout=timeout)


BAD_USAGE = [
    (["--max-conns", "banana"], "--max-conns: 'banana' is not a whole number"),
    (["--no-such-option"], "unknown option '--no-such-option'"),
    (["--allow", "10.0.0.0/40"], "--allow"),
    (["--deny", "not-an-address"], "--deny"),
    (["--listen", "127.0.0.1:65536"], "--listen: port '65536'"),
    (["--listen", "localhost:80"], "--listen"),
    (["--trace", "loud"], "--trace"),
    (["--engine", "select"], "--engine"),
    (["--workers", "0"], "--workers"),
    (["--idle-timeout"], "needs an argument"),
]


@pytest.mark.parametrize("args,msg", BAD_USAGE, ids=[a[0] for a, _ in BAD_USAGE])
def test_bad_usage_exits_2_with_one_line(args, msg):
    r = run_cli(*args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert msg in lines[0]


def test_help_version_check():
    r = run_cli("--help")
    assert r.returncode == 0
    for opt in ("--listen", "--port-file", "--backlog", "--workers", "--cpu-affinity",
                "--engine", "--conn-buffer", "--max-conns", "--max-conns-per-ip",
                "--idle-timeout", "--allow", "--deny", "--drain-timeout", "--trace",
                "--trace-file", "--check", "--busy-poll"):
        assert opt in r.stdout
    assert "bytes" in r.stdout and "seconds" in r.stdout   # units are stated
    r = run_cli("-V")
    assert r.returncode == 0 and re.match(r"echosrv \d+\.\d+\.\d+", r.stdout)
    r = run_cli("--check", "--workers", "3", "--allow", "10.0.0.0/8")
    assert r.returncode == 0 and "configuration OK" in r.stdout
    assert run_cli("--check", "--deny", "10.0.0.1/8").returncode == 2


@pytest.mark.parametrize("workers", ["1", "2"])
def test_taken_port_exits_1_naming_the_address(tmp_path, engine, workers):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    try:
        r = run_cli("--engine", engine, "--workers", workers, "--listen", "127.0.0.1:%d" % port)
    finally:
        blocker.close()
    assert r.returncode == 1
    assert "127.0.0.1:%d" % port in r.stderr
    assert "in use" in r.stderr


def test_sigterm_drains(start_server, engine):
    """Open connections are still served, new ones are refused, and the
    server exits 0 as soon as the last one closes."""
    srv = start_server("--drain-timeout", "20", engine=engine)
    s = srv.connect()
    assert_echoes(s)
    srv.signal(signal.SIGTERM)
    wait_for(lambda: "draining" in srv.stderr(), what="drain to start")

    def refused():
        try:
            socket.create_connection((srv.host, srv.port), timeout=2).close()
            return False
        except ConnectionRefusedError:
            return True
    wait_for(refused, what="new connections to be refused")
    assert_echoes(s, b"served while draining")
    assert srv.proc.poll() is None
    t0 = time.monotonic()
    s.close()
    assert srv.wait(timeout=10) == 0
    assert time.monotonic() - t0 < 10


def test_drain_timeout_cuts_the_rest(start_server, engine):
    srv = start_server("--drain-timeout", "1", "--trace", "0x5", engine=engine)
    s = srv.connect()
    assert_echoes(s)
    srv.signal(signal.SIGINT)
    assert srv.wait(timeout=15) == 0
    s.settimeout(5)
    try:
        assert s.recv(10) == b""
    except ConnectionResetError:
        pass
    srv.wait_log("reason=drain")


def test_second_signal_exits_at_once(start_server, engine):
    srv = start_server("--drain-timeout", "60", engine=engine)
    s = srv.connect()
    assert_echoes(s)
    srv.signal(signal.SIGTERM)
    wait_for(lambda: "draining" in srv.stderr(), what="drain to start")
    srv.signal(signal.SIGTERM)
    assert srv.wait(timeout=10) == 0
    srv.wait_log("exiting now")
    s.close()


def _traffic(srv):
    s = srv.connect()
    assert_echoes(s, b"12345")
    s.close()


def test_trace_levels(start_server, engine):
    """0x1 shows errors only, 0x3 adds INFO, 0x7 adds a CONN line per accept
    and close with peer, worker, bytes, duration and reason."""
    seen = {}
    for flags in ("0x1", "0x3", "0x7"):
        srv = start_server("--trace", flags, "--max-conns", "1", engine=engine)
        keep = srv.connect()
        assert_echoes(keep)
        from conftest import assert_rejected, connect_or_none
        assert_rejected(connect_or_none((srv.host, srv.port)))
        keep.close()
        wait_for(lambda: "rejected" in srv.stderr(), what="reject line")
        if flags == "0x7":
            wait_for(lambda: "reason=peer-closed" in srv.stderr(), what="close line")
        srv.stop()
        seen[flags] = srv.stderr()
    # A rejection is traced under 0x1 but tagged WARNING: a limit reached
    # is an expected event, not an error (docs/operations.md, priorities).
    assert " WARNING worker 0: rejected connection" in seen["0x1"]
    assert " INFO " not in seen["0x1"]
    assert " CONN " not in seen["0x1"]
    assert " INFO worker 0: running" in seen["0x3"] and " CONN " not in seen["0x3"]
    log = seen["0x7"]
    assert re.search(r" CONN accept conn=\w+ peer=127\.0\.0\.1:\d+ worker=0", log)
    assert re.search(r" CONN close conn=\w+ peer=127\.0\.0\.1:\d+ worker=0 in=4 out=4 "
                     r"duration=\d+\.\d{3}s reason=peer-closed", log)
    assert re.search(r" CONN close conn=- peer=127\.0\.0\.1:\d+ .*reason=limit", log)
    # Each line carries a UTC timestamp.
    assert re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z ", log, re.M)


def test_trace_names_and_data(start_server, engine):
    srv = start_server("--trace", "error,conn,data", engine=engine)
    _traffic(srv)
    wait_for(lambda: re.search(r" DATA send conn=\w+ worker=0 bytes=5", srv.stderr()),
             what="DATA lines")
    assert re.search(r" DATA recv conn=\w+ worker=0 bytes=5", srv.stderr())
    assert " INFO " not in srv.stderr()


def test_trace_file_and_sighup_reopen(start_server, engine, tmp_path):
    path = tmp_path / "trace.log"
    srv = start_server("--trace", "0x7", "--trace-file", str(path), engine=engine)
    _traffic(srv)
    wait_for(lambda: path.exists() and "reason=peer-closed" in path.read_text(),
             what="trace file lines")
    assert " CONN " not in srv.stderr()
    os.rename(path, str(path) + ".1")
    srv.signal(signal.SIGHUP)
    wait_for(lambda: path.exists(), what="trace file to be reopened")
    _traffic(srv)
    wait_for(lambda: "reason=peer-closed" in path.read_text(), what="lines in new file")


def test_journal_priority_prefix(start_server, engine, tmp_path):
    """When stderr is the journal (JOURNAL_STREAM matches it), every line
    starts with a <N> syslog priority."""
    log = tmp_path / "journal"
    log.touch()
    st = os.stat(log)
    env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
    # The fixture logs to its own file; point stderr at `log` via a shell.
    p = subprocess.Popen(
        ["sh", "-c", 'exec "$0" "$@" 2>>"%s"' % log, ECHOSRV, "--listen", "127.0.0.1:0",
         "--engine", engine, "--trace", "0x7", "--port-file", str(tmp_path / "pf")], env=env)
    try:
        wait_for(lambda: (tmp_path / "pf").exists(), what="port file")
        host, port = (tmp_path / "pf").read_text().split()[0].rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=5)
        assert_echoes(s)
        s.close()
        wait_for(lambda: "reason=peer-closed" in log.read_text(), what="close line")
    finally:
        p.terminate()
        assert p.wait(timeout=15) == 0
    lines = log.read_text().splitlines()
    assert lines and all(re.match(r"<[0-7]>", l) for l in lines), lines[:5]
    assert any(l.startswith("<7>") and " CONN " in l for l in lines)
    assert any(l.startswith("<5>") and "listening on" in l for l in lines)
