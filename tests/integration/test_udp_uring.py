# SPDX-License-Identifier: GPL-2.0-only
"""The io_uring engine's UDP receive (docs/udp.md, "How it is served";
src/engine/uring/dgram.c): one multishot recvmsg per socket into a buffer
ring of its own where the kernel has it, else the readiness poll the other
engines use (ECHOSRV_URING_UDP_MSHOT=0 forces that one here).  The worker
says which in an INFO line at start; both must echo the same."""
import os
import signal
import socket

import pytest

from conftest import available_engines, wait_for
from test_udp import client, echo_every_size, nothing_back, pattern, wait_counter
from test_udp_gro import cut, receive, send_segmented

MSHOT = "io_uring: UDP receive by multishot recvmsg"
POLL = "io_uring: UDP receive by readiness poll and recvmmsg"

needs_uring = pytest.mark.skipif(
    "io_uring" not in available_engines(),
    reason="io_uring is not under test: not available here, or left out by ECHOSRV_ENGINES")


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECHOSRV_URING_")}
    env.update(extra)
    return env


def uring_udp(start_server, tmp_path, mshot, *args):
    ctl = str(tmp_path / ("ctl.%d" % len(os.listdir(tmp_path))))
    srv = start_server("--udp-listen", "[::]:0", "--ctl", ctl, "--udp-rate", "0",
                       "--trace", "error,info", *args, engine="io_uring",
                       env=_env() if mshot else _env(ECHOSRV_URING_UDP_MSHOT="0"))
    srv.ctl = ctl
    srv.uport = srv.udp_addrs[0][1]
    return srv


@needs_uring
@pytest.mark.parametrize("mshot", [True, False], ids=["multishot", "poll"])
def test_uring_says_how_it_receives_udp_and_echoes_alike(start_server, tmp_path, mshot):
    """The line names the receive in use (the old engine polled, and never
    said so); every size over IPv4 and IPv6, from the address asked, and a
    coalesced (UDP_GRO) send back datagram by datagram, either way."""
    srv = uring_udp(start_server, tmp_path, mshot)
    srv.wait_log(MSHOT if mshot else POLL)
    assert (POLL if mshot else MSHOT) not in srv.stderr()
    echo_every_size(srv.uport)
    s = client()
    data = pattern(1472 * 40 + 7, 3)
    send_segmented(s, data, 1472, ("127.0.0.1", srv.uport))
    assert receive(s, 41) == cut(data, 1472)
    c = wait_counter(srv, "udp_datagrams_sent_total", 10 + 41)
    assert c["udp_gro_receives_total"] >= 1, c
    assert c["udp_datagrams_received_total"] == c["udp_datagrams_sent_total"] == 10 + 41


@needs_uring
def test_uring_too_big_is_told_from_the_rest(start_server, tmp_path):
    """With --udp-max-size below a datagram, the multishot receive still
    gets its real length (MSG_TRUNC) and the drop is too-big, not
    truncated; a datagram just within the limit is echoed."""
    srv = uring_udp(start_server, tmp_path, True, "--udp-max-size", "1000")
    s = client()
    s.sendto(pattern(1001), ("127.0.0.1", srv.uport))
    assert nothing_back(s)
    s.sendto(pattern(1000), ("127.0.0.1", srv.uport))
    s.settimeout(5)
    assert s.recvfrom(2000)[0] == pattern(1000)
    c = wait_counter(srv, "udp_dropped/too-big")
    assert c["udp_dropped"]["too-big"] == 1 and c["udp_dropped"]["truncated"] == 0


def test_a_burst_beyond_the_receive_ring_all_comes_back(start_server, tmp_path, engine):
    """100 datagrams sent at once, from 4 sources: far more than the io_uring
    UDP ring has posted at first (2 buffers), so its multishot receive runs
    out of buffers (ENOBUFS) and is re-armed several times.  The kernel
    takes no datagram off the socket without a buffer, so each comes back,
    once; the other engines the same."""
    ctl = str(tmp_path / "ctl")
    srv = start_server("--udp-listen", "127.0.0.1:0", "--ctl", ctl, "--udp-rate", "0",
                       engine=engine, env=_env())
    srv.ctl = ctl
    port = srv.udp_addrs[0][1]
    socks = [client() for _ in range(4)]
    for i in range(25):
        for j, s in enumerate(socks):
            s.sendto(b"%d:%d" % (j, i), ("127.0.0.1", port))
    for j, s in enumerate(socks):
        got = sorted(s.recvfrom(100)[0] for _ in range(25))
        assert got == sorted(b"%d:%d" % (j, i) for i in range(25))
        assert nothing_back(s, 0.2)
    c = wait_counter(srv, "udp_datagrams_sent_total", 100)
    assert c["udp_datagrams_received_total"] == c["udp_datagrams_sent_total"] == 100


@needs_uring
def test_uring_udp_knob_is_checked(tmp_path):
    import subprocess
    from conftest import ECHOSRV
    for value, rc in (("0", 0), ("1", 0), ("2", 2), ("yes", 2)):
        r = subprocess.run([ECHOSRV, "--check"], env=_env(ECHOSRV_URING_UDP_MSHOT=value),
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == rc, r


def test_drain_really_closes_the_udp_socket(start_server, tmp_path, engine):
    """Draining closes UDP sockets for the kernel too: a datagram after that
    gets port unreachable.  An io_uring receive still armed on the socket
    would keep it open (the request holds the file) and swallow the
    datagram, so the multishot is cancelled before the close."""
    srv = start_server("--udp-listen", "127.0.0.1:0", "--workers", "1", "--trace", "error,info",
                       "--drain-timeout", "20", engine=engine, env=_env())
    s = client()
    s.connect(("127.0.0.1", srv.udp_addrs[0][1]))
    s.send(b"before")
    assert s.recv(10) == b"before"
    held = srv.connect()	# keeps the drain going
    srv.signal(signal.SIGTERM)
    wait_for(lambda: "worker 0: draining" in srv.stderr(), what="the worker to drain")
    s.settimeout(0.2)

    def refused():
        try:
            s.send(b"after")
            got = s.recv(10)
        except ConnectionRefusedError:
            return True
        except socket.timeout:
            return False
        raise AssertionError("echoed after the drain started: %r" % got)
    wait_for(refused, timeout=5, what="port unreachable from the closed socket")
    held.close()
    assert srv.wait() == 0


@needs_uring
@pytest.mark.workers
def test_uring_multishot_on_every_worker(start_server, tmp_path):
    """Each worker arms its own receives on its own sockets and ring: many
    sources, spread by SO_REUSEPORT, all answered, by both workers."""
    srv = uring_udp(start_server, tmp_path, True, "--workers", "2")
    srv.wait_log("worker 0: " + MSHOT, "worker 1: " + MSHOT)
    socks = [client() for _ in range(16)]
    for i in range(10):
        for j, s in enumerate(socks):
            s.sendto(pattern(100 + j, i), ("127.0.0.1", srv.uport))
    for j, s in enumerate(socks):
        got = sorted(s.recvfrom(1000)[0] for _ in range(10))
        assert got == sorted(pattern(100 + j, i) for i in range(10))
    c = wait_counter(srv, "udp_datagrams_sent_total", 160)
    assert c["udp_datagrams_sent_total"] == 160
    assert all(w["udp_datagrams_sent_total"] > 0 for w in c["per_worker"]), c["per_worker"]
