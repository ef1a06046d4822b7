# SPDX-License-Identifier: GPL-2.0-only
"""`echosrvctl kill` attacked (issue 11): the id that `conns` shows names
one connection in the whole process, so a kill that arrives after its
connection closed never closes another worker's; malformed, huge and
out-of-range requests are refused without a crash; and a storm of kills
against hundreds of churning connections from several clients, through a
drain, closes only the connections named, corrupts no byte, and leaves the
server answering."""
import json
import os
import random
import socket
import threading
import time

import pytest

from conftest import assert_echoes, echo_roundtrip, wait_for
from ops_common import ctl, raw_ctl


def listed(path):
    return json.loads(ctl(path, "conns", "--json").stdout)["connections"]


def peer_of(sock):
    return "127.0.0.1:%d" % sock.getsockname()[1]


@pytest.mark.workers
def test_ids_are_unique_over_workers(start_server, engine, tmp_path):
    """Before: each worker numbered its slots alike, so the first connection
    of each had the same id; once one of them closed, `kill ID` closed the
    other (on another worker, to another peer) and said ok."""
    path = tmp_path / "ctl"
    srv = start_server("--ctl", str(path), "--workers", "2", engine=engine)
    socks = []
    for _ in range(64):          # until both workers hold some
        s = srv.connect()
        assert_echoes(s)
        socks.append(s)
        if len(socks) >= 8 and len({c["worker"] for c in listed(path)}) == 2:
            break
    conns = listed(path)
    assert len({c["worker"] for c in conns}) == 2, conns
    # The operator reads the list, the connection closes, the kill comes.
    by_peer = {c["peer"]: c for c in conns}
    victim = socks.pop(0)
    gone = by_peer[peer_of(victim)]
    victim.close()
    wait_for(lambda: gone["id"] not in [c["id"] for c in listed(path)],
             what="the closed connection to leave the list")
    r = ctl(path, "kill", gone["id"], check=False)
    assert r.returncode == 1 and "no open connection %s" % gone["id"] in r.stderr, \
        (r.stdout, r.stderr)
    for s in socks:
        assert_echoes(s, b"nobody else was closed")
    ids = [c["id"] for c in conns]
    assert len(set(ids)) == len(ids), "ids shared between workers: %s" % conns
    for s in socks:
        s.close()


@pytest.mark.parametrize("req,answer", [
    (b"kill -1\n", b"error the connection id is the hex id"),
    (b"kill 0x10\n", b"error the connection id is the hex id"),
    (b"kill " + b"f" * 17 + b"\n", b"error the connection id is the hex id"),
    (b"kill " + b"f" * 16 + b"\n", b"error no open connection ffffffffffffffff"),
    (b"kill 0\n", b"error no open connection 0"),
    (b"kill 1 4294967294\n", b"error no worker 4294967294 (there are 2)"),
    (b"kill 1 4294967295\n", b"error the worker is a number"),
    (b"kill 1 99999999999\n", b"error the worker is a number"),
    (b"kill 1 -0\n", b"error the worker is a number"),
    (b"kill 1 2\n", b"error no worker 2 (there are 2)"),
    (b"kill 1 +1\n", b"error the worker is a number"),
    (b"kill \xff\n", b"error request is not printable text"),
    (b"kill 1\x00\n", b"error request is not printable text"),
    (b"kill 1 2 3\n", b"error too many words"),
    (b"kill " + b"0" * 300 + b"\n", b"error request too long"),
])
@pytest.mark.workers
def test_malformed_kills_are_refused(start_server, engine, tmp_path, req, answer):
    path = tmp_path / "ctl"
    srv = start_server("--ctl", str(path), "--workers", "2", engine=engine)
    s = srv.connect()
    assert_echoes(s)
    assert raw_ctl(path, req).startswith(answer)
    assert_echoes(s, b"untouched")
    s.close()


