# SPDX-License-Identifier: GPL-2.0-only
"""UDP sockets changed by reload while datagrams keep arriving, and the
io_uring engine's multishot receive pushed to its edges (docs/udp.md):
every reply from the address and port it was sent to, no descriptor kept
by a removed socket, the counters adding up.  Every case runs under each
engine; the io_uring ones under both receives (multishot, and the poll
fallback that ECHOSRV_URING_UDP_MSHOT=0 forces)."""
import os
import select
import socket
import threading
import time

import pytest

from conftest import wait_for
from netns import CLIENT_IP, SERVER_IP, netns  # noqa: F401 (fixture)
from ops_common import ctl, stats
from test_reload_udp import echoes, port_file, refused, reload, start
from test_udp import client

WORKERS = [1, pytest.param(2, marks=pytest.mark.workers),
           pytest.param(4, marks=pytest.mark.workers)]


def config_server(start_server, tmp_path, engine, workers, mshot, lines):
    """A server run from a config file of `lines` (srv.conf) with a control
    socket (srv.ctl), as reload() wants it."""
    conf = tmp_path / "e.conf"
    conf.write_text("\n".join(lines) + "\n")
    srv = start_server("--config", str(conf), "--ctl", str(tmp_path / "ctl"),
                       "--workers", str(workers), engine=engine, cli_defaults=False,
                       env=uring_env(engine, mshot))
    srv.conf, srv.ctl = conf, str(tmp_path / "ctl")
    return srv


def uring_env(engine, mshot):
    """The environment for a receive: None (inherited) but for io_uring's poll."""
    if engine != "io_uring" or mshot:
        return None
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECHOSRV_URING_")}
    env["ECHOSRV_URING_UDP_MSHOT"] = "0"
    return env


class Flood:
    """Datagrams from n sources to whatever addresses `targets` holds, each
    naming where it was sent; every reply is checked against that name."""

    def __init__(self, n_sources=8, size=64):
        self.socks = []
        for _ in range(n_sources):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
            self.socks.append(s)
        self.size = size
        self.targets = []
        self.sent = self.got = 0
        self.wrong = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        seq = 0
        deadline = time.monotonic() + 120
        while not self.stop.is_set() and time.monotonic() < deadline:
            for t in list(self.targets):
                for s in self.socks:
                    msg = ("%s:%d:%d:" % (t[0], t[1], seq)).encode()
                    seq += 1
                    try:
                        s.sendto(msg.ljust(self.size, b"."), t)
                        self.sent += 1
                    except OSError:
                        pass
            self._drain(0.002)
        self._drain(0.5)

    def _drain(self, wait):
        r, _, _ = select.select(self.socks, [], [], wait)
        for s in r:
            for _ in range(256):
                try:
                    data, frm = s.recvfrom(70000)
                except (BlockingIOError, ConnectionRefusedError):
                    break
                self.got += 1
                host, port = data.split(b":")[:2]
                if (host.decode(), int(port)) != (frm[0], frm[1]) or len(data) != self.size:
                    self.wrong.append((data[:40], frm))

    def close(self):
        self.stop.set()
        self.thread.join(30)
        for s in self.socks:
            s.close()


