# SPDX-License-Identifier: GPL-2.0-only
"""The io_uring engine at its edges (issue 10): the --conn-buffer bound on the
path kernels before 6.17 take (ECHOSRV_URING_NO_LIMIT=1 forces it here),
memory given back after a load, no leak on a forced stop or a failed start,
environment knobs checked at start, and the probe with /proc/sys hidden.

Held bytes are read from the server itself: `echosrvctl conns` gives each
connection's held_max_bytes, the most unsent bytes it ever held in user
space at once."""
import json
import os
import shutil
import socket
import subprocess
import time

import pytest

from conftest import BUILD, ECHOSRV, available_engines, echo_roundtrip, read_to_eof, wait_for
from ops_common import ctl

needs_uring = pytest.mark.skipif(
    "io_uring" not in available_engines(),
    reason="io_uring is not under test: not available here, or left out by ECHOSRV_ENGINES")

SANITIZED = "san-" in os.environ.get("ECHOSRV_BUILD", "")


def _uring_env(no_limit=True, **extra):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("ECHOSRV_URING_"):
            del env[k]      # a benchmark setting must not leak in
    if no_limit:
        env["ECHOSRV_URING_NO_LIMIT"] = "1"
    env.update(extra)
    return env


def _peers(srv, n):
    """n connections with small client buffers (so that the kernel, not
    the test, holds little), none of them reading."""
    out = []
    for _ in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 << 10)
        s.settimeout(10)
        s.connect((srv.host, srv.port))
        s.setblocking(False)
        out.append(s)
    return out


def _write_until_blocked(socks, limit, quiet_rounds=15, max_rounds=2000):
    """Write on every socket without reading, at most limit bytes each,
    until no socket took a byte for quiet_rounds rounds; bytes written."""
    chunk = b"h" * 65536
    total = [0] * len(socks)
    quiet = 0
    for _ in range(max_rounds):
        if quiet >= quiet_rounds:
            break
        moved = False
        for i, s in enumerate(socks):
            try:
                while total[i] < limit:
                    total[i] += s.send(chunk[:limit - total[i]])
                    moved = True
            except BlockingIOError:
                pass
        quiet = 0 if moved else quiet + 1
        time.sleep(0.05)
    return total


def _conns(ctl_path):
    return json.loads(ctl(ctl_path, "conns", "--json").stdout)["connections"]


def _read_back(socks, written):
    for s, n in zip(socks, written):
        s.setblocking(True)
        s.settimeout(30)
        s.shutdown(socket.SHUT_WR)
        got = read_to_eof(s)
        assert len(got) == n and got == b"h" * n, (len(got), n)
        s.close()


