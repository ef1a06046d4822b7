# SPDX-License-Identifier: GPL-2.0-only
"""--check and start-up agree (issue 11): every path start-up would refuse
for --ctl, --port-file and --trace-file makes --check exit 2 with the words
that a start then prints when it exits 1, before anything is bound; paths
exactly at a limit pass both.  The engine does not matter here."""
import os
import pwd
import shutil
import subprocess
import tempfile

import pytest

from conftest import ECHOSRV, wait_for

NAME_MAX = 255
SUN_PATH_MAX = 107
PORT_NAME_MAX = NAME_MAX - 18      # its temporary file is ".NAME.<16 hex>"


def check(args, preexec=None):
    return subprocess.run([ECHOSRV, "--listen", "127.0.0.1:0", "--check"] + args,
                          capture_output=True, text=True, timeout=30, preexec_fn=preexec)


def start(args, preexec=None):
    """Start echosrv; (exit status, stderr), or (None, stderr) if it served
    (it is stopped then)."""
    p = subprocess.Popen([ECHOSRV, "--listen", "127.0.0.1:0", "--drain-timeout", "1"] + args,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         preexec_fn=preexec)
    try:
        _, err = p.communicate(timeout=10)
        return p.returncode, err
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
        return None, err


def long_path(d, total):
    return os.path.join(d, "a" * (total - len(d) - 1))


def refusals(d):
    """(name, arguments, words both must print)."""
    os.mkdir(os.path.join(d, "dir"))
    open(os.path.join(d, "file"), "w").close()
    os.symlink("/etc/passwd", os.path.join(d, "link"))
    os.mkdir(os.path.join(d, "open"))
    os.chmod(os.path.join(d, "open"), 0o777)
    j = lambda *p: os.path.join(d, *p)
    return [
        ("ctl-regular-file", ["--ctl", j("file")], "exists and is not a socket"),
        ("ctl-directory", ["--ctl", j("dir")], "exists and is not a socket"),
        ("port-file-directory", ["--port-file", j("dir")], "it is a directory"),
        ("port-file-symlink", ["--port-file", j("link")], "symbolic link"),
        ("port-file-open-dir", ["--port-file", j("open", "p")], "not sticky"),
        ("port-file-trailing-slash", ["--port-file", j("dir") + "/"], "Is a directory"),
        ("port-file-name-one-too-long", ["--port-file", j("p" * (PORT_NAME_MAX + 1))],
         "longer than %d bytes" % PORT_NAME_MAX),
        ("port-file-name-over-name-max", ["--port-file", j("p" * (NAME_MAX + 1))],
         "File name too long"),
        ("trace-file-directory", ["--trace-file", j("dir")], "it is a directory"),
        ("trace-file-symlink", ["--trace-file", j("link")], "symbolic link"),
        ("trace-file-open-dir", ["--trace-file", j("open", "t")], "not sticky"),
        ("trace-file-name-over-name-max", ["--trace-file", j("t" * (NAME_MAX + 1))],
         "File name too long"),
        ("ctl-one-byte-too-long", ["--ctl", long_path(d, SUN_PATH_MAX + 1)],
         "path longer than %d bytes" % SUN_PATH_MAX),
    ]


CASES = [
    "ctl-regular-file", "ctl-directory", "port-file-directory", "port-file-symlink",
    "port-file-open-dir", "port-file-trailing-slash", "port-file-name-one-too-long",
    "port-file-name-over-name-max", "trace-file-directory", "trace-file-symlink",
    "trace-file-open-dir", "trace-file-name-over-name-max", "ctl-one-byte-too-long"]


@pytest.mark.parametrize("case", CASES)
def test_check_refuses_what_start_refuses(tmp_path, case):
    d = str(tmp_path)
    os.chmod(d, 0o755)
    _, args, words = [c for c in refusals(d) if c[0] == case][0]
    c = check(args)
    assert c.returncode == 2 and words in c.stderr, (c.returncode, c.stdout, c.stderr)
    rc, err = start(args)
    assert rc == 1 and words in err, (rc, err)
    # The same line, and nothing was left behind for a link or a file.
    assert c.stderr.strip().splitlines()[-1] in err, (c.stderr, err)
    assert os.path.islink(os.path.join(d, "link"))