CONFIGS = [
    ["udp-listen 127.0.0.1:0"],
    ["udp-listen 127.0.0.1:0", "udp-listen 127.0.0.2:0"],
    ["udp-listen 127.0.0.2:0"],
    [],
    ["udp-listen 127.0.0.2:0", "udp-listen 127.0.0.1:0", "udp-listen 127.0.0.3:0"],
    ["udp-listen 127.0.0.3:0"],
    ["udp-listen 127.0.0.1:0", "udp-listen 127.0.0.3:0", "udp-df"],
    ["udp-listen 127.0.0.1:0"],
]


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("mshot", [True, False], ids=["mshot", "poll"])
def test_reload_churn_under_a_flood(start_server, tmp_path, engine, workers, mshot):
    """Reloads that add, remove, swap and replace UDP lines (port 0: a new
    port each time) while a flood arrives: every reply comes from the
    address and port it was sent to, nothing is left open of a removed
    socket, and the last configuration echoes everywhere."""
    if engine != "io_uring" and not mshot:
        pytest.skip("the poll fallback is io_uring's")
    base = ["listen 127.0.0.1:0", "udp-rate 0", "drain-timeout 3"]
    srv = config_server(start_server, tmp_path, engine, workers, mshot, base + CONFIGS[0])
    fds0 = srv.fd_count()
    flood = Flood()
    flood.targets = port_file(srv)[1]
    flood.thread.start()
    try:
        for i in range(3 * len(CONFIGS)):
            lines = CONFIGS[(i + 1) % len(CONFIGS)]
            r = reload(srv, *(base + lines))
            assert r.returncode == 0, r
            flood.targets = port_file(srv)[1]
            time.sleep(0.05)
    finally:
        flood.close()
    assert not flood.wrong, flood.wrong[:5]
    assert flood.got > 0
    # Back where it began: as many descriptors as at start.
    wait_for(lambda: srv.fd_count() == fds0,
             what="%d descriptors as at start (now %s)" % (fds0, os.listdir(
                 "/proc/%d/fd" % srv.proc.pid)))
    (_, udp) = port_file(srv)
    assert len(udp) == 1
    for i in range(8):
        assert echoes(udp[0], b"last %d" % i)


