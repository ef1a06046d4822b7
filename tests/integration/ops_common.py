# SPDX-License-Identifier: GPL-2.0-only
"""Helpers shared by the operations tests (test_ops_*.py): the control
client, the metrics scrape, and the NOTIFY_SOCKET listener."""
import json
import os
import re
import socket
import subprocess
import urllib.request

from conftest import BUILD, ROOT, wait_for

ECHOSRVCTL = os.path.join(BUILD, "echosrvctl")


def ctl(path, *words, check=True, timeout=20):
    """Run echosrvctl --ctl path words...; the CompletedProcess."""
    r = subprocess.run([ECHOSRVCTL, "--ctl", str(path)] + list(words),
                       capture_output=True, text=True, timeout=timeout)
    if check:
        assert r.returncode == 0, "echosrvctl %s: rc %d: %s" % (words, r.returncode, r.stderr)
    return r


def stats(path):
    return json.loads(ctl(path, "stats", "--json").stdout)


def raw_ctl(path, data, timeout=10, eof=False):
    """Send raw bytes on the control socket (then shut down the sending
    side if eof); what comes back until the server closes."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(str(path))
    try:
        s.sendall(data)
        if eof:
            s.shutdown(socket.SHUT_WR)
    except (BrokenPipeError, ConnectionResetError):
        pass
    out = b""
    try:
        while True:
            part = s.recv(65536)
            if not part:
                break
            out += part
    except ConnectionResetError:
        pass
    s.close()
    return out


def metrics_url(server):
    """The metrics URL from the server's log line."""
    m = wait_for(lambda: re.search(r"metrics at (http://\S+)", server.stderr()),
                 what="the metrics log line")
    return m.group(1)


def scrape(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.headers.get("Content-Type"), r.read().decode()


def metric(text, name):
    """Value of one sample line 'name value' (name may include labels)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError("no sample %s in:\n%s" % (name, text))


def samples(text, name):
    """{labels text: value} of every sample of family member name
    ('' for a sample without labels)."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"%s(\{[^}]*\})? (\S+)$" % re.escape(name), line)
        if m:
            out[m.group(1) or ""] = float(m.group(2))
    return out


def total(text, name):
    """The sum of name's samples over all its labels (e.g. every worker)."""
    s = samples(text, name)
    if not s:
        raise AssertionError("no sample %s in:\n%s" % (name, text))
    return sum(s.values())


class NotifySocket:
    """An AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, tmp_path):
        self.path = str(tmp_path / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages = []

    def poll(self):
        try:
            while True:
                self.messages.append(self.sock.recv(4096).decode())
        except socket.timeout:
            pass
        return self.messages

    def wait_for(self, pred, what, timeout=15):
        return wait_for(lambda: any(pred(m) for m in self.poll()), timeout=timeout,
                        interval=0.01, what=what)

    def close(self):
        self.sock.close()


def make_install(target="install", **variables):
    """`make install` (or another target, such as uninstall) with the
    binaries of this test run ($(O) = BUILD).
    The outer make's MAKEFLAGS (jobserver, SAN=...) are not passed on: the
    binaries are already built, install only copies them."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    args = ["make", "-s", "-C", ROOT, target, "O=%s" % os.path.relpath(BUILD, ROOT)]
    # The same SAN as the build, so that a rebuild make finds due (the
    # version of a tree with local edits changes) uses the same flags
    # instead of linking plain objects with sanitized ones.
    base = os.path.basename(BUILD)
    if base.startswith("san-"):
        args.append("SAN=%s" % base[4:].replace("-", ","))
    args += ["%s=%s" % kv for kv in variables.items()]
    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r
