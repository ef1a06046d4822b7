# SPDX-License-Identifier: GPL-2.0-only
"""The operator's path at start-up (issue 11): --check refuses what a start
would refuse, in the same words; start-up failures reach `journalctl -p err`;
expected events (rejections) do not; the messages say what to do (ports
below 1024, sockmap capabilities, the metrics address); -V tells what this
build can do here."""
import os
import re
import signal
import socket
import stat
import subprocess
import tempfile

import pytest

from conftest import BUILD, ECHOSRV, available_engines, connect_or_none, wait_for
from ops_common import NotifySocket, scrape

NOBODY = 65534


def run(args, timeout=30, **kw):
    return subprocess.run([ECHOSRV] + list(args), capture_output=True, text=True,
                          timeout=timeout, **kw)


def as_nobody():
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def _cases(tmp):
    long_ctl = os.path.join(tmp, "c" * 120)
    return [
        (["--ctl", long_ctl], "--ctl %s: path longer than 107 bytes" % long_ctl),
        (["--ctl", "/nonexistent-dir/ctl"],
         "--ctl /nonexistent-dir/ctl: directory /nonexistent-dir does not exist"),
        (["--trace-file", "/nonexistent-dir/log"],
         "--trace-file /nonexistent-dir/log: directory /nonexistent-dir does not exist"),
        (["--port-file", "/nonexistent-dir/port"],
         "--port-file /nonexistent-dir/port: directory /nonexistent-dir does not exist"),
        (["--port-file", "/etc/passwd/port"], "--port-file /etc/passwd/port: /etc/passwd is "
         "not a directory"),
    ]


@pytest.mark.parametrize("case", range(5))
def test_check_refuses_what_start_refuses(tmp_path, case):
    args, msg = _cases(str(tmp_path))[case]
    base = ["--listen", "127.0.0.1:0"]
    r = run(base + args + ["--check"])
    assert r.returncode == 2, r
    assert r.stderr == "echosrv: %s\n" % msg, r.stderr
    # A start says the same, exits 1 and never listened: a wrapper waiting
    # for the port file learns at once instead of hanging.
    pf = tmp_path / "pf"
    extra = [] if "--port-file" in args else ["--port-file", str(pf)]
    r = run(base + args + extra)
    assert r.returncode == 1, r
    assert r.stderr == "echosrv: %s\n" % msg, r.stderr
    assert not pf.exists()


def test_check_refuses_conflicting_listeners():
    r = run(["--listen", "127.0.0.1:4999", "--listen", "0.0.0.0:4999", "--check"])
    assert r.returncode == 2
    assert "127.0.0.1:4999 and 0.0.0.0:4999 overlap" in r.stderr, r.stderr


def test_check_refuses_unwritable_directories(tmp_path):
    """Root may write anywhere, so the server runs as nobody here."""
    top = tempfile.mkdtemp(prefix="echosrv-ro-")
    try:
        os.chmod(top, 0o755)             # nobody may enter, not create
        for opt in ("--ctl", "--port-file", "--trace-file"):
            path = os.path.join(top, "f")
            r = run(["--listen", "127.0.0.1:0", opt, path, "--check"], preexec_fn=as_nobody)
            assert r.returncode == 2, r
            assert r.stderr == "echosrv: %s %s: cannot create files in %s: Permission denied\n" \
                % (opt, path, top), r.stderr
        # An existing trace file that nobody may write is refused too, and
        # one it may write is fine although the directory is not writable.
        log = os.path.join(top, "log")
        open(log, "w").close()
        r = run(["--trace-file", log, "--check"], preexec_fn=as_nobody)
        assert r.returncode == 2 and "cannot write it: Permission denied" in r.stderr, r.stderr
        os.chmod(log, 0o666)
        r = run(["--trace-file", log, "--check"], preexec_fn=as_nobody)
        assert r.returncode == 0, r.stderr
    finally:
        for f in os.listdir(top):
            os.unlink(os.path.join(top, f))
        os.rmdir(top)


