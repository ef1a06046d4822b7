# SPDX-License-Identifier: GPL-2.0-only
"""/healthz, /readyz and / on the metrics listener.

A worker loop is held still by tests/helpers/preload_stall.c, an LD_PRELOAD
shim that makes the engine's wait call (epoll_wait, or liburing's
submit-and-wait for io_uring) sleep in one named thread while a trigger
file exists, and can hold start-up just before the port file appears (its
rename).  A shim rather than SIGSTOP, which stops every thread, the metrics
thread included, and rather than a test knob in echosrv, which would be
code in the product that only tests use."""
import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import BUILD, ECHOSRV, wait_for
from ops_common import metric, metrics_url, scrape

SHIM = os.path.join(BUILD, "helpers", "preload_stall.so")


def stall_env(**kw):
    if not os.path.exists(SHIM):
        pytest.skip("helper not built: make %s" % os.path.relpath(SHIM))
    env = dict(os.environ)
    env["LD_PRELOAD"] = SHIM
    env.update({k: str(v) for k, v in kw.items()})
    # A sanitizer build links its runtime into echosrv; a preloaded library
    # then comes first in the list, which ASan would refuse by default.
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0").lstrip(":")
    return env


def get(base, path, timeout=10):
    """(status, body) of GET base+path."""
    try:
        with urllib.request.urlopen(base + path, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def base_of(srv):
    return metrics_url(srv)[: -len("/metrics")]


def one_line(body):
    assert body.endswith("\n") and body.count("\n") == 1, repr(body)
    return body


def test_index_lists_the_endpoints(start_server, engine):
    srv = start_server("--metrics", "127.0.0.1:0", engine=engine)
    status, body = get(base_of(srv), "/")
    assert status == 200
    for path in ("/metrics", "/healthz", "/readyz"):
        assert path in body
    status, body = get(base_of(srv), "/nothing-here")
    assert status == 404 and "see /" in one_line(body)


@pytest.mark.workers
def test_healthz_503_while_a_worker_loop_is_stuck(start_server, engine, tmp_path):
    trigger = tmp_path / "stall"
    srv = start_server("--metrics", "127.0.0.1:0", "--workers", "2", engine=engine,
                       env=stall_env(STALL_THREAD="echosrv-w1", STALL_TRIGGER=trigger))
    base = base_of(srv)
    status, body = get(base, "/healthz")
    assert status == 200 and one_line(body).startswith("alive"), body
    trigger.touch()
    # Within a health check or two (a second each) worker 1 is seen stuck.
    wait_for(lambda: get(base, "/healthz")[0] == 503, timeout=20, interval=0.2,
             what="/healthz to say 503")
    status, body = get(base, "/healthz")
    assert "worker 1" in one_line(body) and "not alive" in body, body
    # Readiness is another question: the listeners still accept.
    assert get(base, "/readyz")[0] == 200
    trigger.unlink()
    wait_for(lambda: get(base, "/healthz")[0] == 200, timeout=20, interval=0.2,
             what="/healthz to say 200 again")


def test_readyz_503_before_listening_then_200(engine, tmp_path):
    """Start-up held just before the port file (the metrics endpoint is
    already up): not ready; once start-up ends: ready."""
    hold = tmp_path / "hold"
    hold.touch()
    port_file = tmp_path / "port"
    log = tmp_path / "log"
    cmd = [ECHOSRV, "--listen", "127.0.0.1:0", "--port-file", str(port_file),
           "--metrics", "127.0.0.1:0", "--engine", engine]
    cmd = os.environ.get("ECHOSRV_WRAPPER", "").split() + cmd
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=out, env=stall_env(STALL_START=hold))
    try:
        class Log:
            def stderr(self):
                return log.read_text(errors="replace")
        base = base_of(Log())
        status, body = get(base, "/readyz")
        assert status == 503 and "starting" in one_line(body), body
        assert metric(scrape(base + "/metrics")[2], "echosrv_accepting") == 0
        assert get(base, "/healthz")[0] == 200
        hold.unlink()
        wait_for(lambda: port_file.exists(), what="the port file")
        status, body = get(base, "/readyz")
        assert status == 200 and one_line(body).startswith("ready"), body
        assert metric(scrape(base + "/metrics")[2], "echosrv_accepting") == 1
    finally:
        if hold.exists():
            hold.unlink()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text(errors="replace")[-3000:]


def test_readyz_503_while_draining(start_server, engine):
    srv = start_server("--metrics", "127.0.0.1:0", "--drain-timeout", "60", engine=engine)
    base = base_of(srv)
    assert get(base, "/readyz")[0] == 200
    held = srv.connect()
    held.sendall(b"x")
    assert held.recv(1) == b"x"
    srv.signal(signal.SIGTERM)
    wait_for(lambda: get(base, "/readyz")[0] == 503, what="/readyz to say 503")
    status, body = get(base, "/readyz")
    assert "draining" in one_line(body)
    assert get(base, "/healthz")[0] == 200    # draining is not dead
    assert metric(scrape(base + "/metrics")[2], "echosrv_accepting") == 0
    held.close()
    assert srv.wait(timeout=30) == 0


def _low_nofile(n):
    import resource

    def pre():
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    return pre


def _ask(sock, path):
    """Send one GET on an open connection; (status, body) (the endpoint
    answers with Connection: close)."""
    sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
    data = b""
    while True:
        part = sock.recv(65536)
        if not part:
            break
        data += part
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def test_readyz_503_while_accepting_is_paused(start_server, engine):
    """Out of descriptors, accepting pauses: not ready.  A new probe
    connection could not be accepted then either, so the probes ride on
    connections opened before the descriptors ran out (the endpoint keeps
    a silent one for a few seconds)."""
    srv = start_server("--metrics", "127.0.0.1:0", "--max-conns", "1000", "--backlog", "512",
                       engine=engine, preexec=_low_nofile(64))
    host, port = metrics_url(srv).split("/")[2].rsplit(":", 1)
    probes = [socket.create_connection((host, int(port)), timeout=10) for _ in range(3)]
    # Accepts are in order: an answer on a later connection means these
    # were accepted (they hold their descriptors) before we go on.
    last = socket.create_connection((host, int(port)), timeout=10)
    assert _ask(last, "/readyz")[0] == 200
    last.close()
    socks = [srv.connect() for _ in range(100)]
    wait_for(lambda: srv.stderr().count("pausing accepts") >= 2, what="EMFILE pauses")
    answers = [_ask(probes[0], "/readyz"), _ask(probes[1], "/readyz")]
    # It may have resumed for a moment, found none and paused again.
    assert any(st == 503 and "out of descriptors" in one_line(body) for st, body in answers), \
        answers
    status, text = _ask(probes[2], "/metrics")
    assert status == 200 and metric(text, "echosrv_accept_paused_total") >= 1
    for s in probes + socks:
        s.close()
    base = base_of(srv)
    wait_for(lambda: _ok(base), timeout=30, interval=0.2, what="/readyz to say 200 again")
def _ok(base):
    try:
        return get(base, "/readyz", timeout=3)[0] == 200
    except OSError:
        return False
