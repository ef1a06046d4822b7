# SPDX-License-Identifier: GPL-2.0-only
"""Several workers and the IPv4 fallback.  Tests marked
`workers` also run under ThreadSanitizer in `make check`."""
import collections
import os
import re
import socket

import pytest

from conftest import BUILD, ECHOSRV, assert_echoes, wait_for
from test_echo import run_integrity

pytestmark = pytest.mark.workers


def test_connections_spread_over_workers(start_server, engine):
    srv = start_server("--workers", "4", "--trace", "0x5", engine=engine)
    socks = []
    for _ in range(200):
        s = srv.connect()
        assert_echoes(s, b"w")
        socks.append(s)
    for s in socks:
        s.close()
    wait_for(lambda: srv.stderr().count("reason=peer-closed") == 200, what="200 closes")
    per = collections.Counter(re.findall(r"CONN accept conn=\w+ peer=\S+ worker=(\d)",
                                         srv.stderr()))
    assert sorted(per) == ["0", "1", "2", "3"], per
    assert min(per.values()) >= 10, per
    # A connection stays on one worker: its close names the same worker.
    accepts = dict(re.findall(r"CONN accept conn=(\w+ peer=\S+) worker=(\d)", srv.stderr()))
    closes = dict(re.findall(r"CONN close conn=(\w+ peer=\S+) worker=(\d)", srv.stderr()))
    assert accepts == closes


def test_integrity_with_four_workers(start_server, engine):
    srv = start_server("--workers", "4", "--max-conns-per-ip", "1000", engine=engine)
    assert run_integrity(srv) > 12 << 20


def test_workers_auto_and_cpu_affinity(start_server, engine):
    ncpu = len(os.sched_getaffinity(0))
    srv = start_server("--workers", "auto", "--cpu-affinity", engine=engine)
    names = {}
    for tid in os.listdir("/proc/%d/task" % srv.proc.pid):
        with open("/proc/%d/task/%s/comm" % (srv.proc.pid, tid)) as f:
            name = f.read().strip()
        if name.startswith("echosrv-w"):
            names[name] = os.sched_getaffinity(int(tid))
    assert len(names) == ncpu
    cpus = sorted(os.sched_getaffinity(0))
    for i in range(ncpu):
        assert names["echosrv-w%d" % i] == {cpus[i]}
    assert_echoes(srv.connect())


def test_ipv4_fallback_when_ipv6_is_missing(tmp_path, engine):
    """With IPv6 unavailable, the default listener falls back to 0.0.0.0
    with one log line instead of exiting."""
    import subprocess
    probe = socket.socket()
    # As echosrv does: TIME_WAIT left by this test under another engine
    # must not count as "in use".
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(("0.0.0.0", 40007))
    except OSError:
        pytest.skip("port 40007 is in use on this machine")
    finally:
        probe.close()
    log = open(tmp_path / "err", "w+")
    p = subprocess.Popen([os.path.join(BUILD, "helpers", "no_ipv6"), ECHOSRV,
                          "--engine", engine, "--workers", "2"], stderr=log)
    try:
        def up():
            try:
                return socket.create_connection(("127.0.0.1", 40007), timeout=2)
            except OSError:
                assert p.poll() is None, open(tmp_path / "err").read()
                return None
        s = wait_for(up, what="IPv4 fallback listener")
        assert_echoes(s)
        s.close()
    finally:
        p.terminate()
        assert p.wait(timeout=15) == 0
    err = open(tmp_path / "err").read()
    assert err.count("IPv6 is not available") == 1
    assert "listening on 0.0.0.0:40007" in err