def test_check_names_the_engine_auto_picks():
    r = run(["--check"])
    assert r.returncode == 0
    if "io_uring" in available_engines():
        assert r.stdout == "echosrv: configuration OK (engine io_uring, chosen by --engine auto)\n"
    r = run(["--check", "--engine", "epoll"])
    assert r.stdout == "echosrv: configuration OK (engine epoll)\n"


def test_check_says_why_auto_falls_back():
    no_uring = os.path.join(BUILD, "helpers", "no_uring")
    if not os.path.exists(no_uring):
        pytest.skip("tests/helpers/no_uring not built (make integration builds it)")
    r = subprocess.run([no_uring, ECHOSRV, "--check"], capture_output=True, text=True,
                       timeout=30, env=dict(os.environ, NO_URING_ERRNO="EPERM"))
    assert r.returncode == 0, r
    assert r.stdout.startswith("echosrv: configuration OK (engine epoll: io_uring is not "
                               "available ("), r.stdout
    assert "Operation not permitted" in r.stdout and "using epoll" in r.stdout


# --- priorities under journald ------------------------------------------------

def _journal_env(path):
    st = os.stat(path)
    return dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))


def _run_to_journal(tmp_path, args):
    """echosrv ARGS with stderr on a file that JOURNAL_STREAM names."""
    log = tmp_path / "journal"
    log.touch()
    with open(log, "ab") as f:
        r = subprocess.run([ECHOSRV] + args, stdout=subprocess.DEVNULL, stderr=f,
                           env=_journal_env(log), timeout=30)
    return r.returncode, log.read_text()


