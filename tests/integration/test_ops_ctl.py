# SPDX-License-Identifier: GPL-2.0-only
"""Control socket and echosrvctl (run-time tracing, statistics)."""
import json
import re
import os
import signal
import socket
import stat
import subprocess
import time

import pytest

from conftest import ECHOSRV, echo_roundtrip, wait_for
from ops_common import ECHOSRVCTL, ctl, raw_ctl, stats


def test_stats_counts_the_echo_path(start_server, engine, tmp_path):
    path = tmp_path / "ctl"
    srv = start_server("--ctl", str(path), engine=engine)
    st = os.lstat(path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    data = os.urandom(100000)
    for _ in range(3):
        s = srv.connect()
        assert echo_roundtrip(s, data) == data
        s.close()
    held = srv.connect()
    assert echo_roundtrip(held, b"x") == b"x"
    # Bytes are counted once their send returns, so the client may hold the
    # held connection's "x" a moment before the count shows it.
    j = wait_for(lambda: (lambda j: j if j["connections_closed_total"] == 3
                          and j["bytes_sent_total"] >= 300001 else None)(stats(path)),
                 what="three closes and every byte sent counted")
    assert j["engine"] == engine
    assert j["workers"] == 1 and len(j["per_worker"]) == 1
    assert j["connections_total"] == 4 and j["connections_active"] == 1
    assert j["bytes_received_total"] == 300001 == j["bytes_sent_total"]
    assert j["rejected"] == {"max_conns": 0, "max_conns_per_ip": 0, "acl": 0, "proxy_bad": 0,
                             "proxy_untrusted": 0, "proxy_timeout": 0}
    assert j["uptime_seconds"] >= 0 and j["phase"] == "running"
    for key in ("idle_closes_total", "errors_total", "resets_total"):
        assert key in j and key in j["per_worker"][0]
    assert j["per_worker"][0]["bytes_received_total"] == 300001
    held.close()


def test_stats_counts_rejections_and_idle_closes(start_server, engine, tmp_path):
    path = tmp_path / "ctl"
    srv = start_server("--ctl", str(path), "--deny", "127.0.0.0/8", "--allow", "::1",
                       "--listen", "[::]:0", "--idle-timeout", "1", engine=engine)
    try:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        assert s.recv(1) == b""
        s.close()
    except ConnectionResetError:
        pass    # refused with a reset, maybe before connect() returned
    idle = socket.create_connection(("::1", srv.port), timeout=5)
    assert idle.recv(1) == b""      # closed by the idle timeout
    j = wait_for(lambda: (lambda j: j if j["idle_closes_total"] == 1 else None)(stats(path)),
                 what="idle close counted")
    assert j["rejected"]["acl"] == 1
    idle.close()


def test_trace_flags_change_at_run_time(start_server, engine, tmp_path):
    path = tmp_path / "ctl"
    srv = start_server("--ctl", str(path), engine=engine)
    assert ctl(path, "trace").stdout.startswith("0x1 (error)")
    assert ctl(path, "trace", "conn,error").stdout.startswith("0x5 (error,conn)")
    s = srv.connect()
    assert echo_roundtrip(s, b"abc") == b"abc"
    s.close()
    wait_for(lambda: "reason=peer-closed" in srv.stderr() or "close conn=" in srv.stderr(),
             what="the close trace line")
    srv.wait_log("accept conn=")
    assert ctl(path, "trace", "0").stdout.startswith("0x0 (none)")
    before = srv.stderr().count("accept conn=")
    s = srv.connect()
    assert echo_roundtrip(s, b"abc") == b"abc"
    s.close()
    assert ctl(path, "trace").stdout.startswith("0x0")   # the worker has seen it too
    assert srv.stderr().count("accept conn=") == before
    r = ctl(path, "trace", "0x10", check=False)
    assert r.returncode == 1 and "0x10" in r.stderr


@pytest.mark.workers
def test_trace_change_reaches_every_worker(start_server, engine, tmp_path):
    path = tmp_path / "ctl"
    srv = start_server("--ctl", str(path), "--workers", "2", engine=engine)
    ctl(path, "trace", "conn")
    socks = [srv.connect() for _ in range(24)]
    for s in socks:
        assert echo_roundtrip(s, b"w") == b"w"
    # Each worker traces exactly the connections it accepted.
    per_worker = [w["connections_total"] for w in stats(path)["per_worker"]]
    assert sum(per_worker) == 24
    # The lines go through the log queue and its writer thread: they may
    # reach stderr a moment after the echo.
    log = wait_for(lambda: (lambda log: log.count("CONN accept conn=") >= 24 and log)(
        srv.stderr()), what="24 accept lines")
    for w, n in enumerate(per_worker):
        assert len(re.findall(r"CONN accept conn=\S+ peer=\S+ worker=%d$" % w, log, re.M)) == n
    ctl(path, "trace", "none")
    before = srv.stderr().count("CONN ")
    for s in socks:
        s.close()
    more = [srv.connect() for _ in range(8)]
    for s in more:
        assert echo_roundtrip(s, b"q") == b"q"
        s.close()
    wait_for(lambda: stats(path)["connections_closed_total"] == 32, what="all closes")
    assert srv.stderr().count("CONN ") == before


@pytest.mark.workers
def test_conns_lists_open_connections_of_every_worker(start_server, engine, tmp_path):
    path = tmp_path / "ctl"
    srv = start_server("--ctl", str(path), "--workers", "2", engine=engine)
    socks = []
    for i in range(6):
        s = srv.connect()
        assert echo_roundtrip(s, b"y" * (i + 1)) == b"y" * (i + 1)
        socks.append(s)
    j = json.loads(ctl(path, "conns", "--json").stdout)
    assert j["open"] == 6 and j["listed"] == 6 and j["workers_not_answering"] == 0
    mine = {s.getsockname()[1]: i + 1 for i, s in enumerate(socks)}
    seen = {}
    for c in j["connections"]:
        host, port = c["peer"].rsplit(":", 1)
        assert host == "127.0.0.1" and c["worker"] in (0, 1) and c["state"] == "open"
        assert c["age_seconds"] >= 0
        seen[int(port)] = (c["bytes_received"], c["bytes_sent"])
    assert seen == {p: (n, n) for p, n in mine.items()}
    st = stats(path)
    assert st["workers"] == 2 and len(st["per_worker"]) == 2
    assert sum(w["connections_active"] for w in st["per_worker"]) == 6
    for s in socks:
        s.close()


def test_drain_goes_the_sigterm_way(start_server, engine, tmp_path):
    path = tmp_path / "ctl"
    srv = start_server("--ctl", str(path), "--drain-timeout", "30", engine=engine)
    s = srv.connect()
    assert echo_roundtrip(s, b"before") == b"before"
    r = ctl(path, "drain")
    assert "draining" in r.stdout
    wait_for(lambda: "drain requested" in srv.stderr(), what="the drain log line")
    with pytest.raises(OSError):
        wait_for(lambda: socket.create_connection((srv.host, srv.port), timeout=1) and False,
                 timeout=5, what="listener to close")
    # Open connections keep being served while draining.
    assert echo_roundtrip(s, b"during") == b"during"
    assert stats(path)["phase"] == "draining"
    assert "already draining" in ctl(path, "drain").stdout
    s.close()
    assert srv.wait(timeout=20) == 0
    assert not os.path.exists(path)


def test_stop_exits_at_once(start_server, engine, tmp_path):
    path = tmp_path / "ctl"
    srv = start_server("--ctl", str(path), "--drain-timeout", "60", engine=engine)
    s = srv.connect()
    assert echo_roundtrip(s, b"x") == b"x"
    assert "stopping" in ctl(path, "stop").stdout
    assert srv.wait(timeout=10) == 0
    try:
        assert s.recv(10) == b""
    except ConnectionResetError:
        pass
    s.close()


def test_bad_requests_get_errors_and_harm_nothing(start_server, engine, tmp_path):
    path = tmp_path / "ctl"
    srv = start_server("--ctl", str(path), engine=engine)
    echo = srv.connect()
    assert echo_roundtrip(echo, b"ping") == b"ping"
    assert raw_ctl(path, b"bogus\n").startswith(b"error unknown command")
    assert raw_ctl(path, b"\x00\xff\x01binary\n").startswith(b"error request is not printable")
    assert raw_ctl(path, b"s" * 100000).startswith(b"error request too long")
    assert raw_ctl(path, b"stats now\n").startswith(b"error")
    assert raw_ctl(path, b"\n").startswith(b"error empty request")
    assert raw_ctl(path, b"").startswith(b"")          # connect and close at once
    assert raw_ctl(path, b"trace", eof=True).startswith(b"ok\n0x1")   # EOF ends the line
    # Slow clients that never finish their line: each is closed after its
    # deadline, and meanwhile the echo path and other clients are served.
    slow = []
    for _ in range(40):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(str(path))
        try:
            c.send(b"sta")
        except OSError:
            pass    # beyond the client limit: told "busy" and closed
        slow.append(c)
    for i in range(20):
        assert echo_roundtrip(echo, b"during %d" % i) == b"during %d" % i
    wait_for(lambda: ctl(path, "stats", check=False).returncode == 0, timeout=20,
             what="a control slot to free up")
    for c in slow:
        c.settimeout(10)
        try:
            reply = c.recv(100)
        except ConnectionResetError:
            reply = b""
        assert reply == b"" or reply.startswith(b"error too many")
    for c in slow:
        c.close()
    assert echo_roundtrip(echo, b"after") == b"after"
    echo.close()
    assert srv.proc.poll() is None


def test_ctl_socket_replacement_rules(start_server, tmp_path):
    # A stale socket (nobody answering) is replaced.
    stale = tmp_path / "stale"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(stale))
    s.close()
    srv = start_server("--ctl", str(stale))
    srv.wait_log("removing stale socket")
    assert ctl(stale, "trace").returncode == 0
    # A live one is not, nor is a file that is not a socket.
    regular = tmp_path / "regular"
    regular.write_text("keep me")
    for path, why in ((stale, "another server is answering"), (regular, "not a socket")):
        r = subprocess.run([ECHOSRV, "--listen", "127.0.0.1:0", "--ctl", str(path)],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 1 and why in r.stderr, r.stderr
    assert regular.read_text() == "keep me"
    assert ctl(stale, "trace").returncode == 0


def test_echosrvctl_errors(tmp_path):
    r = subprocess.run([ECHOSRVCTL, "--ctl", str(tmp_path / "none"), "stats"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and "cannot connect" in r.stderr and "No such file" in r.stderr
    r = subprocess.run([ECHOSRVCTL], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "no command" in r.stderr
    r = subprocess.run([ECHOSRVCTL, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "/run/echosrv/ctl" in r.stdout
