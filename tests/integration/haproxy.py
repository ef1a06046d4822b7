# SPDX-License-Identifier: GPL-2.0-only
"""A real haproxy in front of echosrv instances, for the PROXY protocol
tests and the PROXY benchmark: a generated configuration on loopback, the
process started in the foreground and stopped at the end."""
import os
import shutil
import socket
import subprocess

from conftest import free_port, stop_process, wait_for

HAPROXY = shutil.which("haproxy")

CONFIG = """\
global
    maxconn 4096
    stats socket {stats} level admin

defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    # A refused connect (an instance draining) goes to another instance.
    retries 3
    option redispatch 1

{frontends}
"""

FRONTEND = """\
frontend fe_{name}
    bind 127.0.0.1:{port}
    default_backend be_{name}

backend be_{name}
    balance roundrobin
    # echosrv trusts this source (--proxy-from 127.0.0.1/32).
    source 127.0.0.1
{servers}
"""


def server_line(i, addr, mode):
    """mode: send-proxy, send-proxy-v2 or '' (no header: the baseline)."""
    check = "check inter 300ms fall 1 rise 1" + (" check-send-proxy" if mode else "")
    return "    server e%d %s:%d %s %s" % (i, addr[0], addr[1], mode, check)


class Haproxy:
    """haproxy with one frontend per entry of `backends`:
    {name: (mode, [echosrv addresses])}; self.ports[name] is where clients
    connect."""

    def __init__(self, tmp_path, backends):
        self.stats_path = str(tmp_path / "haproxy.sock")
        self.ports = {}
        fronts = []
        for name, (mode, addrs) in backends.items():
            self.ports[name] = free_port()
            servers = "\n".join(server_line(i, a, mode) for i, a in enumerate(addrs))
            fronts.append(FRONTEND.format(name=name, port=self.ports[name], servers=servers))
        self.config = CONFIG.format(stats=self.stats_path, frontends="\n".join(fronts))
        self.cfg_path = tmp_path / "haproxy.cfg"
        self.cfg_path.write_text(self.config)
        self.log = open(tmp_path / "haproxy.log", "w+b")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", str(self.cfg_path)],
                                     stdout=self.log, stderr=self.log)
        try:
            wait_for(self._listening, what="haproxy to listen (%s)" % self._tail)
        except BaseException:
            # The caller has no object to stop (a failed start, or
            # bench/proxy.py interrupted meanwhile): stop it here.
            self.stop()
            raise

    def _tail(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-2000:]

    def _listening(self):
        assert self.proc.poll() is None, "haproxy exited: %s" % self._tail()
        return os.path.exists(self.stats_path)

    def command(self, line):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(self.stats_path)
        s.sendall(line.encode() + b"\n")
        out = b""
        while True:
            part = s.recv(65536)
            if not part:
                break
            out += part
        s.close()
        return out.decode()

    def server_status(self):
        """{(backend, server): status} from `show stat`."""
        lines = self.command("show stat").splitlines()
        head = lines[0].lstrip("# ").split(",")
        out = {}
        for line in lines[1:]:
            row = dict(zip(head, line.split(",")))
            if row.get("svname") not in (None, "FRONTEND", "BACKEND"):
                out[(row["pxname"], row["svname"])] = row["status"]
        return out

    def wait_all_up(self, timeout=20):
        wait_for(lambda: all(s == "UP" for s in self.server_status().values()),
                 timeout=timeout, what="haproxy's servers UP: %s" % self.server_status)

    def stop(self):
        stop_process(self.proc, self.log)