def ping_pong(addr, stop, lost, n_max=4000):
    """One datagram in flight from one source to addr, until stop: each must
    come back, from addr, before the next goes (lost: those that did not)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5)
    n = 0
    try:
        while not stop.is_set() and n < n_max:
            msg = b"keep %d" % n
            s.sendto(msg, addr)
            try:
                data, frm = s.recvfrom(100)
                if data != msg or frm != addr:
                    lost.append((msg, data, frm))
            except (socket.timeout, ConnectionRefusedError) as e:
                lost.append((msg, repr(e)))
            n += 1
    finally:
        s.close()
    return n


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("mshot", [True, False], ids=["mshot", "poll"])
def test_kept_address_loses_nothing_while_others_churn(start_server, tmp_path, engine,
                                                        workers, mshot):
    """The slot a reload keeps serves on through every reload beside it
    (others added, removed, replaced in a lower slot): none of its replies
    is lost or comes from elsewhere."""
    if engine != "io_uring" and not mshot:
        pytest.skip("the poll fallback is io_uring's")
    base = ["listen 127.0.0.1:0", "udp-rate 0", "drain-timeout 3"]
    srv = config_server(start_server, tmp_path, engine, workers, mshot,
                        base + ["udp-listen 127.0.0.2:0", "udp-listen 127.0.0.1:0"])
    kept = [a for a in port_file(srv)[1] if a[0] == "127.0.0.1"][0]
    keep = "udp-listen 127.0.0.1:%d" % kept[1]
    stop, lost, counts = threading.Event(), [], []
    threads = [threading.Thread(target=lambda: counts.append(ping_pong(kept, stop, lost)))
               for _ in range(4)]
    for t in threads:
        t.start()
    others = [[], ["udp-listen 127.0.0.2:0"], ["udp-listen 127.0.0.3:0", "udp-listen 127.0.0.2:0"],
              ["udp-listen 127.0.0.3:0"]]
    try:
        for i in range(16):
            lines = others[i % len(others)]
            order = lines + [keep] if i % 2 else [keep] + lines
            r = reload(srv, *(base + order))
            assert r.returncode == 0, r
            time.sleep(0.03)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not lost, lost[:5]
    assert sum(counts) > 0


SIZES = [0, 1, 1472, 9000, 65507, 65507, 300]


def sized(n, seed):
    return bytes((i * 13 + seed) & 0xff for i in range(n))


@pytest.mark.parametrize("mshot", [True, False], ids=["mshot", "poll"])
def test_large_datagrams_and_gro_runs_counted_exactly(start_server, tmp_path, engine, mshot):
    """Many sources, 64 KiB datagrams and coalesced runs (UDP_GRO) beside
    small ones, each source with a few in flight: past the io_uring ring's
    first depth (ENOBUFS, re-armed), every datagram comes back intact, once,
    and `stats` says exactly as many in and out with no drop."""
    if engine != "io_uring" and not mshot:
        pytest.skip("the poll fallback is io_uring's")
    from test_udp_gro import cut, send_segmented
    ctlp = str(tmp_path / "ctl")
    srv = start_server("--udp-listen", "[::]:0", "--ctl", ctlp, "--udp-rate", "0",
                       engine=engine, env=uring_env(engine, mshot))
    port = srv.udp_addrs[0][1]
    socks = []
    for i in range(24):
        fam, host = (socket.AF_INET6, "::1") if i % 3 == 2 else (socket.AF_INET, "127.0.0.1")
        if i % 6 == 5:
            fam, host = socket.AF_INET6, "::ffff:127.0.0.1"
        socks.append((client(host, family=fam, timeout=10), host))
    sent = 0
    for rnd in range(6):
        want = {}
        for j, (s, host) in enumerate(socks):
            n = SIZES[(rnd + j) % len(SIZES)]
            if j % 4 == 3 and n < 65507:
                data = sized(1200 * 20 + 11, rnd + j)
                send_segmented(s, data, 1200, (host, port))
                want[j] = cut(data, 1200)
            else:
                want[j] = [sized(n, rnd + j)]
                s.sendto(want[j][0], (host, port))
            sent += len(want[j])
            # A few at a time: the server's receive queue (the kernel's
            # default size) holds about three 64 KiB datagrams.
            if j % 3 == 2:
                for k in range(j - 2, j + 1):
                    sk, h = socks[k]
                    got = []
                    for _ in want[k]:
                        d, frm = sk.recvfrom(70000)
                        assert frm[0] == h and frm[1] == port, (frm, h)
                        got.append(d)
                    assert got == want[k], (rnd, k, [len(x) for x in got],
                                            [len(x) for x in want[k]])
    for s, _ in socks:
        s.settimeout(0.1)
        with pytest.raises(socket.timeout):
            s.recvfrom(70000)
        s.close()
    c = wait_for(lambda: (lambda c: c["udp_datagrams_sent_total"] >= sent and c)(stats(ctlp)),
                 what="%d sent" % sent)
    assert c["udp_datagrams_received_total"] == sent, c
    assert c["udp_datagrams_sent_total"] == sent, c
    assert not any(c["udp_dropped"].values()), c["udp_dropped"]


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("mshot", [True, False], ids=["mshot", "poll"])
def test_drain_during_a_flood_and_reloads(start_server, tmp_path, engine, workers, mshot):
    """SIGTERM while datagrams flood in and reloads keep changing the UDP
    lines: the server exits cleanly and at once (UDP has nothing to finish),
    every reply it sent came from where it was sent to, and a reload that
    meets the drain is refused or done, never hung."""
    if engine != "io_uring" and not mshot:
        pytest.skip("the poll fallback is io_uring's")
    base = ["listen 127.0.0.1:0", "udp-rate 0", "drain-timeout 3"]
    srv = config_server(start_server, tmp_path, engine, workers, mshot, base + CONFIGS[1])
    flood = Flood()
    flood.targets = port_file(srv)[1]
    flood.thread.start()
    results = []

    def reloads():
        for i in range(40):
            r = reload(srv, *(base + CONFIGS[i % len(CONFIGS)]))
            results.append(r.returncode)
            if r.returncode:
                return
    t = threading.Thread(target=reloads, daemon=True)
    try:
        t.start()
        wait_for(lambda: len(results) >= 5, timeout=30, what="five reloads")
        srv.signal(15)
        assert srv.wait(20) == 0, srv.stderr()[-3000:]
        t.join(30)
        assert not t.is_alive()
    finally:
        flood.close()
    assert not flood.wrong, flood.wrong[:5]
    assert "ERROR" not in srv.stderr() or "sanitizer" not in srv.stderr()


@pytest.mark.parametrize("mshot", [True, False], ids=["mshot", "poll"])
def test_max_size_judged_per_datagram_of_a_coalesced_run(start_server, tmp_path, engine,
                                                          mshot):
    """--udp-max-size applies to each datagram of a UDP_GRO run, not to the
    run: segments within it are all echoed, a run of larger ones is
    dropped as too-big, one count per datagram; nothing counts truncated."""
    if engine != "io_uring" and not mshot:
        pytest.skip("the poll fallback is io_uring's")
    from test_udp_gro import cut, send_segmented
    ctlp = str(tmp_path / "ctl")
    srv = start_server("--udp-listen", "127.0.0.1:0", "--ctl", ctlp, "--udp-rate", "0",
                       "--udp-max-size", "1300", engine=engine, env=uring_env(engine, mshot))
    addr = srv.udp_addrs[0]
    s = client(timeout=10)
    small = sized(1200 * 20 + 11, 1)
    send_segmented(s, small, 1200, addr)
    got = [s.recvfrom(70000)[0] for _ in range(21)]
    assert got == cut(small, 1200)
    big = sized(1400 * 20, 2)
    send_segmented(s, big, 1400, addr)
    s.sendto(b"after", addr)
    assert s.recvfrom(70000)[0] == b"after"
    # A reply is counted after its send returns, so the client can hold
    # "after" a moment before the count shows it: wait for both.
    c = wait_for(lambda: (lambda c: c["udp_dropped"]["too-big"] >= 20
                          and c["udp_datagrams_sent_total"] >= 22 and c)(stats(ctlp)),
                 what="20 too-big and 22 sent")
    assert c["udp_dropped"]["too-big"] == 20 and c["udp_dropped"]["truncated"] == 0, c
    assert c["udp_datagrams_received_total"] == 42 and c["udp_datagrams_sent_total"] == 22, c


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("mshot", [True, False], ids=["mshot", "poll"])
def test_removed_port_is_free_again_at_once(start_server, tmp_path, engine, workers, mshot):
    """A line removed and the same address and port added back by the very
    next reload: the removed socket is really gone when the reload says
    done (an io_uring receive not yet cancelled would hold it, and the
    next bind would fail as taken), and it is refused while removed."""
    if engine != "io_uring" and not mshot:
        pytest.skip("the poll fallback is io_uring's")
    from conftest import free_port
    base = ["listen 127.0.0.1:0", "udp-rate 0", "drain-timeout 3"]
    srv = config_server(start_server, tmp_path, engine, workers, mshot,
                        base + ["udp-listen 127.0.0.1:0"])
    keep = "udp-listen 127.0.0.1:%d" % port_file(srv)[1][0][1]
    port = free_port()
    line = "udp-listen 127.0.0.2:%d" % port
    for i in range(20):
        r = reload(srv, *(base + [keep, line]))
        assert r.returncode == 0, (i, r.stderr)
        if i % 5 == 0:
            assert echoes(("127.0.0.2", port), b"in %d" % i)
        r = reload(srv, *(base + [keep]))
        assert r.returncode == 0, (i, r.stderr)
        if i % 5 == 0:
            assert refused(("127.0.0.2", port)), i


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("mshot", [True, False], ids=["mshot", "poll"])
def test_reload_meeting_a_taken_address_leaves_nothing_behind(start_server, tmp_path, engine,
                                                              workers, mshot):
    """A reload whose new lines are a free address and one another process
    holds (SO_REUSEPORT too, which a careless bind would share) is refused
    whole, again and again: the free one's sockets, bound for every worker
    before the taken one failed, are closed (no descriptor left, the port
    refused), the other process keeps its port, and the lines serving
    still echo."""
    if engine != "io_uring" and not mshot:
        pytest.skip("the poll fallback is io_uring's")
    base = ["listen 127.0.0.1:0", "udp-rate 0", "drain-timeout 3"]
    srv = config_server(start_server, tmp_path, engine, workers, mshot,
                        base + ["udp-listen 127.0.0.1:0"])
    kept = port_file(srv)[1][0]
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    other.bind(("127.0.0.3", 0))
    taken = other.getsockname()
    free = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    free.bind(("127.0.0.2", 0))
    free_addr = free.getsockname()
    free.close()
    fds0 = srv.fd_count()
    for i in range(10):
        lines = ["udp-listen 127.0.0.2:%d" % free_addr[1], "udp-listen 127.0.0.3:%d" % taken[1]]
        r = reload(srv, *(base + ["udp-listen 127.0.0.1:%d" % kept[1]] + lines[::1 - 2 * (i % 2)]))
        assert r.returncode != 0 and "127.0.0.3:%d" % taken[1] in r.stderr, r
        # The control connection that carried the reply may not be
        # closed yet: wait for it, a leaked socket stays.
        wait_for(lambda: srv.fd_count() == fds0,
                 what="%d descriptors after reload %d: %s" % (fds0, i, os.listdir(
                     "/proc/%d/fd" % srv.proc.pid)))
    assert refused(free_addr)
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.bind(("127.0.0.1", 0))
    c.sendto(b"mine", taken)
    other.settimeout(5)
    assert other.recvfrom(100)[0] == b"mine"
    c.close()
    other.close()
    assert echoes(kept) and port_file(srv)[1] == [kept]


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("mshot", [True, False], ids=["mshot", "poll"])
def test_all_sixteen_replaced_at_once_and_back(start_server, tmp_path, engine, workers, mshot):
    """Sixteen UDP lines (the most there may be) replaced by sixteen others
    in one reload, then by the first sixteen again, then all removed and
    all added back: each time every address echoes, from itself, on every
    worker's socket, and the descriptors come back to the count at start."""
    if engine != "io_uring" and not mshot:
        pytest.skip("the poll fallback is io_uring's")
    base = ["listen 127.0.0.1:0", "udp-rate 0", "drain-timeout 3"]
    first = ["udp-listen 127.0.1.%d:0" % i for i in range(1, 17)]
    second = ["udp-listen 127.0.2.%d:0" % i for i in range(1, 17)]
    srv = config_server(start_server, tmp_path, engine, workers, mshot, base + first)
    fds0 = srv.fd_count()
    for step, lines in enumerate([second, first, [], second[::-1], first]):
        r = reload(srv, *(base + lines))
        assert r.returncode == 0, (step, r.stderr)
        udp = wait_for(lambda: (lambda u: len(u) == len(lines) and u)(port_file(srv)[1]),
                       what="%d UDP addresses" % len(lines)) if lines else []
        assert sorted(h for h, _ in udp) == sorted(l.split()[1][:-2] for l in lines)
        flood = Flood(n_sources=2 * workers)
        for h, p in udp:
            for s in flood.socks:
                s.sendto((b"%s:%d:x" % (h.encode(), p)).ljust(flood.size, b"."), (h, p))
        want = len(udp) * len(flood.socks)
        deadline = time.monotonic() + 10
        while flood.got < want and time.monotonic() < deadline:
            flood._drain(0.2)
        for s in flood.socks:
            s.close()
        assert flood.got == want and not flood.wrong, (step, flood.got, want, flood.wrong[:3])
    wait_for(lambda: srv.fd_count() == fds0, what="%d descriptors as at start" % fds0)


