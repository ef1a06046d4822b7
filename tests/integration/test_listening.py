# SPDX-License-Identifier: GPL-2.0-only
"""Listening at the edges: passed sockets spread over every
worker, a second instance on an address is refused whatever --workers says,
and the default backlog is the kernel's maximum even where /proc/sys is
hidden (the unit's ProcSubset=pid)."""
import os
import shutil
import signal
import socket
import subprocess

import pytest

from conftest import ECHOSRV, echo_roundtrip, wait_for, socket_activate
from ops_common import stats


def _echo_with_urgent(s, i):
    """One message with an urgent byte in its middle: passed sockets get
    SO_OOBINLINE too, so it comes back inline."""
    head, tail = b"conn %d " % i, b" end"
    s.sendall(head)
    s.send(b"!", socket.MSG_OOB)
    s.sendall(tail)
    want = head + b"!" + tail
    got = b""
    while len(got) < len(want):
        part = s.recv(4096)
        if not part:
            break
        got += part
    return got == want


# --- socket activation spreads over every worker --------------------------

ROUNDS, AT_ONCE = 10, 20      # 200 connections, 20 open at a time


@pytest.mark.workers
def test_activation_spreads_connections_over_every_worker(engine, tmp_path):
    path = tmp_path / "ctl"
    log = open(tmp_path / "log", "w+")
    p, port, first = socket_activate(["--engine", engine, "--workers", "2", "--ctl", str(path),
                                      "--drain-timeout", "3"], log)
    try:
        first.settimeout(10)
        assert echo_roundtrip(first, b"activated") == b"activated"
        first.close()
        for r in range(ROUNDS):
            socks = [socket.create_connection(("127.0.0.1", port), timeout=10)
                     for _ in range(AT_ONCE)]
            for i, s in enumerate(socks):
                assert _echo_with_urgent(s, r * AT_ONCE + i), "connection %d" % (r * AT_ONCE + i)
            for s in socks:
                s.close()
        wait_for(lambda: os.path.exists(path), what="the control socket")
        total = ROUNDS * AT_ONCE + 1
        st = wait_for(lambda: (lambda x: x if x["connections_closed_total"] == total else None)(
            stats(path)), what="every connection closed")
        per = [w["connections_total"] for w in st["per_worker"]]
        assert st["connections_total"] == total and sum(per) == total
        # Not a timing figure: the share of each worker, which was 0 of 201
        # for worker 1 with io_uring and sockmap before the hand-off.
        assert min(per) >= total // 4, "per-worker connections %s" % per
        print("engine %s: per-worker connections %s" % (engine, per))
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        log.close()


# --- a second instance on the same address --------------------------------

@pytest.mark.workers
@pytest.mark.parametrize("first,second", [(1, 1), (2, 2), (1, 2), (2, 1)])
def test_second_instance_on_an_address_is_refused(start_server, engine, tmp_path, first, second):
    path = tmp_path / "ctl"
    srv = start_server("--workers", str(first), "--ctl", str(path), engine=engine)
    r = subprocess.run([ECHOSRV, "--engine", engine, "--workers", str(second),
                        "--listen", "127.0.0.1:%d" % srv.port],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, "second instance: rc %d: %s" % (r.returncode, r.stderr)
    assert "Address already in use (another process has this port)" in r.stderr, r.stderr
    # The first one still has every connection: none went to the second.
    for i in range(20):
        s = srv.connect()
        assert echo_roundtrip(s, b"only the first %d" % i) == b"only the first %d" % i
        s.close()
    assert stats(path)["connections_total"] == 20


# --- the default backlog without /proc/sys ---------------------------------

SOMAXCONN = 8192    # above the 4096 echosrv fell back to when it could not read it


def _listen_backlog(pid, port):
    """Send-Q of the listener on port, which ss reports as its backlog."""
    r = subprocess.run(["nsenter", "-t", str(pid), "-n", "ss", "-ltnH", "sport", "= :%d" % port],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    rows = [l.split() for l in r.stdout.splitlines() if l.strip()]
    assert rows, "no listener on port %d: %s" % (port, r.stdout)
    return {int(row[2]) for row in rows}


@pytest.mark.root
@pytest.mark.parametrize("backlog", [None, "100"])
def test_backlog_is_the_kernel_maximum_with_proc_sys_hidden(start_server, engine, backlog):
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("nsenter"):
        pytest.skip("needs root, unshare and nsenter")
    # A network namespace of its own, so that somaxconn can be raised
    # there, then /proc/sys hidden as ProcSubset=pid does.
    setup = ("ip link set lo up && echo %d > /proc/sys/net/core/somaxconn && "
             "mount -t tmpfs none /proc/sys && exec \"$@\"" % SOMAXCONN)
    wrapper = ["unshare", "--net", "--mount", "sh", "-c", setup, "sh"]
    args = ("--backlog", backlog) if backlog else ()
    srv = start_server(*args, engine=engine, wrapper=wrapper)
    want = int(backlog) if backlog else SOMAXCONN
    assert _listen_backlog(srv.proc.pid, srv.port) == {want}
