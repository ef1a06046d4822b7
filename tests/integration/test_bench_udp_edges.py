# SPDX-License-Identifier: GPL-2.0-only
"""echosrv-bench --udp and make bench's UDP cells at their edges: a server
that goes away in the middle of a run, and what a hostile reviewer found
besides.  Counts only, never figures."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

import pytest

from conftest import BUILD, ROOT, wait_for
from netns import SERVER_IP, netns  # noqa: F401 (a fixture)
from test_bench_run import start
from test_bench_udp import BENCH, BROKEN, SCALE, Proc

sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.dont_write_bytecode = True
import udp              # noqa: E402


@pytest.fixture
def helper(tmp_path):
    pf = str(tmp_path / "ok.port")

    def read(_):
        return lambda: open(pf).read().strip() if os.path.exists(pf) else None
    p = Proc([sys.executable, BROKEN, "--mode", "ok", "--port-file", pf], read)
    yield p
    if p.proc.poll() is None:
        p.stop()


def test_server_dying_mid_run_fails_the_run(helper):
    # The server echoes for a while, then is gone: what follows is answered
    # port unreachable.  The datagrams echoed before are no server's figure
    # for the run, and a run that loses its server must not pass.
    killer = threading.Timer(1.0 * SCALE, helper.stop)
    killer.start()
    try:
        r = subprocess.run([BENCH, "--udp", "-a", helper.addr, "--json", "-w", "0",
                            "-d", "%g" % (3 * SCALE), "--give-up", "0.2"],
                           capture_output=True, text=True, timeout=120 * SCALE)
    finally:
        killer.cancel()
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    out = json.loads(r.stdout)
    assert out["echoed"] > 0 and out["refused"] > 0 and out["failed"] is True, out
    assert "port unreachable" in udp.failure(r.returncode, out, r.stderr)


def test_refused_is_a_failure_reason():
    ok = {"corrupted": 0, "duplicated": 0, "echoed": 5, "refused": 0,
          "corrupted_kinds": {"size": 0, "source": 0, "bytes": 0}}
    assert udp.failure(0, ok, "") is None
    assert udp.failure(1, dict(ok, refused=3), "") == \
        "3 port unreachable (the server went away)"


def test_gso_send_that_cannot_go_says_why(netns):
    # On the veth pair (MTU 1500) two 1,480-byte datagrams in one send are
    # refused by the kernel (a segment does not fit the MTU), on
    # every try (EMSGSIZE or EINVAL).  The run must stop and say so, not spin for its whole
    # duration and report "nothing echoed" with nothing sent.
    r = subprocess.run(netns.client_wrapper() + [
        BENCH, "--udp", "-a", "%s:7" % SERVER_IP, "-s", "1480", "--gso", "2", "-w", "0",
        "-d", "0.5", "--give-up", "0.2", "--json"], capture_output=True, text=True,
        timeout=60 * SCALE)
    assert r.returncode == 3 and r.stdout == "", (r.returncode, r.stdout, r.stderr)
    assert "UDP send to %s:7: " % SERVER_IP in r.stderr and "MTU" in r.stderr, r.stderr


@pytest.mark.parametrize("env", [
    {"BENCH_ENGINES": "epol"}, {"BENCH_ENGINES": "epoll,epoll"},
    {"BENCH_PARTS": "udp,udp"}, {"BENCH_PEERS": "socat,socat"},
])
def test_name_lists_are_checked_before_anything_starts(tmp_path, env):
    """A misspelt engine ran the matrix without any echosrv and exited 0; a
    name given twice started two servers under one name, whose rounds the
    table then mixed.  Both: one line naming the setting, exit status 2."""
    p = start(tmp_path, **dict({"BENCH_PEERS": "none", "BENCH_PLACEMENT": "loopback"}, **env))
    out, _ = p.communicate(timeout=120 * SCALE)
    (name,) = env
    assert p.returncode == 2, out
    assert "Traceback" not in out and ("bench: %s: " % name) in out, out
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize("name", ["BENCH_PARTS", "BENCH_PEERS"])
def test_empty_name_list_is_the_default(monkeypatch, name):
    # As for every other BENCH_* setting: empty is unset.  An empty
    # BENCH_PEERS was no peers in a run still taken as the standard one
    # (it refreshed bench/latest.md), and an empty BENCH_PARTS was refused.
    import run as bench_run
    monkeypatch.setenv(name, "")
    m = bench_run.settings()
    assert m["parts"] == ["tcp", "udp"] and m["peers"] == bench_run.peers.PEERS
    assert m["standard"]


def test_a_baseline_at_zero_per_second_is_no_divisor():
    # echoed_per_second has one decimal: a baseline that echoed a few
    # datagrams in a long cell passes with 0.0/s.  The report divided by it.
    import report
    from test_bench_run_udp import fake
    runs = [fake("baseline", "baseline", dgrams=0.0), fake("epoll", dgrams=2000.0)]
    md = "\n".join(udp.section({"settings": {"placement": "netns"}}, runs, report))
    assert "| 64 | 64 | 4 | epoll | 2k |" in md
    assert "epoll -" in md


def test_give_up_reaches_the_udp_cells(tmp_path):
    # BENCH_GIVE_UP was applied to the TCP cells only: the UDP cells kept
    # their own, and a slow machine's late datagrams were counted lost
    # whatever the operator set.
    p = start(tmp_path, BENCH_PARTS="udp", BENCH_PLACEMENT="loopback", BENCH_PEERS="none",
              BENCH_GIVE_UP="0.7")
    out, _ = p.communicate(timeout=300 * SCALE)
    (d,) = os.listdir(str(tmp_path))
    with open(os.path.join(str(tmp_path), d, "results.json")) as f:
        data = json.load(f)
    runs = [r for r in data["runs"] if r["part"] == "udp"]
    assert runs and all("--give-up 0.7 " in r["command"] for r in runs), out
    assert data["meta"]["udp"]["give_up"] == 0.7


def test_v4_mapped_address_has_ipv4s_size_limit():
    # [::ffff:127.0.0.1] is an IPv4 path: 65,527 bytes (IPv6's limit) were
    # accepted and every send failed with EMSGSIZE.  Now bad usage, before
    # anything is sent.
    r = subprocess.run([BENCH, "--udp", "-a", "[::ffff:127.0.0.1]:9", "-s", "65527"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "sends 28 to 65507 bytes" in r.stderr, (r.returncode,
                                                                          r.stderr)


def ours(tmp_path):
    """Pids of the processes whose command line names tmp_path."""
    out = []
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if str(tmp_path).encode() in f.read():
                    out.append(int(pid))
        except (OSError, ValueError):
            pass
    return out


@pytest.mark.skipif(not shutil.which("haproxy"), reason="needs haproxy (scripts/deps.sh)")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_proxy_bench_stopped_leaves_no_server(sig):
    # bench/proxy.py under SIGTERM died at once, its finally: unrun, and
    # left echosrv and haproxy running.  A short TMPDIR: haproxy's stats
    # socket path must fit a UNIX socket address.
    tmp_path = tempfile.mkdtemp(prefix="ebp", dir="/tmp")
    env = dict(os.environ, TMPDIR=str(tmp_path), ECHOSRV_BUILD=BUILD)
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, "bench", "proxy.py"),
                          "--engines", "epoll", "--rounds", "1", "--secs", "5"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(ours(tmp_path)) >= 2 or p.poll() is not None, timeout=60,
                 what="echosrv and haproxy to start")
        assert p.poll() is None, p.communicate()
        p.send_signal(sig)
        out, err = p.communicate(timeout=120 * SCALE)
        assert p.returncode == 1 and "interrupted" in err, (p.returncode, out, err)
        left = ours(tmp_path)
        assert left == [], [open("/proc/%d/cmdline" % x).read() for x in left]
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        for pid in ours(tmp_path):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(tmp_path, ignore_errors=True)