def test_udp_df_toggled_on_a_dual_stack_socket(netns, start_server, tmp_path, engine):
    """udp-df on a [::] listener answering an IPv4 client (a v4-mapped
    source to the socket): set, cleared and set again by reload, on the
    socket serving and on one the same reload adds; a 1,400-byte reply over
    a 1,300-byte way back is refused with it and fragmented without."""
    netns.ns(netns.srv_ns, "ip", "route", "add", CLIENT_IP + "/32", "dev", "vs", "mtu", "lock",
             "1300")
    srv = start(start_server, tmp_path, engine, "listen %s:0" % SERVER_IP,
                "udp-listen [::]:0", "udp-rate 0", wrapper=netns.wrapper())
    [addr] = port_file(srv)[1]
    big = bytes(range(256)) * 5 + bytes(120)

    def answered(port):
        return netns.in_client(lambda: echoes((SERVER_IP, port), big, source=CLIENT_IP))

    assert answered(addr[1])
    for n, on in enumerate([True, False, True], start=2):
        lines = ["listen %s:0" % SERVER_IP, "udp-listen [::]:%d" % addr[1],
                 "udp-listen %s:0" % SERVER_IP, "udp-rate 0"]
        r = reload(srv, *(lines[:3] if n == 3 else lines) + (["udp-df"] if on else []))
        assert r.returncode == 0, r
        srv.wait_log("configuration %d in force" % n)
        udp = port_file(srv)[1]
        assert ("::", addr[1]) in udp, udp
        for h, p in udp:
            assert answered(p) is not on, ("udp-df", on, h, p)