@needs_uring
@pytest.mark.parametrize("cap,kib", [("4k", 4), ("64k", 64)])
def test_pre_6_17_never_reading_peers_hold_at_most_conn_buffer(start_server, tmp_path, cap, kib):
    """Hundreds of peers that write and never read, on the receive path
    kernels before 6.17 take: no connection ever held more than
    --conn-buffer unsent bytes (the server's high-water mark of each), and
    once the peers read, every byte comes back."""
    ctl_path = str(tmp_path / "ctl")
    srv = start_server("--conn-buffer", cap, "--ctl", ctl_path, "--trace", "0x3",
                       engine="io_uring",
                       env=_uring_env())
    srv.wait_log("single-shot, sized to the room")
    n = 300
    socks = _peers(srv, n)
    written = _write_until_blocked(socks, limit=kib * 1024 * 24)
    conns = _conns(ctl_path)
    assert len(conns) == n
    held = sorted(c["held_max_bytes"] for c in conns)
    assert held[-1] <= kib * 1024, "held max %d > %d (median %d)" % (
        held[-1], kib * 1024, held[n // 2])
    assert held[n // 2] > 0     # they did hold data
    _read_back(socks, written)


@pytest.mark.parametrize("cap", ["4k", "64k"])
def test_never_reading_peers_hold_at_most_conn_buffer(start_server, tmp_path, engine, cap):
    """The same bound on every engine's default path (the multishot byte
    limit for io_uring on this kernel)."""
    kib = int(cap[:-1])
    ctl_path = str(tmp_path / "ctl")
    srv = start_server("--conn-buffer", cap, "--ctl", ctl_path, engine=engine,
                       env=_uring_env(no_limit=False))
    socks = _peers(srv, 100)
    written = _write_until_blocked(socks, limit=kib * 1024 * 24)
    held = [c["held_max_bytes"] for c in _conns(ctl_path)]
    assert max(held) <= kib * 1024, held
    _read_back(socks, written)


# --- environment knobs -------------------------------------------------------

BAD_KNOBS = [
    ("ECHOSRV_URING_SPIN_US", "-1"),        # used to wrap: a spin forever
    ("ECHOSRV_URING_SPIN_US", "1000001"),
    ("ECHOSRV_URING_SPIN_US", "5ms"),
    ("ECHOSRV_URING_SPIN_US", ""),
    ("ECHOSRV_URING_SPLICE", "off"),
    ("ECHOSRV_URING_SPLICE", "2"),
    ("ECHOSRV_URING_BUFS", "0"),
    ("ECHOSRV_URING_BUFS", "8x10"),
    ("ECHOSRV_URING_BUFS", "8x1024x2"),
    ("ECHOSRV_URING_BUFS", "99999"),
    ("ECHOSRV_URING_BUFS", "-8"),
    ("ECHOSRV_URING_DIRECT", "yes"),
    ("ECHOSRV_URING_DIRECT", "2"),
    ("ECHOSRV_URING_NO_LIMIT", "true"),
    ("ECHOSRV_URING_NO_LIMIT", " 1"),
]


@pytest.mark.parametrize("name,value", BAD_KNOBS)
@pytest.mark.parametrize("how", ["check", "start", "epoll"])
def test_bad_knob_is_a_configuration_error(tmp_path, name, value, how):
    """A knob set to something it does not mean: exit 2 with one line naming
    it, under --check and at a real start, whatever the engine."""
    args = [ECHOSRV, "--listen", "127.0.0.1:0", "--port-file", str(tmp_path / "port")]
    args += {"check": ["--check"], "start": [], "epoll": ["--engine", "epoll"]}[how]
    r = subprocess.run(args, env=_uring_env(no_limit=False, **{name: value}),
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 2, r
    assert r.stderr.count("\n") == 1 and "%s=%s:" % (name, value) in r.stderr, r.stderr
    assert not os.path.exists(tmp_path / "port")


@pytest.mark.parametrize("name,value", [
    ("ECHOSRV_URING_SPIN_US", "0"), ("ECHOSRV_URING_SPIN_US", "1000000"),
    ("ECHOSRV_URING_SPLICE", "0"), ("ECHOSRV_URING_BUFS", "8"),
    ("ECHOSRV_URING_BUFS", "8x1024"), ("ECHOSRV_URING_DIRECT", "0"),
    ("ECHOSRV_URING_NO_LIMIT", "0"), ("ECHOSRV_URING_NO_LIMIT", "1")])
def test_good_knob_is_accepted(name, value):
    r = subprocess.run([ECHOSRV, "--check"], env=_uring_env(no_limit=False, **{name: value}),
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r


# --- leaks -------------------------------------------------------------------

FAIL_MMAP = os.path.join(BUILD, "helpers", "fail_mmap")


@needs_uring
@pytest.mark.skipif(not os.path.exists(FAIL_MMAP), reason="build/helpers/fail_mmap not built")
def test_failed_engine_start_unwinds(tmp_path):
    """The ring is set up, then the buffer pool cannot be mapped (an odd
    pool size, and only a mapping of exactly that size fails): the start
    fails with exit 1 and the reason, and (sanitizer builds) nothing the
    engine set up is left behind."""
    bufs_len = 1024 * 4160       # COUNT rounds up to a power of two
    env = _uring_env(no_limit=False, ECHOSRV_URING_BUFS="1000x4160")
    r = subprocess.run([FAIL_MMAP, str(bufs_len), ECHOSRV, "--engine", "io_uring",
                        "--listen", "127.0.0.1:0", "--port-file", str(tmp_path / "port"),
                        "--workers", "2"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r
    assert "io_uring buffer ring: Cannot allocate memory" in r.stderr, r.stderr
    assert "cannot start workers" in r.stderr, r.stderr
    assert "Sanitizer" not in r.stderr, r.stderr[-3000:]


@needs_uring
@pytest.mark.parametrize("no_limit", [True, False])
def test_stop_with_slow_readers_frees_everything(start_server, tmp_path, no_limit):
    """Peers that read slowly (so their connections hold data in private
    copies and spills), then `echosrvctl stop`: the server exits 0 (a
    sanitizer build exits non-zero on a leak)."""
    ctl_path = str(tmp_path / "ctl")
    srv = start_server("--conn-buffer", "4k", "--ctl", ctl_path, engine="io_uring",
                       env=_uring_env(no_limit=no_limit))
    socks = _peers(srv, 40)
    for _ in range(6):
        _write_until_blocked(socks, limit=1 << 20, quiet_rounds=3)
        for s in socks:     # a little, so that sends move and receives resume
            try:
                s.recv(3000)
            except BlockingIOError:
                pass
    assert any(c["bytes_received"] > c["bytes_sent"] for c in _conns(ctl_path))
    ctl(ctl_path, "stop")
    assert srv.wait(timeout=30) == 0, srv.stderr()[-3000:]
    assert "Sanitizer" not in srv.stderr(), srv.stderr()[-3000:]
    for s in socks:
        s.close()


# --- memory back after a load ------------------------------------------------

def _bulk_client(addr, rounds=4, size=1 << 20):
    s = socket.create_connection(addr, timeout=30)
    data = os.urandom(size)
    try:
        for _ in range(rounds):
            assert echo_roundtrip(s, data) == data
    finally:
        s.close()


@needs_uring
@pytest.mark.plain
@pytest.mark.skipif(SANITIZED, reason="a sanitizer's allocator and shadow memory keep freed "
                    "pages resident: RSS says nothing about echosrv there")
@pytest.mark.parametrize("no_limit", [False, True])
def test_memory_goes_back_after_a_load(start_server, no_limit):
    """Hundreds of never-reading peers (a private copy each) and bulk
    clients (the buffer pool grows), then every connection closes: within
    the release periods (a few seconds) the server's RSS is back near where
    it started."""
    import concurrent.futures
    srv = start_server("--conn-buffer", "64k", engine="io_uring",
                       env=_uring_env(no_limit=no_limit))
    rss0 = srv.rss_kib()
    socks = _peers(srv, 300)
    _write_until_blocked(socks, limit=1 << 20, quiet_rounds=5)
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as ex:
        for f in [ex.submit(_bulk_client, (srv.host, srv.port)) for _ in range(20)]:
            f.result(timeout=120)
    peak = srv.rss_kib()
    assert peak - rss0 > 8 << 10, "the load did not grow RSS (%d -> %d KiB)" % (rss0, peak)
    for s in socks:
        s.close()
    seen = []

    def back():
        seen.append(srv.rss_kib())
        return seen[-1] <= rss0 + (4 << 10)
    try:
        wait_for(back, timeout=40, interval=0.5, what="RSS back near its start")
    except AssertionError:
        raise AssertionError("RSS %d KiB at start, %d KiB at the peak, then %s KiB" % (
            rss0, peak, seen[::8] + seen[-1:]))
    s = srv.connect()     # and it still echoes, from fresh pages
    assert echo_roundtrip(s, b"after" * 20000) == b"after" * 20000
    s.close()


# --- the probe with /proc/sys hidden ------------------------------------------

# systemd's ProcSubset=pid, as the shipped unit has it: /proc/sys is empty.
HIDE_PROC_SYS = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                 'mount -t tmpfs none /proc/sys && exec "$@"', "sh"]
needs_root_unshare = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare"),
    reason="hiding /proc/sys needs root and unshare(1)")


@needs_uring
@needs_root_unshare
def test_auto_picks_io_uring_with_proc_sys_hidden(start_server):
    """With /proc/sys hidden the probe still decides by trying io_uring:
    auto picks it, and it echoes."""
    srv = start_server(wrapper=HIDE_PROC_SYS, env=_uring_env(no_limit=False))
    srv.wait_log("engine io_uring")
    assert "not available" not in srv.stderr()
    s = srv.connect()
    data = os.urandom(300000)
    assert echo_roundtrip(s, data) == data
    s.close()


@needs_root_unshare
@pytest.mark.skipif(not os.path.exists(os.path.join(BUILD, "helpers", "no_uring")),
                    reason="build/helpers/no_uring not built")
def test_refused_io_uring_with_proc_sys_hidden_says_so(start_server):
    """io_uring refused and the sysctl unreadable: the fallback line says
    the sysctl could not be read instead of guessing."""
    srv = start_server(wrapper=HIDE_PROC_SYS + [os.path.join(BUILD, "helpers", "no_uring")],
                       env=_uring_env(no_limit=False))
    log = srv.stderr()
    assert "engine epoll" in log and "io_uring_disabled unreadable" in log, log
