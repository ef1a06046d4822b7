# SPDX-License-Identifier: GPL-2.0-only
"""Two network namespaces joined by a veth pair, for hostile-network tests.

The server side gets 198.18.0.1/30 and the client side 198.18.0.2/30 (the
benchmarking range, RFC 2544: never routed anywhere), so nothing these tests
do can reach a real network.  echosrv runs inside the server namespace under
`ip netns exec`; client sockets are created by a thread that has entered the
client namespace with setns(2) (a network namespace is per thread, and a
socket stays in the namespace it was made in), so the test itself stays an
ordinary Python process that can talk to both sides.

Faults are applied with the tools a real operator would use: nftables for
loss and blackholes (this kernel has no netem), tc tbf for a slow link.
Everything is deleted in close(), which fixtures call in their teardown.
"""
import ctypes
import os
import shutil
import socket
import subprocess
import threading

import pytest

SERVER_IP = "198.18.0.1"
CLIENT_IP = "198.18.0.2"
CLONE_NEWNET = 0x40000000
PREFIX = "esrvt"
_seq = [0]


def _run(*cmd, check=True):
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
    if check and r.returncode:
        raise RuntimeError("%s: %s" % (" ".join(cmd), r.stderr.strip()))
    return r


def _reap_stale():
    """Remove namespaces left behind by a test process that was killed."""
    r = _run("ip", "netns", "list", check=False)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        parts = name.split("-")
        if len(parts) == 4 and parts[0] == PREFIX and parts[1].isdigit():
            if not os.path.exists("/proc/" + parts[1]):
                _run("ip", "netns", "del", name, check=False)


def require_netns(*tools):
    """Skip (with the reason) unless root and `ip netns` and tools work."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    for t in ("ip",) + tools:
        if shutil.which(t) is None:
            pytest.skip("needs %s (scripts/deps.sh installs it)" % t)
    probe = "%s-%d-probe-x" % (PREFIX, os.getpid())
    r = _run("ip", "netns", "add", probe, check=False)
    if r.returncode:
        pytest.skip("ip netns is not usable here: " + r.stderr.strip())
    _run("ip", "netns", "del", probe, check=False)


class NetnsPair:
    def __init__(self):
        _reap_stale()
        _seq[0] += 1
        tag = "%s-%d-%d" % (PREFIX, os.getpid(), _seq[0])
        self.srv_ns = tag + "-s"
        self.cli_ns = tag + "-c"
        self.created = []
        try:
            for ns in (self.srv_ns, self.cli_ns):
                _run("ip", "netns", "add", ns)
                self.created.append(ns)
            _run("ip", "link", "add", "vs", "netns", self.srv_ns, "type", "veth",
                 "peer", "name", "vc", "netns", self.cli_ns)
            for ns, dev, ip in ((self.srv_ns, "vs", SERVER_IP), (self.cli_ns, "vc", CLIENT_IP)):
                self.ns(ns, "ip", "addr", "add", ip + "/30", "dev", dev)
                self.ns(ns, "ip", "link", "set", dev, "up")
                self.ns(ns, "ip", "link", "set", "lo", "up")
        except Exception:
            self.close()
            raise

    def ns(self, ns, *cmd, check=True):
        return _run("ip", "netns", "exec", ns, *cmd, check=check)

    def wrapper(self):
        """Command prefix that runs echosrv in the server namespace."""
        return ["ip", "netns", "exec", self.srv_ns]

    def nft(self, ns, script):
        r = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script,
                           capture_output=True, text=True, timeout=30)
        if r.returncode:
            raise RuntimeError("nft: " + r.stderr.strip())

    def lossy(self, percent):
        """Drop percent% of the packets in each direction, at random, on
        the client side (so the server sees a lossy path both ways)."""
        self.nft(self.cli_ns, """
table inet esrvloss {
  chain in  { type filter hook input  priority 0; numgen random mod 100 < %d drop; }
  chain out { type filter hook output priority 0; numgen random mod 100 < %d drop; }
}
""" % (percent, percent))

    def blackhole(self):
        """The client vanishes: every packet to or from it is dropped, so
        the server sees neither FIN nor RST."""
        self.nft(self.cli_ns, """
table inet esrvhole {
  chain in  { type filter hook input  priority 0; drop; }
  chain out { type filter hook output priority 0; drop; }
}
""")

    def drop_synack(self):
        """Client handshakes never complete: SYN-ACKs from the server are
        dropped, so every new client connection stays half-open (a SYN
        flood as the server sees it)."""
        self.nft(self.cli_ns, """
table inet esrvsyn {
  chain in { type filter hook input priority 0; tcp flags & (syn | ack) == syn | ack drop; }
}
""")

    def undo(self, table):
        self.ns(self.cli_ns, "nft", "delete", "table", "inet", table, check=False)

    def rate_limit(self, rate="20mbit"):
        for ns, dev in ((self.srv_ns, "vs"), (self.cli_ns, "vc")):
            self.ns(ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", rate,
                    "burst", "32kb", "latency", "100ms")

    def one_segment_per_packet(self):
        """No segmentation offload on the veth pair: every TCP segment is
        its own packet, so loss hits single segments and a retransmission
        often covers some bytes the receiver already has (the overlap that
        issue 7's sockmap defect came from)."""
        for ns, dev in ((self.srv_ns, "vs"), (self.cli_ns, "vc")):
            self.ns(ns, "ip", "link", "set", "dev", dev, "gso_max_segs", "1")

    def link_down(self):
        self.ns(self.cli_ns, "ip", "link", "set", "vc", "down")

    def client_wrapper(self):
        """Command prefix that runs a program in the client namespace."""
        return ["ip", "netns", "exec", self.cli_ns]

    def in_client(self, fn):
        """Run fn() in a thread that has entered the client namespace."""
        out = {}

        def body():
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open("/var/run/netns/" + self.cli_ns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            try:
                out["v"] = fn()
            except BaseException as e:  # handed to the caller below
                out["e"] = e

        t = threading.Thread(target=body)
        t.start()
        t.join(120)
        if "e" in out:
            raise out["e"]
        return out.get("v")

    def connect(self, port, timeout=30, blocking=True):
        """A socket in the client namespace connected to the server."""
        def mk():
            if blocking:
                return socket.create_connection((SERVER_IP, port), timeout=timeout)
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex((SERVER_IP, port))
            return s
        return self.in_client(mk)

    def close(self):
        for ns in self.created:
            _run("ip", "netns", "del", ns, check=False)
        self.created = []


@pytest.fixture
def netns():
    require_netns()
    pair = NetnsPair()
    try:
        yield pair
    finally:
        pair.close()
