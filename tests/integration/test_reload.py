# SPDX-License-Identifier: GPL-2.0-only
"""The configuration file (--config) and reload in place (SIGHUP,
`echosrvctl reload`, `echosrvctl show config`), docs/configuration.md.

The reload tests run hundreds of connections that echo all the time, every
byte checked, while the file changes under them: not one may be dropped,
stall or see a wrong byte, under every engine."""
import os
import re
import selectors
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import (ECHOSRV, assert_rejected, connect_or_none, echoing_connection,
                      wait_for)
from ops_common import ctl, metrics_url, raw_ctl

SANITIZED = "san-" in os.environ.get("ECHOSRV_BUILD", "")
N_LOAD = 200


def write(path, *lines):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def run_check(*args, **kw):
    return subprocess.run([ECHOSRV] + list(args), capture_output=True, text=True,
                          timeout=20, **kw)


# --- the file ------------------------------------------------------------------

BAD_LINES = [
    (["bogus 1"], r":1: unknown option 'bogus'"),
    (["max-conns 5", "", "max-conns 6"], r":3: --max-conns is given twice \(first on line 1\)"),
    (["idle-timeout soon"], r":1: --idle-timeout: 'soon' is not a number of seconds"),
    (["max-conns 0"], r":1: --max-conns: 0 is out of range"),
    (["allow 10.0.0.1/8"], r":1: --allow: "),
    (["busy-poll yes"], r":1: --busy-poll takes no value"),
    (["max-conns"], r":1: --max-conns needs a value"),
    (["# fine", "check"], r":2: --check is for the command line, not a file"),
    (["config other.conf"], r":1: --config is for the command line, not a file"),
    (["--max-conns 5"], r":1: unknown option '--max-conns'"),
]


@pytest.mark.parametrize("lines,msg", BAD_LINES, ids=[l[0][-1] or "blank" for l in BAD_LINES])
def test_file_errors_name_file_line_and_option(tmp_path, lines, msg):
    conf = tmp_path / "bad.conf"
    write(conf, *lines)
    for extra in ([], ["--check"]):
        r = run_check("--config", str(conf), *extra)
        assert r.returncode == 2, r
        assert re.search(re.escape(str(conf)) + msg, r.stderr), r.stderr


def _unreadable(tmp_path):
    p = tmp_path / "secret.conf"
    write(p, "max-conns 5")
    os.chmod(p, 0)
    return p


def _loop(tmp_path):
    a, b = tmp_path / "a.conf", tmp_path / "b.conf"
    os.symlink(b, a)
    os.symlink(a, b)
    return a


def _big(tmp_path):
    p = tmp_path / "big.conf"
    with open(p, "w") as f:
        f.write(("# " + "x" * 97 + "\n") * 656)    # 65,600 bytes: past 64 KiB
    return p


def _fifo(tmp_path):
    p = tmp_path / "fifo.conf"
    os.mkfifo(p)
    return p


def _nul(tmp_path):
    p = tmp_path / "nul.conf"
    p.write_bytes(b"max-conns 5\n\0\n")
    return p


FILE_CASES = [
    ("missing", lambda t: t / "none.conf", "cannot open: No such file or directory"),
    ("directory", lambda t: t, "is a directory, not a file"),
    ("symlink-loop", _loop, "cannot open: Too many levels of symbolic links"),
    ("oversized", _big, "too large (65600 bytes; at most 65536)"),
    ("fifo", _fifo, "is not a regular file"),
    ("nul-byte", _nul, "not a text file"),
]


