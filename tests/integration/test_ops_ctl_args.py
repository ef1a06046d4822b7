# SPDX-License-Identifier: GPL-2.0-only
"""echosrvctl with odd arguments (issue 11): an argument is one word, so an
empty one, or one with a blank or a control character in it, is bad usage
(exit 2, nothing sent) rather than re-split by the server into other words
(`trace ""` read the flags, `kill "1 0"` named a worker, a newline started
a second request); an empty --ctl is bad usage, and a --ctl path that is
not a socket is named as such."""
import os
import subprocess

import pytest

from conftest import ECHOSRV
from ops_common import ECHOSRVCTL


def run(*args):
    return subprocess.run([ECHOSRVCTL] + list(args), capture_output=True, text=True,
                          timeout=20)


@pytest.mark.parametrize("words,why", [
    (["trace", ""], "trace: argument 1 is empty"),
    (["trace", " "], "trace: argument 1 holds a blank or a control character"),
    (["trace", "0x1 0x2"], "trace: argument 1 holds a blank or a control character"),
    (["kill", ""], "kill: argument 1 is empty"),
    (["kill", "1 0"], "kill: argument 1 holds a blank or a control character"),
    (["kill", "1\nstop"], "kill: argument 1 holds a blank or a control character"),
    (["kill", "1", "\t0"], "kill: argument 2 holds a blank or a control character"),
    (["show", ""], "show: argument 1 is empty"),
    (["show", "config\r"], "show: argument 1 holds a blank or a control character"),
])
def test_arguments_are_single_words(start_server, tmp_path, words, why):
    # A live server: before, these reached it and some succeeded (exit 0).
    path = tmp_path / "ctl"
    start_server("--ctl", str(path))
    r = run("--ctl", str(path), *words)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert why in r.stderr, r.stderr


def test_empty_ctl_path_is_bad_usage():
    r = run("--ctl", "", "stats")
    assert r.returncode == 2 and "--ctl: the path is empty" in r.stderr, r.stderr
    env = dict(os.environ, ECHOSRV_CTL="")
    r = subprocess.run([ECHOSRVCTL, "--ctl=", "stats"], capture_output=True, text=True,
                       timeout=20, env=env)
    assert r.returncode == 2, r.stderr


def test_ctl_path_that_is_not_a_socket(tmp_path):
    f = tmp_path / "plain"
    f.write_text("x")
    r = run("--ctl", str(f), "stats")
    assert r.returncode == 1 and "not a socket" in r.stderr, r.stderr
    assert "is echosrv running" not in r.stderr, r.stderr
    r = run("--ctl", str(tmp_path), "stats")
    assert r.returncode == 1 and "not a socket" in r.stderr, r.stderr


@pytest.mark.parametrize("who,args", [
    ("echosrv", ["-V"]), ("echosrv", ["--help"]),
    ("echosrv", ["--check", "--listen", "127.0.0.1:0"]),
    ("echosrvctl", ["--help"]), ("echosrvctl", ["-V"]), ("echosrvctl", ["stats"]),
    ("echosrvctl", ["conns", "--json"]),
])
def test_output_that_cannot_be_written_is_a_failure(start_server, tmp_path, who, args):
    """A full disk (/dev/full) under `-V`, `--help`, `--check` or an answer
    of echosrvctl: before, exit 0 with nothing written."""
    path = tmp_path / "ctl"
    start_server("--ctl", str(path))
    exe = ECHOSRV if who == "echosrv" else ECHOSRVCTL
    if who == "echosrvctl":
        args = ["--ctl", str(path)] + args
    with open("/dev/full", "w") as full:
        r = subprocess.run([exe] + args, stdout=full, stderr=subprocess.PIPE, text=True,
                           timeout=30)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "cannot write to standard output: No space left on device" in r.stderr, r.stderr