def test_start_failures_carry_the_error_priority(tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    rc, text = _run_to_journal(tmp_path, ["--listen", "127.0.0.1:%d" % port])
    assert rc == 1
    assert text.startswith("<3>echosrv: cannot listen on 127.0.0.1:%d: Address already in use"
                           % port), text
    taken.close()
    rc, text = _run_to_journal(tmp_path, ["--bogus"])
    assert rc == 2
    assert text.splitlines()[-1] == "<3>echosrv: unknown option '--bogus' (see --help)", text
    rc, text = _run_to_journal(tmp_path, ["--port-file", "/nonexistent-dir/p", "--check"])
    assert rc == 2 and text.splitlines()[-1].startswith("<3>echosrv: --port-file"), text


def _rejections_to_journal(tmp_path, engine, args):
    """The journal lines of a server started with args, refusing one
    connection from 127.0.0.1 while one is open."""
    log = tmp_path / ("journal%d" % len(os.listdir(tmp_path)))
    log.touch()
    pf = tmp_path / ("pf%d" % len(os.listdir(tmp_path)))
    p = subprocess.Popen(
        ["sh", "-c", 'exec "$0" "$@" 2>>"%s"' % log, ECHOSRV, "--listen", "127.0.0.1:0",
         "--engine", engine, "--port-file", str(pf)] + args, env=_journal_env(log))
    try:
        wait_for(lambda: pf.exists() and pf.read_text().strip(), what="port file")
        port = int(pf.read_text().split()[0].rsplit(":", 1)[1])
        keep = connect_or_none(("127.0.0.1", port))
        extra = connect_or_none(("127.0.0.1", port))
        wait_for(lambda: "rejected connection" in log.read_text(), what="the rejection line")
        for s in (keep, extra):
            if s:
                s.close()
    finally:
        p.terminate()
        assert p.wait(timeout=15) == 0
    return log.read_text().splitlines()


def test_rejections_are_not_errors(tmp_path, engine):
    """A limit reached is a warning (<4>), an ACL refusal a notice (<5>);
    neither shows in `journalctl -p err`."""
    lines = _rejections_to_journal(tmp_path, engine, ["--max-conns", "1"])
    limit = [l for l in lines if "rejected connection" in l]
    assert limit and all(l.startswith("<4>") and " WARNING " in l and "max-conns" in l
                         for l in limit), lines
    assert not [l for l in lines if l.startswith("<3>")], lines
    lines = _rejections_to_journal(tmp_path, engine, ["--deny", "127.0.0.0/8"])
    acl = [l for l in lines if "rejected connection" in l]
    assert acl and all(l.startswith("<5>") and " NOTICE " in l and l.endswith(": acl")
                       for l in acl), lines
    assert not [l for l in lines if l.startswith("<3>")], lines


# --- what the messages say ---------------------------------------------------

def test_low_port_permission_says_how(tmp_path):
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        if int(f.read()) <= 7:
            pytest.skip("this host lets anyone bind port 7")
    r = run(["--listen", "127.0.0.1:7"], preexec_fn=as_nobody)
    assert r.returncode == 1, r
    line = r.stderr.strip()
    assert line.startswith("echosrv: cannot listen on 127.0.0.1:7: Permission denied"), line
    for how in ("echosrv.socket with ListenStream=7", "CAP_NET_BIND_SERVICE",
                "net.ipv4.ip_unprivileged_port_start"):
        assert how in line, line


@pytest.mark.skipif("sockmap" not in available_engines(), reason="sockmap cannot run here")
@pytest.mark.parametrize("drop,missing", [
    ("-sys_admin,-bpf", "CAP_BPF"),
    ("-sys_admin,-perfmon", "CAP_PERFMON"),
    ("-net_admin", "CAP_NET_ADMIN"),
    ("-sys_admin,-bpf,-perfmon,-net_admin", "CAP_NET_ADMIN CAP_BPF CAP_PERFMON"),
])
def test_sockmap_names_the_missing_capability(drop, missing):
    r = subprocess.run(["setpriv", "--bounding-set", drop, "--inh-caps", drop, ECHOSRV,
                        "--engine", "sockmap", "--check"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2, r
    assert "this process lacks %s;" % missing in r.stderr, r.stderr


def test_metrics_bind_error_names_the_address():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    r = run(["--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:%d" % port])
    taken.close()
    assert r.returncode == 1
    assert "--metrics: cannot serve on 127.0.0.1:%d: Address already in use" % port in r.stderr


def test_no_libmicrohttpd_warning_at_start(start_server):
    srv = start_server("--metrics", "127.0.0.1:0", "--trace", "all")
    m = wait_for(lambda: re.search(r"metrics at (http://\S+)", srv.stderr()), what="metrics")
    assert scrape(m.group(1))[0] == 200
    assert "MHD_OPTION" not in srv.stderr() and "libmicrohttpd" not in srv.stderr(), srv.stderr()


def test_version_says_what_runs_here():
    r = run(["-V"])
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0].startswith("echosrv ")
    assert re.match(r"commit ([0-9a-f]{7,}|unknown)", lines[1]), lines
    assert lines[2].startswith("kernel Linux "), lines
    assert "engines in this build: epoll, io_uring, sockmap" in lines
    can = {}
    for l in lines:
        m = re.match(r"  (epoll|io_uring|sockmap) +(yes|no: .+)$", l)
        if m:
            can[m.group(1)] = m.group(2)
    assert set(can) == {"epoll", "io_uring", "sockmap"}, lines
    for e in available_engines():
        assert can[e] == "yes", (e, lines)
    assert re.search(r"^liburing [0-9][0-9.]*, libbpf [0-9v][0-9.]*$", r.stdout, re.M), r.stdout
    assert re.search(r"^libmicrohttpd [0-9][0-9.]*$", r.stdout, re.M), r.stdout


def test_stop_timeout_follows_the_drain_timeout(start_server, tmp_path):
    """STOPPING=1 comes with EXTEND_TIMEOUT_USEC for the drain plus 5 s, so
    a unit's TimeoutStopSec shorter than --drain-timeout cannot cut it."""
    ns = NotifySocket(tmp_path)
    srv = start_server("--drain-timeout", "7", env=dict(os.environ, NOTIFY_SOCKET=ns.path))
    ns.wait_for(lambda m: "READY=1" in m, "READY=1")
    srv.signal(signal.SIGTERM)
    ns.wait_for(lambda m: "STOPPING=1" in m and "EXTEND_TIMEOUT_USEC=12000000" in m,
                "STOPPING=1 with EXTEND_TIMEOUT_USEC")
    assert srv.wait() == 0
    ns.close()
