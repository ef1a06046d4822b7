# SPDX-License-Identifier: GPL-2.0-only
"""Files echosrv creates never follow a planted link nor take over another
user's file: --port-file and --trace-file, as root, against links
and files that `nobody` planted."""
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile

import pytest

from conftest import ECHOSRV, wait_for

NOBODY = 65534
SECRET = b"root only\n"
SCALE = float(os.environ.get("ECHOSRV_TIMEOUT_SCALE", "1"))   # valgrind runs

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (plants files as nobody)")


def as_nobody(code):
    """Run a line of Python as nobody (the planting user)."""
    def drop():
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    subprocess.run([sys.executable, "-c", code], preexec_fn=drop, check=True, timeout=30)


@pytest.fixture
def secret(tmp_path):
    """A root-only file: the target of every planted link."""
    p = tmp_path / "secret"
    p.write_bytes(SECRET)
    os.chmod(p, 0o600)
    return p


@pytest.fixture(params=["sticky", "nobody-owned"])
def shared_dir(request):
    """A directory the attacker can write: a /tmp-like sticky one made by
    the test, or one that nobody owns.  Not under tmp_path, which nobody
    cannot reach."""
    d = tempfile.mkdtemp(prefix="echosrv-shared-", dir="/tmp")
    if request.param == "sticky":
        os.chmod(d, 0o1777)
    else:
        os.chown(d, NOBODY, NOBODY)
        os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def run_echosrv(*args):
    return subprocess.run([ECHOSRV, "--listen", "127.0.0.1:0", *args],
                          capture_output=True, text=True, timeout=30 * SCALE)


def assert_untouched(secret):
    assert secret.read_bytes() == SECRET
    st = os.stat(secret)
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o600)


@pytest.mark.parametrize("option", ["--port-file", "--trace-file"])
def test_planted_link_is_refused(shared_dir, secret, option):
    path = os.path.join(shared_dir, "planted")
    as_nobody("import os; os.symlink(%r, %r)" % (str(secret), path))
    r = run_echosrv(option, path)
    assert r.returncode == 1, r.stderr
    assert "refusing " + path in r.stderr, r.stderr
    if os.stat(shared_dir).st_uid == NOBODY:
        assert "belongs to uid 65534" in r.stderr     # the directory
    else:
        assert "symbolic link" in r.stderr
    assert_untouched(secret)
    assert os.path.islink(path)


@pytest.mark.parametrize("option", ["--port-file", "--trace-file"])
def test_file_of_another_owner_is_refused(tmp_path, option):
    """Even in root's own directory, a file nobody owns is not taken over."""
    path = tmp_path / "theirs"
    path.write_bytes(b"nobody's\n")
    os.chown(path, NOBODY, NOBODY)
    r = run_echosrv(option, str(path))
    assert r.returncode == 1, r.stderr
    assert "refusing %s: it belongs to uid 65534" % path in r.stderr, r.stderr
    assert path.read_bytes() == b"nobody's\n"


@pytest.mark.parametrize("option", ["--port-file", "--trace-file"])
def test_world_writable_directory_without_sticky_bit_is_refused(tmp_path, option):
    d = tmp_path / "open"
    d.mkdir()
    os.chmod(d, 0o777)
    r = run_echosrv(option, str(d / "f"))
    assert r.returncode == 1, r.stderr
    assert "writable by everyone and not sticky" in r.stderr, r.stderr
    assert not (d / "f").exists()


def test_port_file_in_sticky_directory_works():
    """A sticky /tmp-like directory itself is fine: only what others planted
    is refused.  The server writes, then removes, its own port file."""
    d = tempfile.mkdtemp(prefix="echosrv-sticky-", dir="/tmp")
    try:
        os.chmod(d, 0o1777)
        pf = os.path.join(d, "port")
        p = subprocess.Popen([ECHOSRV, "--listen", "127.0.0.1:0", "--port-file", pf],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: os.path.exists(pf) or p.poll() is not None, what="port file")
            assert p.poll() is None
            st = os.lstat(pf)
            assert st.st_uid == 0 and (st.st_mode & 0o777) == 0o644
            assert [n for n in os.listdir(d) if n != "port"] == []   # no temporary left
        finally:
            p.terminate()
            assert p.wait(timeout=20 * SCALE) == 0
        assert not os.path.exists(pf)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("kind", ["device", "fifo", "socket"])
def test_port_file_never_replaces_what_is_not_a_regular_file(tmp_path, kind):
    """--port-file /dev/null (or a FIFO, or the --ctl socket's path) once
    renamed a regular file over the node, and the exit then unlinked it: as
    root that deleted /dev/null.  Only a regular file is replaced."""
    path = tmp_path / kind
    if kind == "device":
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))   # a /dev/null
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        s.close()
    before = os.lstat(path)
    r = run_echosrv("--port-file", str(path))
    assert r.returncode == 1, r.stderr
    assert "refusing %s: it is not a regular file" % path in r.stderr, r.stderr
    after = os.lstat(path)
    assert (after.st_ino, after.st_mode, after.st_rdev) == \
        (before.st_ino, before.st_mode, before.st_rdev)
    assert sorted(os.listdir(tmp_path)) == [kind]      # no temporary left


def test_port_file_on_the_control_socket_is_refused(tmp_path):
    """The same path for --ctl and --port-file: the port file must not take
    the control socket's place (echosrvctl would find nothing there)."""
    path = str(tmp_path / "both")
    r = run_echosrv("--ctl", path, "--port-file", path)
    assert r.returncode == 1, r.stderr
    assert "refusing %s: it is not a regular file" % path in r.stderr, r.stderr
    assert not os.path.exists(path)     # the control socket is removed at exit


