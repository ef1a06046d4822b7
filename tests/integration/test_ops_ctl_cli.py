# SPDX-License-Identifier: GPL-2.0-only
"""echosrvctl as an operator types it (issue 11): usage errors exit 2 before
anything is sent, options may follow the command, errors name the command
once, stats and conns are tables unless --json, and `kill ID` closes one
connection (reason admin) through the worker that owns it."""
import json
import os
import stat
import subprocess
import tempfile

import pytest

from conftest import ECHOSRV, assert_echoes, echo_roundtrip, wait_for
from ops_common import ECHOSRVCTL, ctl, metric, metrics_url, scrape


def run(*args, env=None):
    return subprocess.run([ECHOSRVCTL] + list(args), capture_output=True, text=True,
                          timeout=20, env=env)


@pytest.mark.parametrize("words,why", [
    (["bogus"], "unknown command 'bogus'"),
    (["stats", "extra"], "stats: too many arguments"),
    (["conns", "x"], "conns: too many arguments"),
    (["trace", "0x1", "0x2"], "trace: too many arguments"),
    (["kill"], "kill: missing argument"),
    (["kill", "1", "2", "3"], "kill: too many arguments"),
    (["show"], "show: missing argument"),
])
def test_usage_errors_exit_2_without_asking(tmp_path, words, why):
    # No server at all: a usage error is found before connecting.
    r = run("--ctl", str(tmp_path / "none"), *words)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert why in r.stderr and "cannot connect" not in r.stderr, r.stderr


def test_options_after_the_command(start_server, tmp_path):
    path = tmp_path / "ctl"
    start_server("--ctl", str(path))
    r = run("stats", "--json", "--ctl", str(path))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["connections_active"] == 0
    r = run("trace", "--ctl", str(path), "-j")
    assert r.returncode == 0 and r.stdout.startswith("0x1"), r.stderr


def test_errors_name_the_command_once(start_server, tmp_path):
    path = tmp_path / "ctl"
    start_server("--ctl", str(path))
    r = ctl(path, "trace", "bogus", check=False)
    assert r.returncode == 1
    assert r.stderr.startswith("echosrvctl: trace: unknown trace flag 'bogus'"), r.stderr
    assert "trace: trace:" not in r.stderr


def test_stats_and_conns_are_tables_by_default(start_server, engine, tmp_path):
    path = tmp_path / "ctl"
    srv = start_server("--ctl", str(path), engine=engine)
    s = srv.connect()
    assert echo_roundtrip(s, b"abcde") == b"abcde"
    # Bytes are counted once their send returns, so the client may hold the
    # echo a moment before the count shows it.
    wait_for(lambda: json.loads(ctl(path, "stats", "--json").stdout)["bytes_sent_total"] == 5,
             what="the echo's 5 bytes counted")
    out = ctl(path, "stats").stdout
    lines = out.splitlines()
    assert lines[0].startswith("echosrv ") and "engine %s" % engine in lines[0], out
    assert lines[1].split()[:3] == ["worker", "active", "total"], out
    total = [l.split() for l in lines if l.startswith("all ")]
    assert total and total[0][1:5] == ["1", "1", "5", "5"], out
    with pytest.raises(ValueError):
        json.loads(out)
    out = ctl(path, "conns").stdout
    rows = [l.split() for l in out.splitlines()]
    assert rows[0][:3] == ["id", "worker", "peer"], out
    port = s.getsockname()[1]
    mine = [r for r in rows if len(r) > 2 and r[2] == "127.0.0.1:%d" % port]
    assert mine and mine[0][3] == "open" and mine[0][5:7] == ["5", "5"], out
    assert rows[-1] == ["1", "open"], out
    s.close()


def _conn_id(path, sock):
    port = sock.getsockname()[1]
    conns = json.loads(ctl(path, "conns", "--json").stdout)["connections"]
    for c in conns:
        if c["peer"] == "127.0.0.1:%d" % port:
            return c
    raise AssertionError("connection not listed: %s" % conns)


def _closed(sock):
    sock.settimeout(10)
    try:
        return sock.recv(16) == b""
    except ConnectionResetError:
        return True


def test_kill_closes_one_connection(start_server, engine, tmp_path):
    path = tmp_path / "ctl"
    srv = start_server("--ctl", str(path), "--trace", "error,conn", "--metrics", "127.0.0.1:0",
                       engine=engine)
    victim, other = srv.connect(), srv.connect()
    assert_echoes(victim)
    assert_echoes(other)
    c = _conn_id(path, victim)
    r = ctl(path, "kill", c["id"])
    assert "closed connection %s on worker 0" % c["id"] in r.stdout, r.stdout
    assert _closed(victim)
    wait_for(lambda: "conn=%s" % c["id"] in srv.stderr() and "reason=admin" in srv.stderr(),
             what="the CONN close line with reason admin")
    assert_echoes(other, b"still here")
    # Gone: a second kill is an error, not a crash or another close.
    r = ctl(path, "kill", c["id"], check=False)
    assert r.returncode == 1 and "no open connection %s" % c["id"] in r.stderr, r.stderr
    r = ctl(path, "kill", "ffffffff12345", check=False)
    assert r.returncode == 1 and "no open connection" in r.stderr
    r = ctl(path, "kill", "xyz", check=False)
    assert r.returncode == 1 and "hex id" in r.stderr
    assert _conn_id(path, other)["state"] == "open"
    # Counted as a close by the operator.
    url = metrics_url(srv)
    assert metric(scrape(url)[2], 'echosrv_closes_total{reason="admin"}') == 1
    other.close()


