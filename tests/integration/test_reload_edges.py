# SPDX-License-Identifier: GPL-2.0-only
"""Reload in place attacked as a hostile operator would (docs/configuration.md):
every listener replaced at once at the slot limit, a listener named by the
port it was given, and a change past the 512th byte of a line in the log."""
import socket
import time

import pytest

from conftest import wait_for
from ops_common import ctl


def start(start_server, tmp_path, engine, *lines, workers=1):
    conf, sock = tmp_path / "e.conf", tmp_path / "ctl"
    conf.write_text("\n".join(lines) + "\n")
    srv = start_server("--config", str(conf), "--ctl", str(sock), "--workers", str(workers),
                       engine=engine, cli_defaults=False)
    return srv, conf, sock


def reload(conf, sock, *lines):
    conf.write_text("\n".join(lines) + "\n")
    return ctl(sock, "reload", check=False)


def port_file_addrs(srv):
    out = []
    for line in open(srv.port_file).read().split():
        host, port = line.rsplit(":", 1)
        out.append((host.strip("[]"), int(port)))
    return out


def echoes(addr):
    with socket.create_connection(addr, timeout=10) as s:
        s.sendall(b"ping")
        got = b""
        while len(got) < 4:
            part = s.recv(4 - len(got))
            if not part:
                break
            got += part
        return got == b"ping"


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.workers)])
def test_reload_replaces_all_sixteen_listeners(start_server, tmp_path, engine, workers):
    """Sixteen new addresses while one old one still serves: the new ones
    take the slots of those that go (it overflowed the slot table).  Under
    TSan (-m workers) also: the reload's port file write raced with the one
    at start-up (no reload before echosrv serves)."""
    srv, conf, sock = start(start_server, tmp_path, engine, "listen 127.0.0.1:0",
                            workers=workers)
    kept = srv.connect()
    first = ["listen 127.0.3.%d:0" % (i + 1) for i in range(16)]
    r = reload(conf, sock, *first)
    assert r.returncode == 0 and r.stdout == "reloaded\n", r
    addrs = wait_for(lambda: len(port_file_addrs(srv)) == 16 and port_file_addrs(srv),
                     what="sixteen addresses in the port file")
    assert all(echoes(a) for a in addrs)
    # And all sixteen replaced by sixteen others in one reload.
    r = reload(conf, sock, *["listen 127.0.4.%d:0" % (i + 1) for i in range(16)])
    assert r.returncode == 0 and r.stdout == "reloaded\n", r
    again = wait_for(lambda: all(h.startswith("127.0.4.") for h, _ in port_file_addrs(srv))
                     and port_file_addrs(srv), what="the new sixteen in the port file")
    assert len(again) == 16 and all(echoes(a) for a in again)
    kept.sendall(b"still")
    assert kept.recv(5) == b"still"    # the first listener's connection carries on
    kept.close()
    for h, p in addrs:
        try:
            socket.create_connection((h, p), timeout=5).close()
            assert False, "%s:%d still accepts" % (h, p)
        except ConnectionRefusedError:
            pass
    assert "reload refused" not in srv.stderr()


def test_listener_named_by_its_bound_port_is_kept(start_server, tmp_path, engine):
    """Asked for port 0, then the file names the port the log gave: the
    same socket, not a second bind that fails with EADDRINUSE."""
    srv, conf, sock = start(start_server, tmp_path, engine, "listen 127.0.0.1:0")
    c = srv.connect()
    r = reload(conf, sock, "listen 127.0.0.1:%d" % srv.port)
    assert r.returncode == 0, r.stderr
    assert "no longer listening" not in srv.stderr()
    assert echoes((srv.host, srv.port))
    c.sendall(b"x")
    assert c.recv(1) == b"x"
    c.close()


def test_log_names_a_change_past_512_bytes(start_server, tmp_path, engine):
    """A trace-file path of 600+ bytes that changes in its last byte: the log
    said "nothing changed" (the diff compared the first 511 bytes)."""
    deep = tmp_path / ("a" * 200) / ("b" * 200) / ("c" * 200)
    deep.mkdir(parents=True)
    t0, t1, t2 = tmp_path / "t0.log", deep / "t1", deep / "t2"
    srv, conf, sock = start(start_server, tmp_path, engine, "listen 127.0.0.1:0",
                            "trace-file %s" % t0)
    for t in (t1, t2):
        r = reload(conf, sock, "listen 127.0.0.1:0", "trace-file %s" % t)
        assert r.returncode == 0, r.stderr
    wait_for(lambda: "configuration 3 in force" in t2.read_text(), what="the log of reload 2")
    line = [l for l in t2.read_text().splitlines() if "configuration 3 in force" in l][0]
    # (Two such paths make a line longer than the log keeps: its end is cut.)
    assert "nothing changed" not in line and "in force: trace-file " in line, line


def test_idle_timeout_reload_follows_every_engine(start_server, tmp_path, engine):
    """A reload that raises the idle timeout keeps a silent connection past
    the old one, and one that lowers it never closes a busy connection.
    Under sockmap (its own idle heap) the first kept the start-up timeout
    and the second closed busy connections: the worker's idle list, which
    this engine never touches on a receive, was switched on by the reload."""
    srv, conf, sock = start(start_server, tmp_path, engine, "listen 127.0.0.1:0",
                            "idle-timeout 3")
    silent = srv.connect()
    silent.sendall(b"s")
    assert silent.recv(1) == b"s"
    r = reload(conf, sock, "listen 127.0.0.1:0", "idle-timeout 3600")
    assert r.returncode == 0, r.stderr
    busy = srv.connect()
    # Busy for 5 s under a 2 s timeout: never idle.  The silent one is past
    # its old 3 s by then.
    r = reload(conf, sock, "listen 127.0.0.1:0", "idle-timeout 3600", "max-conns 500")
    assert r.returncode == 0, r.stderr
    for i in range(25):
        busy.sendall(b"%d" % (i % 10))
        assert busy.recv(1) == b"%d" % (i % 10), "busy connection closed at %d" % i
        time.sleep(0.2)
    silent.sendall(b"t")
    assert silent.recv(1) == b"t", "closed by the old idle timeout"
    r = reload(conf, sock, "listen 127.0.0.1:0", "idle-timeout 2")
    assert r.returncode == 0, r.stderr
    for i in range(25):
        busy.sendall(b"b")
        assert busy.recv(1) == b"b", "busy connection closed at %d" % i
        time.sleep(0.2)
    # The silent one goes within the new timeout (bounded wait).
    silent.settimeout(30)
    assert silent.recv(1) == b""
    busy.close()