@pytest.mark.parametrize("name,make,msg", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_bad_files_are_refused(tmp_path, name, make, msg):
    path = make(tmp_path)
    r = run_check("--config", str(path), "--check")
    assert r.returncode == 2, r
    assert "%s: %s" % (path, msg) in r.stderr, r.stderr


def test_unreadable_file_is_refused(tmp_path):
    """As root every file is readable, so the check runs as nobody."""
    path = _unreadable(tmp_path)
    os.chmod(tmp_path, 0o755)

    def drop():
        os.setgid(65534)
        os.setuid(65534)
    r = run_check("--config", str(path), "--check", preexec_fn=drop)
    if "Permission denied" in r.stderr and "cannot open" not in r.stderr:
        pytest.skip("the binary is not reachable as nobody: " + r.stderr)
    assert r.returncode == 2, r
    assert "%s: cannot open: Permission denied" % path in r.stderr, r.stderr


def test_file_sets_options_and_command_line_wins(start_server, tmp_path):
    conf, sock = tmp_path / "e.conf", tmp_path / "ctl"
    write(conf, "# a comment", "", "   max-conns 7  ", "idle-timeout\t30",
          "allow 127.0.0.0/8", "allow 10.0.0.0/8", "deny 10.9.0.0/16", "keepalive 20")
    srv = start_server("--config", str(conf), "--ctl", str(sock), "--max-conns", "9",
                       "--allow", "127.0.0.1")
    shown = ctl(sock, "show", "config").stdout.splitlines()
    assert "max-conns 9" in shown                     # the command line's
    assert "idle-timeout 30" in shown and "keepalive 20" in shown   # the file's
    assert "deny 10.9.0.0/16" in shown
    # A repeatable option on the command line replaces the file's list.
    assert [l for l in shown if l.startswith("allow ")] == ["allow 127.0.0.1/32"]
    assert "listen 127.0.0.1:%d" % srv.port not in shown    # asked for port 0
    assert "listen 127.0.0.1:0" in shown


def test_show_config_loads_back(start_server, tmp_path, engine):
    """What `show config` prints is a file that starts the same server."""
    conf, sock, sock2 = tmp_path / "a.conf", tmp_path / "ctl", tmp_path / "ctl2"
    write(conf, "listen 127.0.0.1:0", "listen [::1]:0", "max-conns-per-ip 3",
          "conn-buffer 128k", "trace error,conn", "deny 192.0.2.0/24",
          "allow 2001:db8::/32", "allow 127.0.0.0/8", "allow ::1", "drain-timeout 2")
    start_server("--config", str(conf), "--ctl", str(sock), engine=engine,
                 cli_defaults=False)
    first = ctl(sock, "show", "config").stdout
    saved = tmp_path / "saved.conf"
    # The port file and control socket are the first server's: the second
    # one is given its own on the command line.
    saved.write_text("\n".join(l for l in first.splitlines()
                               if not l.startswith(("port-file ", "ctl "))) + "\n")
    start_server("--config", str(saved), "--ctl", str(sock2), engine=engine,
                 cli_defaults=False)
    again = ctl(sock2, "show", "config").stdout
    strip = lambda t: [l for l in t.splitlines() if not l.startswith(("port-file ", "ctl "))]
    assert strip(first) == strip(again)


def test_help_names_config():
    r = run_check("--help")
    assert "--config FILE" in r.stdout and "HUP reloads" in r.stdout


# --- the load ------------------------------------------------------------------

class Load:
    """N connections echoing all the time from one thread; every byte that
    comes back is compared with what was sent on that connection."""

    BLOCK = os.urandom(1 << 20)

    def __init__(self, addr, n):
        self.sel = selectors.DefaultSelector()
        self.conns = []
        for i in range(n):
            s = socket.create_connection(addr, timeout=10)
            s.setblocking(False)
            c = {"s": s, "start": i * 4099, "sent": 0, "got": 0, "i": i}
            self.conns.append(c)
            self.sel.register(s, selectors.EVENT_READ, c)
        self.errors = []
        self.checked = 0
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def piece(self, c, off, n):
        a = (c["start"] + off) % len(self.BLOCK)
        out = self.BLOCK[a:a + n]
        return out + self.BLOCK[:n - len(out)]

    def run(self):
        deadline = time.monotonic() + 600
        while not self.stop_ev.is_set() and time.monotonic() < deadline:
            for c in self.conns:
                if c.get("dead") or c["sent"] - c["got"] > 16384:
                    continue
                n = 1 + (c["sent"] * 7 + c["i"]) % 3000
                try:
                    c["sent"] += c["s"].send(self.piece(c, c["sent"], n))
                except BlockingIOError:
                    pass
                except OSError as e:
                    c["dead"] = True
                    self.errors.append("conn %d: send: %s" % (c["i"], e))
            for key, _ in self.sel.select(timeout=0.02):
                c = key.data
                try:
                    data = c["s"].recv(65536)
                except BlockingIOError:
                    continue
                except OSError as e:
                    data, c["dead"] = None, True
                    self.errors.append("conn %d: recv: %s" % (c["i"], e))
                if data == b"":
                    c["dead"] = True
                    self.errors.append("conn %d: closed by the server" % c["i"])
                if not data:
                    self.sel.unregister(c["s"])
                    continue
                if data != self.piece(c, c["got"], len(data)):
                    self.errors.append("conn %d: wrong bytes at %d" % (c["i"], c["got"]))
                    c["dead"] = True
                    self.sel.unregister(c["s"])
                    continue
                c["got"] += len(data)
                self.checked += len(data)

    def mark(self):
        return [c["got"] for c in self.conns]

    def advanced(self, mark, what):
        """Every connection has echoed more since mark (none stalls)."""
        wait_for(lambda: self.errors or all(c["got"] > m for c, m in zip(self.conns, mark)),
                 timeout=30, what="every connection to echo after " + what)
        assert not self.errors, self.errors[:5]

    def finish(self):
        self.stop_ev.set()
        self.t.join(timeout=30)
        alive = sum(1 for c in self.conns if not c.get("dead"))
        for c in self.conns:
            c["s"].close()
        return alive


class Reloader:
    """The file and the ways to reload it."""

    def __init__(self, tmp_path, sock, base):
        self.path, self.sock, self.base = tmp_path / "echosrv.conf", sock, list(base)
        self.gen = 1
        write(self.path, *self.base)

    def apply(self, *extra, how="ctl", srv=None, log=None):
        """Write base + extra and reload; the configuration then in force."""
        log = log or self.log
        write(self.path, *(self.base + list(extra)))
        self.gen += 1
        if how == "ctl":
            r = ctl(self.sock, "reload")
            assert r.stdout == "reloaded\n", r
        else:
            srv.signal(signal.SIGHUP)
        wait_for(lambda: "configuration %d in force" % self.gen in log(),
                 what="configuration %d in the log" % self.gen)
        return ctl(self.sock, "show", "config").stdout.splitlines()

    def refused(self, *extra):
        write(self.path, *(self.base + list(extra)))
        r = ctl(self.sock, "reload", check=False)
        assert r.returncode == 1, r
        return r.stderr


def keepalive_on(server_port, client):
    """Whether the server's end of client's connection runs a keepalive
    timer (/proc/net/tcp 'tr' 2), which only SO_KEEPALIVE starts."""
    cport = client.getsockname()[1]

    def find():
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                p = line.split()
                if int(p[1].split(":")[1], 16) == server_port and \
                        int(p[2].split(":")[1], 16) == cport:
                    return p[5].split(":")[0]
        return None
    return wait_for(find, what="the server's socket in /proc/net/tcp") == "02"


def from_source(addr, source):
    return connect_or_none(addr, source=source)


def echo_from(addr, source, data=b"z"):
    """A connection from source that echoed data, or None."""
    s = from_source(addr, source)
    try:
        if s:
            s.sendall(data)
            if s.recv(len(data)) == data:
                return s
    except OSError:
        pass
    if s:
        s.close()
    return None


def refused(addr):
    try:
        s = socket.create_connection(addr, timeout=10)
    except ConnectionRefusedError:
        return True
    s.close()
    return False


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.workers)])
def test_reload_under_load(start_server, tmp_path, engine, workers):
    sock = tmp_path / "ctl"
    t1, t2 = tmp_path / "trace1.log", tmp_path / "trace2.log"
    base = ["listen 127.0.0.1:0", "workers %d" % workers]
    rl = Reloader(tmp_path, sock, base)
    tf = ["trace-file %s" % t1, "trace error,info"]
    write(rl.path, *(base + tf))
    srv = start_server("--config", str(rl.path), "--ctl", str(sock), engine=engine,
                       cli_defaults=False)

    def log():
        return "".join(p.read_text() if p.exists() else "" for p in (t1, t2)) + srv.stderr()

    rl.log = log
    addr = (srv.host, srv.port)
    load = Load(addr, N_LOAD)
    load.advanced([0] * N_LOAD, "start")

    # ACLs: new peers that the new rules refuse are refused; one already
    # open from that address is kept.
    kept = from_source(addr, "127.0.0.3")
    assert kept and echoing_connection(addr, b"x")
    m = load.mark()
    rl.apply(*tf, "deny 127.0.0.3")
    assert_rejected(from_source(addr, "127.0.0.3"))
    kept.sendall(b"still here")
    assert kept.recv(64) == b"still here"
    load.advanced(m, "a new ACL")

    # max-conns: the open ones (load, the kept one) stay; one more fits.
    m = load.mark()
    rl.apply(*tf, "deny 127.0.0.3", "max-conns %d" % (N_LOAD + 2))
    extra = wait_for(lambda: echoing_connection(addr, b"y"), what="one more connection")
    assert_rejected(connect_or_none(addr))
    load.advanced(m, "a lower max-conns")
    extra.close()
    kept.close()

    # Per-address limit, switched on at run time.
    m = load.mark()
    rl.apply(*tf, "max-conns-per-ip 2")
    two = [echo_from(addr, "127.0.0.4") for _ in range(2)]
    assert all(two)
    assert_rejected(from_source(addr, "127.0.0.4"))
    load.advanced(m, "a per-address limit")
    for s in two:
        s.close()

    # Idle timeout: a silent new connection is closed, the busy ones are not.
    m = load.mark()
    rl.apply(*tf, "idle-timeout 1")
    idle = srv.connect()
    idle.settimeout(30)
    assert idle.recv(1) == b""
    idle.close()
    load.advanced(m, "an idle timeout")

    # Keepalive and conn-buffer: new connections get them.
    m = load.mark()
    shown = rl.apply(*tf, "keepalive 5", "conn-buffer 16k", "drain-timeout 1")
    assert "conn-buffer 16k" in shown and "keepalive 5" in shown
    assert "drain-timeout 1" in shown
    k = srv.connect()
    assert keepalive_on(srv.port, k)
    k.close()
    load.advanced(m, "keepalive, conn-buffer and drain-timeout")

    # Trace flags and the trace file, through SIGHUP this time.
    m = load.mark()
    tf = ["trace-file %s" % t2, "trace error,info,conn"]
    rl.apply(*tf, how="hup", srv=srv, log=log)
    c = srv.connect()
    c.close()
    wait_for(lambda: t2.exists() and "CONN accept" in t2.read_text(),
             what="CONN lines in the new trace file")
    load.advanced(m, "new trace flags and file")

    # Metrics: on, then off again.
    m = load.mark()
    rl.apply(*tf, "metrics 127.0.0.1:0")
    import urllib.request
    url = metrics_url(type("S", (), {"stderr": staticmethod(log)}))
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200 and b"echosrv_" in r.read()
    rl.apply(*tf)
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=10)
    load.advanced(m, "metrics on and off")

    # Listeners: add one, then drop the first; the connections on the
    # first carry on, new ones to it are refused.
    m = load.mark()
    rl.apply(*tf, "listen 127.0.0.2:0")
    lines = wait_for(lambda: len(srv._read_port_file()) == 2 and srv._read_port_file(),
                     what="two lines in the port file")
    new_addr = ("127.0.0.2", int(lines[1].rsplit(":", 1)[1]))
    assert echoing_connection(new_addr, b"new")
    rl.base = [l for l in rl.base if l != "listen 127.0.0.1:0"]
    rl.apply(*tf, "listen 127.0.0.2:0")
    assert refused(addr)
    assert echoing_connection(new_addr, b"still")
    load.advanced(m, "listeners added and removed")

    # A bad file and a failing bind change nothing.
    before = ctl(sock, "show", "config").stdout
    err = rl.refused(*tf, "listen 127.0.0.2:0", "max-conns 5", "bogus 1")
    assert "%s:%d: unknown option 'bogus'" % (rl.path, len(rl.base) + len(tf) + 3) in err
    taken = socket.socket()
    taken.bind(("127.0.0.5", 0))
    taken.listen()
    err = rl.refused(*tf, "listen 127.0.0.2:0", "max-conns 5",
                     "listen 127.0.0.5:%d" % taken.getsockname()[1])
    assert "cannot listen on 127.0.0.5" in err
    taken.close()
    assert ctl(sock, "show", "config").stdout == before
    assert echoing_connection(new_addr, b"old config")

    # What needs a restart is named, and the rest still applied.
    m = load.mark()
    rl.base = [l for l in rl.base if not l.startswith("workers ")]
    shown = rl.apply(*tf, "listen 127.0.0.2:0", "workers %d" % (workers + 1),
                     "backlog 64", "max-conns 5000", "drain-timeout 1")
    assert re.search(r"a restart is needed to change workers, backlog; the rest is applied",
                     log()), log()[-2000:]
    assert "max-conns 5000" in shown and "workers %d" % workers in shown
    load.advanced(m, "a reload that needs a restart")

    alive = load.finish()
    assert not load.errors, load.errors[:5]
    assert alive == N_LOAD
    print("\nreload under load (%s, %d worker%s): %d connections kept of %d, "
          "%d bytes checked, %d reloads" % (engine, workers, "s" if workers > 1 else "",
                                            alive, N_LOAD, load.checked, rl.gen - 1))
    srv.signal(signal.SIGTERM)
    assert srv.wait() == 0
    assert "draining for up to 1s" in log()


