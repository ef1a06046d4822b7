# SPDX-License-Identifier: GPL-2.0-only
"""USDT probes: bpftrace lists them, and one attached to a running
server fires.  Needs bpftrace and root; skips with the reason otherwise."""
import os
import re
import shutil
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
    out = open(tmp_path / "bpftrace.out", "w+")
    # arg1 is the worker, arg4 the peer port; print both once per accept and
    # one line per echoed chunk (send probe, arg2 = bytes).
    script = ('BEGIN { printf("attached\\n"); } '
              'usdt:%s:echosrv:accept { printf("accept worker=%%d port=%%d\\n", arg1, arg4); } '
              'usdt:%s:echosrv:send { printf("send bytes=%%d\\n", arg2); }') % (ECHOSRV, ECHOSRV)
    bt = subprocess.Popen([exe, "-p", str(srv.proc.pid), "-e", script], stdout=out,
                          stderr=subprocess.STDOUT)
    try:
        def attached():
            if bt.poll() is not None:
                out.seek(0)
                pytest.skip("bpftrace cannot attach here: %s" % out.read()[-500:])
            out.seek(0)
            return "attached" in out.read()
        wait_for(attached, timeout=60, interval=0.1, what="bpftrace to attach")
        s = srv.connect()
        port = s.getsockname()[1]
        assert echo_roundtrip(s, b"probe me") == b"probe me"
        s.close()

        def fired():
            out.seek(0)
            text = out.read()
            return "accept worker=0 port=%d" % port in text and "send bytes=8" in text
        wait_for(fired, timeout=20, what="the probes to fire")
    finally:
        bt.terminate()
        try:
            bt.wait(timeout=20)
        except subprocess.TimeoutExpired:
            bt.kill()
            bt.wait()
        out.close()


@pytest.mark.root
def test_attached_probe_fires_for_udp(start_server, engine, tmp_path):
    """udp_recv, udp_send and udp_drop fire with the worker, the size and
    the drop's reason."""
    import socket
    exe = _bpftrace()
    if os.geteuid() != 0:
        pytest.skip("attaching USDT probes needs root")
    srv = start_server("--udp-listen", "127.0.0.1:0", "--udp-max-size", "100", engine=engine)
    out = open(tmp_path / "bpftrace.out", "w+")
    script = ('BEGIN { printf("attached\\n"); } '
              'usdt:%s:echosrv:udp_recv { printf("recv worker=%%d bytes=%%d\\n", arg0, arg1); } '
              'usdt:%s:echosrv:udp_send { printf("send worker=%%d bytes=%%d\\n", arg0, arg1); } '
              'usdt:%s:echosrv:udp_drop { printf("drop worker=%%d reason=%%s\\n", arg0, str(arg1)); }'
              ) % (ECHOSRV, ECHOSRV, ECHOSRV)
    bt = subprocess.Popen([exe, "-p", str(srv.proc.pid), "-e", script], stdout=out,
                          stderr=subprocess.STDOUT)
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.settimeout(10)
    try:
        def attached():
            if bt.poll() is not None:
                out.seek(0)
                pytest.skip("bpftrace cannot attach here: %s" % out.read()[-500:])
            out.seek(0)
            return "attached" in out.read()
        wait_for(attached, timeout=60, interval=0.1, what="bpftrace to attach")
        c.sendto(b"u" * 20, srv.udp_addrs[0])
        assert c.recvfrom(100)[0] == b"u" * 20
        c.sendto(b"v" * 200, srv.udp_addrs[0])	# over --udp-max-size: dropped

        def fired():
            out.seek(0)
            text = out.read()
            return ("recv worker=0 bytes=20" in text and "send worker=0 bytes=20" in text
                    and "drop worker=0 reason=too-big" in text)
        wait_for(fired, timeout=20, what="the UDP probes to fire")
    finally:
        c.close()
        bt.terminate()
        try:
            bt.wait(timeout=20)
        except subprocess.TimeoutExpired:
            bt.kill()
            bt.wait()
        out.close()
