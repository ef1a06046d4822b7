# SPDX-License-Identifier: GPL-2.0-only
"""bench/placement.py - where the servers and the load run (bench/run.py).

netns (the default): the servers in one network namespace and the load in
another, joined by a veth pair addressed from 198.18.0.0/15 (RFC 2544, never
routed anywhere).  With receive packet steering (RPS) on each veth end, the
kernel's receive work for a packet runs on the receiving side's CPU: the
server's on the server's CPU (0), the load's on the load's (1), as a NIC's
interrupt would put it.  On loopback, instead, the receiving socket's
softirq work runs on the sender's CPU, so part of each side's cost is
charged to the other (the sockmap engine's echo runs on the load's CPU).

loopback: both on 127.0.0.1, as before, for comparison.

The namespaces are named esrvb-<pid>-s/-c and removed in close(), which
run.py calls in a finally: block and from its SIGTERM/SIGHUP handler; ones
left by a bench that was killed (its pid is gone) are removed at start.
"""
import os
import subprocess

PREFIX = "esrvb"
SERVER_IP = "198.18.10.1"
CLIENT_IP = "198.18.10.2"


def _run(cmd, check=True):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and r.returncode:
        raise RuntimeError("%s: %s" % (" ".join(cmd), r.stderr.strip()))
    return r


def cpu_mask(cpu):
    """rps_cpus takes a hex CPU mask."""
    return "%x" % (1 << cpu)


class Loopback:
    name = "loopback"
    server_ip = client_ip = "127.0.0.1"

    def __init__(self, server_cpu, client_cpu):
        self.server_cpu, self.client_cpu = server_cpu, client_cpu

    def server_prefix(self):
        return []

    def client_prefix(self):
        return []

    def describe(self):
        return "loopback (127.0.0.1)"

    def close(self):
        pass


def reap_stale():
    r = _run(["ip", "netns", "list"], check=False)
    for line in r.stdout.splitlines():
        name = (line.split() or [""])[0]
        parts = name.split("-")
        if len(parts) == 3 and parts[0] == PREFIX and parts[1].isdigit() \
                and not os.path.exists("/proc/" + parts[1]):
            _run(["ip", "netns", "del", name], check=False)


class Netns:
    name = "netns"
    server_ip = SERVER_IP
    client_ip = CLIENT_IP

    def __init__(self, server_cpu, client_cpu):
        self.server_cpu, self.client_cpu = server_cpu, client_cpu
        reap_stale()
        tag = "%s-%d" % (PREFIX, os.getpid())
        self.srv_ns, self.cli_ns = tag + "-s", tag + "-c"
        self.created = []
        try:
            self._create()
        except BaseException:       # a Ctrl-C half-way, too
            self.close()
            raise

    def _create(self):
        for ns in (self.srv_ns, self.cli_ns):
            _run(["ip", "netns", "add", ns])
            self.created.append(ns)
        _run(["ip", "link", "add", "vbs", "netns", self.srv_ns, "type", "veth",
              "peer", "name", "vbc", "netns", self.cli_ns])
        for ns, dev, ip, cpu in ((self.srv_ns, "vbs", SERVER_IP, self.server_cpu),
                                 (self.cli_ns, "vbc", CLIENT_IP, self.client_cpu)):
            self.ns(ns, "ip", "addr", "add", ip + "/30", "dev", dev)
            self.ns(ns, "ip", "link", "set", dev, "up")
            self.ns(ns, "ip", "link", "set", "lo", "up")
            if cpu is not None:
                # `ip netns exec` mounts this namespace's own /sys.
                self.ns(ns, "sh", "-c", "echo %s > /sys/class/net/%s/queues/rx-0/rps_cpus"
                        % (cpu_mask(cpu), dev))
        # Thousands of connections burst at once: room in the input queues
        # and the accept queue, as loopback's defaults would not give.
        for ns in (self.srv_ns, self.cli_ns):
            self.ns(ns, "sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65000",
                    check=False)

    def ns(self, ns, *cmd, check=True):
        return _run(["ip", "netns", "exec", ns] + list(cmd), check=check)

    def server_prefix(self):
        return ["ip", "netns", "exec", self.srv_ns]

    def client_prefix(self):
        return ["ip", "netns", "exec", self.cli_ns]

    def describe(self):
        return ("network namespaces joined by a veth pair (%s <-> %s), RPS steering "
                "each end's receive work to its own side's CPU" % (SERVER_IP, CLIENT_IP))

    def close(self):
        for ns in self.created:
            _run(["ip", "netns", "del", ns], check=False)
        self.created = []


def make(name, server_cpu, client_cpu):
    if name == "loopback":
        return Loopback(server_cpu, client_cpu)
    if name == "netns":
        return Netns(server_cpu, client_cpu)
    raise ValueError("BENCH_PLACEMENT: '%s' is neither netns nor loopback" % name)
