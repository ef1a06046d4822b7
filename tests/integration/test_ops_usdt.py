# SPDX-License-Identifier: GPL-2.0-only
"""USDT probes: bpftrace lists them, and one attached to a running
server fires.  Needs bpftrace and root; skips with the reason otherwise."""
import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from conftest import ECHOSRV, echo_roundtrip, wait_for

PROBES = ("accept", "close", "recv", "send", "reject", "udp_recv", "udp_send", "udp_drop")


def _bpftrace():
    exe = shutil.which("bpftrace")
    if not exe:
        pytest.skip("bpftrace not installed (Debian package bpftrace; scripts/deps.sh)")
    return exe


class Tracer:
    """bpftrace attached to a running server, its output in a file; skips
    the test when bpftrace cannot attach here."""

    def __init__(self, exe, pid, script, path):
        self.out = open(path, "w+")
        self.proc = subprocess.Popen([exe, "-p", str(pid), "-e", script], stdout=self.out,
                                     stderr=subprocess.STDOUT)
        try:
            wait_for(self._attached, timeout=60, interval=0.1, what="bpftrace to attach")
        except BaseException:       # a skip or a timeout: no tracer left behind
            self.stop()
            raise

    def text(self):
        self.out.seek(0)
        return self.out.read()

    def _attached(self):
        if self.proc.poll() is not None:
            pytest.skip("bpftrace cannot attach here: %s" % self.text()[-500:])
        return "attached" in self.text()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.out.close()


def test_bpftrace_lists_the_probes():
    exe = _bpftrace()
    r = subprocess.run([exe, "-l", "usdt:%s:*" % ECHOSRV], capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        pytest.skip("bpftrace -l failed here: %s" % r.stderr.strip()[:300])
    names = {line.rsplit(":", 1)[-1] for line in r.stdout.split()}
    assert names >= set(PROBES), r.stdout


def test_unattached_probe_sites_are_nops():
    """Every probe site in the binary is a one-byte nop until a tracer
    attaches (no semaphore, no branch)."""
    readelf, objdump = shutil.which("readelf"), shutil.which("objdump")
    if not readelf or not objdump:
        pytest.skip("binutils not installed")
    notes = subprocess.run([readelf, "-n", ECHOSRV], capture_output=True, text=True).stdout
    sites = re.findall(r"Name: (\w+)\s+Location: (0x[0-9a-f]+), Base: \S+, Semaphore: (0x[0-9a-f]+)",
                       notes)
    assert {n for n, _, _ in sites} >= set(PROBES), notes
    for name, loc, sem in sites:
        assert int(sem, 16) == 0, name
        a = int(loc, 16)
        dis = subprocess.run([objdump, "-d", "--start-address=%d" % a,
                              "--stop-address=%d" % (a + 1), ECHOSRV],
                             capture_output=True, text=True).stdout
        assert re.search(r"%x:\s+90\s+nop" % a, dis), (name, dis[-300:])


@pytest.mark.root
def test_attached_probe_fires(start_server, engine, tmp_path):
    exe = _bpftrace()
    if os.geteuid() != 0:
        pytest.skip("attaching USDT probes needs root")
    srv = start_server(engine=engine)
    # arg1 is the worker, arg4 the peer port; print both once per accept and
    # one line per echoed chunk (send probe, arg2 = bytes).
    script = ('BEGIN { printf("attached\\n"); } '
              'usdt:%s:echosrv:accept { printf("accept worker=%%d port=%%d\\n", arg1, arg4); } '
              'usdt:%s:echosrv:send { printf("send bytes=%%d\\n", arg2); }') % (ECHOSRV, ECHOSRV)
    bt = Tracer(exe, srv.proc.pid, script, tmp_path / "bpftrace.out")
    try:
        s = srv.connect()
        port = s.getsockname()[1]
        assert echo_roundtrip(s, b"probe me") == b"probe me"
        s.close()
        wait_for(lambda: "accept worker=0 port=%d" % port in bt.text()
                 and "send bytes=8" in bt.text(), timeout=20, what="the probes to fire")
    finally:
        bt.stop()


@pytest.mark.root
def test_attached_probe_fires_for_udp(start_server, engine, tmp_path):
    """udp_recv, udp_send and udp_drop fire with the worker, the size and
    the drop's reason."""
    exe = _bpftrace()
    if os.geteuid() != 0:
        pytest.skip("attaching USDT probes needs root")
    srv = start_server("--udp-listen", "127.0.0.1:0", "--udp-max-size", "100", engine=engine)
    script = ('BEGIN { printf("attached\\n"); } '
              'usdt:%s:echosrv:udp_recv { printf("recv worker=%%d bytes=%%d\\n", arg0, arg1); } '
              'usdt:%s:echosrv:udp_send { printf("send worker=%%d bytes=%%d\\n", arg0, arg1); } '
              'usdt:%s:echosrv:udp_drop { printf("drop worker=%%d reason=%%s\\n", arg0, str(arg1)); }'
              ) % (ECHOSRV, ECHOSRV, ECHOSRV)
    bt = Tracer(exe, srv.proc.pid, script, tmp_path / "bpftrace.out")
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.settimeout(10)
    try:
        c.sendto(b"u" * 20, srv.udp_addrs[0])
        assert c.recvfrom(100)[0] == b"u" * 20
        c.sendto(b"v" * 200, srv.udp_addrs[0])	# over --udp-max-size: dropped
        want = ("recv worker=0 bytes=20", "send worker=0 bytes=20", "drop worker=0 reason=too-big")
        wait_for(lambda: all(w in bt.text() for w in want), timeout=20,
                 what="the UDP probes to fire")
    finally:
        c.close()
        bt.stop()
