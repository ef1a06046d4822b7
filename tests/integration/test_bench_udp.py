# SPDX-License-Identifier: GPL-2.0-only
"""echosrv-bench-udp (tools/bench_udp.c): every datagram accounted for
against echosrv, and each fault caught against a deliberately broken
server (a Python thread that drops, duplicates, reorders or corrupts)."""
import json
import os
import socket
import subprocess
import threading

import pytest

from conftest import BUILD

BENCH = os.path.join(BUILD, "echosrv-bench-udp")


def run_bench(port, *args):
    r = subprocess.run([BENCH, "--host", "127.0.0.1", "--port", str(port)] + list(args),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_every_datagram_back_from_echosrv(start_server, tmp_path, engine):
    srv = start_server("--udp-listen", "127.0.0.1:0", "--udp-rate", "0", engine=engine)
    port = srv.udp_addrs[0][1]
    for size, sources in ((64, 1), (1472, 8)):
        out = run_bench(port, "--size", str(size), "--sources", str(sources), "--bind",
                        "127.0.0.2", "--window", "4", "--count", "500", "--give-up", "5000")
        assert out["sent"] == out["echoed"] == 500 * sources, out
        assert out["lost"] == out["duplicated"] == out["corrupted"] == 0, out


class Broken:
    """A UDP echo that breaks every 10th datagram in one way."""

    def __init__(self, fault):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.fault, self.stop, self.n = fault, False, 0
        self.thread = threading.Thread(target=self.serve)
        self.thread.start()

    def serve(self):
        held = None
        while not self.stop:
            try:
                data, peer = self.sock.recvfrom(70000)
            except socket.timeout:
                if held:	# the last one: nothing comes after it to overtake
                    self.sock.sendto(*held)
                    held = None
                continue
            self.n += 1
            odd = self.n % 10 == 0
            if odd and self.fault == "drop":
                continue
            if odd and self.fault == "corrupt":
                data = data[:-1] + bytes([data[-1] ^ 1])
            if odd and self.fault == "reorder":
                held = (data, peer)
                continue
            self.sock.sendto(data, peer)
            if odd and self.fault == "duplicate":
                self.sock.sendto(data, peer)
            if held:
                self.sock.sendto(*held)
                held = None

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.sock.close()


@pytest.mark.parametrize("fault,counter", [("drop", "lost"), ("duplicate", "duplicated"),
                                           ("reorder", "reordered"), ("corrupt", "corrupted")])
def test_faults_are_caught(fault, counter):
    srv = Broken(fault)
    try:
        out = run_bench(srv.port, "--size", "100", "--window", "4", "--count", "200",
                        "--give-up", "2000")
    finally:
        srv.close()
    assert out[counter] > 0, out
    for other in ("lost", "duplicated", "reordered", "corrupted"):
        if other != counter and not (fault == "corrupt" and other == "lost"):
            assert out[other] == 0, (other, out)