def collect(socks, quiet=0.5, limit=20):
    """Replies on socks until none for quiet seconds: how many."""
    n, deadline = 0, time.monotonic() + limit
    while time.monotonic() < deadline:
        r, _, _ = select.select(socks, [], [], quiet)
        if not r:
            break
        for s in r:
            s.recvfrom(70000)
            n += 1
    return n


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("mshot", [True, False], ids=["mshot", "poll"])
def test_counters_add_up_across_workers_and_reloads(start_server, tmp_path, engine, workers,
                                                    mshot):
    """Echoed, too-big and rate-limited datagrams from many sources, with
    reloads between rounds that change udp-max-size and udp-rate and move
    the line to another slot: `stats` says in = out + drops exactly, in
    total and for each worker, and out is what the clients got."""
    if engine != "io_uring" and not mshot:
        pytest.skip("the poll fallback is io_uring's")
    base = ["listen 127.0.0.1:0", "drain-timeout 3"]
    srv = config_server(start_server, tmp_path, engine, workers, mshot,
                        base + ["udp-listen 127.0.0.1:0", "udp-rate 0"])
    port = port_file(srv)[1][0][1]
    socks = [client(timeout=0.3) for _ in range(16)]
    rounds = [["udp-rate 0", "udp-max-size 500"], ["udp-rate 5", "udp-max-size 2000"],
              ["udp-rate 0"], ["udp-rate 3", "udp-max-size 100"]]
    sent = got = 0
    for i, extra in enumerate(rounds):
        lines = ["udp-listen 127.0.0.2:0"] * (i % 2) + ["udp-listen 127.0.0.1:%d" % port]
        r = reload(srv, *(base + lines + extra))
        assert r.returncode == 0, r
        srv.wait_log("configuration %d in force" % (i + 2))
        for s in socks:
            for n in (50, 200, 1000, 1500, 300, 60):
                s.sendto(b"x" * n, ("127.0.0.1", port))
                sent += 1
        got += collect(socks)

    def settled():
        # Every datagram in, and each one's fate counted (a reply is
        # counted only after its send returns).
        c = stats(srv.ctl)
        fates = c["udp_datagrams_sent_total"] + sum(c["udp_dropped"].values())
        return c["udp_datagrams_received_total"] == sent and fates >= sent and c
    c = wait_for(settled, what="%d datagrams counted in" % sent)
    drops = sum(c["udp_dropped"].values())
    assert c["udp_datagrams_sent_total"] == got, (got, c)
    assert sent == got + drops, (sent, got, c["udp_dropped"])
    assert c["udp_dropped"]["too-big"] > 0 and c["udp_dropped"]["rate"] > 0, c["udp_dropped"]
    per = c["per_worker"]
    assert sum(w["udp_datagrams_received_total"] for w in per) == sent, per
    assert sum(w["udp_datagrams_sent_total"] for w in per) == got, per
    for s in socks:
        s.close()