def test_names_exactly_at_the_limit_pass_both(tmp_path):
    d = str(tmp_path)
    ctl = long_path(d, SUN_PATH_MAX)
    port = os.path.join(d, "p" * PORT_NAME_MAX)
    trace = os.path.join(d, "t" * NAME_MAX)
    args = ["--ctl", ctl, "--port-file", port, "--trace-file", trace]
    c = check(args)
    assert c.returncode == 0, c.stderr
    p = subprocess.Popen([ECHOSRV, "--listen", "127.0.0.1:0", "--drain-timeout", "1"] + args,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: p.poll() is not None or os.path.exists(port), what="port file")
        assert p.poll() is None, p.communicate()[1]
        assert os.path.exists(ctl) and os.path.exists(trace)
    finally:
        p.terminate()
        assert p.wait(timeout=20) == 0


def as_nobody():
    nobody = pwd.getpwnam("nobody")
    os.setgroups([])
    os.setgid(nobody.pw_gid)
    os.setuid(nobody.pw_uid)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become nobody")
def test_ctl_group_this_user_is_not_in(request):
    """A non-root echosrv cannot give its socket to a group it is not in:
    --check says so as the start does."""
    # pytest's tmp_path sits in a directory only root may enter.
    top = tempfile.mkdtemp(prefix="echosrv-nobody-", dir="/tmp")
    os.chmod(top, 0o755)
    d = os.path.join(top, "run")
    os.mkdir(d)
    shutil.chown(d, "nobody")
    request.addfinalizer(lambda: shutil.rmtree(top, ignore_errors=True))
    # nobody must reach the binary (the checkout may be private).
    if subprocess.run([ECHOSRV, "-V"], preexec_fn=as_nobody, capture_output=True).returncode:
        pytest.skip("nobody cannot run %s" % ECHOSRV)
    args = ["--ctl", os.path.join(d, "ctl"), "--ctl-group", "root"]
    c = check(args, preexec=as_nobody)
    words = "--ctl-group root: cannot give"
    assert c.returncode == 2 and words in c.stderr, (c.returncode, c.stderr)
    rc, err = start(args, preexec=as_nobody)
    assert rc == 1 and words in err, (rc, err)
    # Its own group is fine for both.
    args = ["--ctl", os.path.join(d, "ctl"), "--ctl-group", "nogroup"]
    assert check(args, preexec=as_nobody).returncode == 0


def _unprivileged_start():
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        return int(f.read())


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become nobody")
@pytest.mark.parametrize("opt,words", [
    ("--listen", "cannot listen on 127.0.0.1:7: Permission denied (a port below 1024 "
                 "needs privilege: let systemd bind it (echosrv.socket with ListenStream=7)"),
    ("--udp-listen", "cannot bind UDP 127.0.0.1:7: Permission denied (a port below 1024 "
                     "needs privilege: let systemd bind it (echosrv.socket with "
                     "ListenDatagram=7)"),
])
def test_low_port_without_privilege(opt, words):
    """A port below 1024 that a non-root echosrv may not bind: --check says
    what start-up says, with the same advice; root's --check passes, even
    with the port taken (a check before a restart)."""
    if _unprivileged_start() <= 7:
        pytest.skip("net.ipv4.ip_unprivileged_port_start lets anyone bind port 7")
    if subprocess.run([ECHOSRV, "-V"], preexec_fn=as_nobody, capture_output=True).returncode:
        pytest.skip("nobody cannot run %s" % ECHOSRV)
    args = [opt, "127.0.0.1:7"]
    c = check(args, preexec=as_nobody)
    assert c.returncode == 2 and words in c.stderr, (c.returncode, c.stderr)
    rc, err = start(args, preexec=as_nobody)
    assert rc == 1 and words in err, (rc, err)
    import socket
    taken = socket.socket(type=socket.SOCK_DGRAM if "udp" in opt else socket.SOCK_STREAM)
    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        taken.bind(("127.0.0.1", 7))
        if "udp" not in opt:
            taken.listen(1)
    except OSError:
        taken.close()
        taken = None
    try:
        r = subprocess.run([ECHOSRV, "--listen", "127.0.0.1:0", "--check"] + args,
                           capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr
    finally:
        if taken:
            taken.close()