def _plant(path, kind):
    if kind == "link":
        os.symlink("/etc/hostname", path)
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        with open(path, "wb") as f:
            f.write(b"nobody's\n")
        os.chown(path, NOBODY, NOBODY)


@pytest.mark.parametrize("option,kind", [
    ("--port-file", "link"), ("--port-file", "fifo"), ("--port-file", "foreign"),
    ("--trace-file", "link"), ("--trace-file", "foreign")])
def test_refusal_is_logged_once_with_its_reason(tmp_path, option, kind):
    """The refusal is said once, with its reason: exactly one `refusing
    PATH: WHY` line, from the start-up check that --check shares (before
    it, the file helper's caller logged it and added its own line).  (A
    trace file that is a FIFO is opened when a process reads it:
    test_trace_file_fifo_without_a_reader_is_refused_at_once.)"""
    path = str(tmp_path / kind)
    _plant(path, kind)
    r = run_echosrv(option, path)
    assert r.returncode == 1, r.stderr
    why = {"link": "it is a symbolic link", "fifo": "it is not a regular file",
           "foreign": "it belongs to uid 65534"}[kind]
    assert r.stderr.count("refusing %s: %s" % (path, why)) == 1, r.stderr
    assert r.stderr.count("refusing ") == 1, r.stderr
    assert r.stderr.startswith("echosrv: %s: refusing %s" % (option, path)), r.stderr


def test_trace_file_fifo_without_a_reader_is_refused_at_once(tmp_path):
    """A --trace-file FIFO that no process reads: the start-up says so and
    exits 1 (it blocked in open(), silent, until a reader came); with a
    reader, the lines go to it."""
    path = str(tmp_path / "fifo")
    os.mkfifo(path)
    r = run_echosrv("--trace-file", path)
    assert r.returncode == 1, r.stderr
    assert r.stderr.count("refusing %s: it is a FIFO that no process reads" % path) == 1, \
        r.stderr
    rfd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        r = run_echosrv("--trace-file", path, "--check")
        assert r.returncode == 0, r.stderr
        p = subprocess.Popen([ECHOSRV, "--listen", "127.0.0.1:0", "--trace-file", path,
                              "--trace", "error,info"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        got = b""

        def said():
            nonlocal got
            try:
                got += os.read(rfd, 65536)
            except BlockingIOError:
                pass
            return b"listening on" in got or p.poll() is not None
        wait_for(said, what="the start-up lines in the FIFO")
        assert p.poll() is None, p.stderr.read()
        p.terminate()
        assert p.wait(timeout=20 * SCALE) == 0
    finally:
        os.close(rfd)


def test_trace_file_socket_is_refused_as_a_socket(tmp_path):
    """A --trace-file that is a socket (/dev/log, the --ctl path) fails
    open() with ENXIO, as a FIFO with no reader does: it was refused as "a
    FIFO that no process reads", and --check passed it.  Both say what it
    is, once, before anything is served."""
    path = str(tmp_path / "sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    try:
        for extra, rc in (((), 1), (("--check",), 2)):
            r = run_echosrv("--trace-file", path, *extra)
            assert r.returncode == rc, r.stderr
            assert r.stderr == "echosrv: --trace-file: refusing %s: it is a socket " \
                               "(open() cannot write to one)\n" % path, r.stderr
    finally:
        s.close()
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


def test_trace_reopen_refusal_is_logged_once_and_keeps_the_old_file(tmp_path):
    """SIGHUP after the trace file was moved away and a link, a FIFO that
    no process reads, then a file nobody owns, planted in its place (the
    FIFO stopped the log until a reader came): each reopen is refused with one
    `refusing` line and one `cannot reopen` line, both in the file still
    open, and the server keeps serving."""
    import signal
    trace, port = tmp_path / "trace", tmp_path / "port"
    p = subprocess.Popen([ECHOSRV, "--listen", "127.0.0.1:0", "--port-file", str(port),
                          "--trace-file", str(trace), "--trace", "error,info"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: port.exists() and port.read_text().strip() or p.poll() is not None,
                 what="port file")
        assert p.poll() is None
        old = tmp_path / "trace.old"
        os.rename(trace, old)
        for n, kind in enumerate(["link", "fifo", "foreign"], 1):
            if os.path.lexists(trace):
                os.unlink(trace)
            _plant(str(trace), kind)
            p.send_signal(signal.SIGHUP)
            wait_for(lambda: old.read_text().count("cannot reopen trace file") >= n,
                     what="reopen %d refused" % n)
        host, prt = port.read_text().split()[0].rsplit(":", 1)
        s = socket.create_connection((host, int(prt)), timeout=10 * SCALE)
        s.sendall(b"still here")
        assert s.recv(64) == b"still here"
        s.close()
    finally:
        p.terminate()
        assert p.wait(timeout=20 * SCALE) == 0
    log = old.read_text()
    assert log.count("refusing %s: it is a symbolic link" % trace) == 1, log
    assert log.count("refusing %s: it is a FIFO that no process reads" % trace) == 1, log
    assert log.count("refusing %s: it belongs to uid 65534" % trace) == 1, log
    assert log.count("refusing ") == 3, log
    assert log.count("cannot reopen trace file") == 3, log
    assert (tmp_path / "trace").read_bytes() == b"nobody's\n"
