# SPDX-License-Identifier: GPL-2.0-only
"""Option values that were read wrongly or accepted by mistake:
each starts the real binary, which must exit 2 with one line naming the
option; and a --max-conns beyond the descriptor limit is warned about."""
import resource
import socket
import subprocess

import pytest

from conftest import ECHOSRV, assert_echoes, free_port


P = free_port()

USAGE_ERRORS = [
    (["--help=x"], "option '--help' takes no argument"),
    (["--version=1"], "option '--version' takes no argument"),
    (["--listen", "127.0.0.1: 80"], "--listen: missing or bad port ' 80'"),
    (["--listen", "[::1]: 80"], "--listen"),
    (["--metrics", "127.0.0.1: 80"], "--metrics"),
    (["--allow", "10.0.0.0/ 8"], "--allow: '10.0.0.0/ 8'"),
    (["--deny", "::/ 0"], "--deny"),
    (["--trace", ","], "--trace: empty item"),
    (["--trace", "error,"], "--trace: empty item"),
    (["--trace", "0x"], "--trace"),
    (["--trace", "017"], "--trace: '017' sets bits"),     # decimal 17, not octal 15
    (["--listen", "127.0.0.1:%d" % P, "--listen", "127.0.0.1:%d" % P],
     "--listen: 127.0.0.1:%d is given twice" % P),
    (["--listen", "[::]:%d" % P, "--listen", "0.0.0.0:%d" % P], "[::] is dual-stack"),
    (["--listen", "0.0.0.0:%d" % P, "--listen", "127.0.0.1:%d" % P], "overlap"),
]


@pytest.mark.parametrize("args,msg", USAGE_ERRORS, ids=[" ".join(a) for a, _ in USAGE_ERRORS])
def test_bad_value_exits_2_naming_the_option(args, msg):
    try:
        r = subprocess.run([ECHOSRV, *args], capture_output=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("echosrv started with %s" % args)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and msg in lines[0], err
    assert all(0x20 <= b < 0x7f for b in r.stderr.strip()), r.stderr   # no raw bytes
    assert "another process" not in err


def test_trace_010_is_decimal(start_server):
    srv = start_server("--trace", "010")
    srv.wait_log("trace 0xa (info,data)")


def _nofile(n):
    def pre():
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    return pre


def test_max_conns_beyond_the_descriptor_limit_warns(start_server):
    srv = start_server("--max-conns", "5000", preexec=_nofile(256))
    warn = [l for l in srv.stderr().splitlines() if "--max-conns 5000" in l]
    assert len(warn) == 1 and "RLIMIT_NOFILE 256" in warn[0] and "usable" in warn[0], \
        srv.stderr()
    assert_echoes(srv.connect())     # kept as given: it still serves
    for args in (["--max-conns", "100"], []):
        quiet = start_server(*args, preexec=_nofile(256))
        assert "descriptor limit allows" not in quiet.stderr()