def _client(port, stop, seed, errors, counts, draining):
    """Churn: open, echo checked data, close (some with a reset); a
    connection that ends early was killed, never corrupted.  Once the
    server drains, no connection is opened or closed here: the open ones
    carry on until killed."""
    rnd = random.Random(seed)
    socks = []
    while time.monotonic() < stop and not errors:
        if draining.is_set() and not socks:
            break
        try:
            if not draining.is_set() and (len(socks) < 50 or rnd.random() < 0.2):
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=10))
            if not socks:
                continue
            if not draining.is_set() and rnd.random() < 0.2:   # draining: left to the kills
                s = socks.pop(rnd.randrange(len(socks)))
                if rnd.random() < 0.5:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
                s.close()
                continue
            s = rnd.choice(socks)
            data = os.urandom(rnd.randrange(1, 4096))
            try:
                got = echo_roundtrip(s, data)
            except (ConnectionResetError, BrokenPipeError):
                got = None
            if got is not None and got != data[:len(got)]:
                errors.append("corrupted echo")
            if got == data:
                counts["echoes"] += 1
            else:
                socks.remove(s)
                s.close()
        except socket.timeout:
            errors.append("a connection stalled")
        except OSError as e:
            if not draining.is_set():
                errors.append("client: %r" % e)
    for s in socks:
        s.close()


def _ask(path, req, draining, errors):
    try:
        return raw_ctl(path, req, timeout=20)
    except OSError as e:    # the control socket goes with a drained server
        if not draining.is_set():
            errors.append("control socket: %r" % e)
        return None


def _killer(path, stop, seed, errors, counts, draining):
    rnd = random.Random(seed)
    while time.monotonic() < stop and not errors:
        reply = _ask(path, b"conns\n", draining, errors)
        if reply is None:
            return
        if not reply.startswith(b"ok\n"):
            if draining.is_set():
                return          # the control socket closes with the server
            errors.append("conns: %r" % reply[:100])
            return
        ids = [(c["id"], c["worker"]) for c in json.loads(reply[3:])["connections"]]
        rnd.shuffle(ids)
        for cid, worker in ids[:40]:
            req = "kill %s%s\n" % (cid, " %d" % worker if rnd.random() < 0.5 else "")
            r = _ask(path, req.encode(), draining, errors)
            if r is None:
                return
            if r.startswith(b"ok\n"):
                counts["kills"] += 1
                # Already closing: a second kill finds nothing to close.
                again = _ask(path, ("kill %s\n" % cid).encode(), draining, errors)
                if again and again.startswith(b"ok"):
                    errors.append("killed %s twice" % cid)
            elif r and b"no open connection" not in r and not draining.is_set():
                errors.append("kill %s: %r" % (cid, r[:100]))
            if time.monotonic() >= stop:
                break


@pytest.mark.workers
@pytest.mark.parametrize("drain", [False, True], ids=["running", "draining"])
def test_kill_storm_while_connections_churn(start_server, engine, tmp_path, drain):
    path = tmp_path / "ctl"
    srv = start_server("--ctl", str(path), "--workers", "2", "--drain-timeout", "30",
                       engine=engine)
    errors, counts = [], {"echoes": 0, "kills": 0}
    draining = threading.Event()
    stop = time.monotonic() + 6
    threads = [threading.Thread(target=_client, args=(srv.port, stop, i, errors, counts,
                                                       draining))
               for i in range(4)]
    threads += [threading.Thread(target=_killer, args=(path, stop, 100 + i, errors, counts,
                                                       draining)) for i in range(2)]
    for t in threads:
        t.start()
    if drain:
        wait_for(lambda: counts["kills"] > 20 or errors, timeout=30, what="kills")
        before = counts["kills"]
        draining.set()
        assert raw_ctl(path, b"drain\n").startswith(b"ok\n")
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:10]
    assert counts["kills"] > 0 and counts["echoes"] > 0, counts
    if not drain:
        s = srv.connect()
        assert_echoes(s, b"still serving")
        s.close()
        wait_for(lambda: listed(path) == [], what="every connection to be closed")
    else:
        assert counts["kills"] > before, "no kill while draining: %s" % counts
        assert srv.wait(timeout=60) == 0, srv.stderr()[-2000:]
