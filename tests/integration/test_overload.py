# SPDX-License-Identifier: GPL-2.0-only
"""Overload on loopback (issue 6): the default --max-conns against the
descriptor limit, and --keepalive on accepted sockets.  (Descriptor
exhaustion with --max-conns set too high is in test_limits.py.)

The servers here run with a small RLIMIT_NOFILE (soft and hard, so echosrv
cannot raise it) so that "more connections than descriptors" takes a few
dozen sockets instead of twenty thousand.
"""
import resource
import shutil
import socket
import subprocess

import pytest

from conftest import ECHOSRV, echo_roundtrip, wait_for
from ops_common import stats

NOFILE = 128


def small_nofile():
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


def rejected(srv):
    return [l for l in srv.stderr().splitlines() if "close conn=-" in l and "reason=limit" in l]


def try_connect(srv):
    try:
        return srv.connect(timeout=10)
    except ConnectionResetError:
        return None  # refused before connect() returned


def served(socks):
    n = 0
    for s in socks:
        try:
            if s and echo_roundtrip(s, b"ping") == b"ping":
                n += 1
        except (ConnectionResetError, BrokenPipeError):
            pass
    return n


def announced_max_conns(srv):
    line = [l for l in srv.stderr().splitlines() if "max-conns " in l][0]
    return int(line.split("max-conns ")[1].split(",")[0])


def test_default_max_conns_leaves_room_for_the_server(start_server, engine, tmp_path):
    """With the default --max-conns, a flood past the descriptor limit is
    refused and counted; the server never hits EMFILE and stays usable."""
    ctl_path = str(tmp_path / "ctl")
    srv = start_server("--trace", "error,conn", "--ctl", ctl_path, engine=engine,
                       preexec=small_nofile)
    limit = announced_max_conns(srv)
    assert 0 < limit < NOFILE
    flood = [try_connect(srv) for _ in range(limit + 40)]
    wait_for(lambda: len(rejected(srv)) == 40, what="40 rejections traced")
    assert served(flood) == limit
    assert "pausing accepts" not in srv.stderr()
    st = stats(ctl_path)
    assert st["rejected"]["max_conns"] == 40 and st["accept_pauses_total"] == 0
    for s in flood:
        if s:
            s.close()
    wait_for(lambda: srv.fd_count() < NOFILE - limit, what="descriptors given back")
    again = [srv.connect() for _ in range(limit)]
    assert served(again) == limit
    for s in again:
        s.close()


def _keepalive_timers(port):
    out = subprocess.run(["ss", "-tnoH", "state", "established", "( sport = :%d )" % port],
                         capture_output=True, text=True, timeout=10).stdout
    return out.count("timer:(keepalive")


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
@pytest.mark.parametrize("secs", [0, 30])
def test_keepalive_option_arms_accepted_sockets(start_server, engine, secs):
    srv = start_server("--keepalive", str(secs), engine=engine)
    socks = [srv.connect() for _ in range(3)]
    for s in socks:
        assert echo_roundtrip(s, b"k") == b"k"
    assert _keepalive_timers(srv.port) == (3 if secs else 0)
    for s in socks:
        s.close()


@pytest.mark.parametrize("value,ok", [("0", True), ("32767", True), ("32768", False),
                                      ("-1", False), ("1s", False)])
def test_keepalive_bounds(value, ok):
    r = subprocess.run([ECHOSRV, "--keepalive", value, "--check"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == (0 if ok else 2), r.stderr
    if not ok:
        assert "--keepalive" in r.stderr