def test_sighup_without_config_only_reopens(start_server, tmp_path):
    t = tmp_path / "t.log"
    srv = start_server("--trace-file", str(t), "--trace", "error,info")
    os.rename(t, tmp_path / "t.old")
    srv.signal(signal.SIGHUP)
    wait_for(lambda: t.exists() and "trace file reopened" in t.read_text(),
             what="the trace file reopened")
    assert echoing_connection((srv.host, srv.port), b"hup")


def test_reload_without_config_is_an_error(start_server, tmp_path):
    sock = tmp_path / "ctl"
    start_server("--ctl", str(sock))
    r = ctl(sock, "reload", check=False)
    assert r.returncode == 1 and "started without --config" in r.stderr


@pytest.mark.plain
def test_thousand_reloads_leak_nothing(start_server, tmp_path, engine):
    """1,000 reloads that each change limits, ACLs and a listener: the
    descriptors are the same at the end, and (without a sanitizer's
    allocator) so is the memory, near enough."""
    sock = tmp_path / "ctl"
    conf = tmp_path / "r.conf"
    a = ["listen 127.0.0.1:0", "max-conns 1000", "trace error", "drain-timeout 2"]
    b = ["listen 127.0.0.1:0", "listen 127.0.0.2:0", "max-conns 2000", "allow 127.0.0.0/8",
         "max-conns-per-ip 50", "idle-timeout 60", "keepalive 30", "trace error",
         "drain-timeout 2"]
    write(conf, *a)
    srv = start_server("--config", str(conf), "--ctl", str(sock), engine=engine,
                       cli_defaults=False)
    held = [echoing_connection((srv.host, srv.port), b"held") for _ in range(20)]
    assert all(held)

    def reload_n(n):
        for i in range(n):
            write(conf, *(b if i % 2 == 0 else a))
            out = raw_ctl(sock, b"reload\n", timeout=30)
            assert out == b"ok\nreloaded\n", out

    def settled_fds():
        """The control thread closes its side of the last request a moment
        after the reply: the fewest seen over a short while."""
        return min(srv.fd_count() for _ in range(20) if time.sleep(0.01) is None)

    reload_n(100)               # warm up: allocator arenas, the metrics of growth
    fds0, rss0 = settled_fds(), srv.rss_kib()
    reload_n(1000)
    fds1, rss1 = settled_fds(), srv.rss_kib()
    for s in held:
        s.sendall(b"after")
        assert s.recv(16) == b"after"
    print("\n1,000 reloads (%s): descriptors %d -> %d, RSS %d -> %d KiB"
          % (engine, fds0, fds1, rss0, rss1))
    assert fds1 == fds0
    if not SANITIZED:
        assert rss1 - rss0 < 1024, (rss0, rss1)


