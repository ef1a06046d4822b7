# SPDX-License-Identifier: GPL-2.0-only
"""echosrv-bench: it must catch every way an echo can go wrong, and
pass a correct server.

The broken servers are tests/helpers/broken_echo.py, one fault per mode;
the correct ones are echosrv itself (every engine) and the benchmark's
baseline.  Runs are short (a fraction of a second) and only exit codes,
counts and messages are asserted, never speed.
"""
import json
import os
import resource
import shutil
import socket
import subprocess
import sys

import pytest

from conftest import BUILD, ROOT, wait_for
from ops_common import stats

BENCH = os.path.join(BUILD, "echosrv-bench")
BASELINE = os.path.join(BUILD, "bench-baseline")
BROKEN = os.path.join(ROOT, "tests", "helpers", "broken_echo.py")
SHORT = ["-d", "0.3", "-w", "0.1"]


def bench(*args, timeout=60, preexec=None):
    """Runs echosrv-bench --json; returns (exit code, parsed JSON or None, stderr)."""
    r = subprocess.run([BENCH, "--json"] + list(args), capture_output=True,
                       text=True, timeout=timeout, preexec_fn=preexec)
    out = json.loads(r.stdout) if r.stdout.strip() else None
    return r.returncode, out, r.stderr


class Helper:
    """A server process that writes HOST:PORT to a port file."""

    def __init__(self, tmp_path, cmd, name):
        self.port_file = str(tmp_path / (name + ".port"))
        self.proc = subprocess.Popen(cmd(self.port_file),
                                     stdout=subprocess.DEVNULL)
        self.addr = wait_for(self._addr, what=name + " to listen")

    def _addr(self):
        assert self.proc.poll() is None, "helper server exited"
        try:
            with open(self.port_file) as f:
                return f.read().strip() or None
        except FileNotFoundError:
            return None

    def stop(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def helper(tmp_path):
    started = []

    def start(cmd, name):
        h = Helper(tmp_path, cmd, name)
        started.append(h)
        return h

    yield start
    for h in started:
        h.stop()


def broken(helper, mode):
    return helper(lambda pf: [sys.executable, BROKEN, "--mode", mode, "--at",
                              "1000", "--port-file", pf], "broken-" + mode)


# mode -> what the report must show (JSON key, or error kind)
FAULTS = {
    "flip": ["mismatches"],
    "drop": ["mismatches", "missing"],
    "extra": ["mismatches", "extra"],
    "reorder": ["mismatches"],
    "close": ["early_close"],
    "reset": ["reset"],
    "stall": ["missing"],
}


@pytest.mark.parametrize("mode", sorted(FAULTS))
def test_broken_server_is_caught(helper, mode):
    srv = broken(helper, mode)
    # 4 KiB messages: the fault at byte 1000 (and 1128) is in the first one.
    rc, out, err = bench("-a", srv.addr, "-c", "3", "-s", "4096", *SHORT)
    assert rc == 1, err
    for what in FAULTS[mode]:
        got = out[what] if what in out else out["error_kinds"][what]
        assert got >= 1, "%s not reported: %s" % (what, out)
    assert out["errors"] + out["mismatches"] > 0
    assert "connection " in err        # a line saying which and where


def test_give_up_sets_how_long_the_drain_waits(helper):
    """--give-up: a server that stops echoing is given up on after that long
    without a byte (not the default 2 s), and the report says how long the
    drain's longest wait was: what tells a late echo from a lost one."""
    srv = broken(helper, "stall")
    rc, out, err = bench("-a", srv.addr, "-s", "4096", "--give-up", "0.3", *SHORT)
    assert rc == 1 and out["error_kinds"]["missing"] == 1, err
    assert "never came back" in err
    assert 0.3 <= out["drain_longest_wait_s"] <= out["drain_s"]


def test_drain_reports_its_longest_wait(start_server):
    srv = start_server()
    rc, out, err = bench("-a", "127.0.0.1:%d" % srv.port, "-c", "2", "--give-up", "30", *SHORT)
    assert rc == 0, err
    assert 0 <= out["drain_longest_wait_s"] <= out["drain_s"]


def test_flip_names_the_byte(helper):
    srv = broken(helper, "flip")
    rc, out, err = bench("-a", srv.addr, "-c", "1", "-s", "4096", *SHORT)
    assert rc == 1
    assert out["mismatches"] == 1 and out["errors"] == 0
    assert "byte 1000 of its stream" in err


def test_correct_python_server_passes(helper):
    srv = broken(helper, "ok")
    rc, out, err = bench("-a", srv.addr, "-c", "3", "-s", "4096", *SHORT)
    assert rc == 0, err
    assert out["errors"] == 0 and out["mismatches"] == 0
    assert out["messages"] > 0


def test_baseline_passes(helper):
    srv = helper(lambda pf: [BASELINE, "127.0.0.1:0", pf], "baseline")
    rc, out, err = bench("-a", srv.addr, "-c", "20", "-s", "20000", "-p", "4",
                         "--server-pid", str(srv.proc.pid), *SHORT)
    assert rc == 0, err
    assert out["mismatches"] == 0 and out["errors"] == 0
    assert "server_cpu_us_per_message" in out


@pytest.mark.workers
def test_echosrv_passes(start_server, engine):
    srv = start_server(engine=engine)
    rc, out, err = bench("-a", "127.0.0.1:%d" % srv.port, "-c", "50", "-s",
                         "1000", "-p", "4", "-t", "2",
                         "--server-pid", str(srv.proc.pid), *SHORT)
    assert rc == 0, err
    assert out["errors"] == 0 and out["mismatches"] == 0 and out["no_fin"] == 0
    assert out["messages"] > 0 and out["checked_bytes"] >= out["messages"] * 1000
    for k in ("p50", "p90", "p99", "p999", "max"):
        assert out["latency_us"][k] > 0
    assert out["server_cpu_us_per_message"] >= 0
    assert out["client_cpu_us_per_message"] > 0
    assert out["retransmits"] >= 0


def test_echosrv_ipv6_large_messages(start_server, engine):
    srv = start_server("--listen", "[::1]:0", engine=engine)
    rc, out, err = bench("-a", "[::1]:%d" % srv.port, "-c", "4", "-s", "65536",
                         "-p", "16", *SHORT)
    assert rc == 0, err
    assert out["messages"] > 0


def test_echosrv_open_loop(start_server, engine):
    srv = start_server(engine=engine)
    rc, out, err = bench("-a", "127.0.0.1:%d" % srv.port, "-c", "10",
                         "-r", "2000", *SHORT)
    assert rc == 0, err
    # Paced, not flat out: only messages due before the end exist at all
    # (0.4 s of warm-up and measurement at 2000/s), however fast the server.
    assert 0 < out["messages"] <= 2000 * 0.4 + 1


def test_echosrv_5000_connections(start_server, engine):
    srv = start_server(engine=engine)
    rc, out, err = bench("-a", "127.0.0.1:%d" % srv.port, "-c", "5000",
                         "-s", "64", *SHORT, timeout=90)
    assert rc == 0, err
    assert out["options"]["connections"] == 5000 and out["errors"] == 0


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_proxy_header_loads_a_proxy_listener(start_server, tmp_path, engine, version):
    """--proxy sends the connection's own addresses first: echosrv takes the
    bench as the client, serves every byte after the header, and counts
    each connection as proxied; without --proxy the same listener refuses."""
    srv = start_server("--proxy-listen", "127.0.0.1:0", "--proxy-listen", "[::1]:0",
                       "--proxy-from", "127.0.0.0/8", "--proxy-from", "::1/128",
                       "--ctl", str(tmp_path / "ctl"), engine=engine)
    addr = "127.0.0.1:%d" % srv.addrs[1][1]
    for a in (addr, "[::1]:%d" % srv.addrs[2][1]):
        rc, out, err = bench("-a", a, "--proxy", version, "-c", "3", "-s", "500", *SHORT)
        assert rc == 0, err
        assert out["errors"] == 0 and out["mismatches"] == 0 and out["messages"] > 0
        assert out["options"]["proxy"] == version
    rc, out, err = bench("-a", addr, "--proxy", version, "--connect-rate", "200",
                         "-c", "8", *SHORT)
    assert rc == 0 and out["churn"]["failed"] == 0, err
    st = stats(str(tmp_path / "ctl"))
    assert st["proxy_connections_total"] >= 6 + out["churn"]["attempts"]
    assert st["rejected"]["proxy_bad"] == 0
    rc, out, err = bench("-a", addr, "-c", "1", *SHORT)
    assert rc != 0          # no header: the proxy listener closes it
    wait_for(lambda: stats(str(tmp_path / "ctl"))["rejected"]["proxy_bad"] >= 1,
             what="the headerless connection refused")


def test_refused_is_a_clear_failure():
    with socket.socket() as s:                 # a port with no listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        rc, out, err = bench("-a", "127.0.0.1:%d" % port, "-c", "5", *SHORT,
                             timeout=30)
    assert rc == 3
    assert "Connection refused" in err and out is None


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="needs root and unshare for an empty network namespace")
def test_unreachable_is_a_clear_failure():
    # In a fresh network namespace there is no route at all, so connect()
    # fails at once and no packet is sent anywhere.
    r = subprocess.run(["unshare", "-n", BENCH, "-a", "198.18.0.1:40007", "-c", "2"]
                       + SHORT, capture_output=True, text=True, timeout=30)
    assert r.returncode == 3
    assert "Network is unreachable" in r.stderr


def test_out_of_descriptors_is_a_clear_failure(start_server):
    srv = start_server()

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    rc, out, err = bench("-a", "127.0.0.1:%d" % srv.port, "-c", "200", *SHORT,
                         preexec=low_limit, timeout=30)
    assert rc == 3
    assert "Too many open files" in err and "ulimit -n" in err


@pytest.mark.parametrize("args", [
    ["-c", "0"], ["-s", "x"], ["-a", "127.0.0.1"], ["-a", "::1:40007"],
    ["-r", "100", "-p", "2"], ["--server-pid", "999999999"], ["--bogus"],
    ["--give-up", "0"], ["--give-up", "x"], ["--proxy", "v3"], ["--proxy", ""],
])
def test_bad_usage(args):
    rc, out, err = bench(*args, timeout=10)
    assert rc == 2 and "echosrv-bench: " in err