@pytest.mark.workers
def test_kill_on_many_workers(start_server, engine, tmp_path):
    path = tmp_path / "ctl"
    srv = start_server("--ctl", str(path), "--workers", "2", "--trace", "error,conn",
                       engine=engine)
    socks = [srv.connect() for _ in range(8)]
    for s in socks:
        assert_echoes(s)
    listed = [_conn_id(path, s) for s in socks]
    by_id = {}
    for c in listed:
        by_id.setdefault(c["id"], []).append(c["worker"])
    # Slot ids are per worker: the first connection of each has the same
    # one.  Without the worker such an id is ambiguous and nothing closes.
    shared = [i for i, c in enumerate(listed) if len(by_id[c["id"]]) > 1]
    i = shared[0] if shared else 0
    s, c = socks[i], listed[i]
    if shared:
        r = ctl(path, "kill", c["id"], check=False)
        assert r.returncode == 1 and "open on 2 workers" in r.stderr, r.stderr
        for t in socks:
            assert_echoes(t, b"all alive")
    r = ctl(path, "kill", c["id"], str(c["worker"]))
    assert "on worker %d" % c["worker"] in r.stdout
    assert _closed(s)
    socks.pop(i)
    r = ctl(path, "kill", listed[-1]["id"], "7", check=False)
    assert r.returncode == 1 and "no worker 7" in r.stderr
    for s in socks:
        assert_echoes(s, b"alive")
        s.close()


def _as(uid, gid):
    def pre():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    return pre


def test_ctl_mode_and_group_let_a_monitoring_group_in(start_server):
    top = tempfile.mkdtemp(prefix="echosrv-ctl-")
    try:
        os.chmod(top, 0o755)
        plain, shared = os.path.join(top, "plain"), os.path.join(top, "shared")
        start_server("--ctl", plain)
        start_server("--ctl", shared, "--ctl-mode", "0660", "--ctl-group", "65534")
        st = os.stat(plain)
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_gid == 0
        st = os.stat(shared)
        assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == 65534
        member = subprocess.run([ECHOSRVCTL, "--ctl", shared, "stats"], capture_output=True,
                                text=True, timeout=20, preexec_fn=_as(4321, 65534))
        assert member.returncode == 0 and member.stdout.startswith("echosrv "), member.stderr
        for path in (plain, shared):
            other = subprocess.run([ECHOSRVCTL, "--ctl", path, "stats"], capture_output=True,
                                   text=True, timeout=20, preexec_fn=_as(4321, 4321))
            assert other.returncode == 1 and "Permission denied" in other.stderr, other.stderr
    finally:
        for f in os.listdir(top):
            os.unlink(os.path.join(top, f))
        os.rmdir(top)


def test_ctl_group_refusals(tmp_path):
    r = subprocess.run([ECHOSRV, "--ctl", str(tmp_path / "c"), "--ctl-group", "no-such-group",
                        "--check"], capture_output=True, text=True, timeout=20)
    assert r.returncode == 2 and r.stderr == "echosrv: --ctl-group no-such-group: no such group\n"
    r = subprocess.run([ECHOSRV, "--ctl-mode", "0644", "--check"], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 2 and "--ctl-mode: '0644' is not 0600, 0660 or 0666" in r.stderr


@pytest.mark.parametrize("where", ["command line", "config file"])
def test_ctl_mode_or_group_without_ctl_is_a_usage_error(tmp_path, where):
    """A mode or group for a control socket that is not there (a --ctl
    line lost in an edit) is said, exit 2, before anything is bound; the
    default mode alone is not an error."""
    for opt, val, ok in (("ctl-mode", "0660", False), ("ctl-group", "0", False),
                         ("ctl-mode", "0600", True)):
        if where == "config file":
            conf = tmp_path / "e.conf"
            conf.write_text("listen 127.0.0.1:0\n%s %s\n" % (opt, val))
            args = ["--config", str(conf)]
        else:
            args = ["--listen", "127.0.0.1:0", "--" + opt, val]
        r = subprocess.run([ECHOSRV, *args, "--check"], capture_output=True, text=True,
                           timeout=20)
        if ok:
            assert r.returncode == 0, r.stderr
            continue
        assert r.returncode == 2, r
        assert r.stderr == "echosrv: --%s needs --ctl PATH: there is no control socket " \
                           "to give it to\n" % opt, r.stderr
        r = subprocess.run([ECHOSRV, *args], capture_output=True, text=True, timeout=20)
        assert r.returncode == 2 and "needs --ctl PATH" in r.stderr, r
