# SPDX-License-Identifier: GPL-2.0-only
"""Issue 10, sockmap engine: BPF maps sized to what a worker can hold, a
full map refused cleanly, reports that do not load the data path in
proportion to scrapes, and an idle timeout that closes on time (the idle
case runs under every engine)."""
import json
import os
import re
import threading
import time

import pytest

from conftest import assert_echoes, assert_rejected, available_engines, connect_or_none, echoing_connection, fdinfos, wait_for
from ops_common import metrics_url, raw_ctl, scrape

ENGINE = "sockmap"
needs_sockmap = pytest.mark.skipif(
    ENGINE not in available_engines(),
    reason="sockmap engine left out by ECHOSRV_ENGINES or not usable here (needs root and BPF)")


def _maps(pid):
    """[(map_type, max_entries, memlock)] of the BPF maps pid holds, from
    /proc/PID/fdinfo (bpftool is not needed)."""
    out = []
    for info in fdinfos(pid):
        if "map_type:" not in info:
            continue
        field = lambda k: int(re.search(r"^%s:\s+(\d+)" % k, info, re.M).group(1))
        out.append((field("map_type"), field("max_entries"), field("memlock")))
    return out


def _nofile(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise AssertionError("no descriptor limit")


BPF_MAP_TYPE_RINGBUF = 27


@pytest.mark.root
@needs_sockmap
@pytest.mark.parametrize("workers", [1, 2])
def test_maps_are_sized_to_a_workers_share(start_server, workers):
    srv = start_server("--workers", str(workers), "--max-conns", "10000000", engine=ENGINE)
    assert_echoes(srv.connect(), b"sized")
    maps = [m for m in _maps(srv.proc.pid) if m[0] != BPF_MAP_TYPE_RINGBUF]
    assert len(maps) == 3 * workers, maps
    # The bound docs/reliability.md gives: no more than the descriptor
    # limit, and of that a worker's share plus a quarter plus 64.
    held = min(10000000, _nofile(srv.proc.pid))
    share = -(-held // workers)
    bound = min(held, share + share // 4 + 64)
    for kind, entries, memlock in maps:
        assert entries <= bound, (maps, bound)
    print("maps (type, max_entries, memlock):", maps, "bound", bound)


def _stats(path):
    reply = raw_ctl(path, b"stats\n").decode()
    assert reply.startswith("ok\n"), reply
    return json.loads(reply[3:])


@pytest.mark.root
@needs_sockmap
def test_a_full_worker_refuses_cleanly_and_counts(start_server, tmp_path):
    ctl = tmp_path / "ctl"
    env = dict(os.environ, ECHOSRV_SOCKMAP_ENTRIES="4")
    srv = start_server("--workers", "1", "--max-conns", "100", "--ctl", str(ctl),
                       "--trace", "0x1", engine=ENGINE, env=env)
    keep = [srv.connect() for _ in range(4)]
    for s in keep:
        assert_echoes(s, b"in the map")
    for _ in range(6):
        assert_rejected(connect_or_none((srv.host, srv.port)))
    for s in keep:
        assert_echoes(s, b"unharmed")
    st = _stats(ctl)
    assert st["rejected"]["max_conns"] == 6 and st["errors_total"] == 0, st
    assert "cannot hand a connection to the kernel" not in srv.stderr()
    keep.pop().close()
    # Room again once the server has seen the close.
    keep.append(wait_for(lambda: echoing_connection((srv.host, srv.port), b"x"),
                         what="a connection admitted after a close"))
    for s in keep:
        s.close()


@pytest.mark.root
@needs_sockmap
def test_bad_map_entries_knob_is_refused(start_server):
    import subprocess
    from conftest import ECHOSRV
    for bad in ("-1", "0", "x", "20000000", " 5"):
        r = subprocess.run([ECHOSRV, "--engine", ENGINE, "--listen", "127.0.0.1:0"],
                           env=dict(os.environ, ECHOSRV_SOCKMAP_ENTRIES=bad),
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 1 and "ECHOSRV_SOCKMAP_ENTRIES" in r.stderr, (bad, r)
        # The failed start unwinds what it set up (the sanitizer build
        # reports anything left behind).
        assert "LeakSanitizer" not in r.stderr, (bad, r.stderr)


# The worker refreshes its byte counters for reports at most every 100 ms
# (server/worker.c, SYNC_MIN_NS); the once-a-second sweep is not counted.
REFRESH_PERIOD = 0.1
FLOOD_SECONDS = 3.0


@pytest.mark.root
@needs_sockmap
def test_a_scrape_flood_refreshes_at_a_bounded_rate(start_server, tmp_path):
    ctl = tmp_path / "ctl"
    srv = start_server("--workers", "1", "--metrics", "127.0.0.1:0", "--ctl", str(ctl),
                       engine=ENGINE)
    url = metrics_url(srv)
    idle = [srv.connect() for _ in range(200)]   # something for a refresh to walk
    echo = srv.connect()
    before = _stats(ctl)["report_refreshes_total"]
    scrapes, errors, stop = [0], [], threading.Event()

    def flood(kind):
        while not stop.is_set():
            try:
                if kind == "metrics":
                    assert scrape(url)[0] == 200
                else:
                    assert raw_ctl(ctl, b"stats\n").startswith(b"ok\n{")
                scrapes[0] += 1
            except Exception as e:   # noqa: BLE001 (reported below)
                errors.append(repr(e))
                return

    threads = [threading.Thread(target=flood, args=(k,), daemon=True)
               for k in ("metrics", "metrics", "stats", "stats")]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    rounds = 0
    while time.monotonic() - t0 < FLOOD_SECONDS and rounds < 100000:
        assert_echoes(echo, b"during the flood %d" % rounds)
        rounds += 1
        time.sleep(0.002)   # leave the scrapers the interpreter lock
    stop.set()
    for t in threads:
        t.join(15)
    elapsed = time.monotonic() - t0
    assert not errors, errors[:3]
    after = _stats(ctl)
    made = after["report_refreshes_total"] - before
    # The count, not the speed: at most one refresh per period over the
    # flood (plus the join and the two stats calls around it), however
    # many scrapes there were.
    bound = (elapsed + 1.0) / REFRESH_PERIOD + 2
    assert made <= bound, "%d refreshes for %d scrapes in %.1f s" % (made, scrapes[0], elapsed)
    assert scrapes[0] >= 1 and made >= 1
    # A report is still exact: it is never older than its request.
    assert_echoes(echo, b"12345678")
    st = _stats(ctl)
    assert st["bytes_received_total"] == st["bytes_sent_total"], st
    print("flood: %d scrapes, %d refreshes in %.1f s, %d echo rounds"
          % (scrapes[0], made, elapsed, rounds))
    for s in idle + [echo]:
        s.close()


def _closed(sock):
    """Has the server closed this connection (EOF or reset), right now?"""
    sock.setblocking(False)
    try:
        return sock.recv(16) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.setblocking(True)


def test_idle_timeout_closes_on_time(start_server, engine):
    """With --idle-timeout 2, a connection that sent and then paused 2.6 s
    has been closed by then; one that sends every 1.5 s never is.  The
    quiet ones send at staggered times, so that whatever phase a periodic
    sweep has, one of them falls right after it."""
    srv = start_server("--idle-timeout", "2", "--trace", "0x5", engine=engine)
    quiet = [srv.connect() for _ in range(5)]
    chatty = srv.connect()
    sent_at = []
    for s in quiet:
        assert_echoes(s, b"then silence")
        sent_at.append(time.monotonic())
        time.sleep(0.2)
    assert_echoes(chatty, b"hello")
    last_chat = time.monotonic()
    checked = set()
    t0 = time.monotonic()
    while len(checked) < len(quiet) and time.monotonic() - t0 < 20:
        now = time.monotonic()
        for i, s in enumerate(quiet):
            if i not in checked and now >= sent_at[i] + 2.6:
                assert _closed(s), "quiet connection %d still open %.2f s after its last " \
                    "byte (timeout 2 s)" % (i, now - sent_at[i])
                checked.add(i)
        if now - last_chat >= 1.5:
            assert_echoes(chatty, b"still talking")
            last_chat = time.monotonic()
        time.sleep(0.02)
    assert len(checked) == len(quiet)
    # Keep talking past several timeouts: never closed.
    while time.monotonic() - t0 < 6:
        if time.monotonic() - last_chat >= 1.5:
            assert_echoes(chatty, b"still talking")
            last_chat = time.monotonic()
        time.sleep(0.05)
    assert not _closed(chatty)
    assert_echoes(chatty, b"bye")
    wait_for(lambda: srv.stderr().count("reason=idle-timeout") >= len(quiet),
             what="idle-timeout close traces")
    for s in quiet + [chatty]:
        s.close()
