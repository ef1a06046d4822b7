# SPDX-License-Identifier: GPL-2.0-only
"""echosrv-bench against a hostile or careless user: options that would be
misread rather than refused, and JSON that must stay valid and honest
whatever the options held.  Each case ends with a clear exit status: 2 for
bad usage, 3 for what cannot be set up, before any load is sent."""
import json
import os
import subprocess
import sys

import pytest

from test_bench import BENCH, SHORT, bench
from test_bench_report import addr


def run_bytes(*args, timeout=30):
    """Runs echosrv-bench --json with byte arguments; the JSON is parsed
    strictly (UTF-8, no duplicate keys), as a consumer would."""
    r = subprocess.run([BENCH, "--json"] + list(args), capture_output=True,
                       timeout=timeout)

    def no_dupes(pairs):
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), "duplicate JSON keys: %s" % keys
        return dict(pairs)

    out = None
    if r.stdout.strip():
        out = json.loads(r.stdout.decode("utf-8"), object_pairs_hook=no_dupes)
    return r.returncode, out, r.stderr.decode(errors="replace")


@pytest.mark.parametrize("args", [
    # 2^54 + 5 kibi: the shift wrapped it to 5120 connections.
    ["-c", "18014398509481989k"], ["-s", "17179869185G"],
    # 9.99 and 99.9 are both "p999" in the JSON, 1.5 and 15 both "p15".
    ["--percentiles", "9.99,99.9"], ["--percentiles", "1.5,15"],
    # %g keeps 6 digits: both were reported as p100.
    ["--percentiles", "99.999999,99.9999999"],
    # --cpu figures are keyed by number: one key twice.
    # A list past 255 characters was cut short: CPU 000...01 became CPU 0.
    ["--cpu", "0,0"], ["--cpu", "0" * 299 + "1"],
    # Churn sends --lifetime messages: a larger window was never used, but
    # the JSON said "pipeline": 4.
    ["--connect-rate", "10", "-p", "4"], ["--connect-rate", "10", "-p", "4", "--lifetime", "3"],
])
def test_misreadable_options_are_refused(args):
    # Port 1 has no listener: a run that got past the options fails with 3.
    rc, out, err = bench("-a", "127.0.0.1:1", *args, timeout=10)
    assert rc == 2 and "echosrv-bench: " in err, err


def test_distinct_percentiles_keep_distinct_keys(start_server):
    srv = start_server()
    rc, out, err = run_bytes("-a", addr(srv), "--percentiles", "0.5,5,50,99.95", *SHORT)
    assert rc == 0, err
    assert list(out["latency_us"])[:4] == ["p05", "p5", "p50", "p9995"]


def test_json_is_valid_whatever_the_bytes(start_server, tmp_path):
    srv = start_server()
    hist = os.path.join(os.fsencode(tmp_path), b"lat\xff\xfe.csv")
    rc, out, err = run_bytes("-a", addr(srv), "--placement", b"ns\xff\xc0\x80",
                             "--histogram", hist, *SHORT)
    assert rc == 0, err
    assert out["placement"] == "ns\ufffd\ufffd\ufffd"
    assert out["options"]["histogram"].endswith("lat\ufffd\ufffd.csv")
    assert os.path.exists(hist)
    # Well-formed UTF-8 passes through as it is.
    rc, out, err = run_bytes("-a", addr(srv), "--placement", "netns-\u00e9\u20ac", *SHORT)
    assert rc == 0 and out["placement"] == "netns-\u00e9\u20ac", err


@pytest.mark.parametrize("where", ["dir", "missing"])
def test_histogram_unwritable_fails_before_the_load(start_server, tmp_path, where):
    """A long run must not be spent before the file is found unwritable."""
    srv = start_server()
    path = str(tmp_path) if where == "dir" else str(tmp_path / "no" / "x.csv")
    rc, out, err = bench("-a", addr(srv), "--histogram", path, "-d", "60", timeout=20)
    assert rc == 3 and "--histogram" in err and out is None, err


@pytest.mark.parametrize("churn", [[], ["--connect-rate", "50"]])
def test_bind_not_here_is_a_setup_failure_in_every_mode(start_server, churn):
    """Churn used to count it as one failed connect per attempt, exit 1."""
    srv = start_server()
    rc, out, err = bench("-a", addr(srv), "--bind", "127.0.0.1,198.18.0.9",
                         "-d", "30", *churn, timeout=20)
    assert rc == 3 and "--bind 198.18.0.9" in err and out is None, err


# A "server" whose child burns CPU, then exits unreaped (SIGCHLD ignored):
# its time leaves the process tree with it, inside the measured window.
LOSES_A_CHILD = """
import os, signal, sys, time
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
end = time.monotonic() + float(sys.argv[1])
if os.fork() == 0:
    while time.monotonic() < end:
        pass
    os._exit(0)
print("ready", flush=True)
time.sleep(60)
"""


def test_server_cpu_that_goes_down_is_not_reported(start_server):
    """It was reported as a wrapped difference: some 1e13 us per message."""
    srv = start_server()
    p = subprocess.Popen([sys.executable, "-c", LOSES_A_CHILD, "2.0"],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        rc, out, err = bench("-a", addr(srv), "--server-pid", str(p.pid),
                             "-w", "1.0", "-d", "2.5", timeout=60)
    finally:
        p.kill()
        p.wait()
    assert rc == 0, err
    assert "server_cpu_us_per_message" not in out, out["server_cpu_us_per_message"]
    assert "went down" in err