def test_udp_listen_given_twice_or_overlapping_is_named():
    """Two udp-listen lines that would take the same datagrams (the same
    address and port twice, a wildcard and an address on it, [::] and
    0.0.0.0) are a configuration error that --check reports, as for
    --listen; not a start that fails on bind as if another process had the
    port."""
    import subprocess
    from conftest import ECHOSRV, free_port
    port = free_port()
    cases = [
        (["127.0.0.1:%d" % port] * 2, "--udp-listen: 127.0.0.1:%d is given twice" % port),
        (["0.0.0.0:%d" % port, "127.0.0.1:%d" % port], "overlap"),
        (["[::]:%d" % port, "0.0.0.0:%d" % port], "[::] is dual-stack"),
    ]
    for addrs, text in cases:
        args = [ECHOSRV, "--listen", "127.0.0.1:0", "--check"]
        for a in addrs:
            args += ["--udp-listen", a]
        r = subprocess.run(args, capture_output=True, text=True, timeout=20)
        assert r.returncode == 2 and text in r.stderr, (addrs, r)
        assert "another process" not in r.stderr
    for addrs in (["127.0.0.1:0"] * 2, ["127.0.0.1:%d" % port, "127.0.0.2:%d" % port]):
        args = [ECHOSRV, "--listen", "127.0.0.1:0", "--check"]
        for a in addrs:
            args += ["--udp-listen", a]
        r = subprocess.run(args, capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, (addrs, r)


def test_reload_with_udp_listen_given_twice_says_so(start_server, tmp_path, engine):
    """A reload whose file names the serving UDP address twice is refused
    as a configuration error, the configuration in force kept."""
    srv = start(start_server, tmp_path, engine, "listen 127.0.0.1:0", "udp-listen 127.0.0.1:0",
                "udp-rate 0")
    [addr] = port_file(srv)[1]
    line = "udp-listen 127.0.0.1:%d" % addr[1]
    r = reload(srv, "listen 127.0.0.1:0", line, line, "udp-rate 0")
    assert r.returncode != 0 and "is given twice" in r.stderr, r
    assert "another process" not in r.stderr
    assert echoes(addr) and port_file(srv)[1] == [addr]


@pytest.mark.parametrize("workers", WORKERS)
def test_reload_refused_for_tcp_closes_its_udp_sockets(start_server, tmp_path, engine, workers):
    """A reload that adds a UDP line and a TCP line whose port another
    process holds is refused whole: the UDP sockets bound for it (one per
    worker) are closed again, not left open and unserved."""
    srv = start(start_server, tmp_path, engine, "listen 127.0.0.1:0", "udp-listen 127.0.0.1:0",
                "udp-rate 0", workers=workers)
    [kept] = port_file(srv)[1]
    holder = socket.socket()
    holder.bind(("127.0.0.4", 0))
    holder.listen(1)
    fds0 = srv.fd_count()
    free = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    free.bind(("127.0.0.2", 0))
    free_addr = free.getsockname()
    free.close()
    for i in range(5):
        r = reload(srv, "listen 127.0.0.1:0", "listen 127.0.0.4:%d" % holder.getsockname()[1],
                   "udp-listen 127.0.0.1:%d" % kept[1], "udp-listen 127.0.0.2:%d" % free_addr[1],
                   "udp-rate 0")
        assert r.returncode != 0, r
        # The control connection that carried the reply may not be
        # closed yet: wait for it, a leaked socket stays.
        wait_for(lambda: srv.fd_count() == fds0,
                 what="%d descriptors after reload %d: %s" % (fds0, i, os.listdir(
                     "/proc/%d/fd" % srv.proc.pid)))
    assert refused(free_addr) and echoes(kept)
    holder.close()


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.workers)])
def test_ring_whole_after_receives_cancelled_full(start_server, tmp_path, engine, workers):
    """A slot flooded with 64 KiB datagrams removed and added back again and
    again: the cancelled receives' last completions, which hold buffers of
    the ring, give every buffer back, so afterwards a burst on the other
    slot still comes back whole (a ring short of buffers would stall), and
    each time the removed port is refused at once."""
    base = ["listen 127.0.0.1:0", "udp-rate 0", "drain-timeout 3"]
    srv = start(start_server, tmp_path, engine, *(base + ["udp-listen 127.0.0.1:0"]),
                workers=workers)
    [a] = port_file(srv)[1]
    keep = "udp-listen 127.0.0.1:%d" % a[1]
    stop = threading.Event()
    target = []

    def flood():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        big = bytes(60000)
        end = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < end:
            for t in list(target):
                for _ in range(8):
                    try:
                        s.sendto(big, t)
                    except OSError:
                        pass
            try:
                while True:
                    s.recv(70000)
            except (BlockingIOError, ConnectionRefusedError):
                pass
            time.sleep(0.001)
        s.close()
    t = threading.Thread(target=flood, daemon=True)
    t.start()
    try:
        for i in range(12):
            r = reload(srv, *(base + [keep, "udp-listen 127.0.0.2:0"]))
            assert r.returncode == 0, r
            b = [x for x in port_file(srv)[1] if x[0] == "127.0.0.2"][0]
            target[:] = [b]
            time.sleep(0.05)
            r = reload(srv, *(base + [keep]))
            assert r.returncode == 0, r
            target[:] = []
            assert refused(b), i
    finally:
        stop.set()
        t.join(30)
    socks = [client(timeout=10) for _ in range(4)]
    for i in range(40):
        for j, s in enumerate(socks):
            s.sendto(b"%d:%d" % (j, i), a)
    for j, s in enumerate(socks):
        got = sorted(s.recv(100) for _ in range(40))
        assert got == sorted(b"%d:%d" % (j, i) for i in range(40)), j
        s.close()