@pytest.mark.workers
def test_reload_under_socket_activation(engine, tmp_path):
    """The sockets are systemd's: a listen change is named as needing a
    restart, the rest (here keepalive, set on those sockets) still applies,
    and the open connections echo on."""
    from conftest import socket_activate
    sock, conf = tmp_path / "ctl", tmp_path / "a.conf"
    write(conf, "keepalive 0", "drain-timeout 2")
    log = open(tmp_path / "log", "w+")
    p, port, first = socket_activate(["--engine", engine, "--workers", "2", "--ctl", str(sock),
                                      "--config", str(conf)], log)
    try:
        first.settimeout(10)
        first.sendall(b"one")
        assert first.recv(3) == b"one"
        wait_for(lambda: os.path.exists(sock), what="the control socket")
        write(conf, "keepalive 7", "drain-timeout 2", "listen 127.0.0.1:0")
        assert ctl(sock, "reload").stdout == "reloaded\n"
        shown = ctl(sock, "show", "config").stdout.splitlines()
        assert "keepalive 7" in shown and "listen 127.0.0.1:0" not in shown
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        assert keepalive_on(port, c)
        c.close()
        first.sendall(b"two")
        assert first.recv(3) == b"two"
        log.flush()
        text = open(tmp_path / "log").read()
        assert "a restart is needed to change listen (the sockets are systemd's)" in text, text
    finally:
        first.close()
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 0
        log.close()


