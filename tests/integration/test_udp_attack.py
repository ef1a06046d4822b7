# SPDX-License-Identifier: GPL-2.0-only
"""UDP echo under attack (docs/udp.md, "Why the guards"): what a hostile
sender tries against a reflector, each case with the real binary under
every engine.  Crafted packets come from a network namespace on a veth
pair (netns.py, 198.18.0.0/15) or from a raw socket on loopback."""
import socket

from netns import SERVER_IP, CLIENT_IP, netns  # noqa: F401 (fixture)
from test_udp import client, counters, nothing_back, spoof, udp_server, wait_counter

# A second veth pair, made after the dummies so that its index comes last.
SRV2, CLI2 = "198.18.1.1", "198.18.1.2"


def test_loopback_source_on_a_host_with_many_interfaces(netns, start_server, tmp_path,
                                                          engine):
    """A host with many interfaces (a container host: one veth per
    container) lists more interface entries than the guard keeps.  A
    127.0.0.0/8 source arriving on an interface past that point must still
    count as arriving from outside: dropped as bad-source, not reflected
    to a loopback-only service."""
    s = netns.srv_ns
    for i in range(36):	# 72 links, as many interface entries (no dummy module here)
        netns.ns(s, "ip", "link", "add", "fa%d" % i, "type", "veth", "peer", "name", "fb%d" % i)
    netns.ns(s, "ip", "link", "add", "vs2", "type", "veth", "peer", "name", "vc2", "netns",
             netns.cli_ns)
    netns.ns(s, "ip", "addr", "add", SRV2 + "/30", "dev", "vs2")
    netns.ns(s, "ip", "link", "set", "vs2", "up")
    netns.ns(netns.cli_ns, "ip", "addr", "add", CLI2 + "/30", "dev", "vc2")
    netns.ns(netns.cli_ns, "ip", "link", "set", "vc2", "up")
    netns.ns(s, "sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1",
             "net.ipv4.conf.vs2.route_localnet=1", "net.ipv4.conf.all.rp_filter=0",
             "net.ipv4.conf.vs2.rp_filter=0")
    srv = udp_server(start_server, tmp_path, engine, "--listen", SERVER_IP + ":0",
                     wrapper=netns.wrapper())

    def send():
        c = client(CLI2)
        c.sendto(b"plain", (SRV2, srv.uport))
        assert c.recvfrom(100)[0] == b"plain"
        spoof("127.0.0.5", 40000, SRV2, srv.uport, b"martian")
    netns.in_client(send)
    # A datagram is counted received before it is judged: wait for the drop.
    c = wait_counter(srv, "udp_dropped/bad-source")
    assert c["udp_datagrams_received_total"] == 2
    assert c["udp_dropped"]["bad-source"] == 1 and c["udp_datagrams_sent_total"] == 1, \
        {k: v for k, v in c.items() if k.startswith("udp")}
