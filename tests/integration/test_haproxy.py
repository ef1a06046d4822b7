# SPDX-License-Identifier: GPL-2.0-only
"""PROXY protocol with a real haproxy: clients from several
127.0.0.x sources -> haproxy (send-proxy and send-proxy-v2, health checks
with check-send-proxy) -> three echosrv instances, under every engine."""
import json
import os
import random
import signal
import socket
import threading

import pytest

from conftest import wait_for
from haproxy import HAPROXY, Haproxy
from ops_common import ctl, stats

pytestmark = pytest.mark.skipif(not HAPROXY, reason="haproxy not installed (package haproxy)")

SOURCES = ["127.0.0.%d" % i for i in range(2, 6)]
DENIED = "127.0.0.66"
INSTANCES = 3


def start_instances(start_server, tmp_path, engine):
    out = []
    for i in range(INSTANCES):
        path = tmp_path / ("ctl%d" % i)
        srv = start_server("--listen", "127.0.0.1:0", "--proxy-listen", "127.0.0.1:0",
                           "--proxy-from", "127.0.0.1/32", "--deny", DENIED + "/32",
                           "--ctl", str(path), "--trace", "error,conn",
                           "--drain-timeout", "30", engine=engine)
        srv.ctl = path
        out.append(srv)
    return out


@pytest.fixture
def farm(start_server, tmp_path, engine):
    """(haproxy, instances): frontends "v1" and "v2" over the same three."""
    inst = start_instances(start_server, tmp_path, engine)
    addrs = [s.addrs[1] for s in inst]
    h = Haproxy(tmp_path, {"v1": ("send-proxy", addrs), "v2": ("send-proxy-v2", addrs)})
    try:
        h.wait_all_up()
        # haproxy takes its servers as up until a check fails: wait for a
        # v2 health check (LOCAL) to have reached each instance.
        for srv in inst:
            wait_for(lambda: stats(srv.ctl)["proxy_health_checks_total"] > 0,
                     what="a health check from haproxy")
        yield h, inst
    finally:
        h.stop()


def client(h, front, source, timeout=20):
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", h.ports[front]))
    return s


def exchange(s, data):
    """Send data in pieces, read it all back; what came back."""
    got = bytearray()
    for at in range(0, len(data), 4096):
        s.sendall(data[at:at + 4096])
        while len(got) < min(len(data), at + 4096):
            part = s.recv(65536)
            if not part:
                return bytes(got)
            got += part
    return bytes(got)


def test_many_clients_every_byte(farm):
    h, inst = farm
    errors = []
    count = [0]
    lock = threading.Lock()

    def run(tid):
        rnd = random.Random(tid)
        for n in range(40):
            src = SOURCES[(tid + n) % len(SOURCES)]
            data = rnd.randbytes(rnd.randrange(1, 20000))
            try:
                s = client(h, "v1" if n % 2 else "v2", src)
                got = exchange(s, data)
                s.close()
            except OSError as e:
                errors.append("%d/%d: %s" % (tid, n, e))
                continue
            if got != data:
                errors.append("%d/%d: %d of %d bytes back" % (tid, n, len(got), len(data)))
            with lock:
                count[0] += 1

    threads = [threading.Thread(target=run, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:5]
    assert count[0] == 320
    # Every instance served its share, each client under its own address.
    proxied = [stats(s.ctl)["proxy_connections_total"] for s in inst]
    assert sum(proxied) >= 320 and all(p > 0 for p in proxied), proxied
    for s in inst:
        assert stats(s.ctl)["proxy_health_checks_total"] > 0	# haproxy's checks
        assert stats(s.ctl)["rejected"]["proxy_bad"] == 0


def test_conns_show_client_sources(farm):
    h, inst = farm
    socks = []
    for i in range(4 * INSTANCES):
        s = client(h, "v2" if i % 2 else "v1", SOURCES[i % len(SOURCES)])
        assert exchange(s, b"hold %d" % i) == b"hold %d" % i
        socks.append((SOURCES[i % len(SOURCES)], s))
    seen = set()
    for srv in inst:
        listed = json.loads(ctl(srv.ctl, "conns", "--json").stdout)["connections"]
        for c in listed:
            if not c.get("via"):
                continue	# a health check in flight
            assert c["via"].startswith("127.0.0.1:")
            seen.add(c["peer"].rsplit(":", 1)[0])
        assert any(c.get("via") for c in listed), "instance served nobody: %s" % listed
    assert seen == set(SOURCES)
    for _, s in socks:
        s.close()


def test_denied_client_refused_by_echosrv(farm):
    h, inst = farm
    for front in ("v1", "v2"):
        s = client(h, front, DENIED)
        try:
            s.sendall(b"should not come back")
            assert s.recv(100) == b""
        except ConnectionResetError:
            pass
        s.close()
    ok = client(h, "v1", SOURCES[0])
    assert exchange(ok, b"allowed") == b"allowed"
    # At least one refusal per client connection: haproxy may retry a
    # connection echosrv reset right after the header on another instance.
    wait_for(lambda: sum(stats(s.ctl)["rejected"]["acl"] for s in inst) >= 2,
             what="echosrv's ACL refusals")
    wait_for(lambda: any("peer=%s:" % DENIED in s.stderr() and "reason=acl" in s.stderr()
                         for s in inst), what="the ACL refusal's log line")


def test_drain_moves_new_connections(farm):
    h, inst = farm
    # Long-lived connections on every instance, some bytes echoed.
    held = []
    for i in range(3 * INSTANCES):
        s = client(h, "v2", SOURCES[i % len(SOURCES)])
        assert exchange(s, b"before %d" % i) == b"before %d" % i
        held.append(s)
    victim = inst[0]
    on_victim = len([c for c in json.loads(ctl(victim.ctl, "conns", "--json").stdout)["connections"]
                     if c.get("via")])
    assert on_victim > 0
    victim.signal(signal.SIGTERM)
    wait_for(lambda: "draining" in victim.stderr(), what="instance 0 draining")
    before = [stats(s.ctl)["proxy_connections_total"] for s in inst[1:]]
    # New connections all succeed, on the other instances.
    for i in range(30):
        s = client(h, "v2" if i % 2 else "v1", SOURCES[i % len(SOURCES)])
        data = os.urandom(3000)
        assert exchange(s, data) == data, "new connection %d" % i
        s.close()
    after = [stats(s.ctl)["proxy_connections_total"] for s in inst[1:]]
    # (at least: haproxy's v1 health checks, with real addresses, count too)
    assert sum(after) - sum(before) >= 30
    # The old ones, on the draining instance too, lose nothing.
    for i, s in enumerate(held):
        data = os.urandom(20000)
        assert exchange(s, data) == data, "held connection %d" % i
        s.close()
    assert victim.wait(timeout=30) == 0