@pytest.mark.parametrize("before,after", [(64, 4), (4, 64)], ids=["shrink", "grow"])
def test_conn_buffer_reload_bounds_new_connections(start_server, tmp_path, engine, before,
                                                   after):
    """conn-buffer changed by a reload: connections opened after it hold at
    most the new bound, those opened before keep theirs (a buffer sized for
    4k must not be filled to 64k), and every byte of both comes back."""
    from test_uring_edges import _conns, _peers, _read_back, _uring_env, _write_until_blocked
    sock, conf = tmp_path / "ctl", tmp_path / "c.conf"
    write(conf, "conn-buffer %dk" % before)
    srv = start_server("--config", str(conf), "--ctl", str(sock), engine=engine,
                       env=_uring_env(no_limit=False))
    old = _peers(srv, 20)
    written_old = _write_until_blocked(old, limit=64 * 1024 * 24)
    write(conf, "conn-buffer %dk" % after)
    assert ctl(sock, "reload").stdout == "reloaded\n"
    new = _peers(srv, 20)
    written_new = _write_until_blocked(new, limit=64 * 1024 * 24)
    held = {int(c["peer"].rsplit(":", 1)[1]): c["held_max_bytes"] for c in _conns(sock)}
    for socks, bound in ((old, before), (new, after)):
        mine = [held[s.getsockname()[1]] for s in socks]
        assert max(mine) <= bound * 1024, (bound, mine)
    _read_back(old + new, written_old + written_new)
