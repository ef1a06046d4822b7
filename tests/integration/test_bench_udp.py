# SPDX-License-Identifier: GPL-2.0-only
"""echosrv-bench --udp (tools/bench_udp.c): every datagram accounted for
against echosrv (every engine) and the plain baseline loop, each fault
caught, and reported on its own, against a deliberately broken server
(tests/helpers/broken_udp_echo.py), and options it has no use for refused.

Figures are never asserted, only counts that a correct or a broken server
decides."""
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import BUILD, ROOT, wait_for

BENCH = os.path.join(BUILD, "echosrv-bench")
BASELINE = os.path.join(BUILD, "bench-baseline-udp")
BROKEN = os.path.join(ROOT, "tests", "helpers", "broken_udp_echo.py")
# Generous --give-up: under ASan or valgrind a slow echo is not a lost one.
SCALE = float(os.environ.get("ECHOSRV_TIMEOUT_SCALE", "1"))
SHORT = ["-d", "0.4", "-w", "0.1", "--give-up", "%g" % (5 * SCALE)]
FATES = ("lost", "duplicated", "reordered", "corrupted")


def bench(addr, *args, expect=0):
    r = subprocess.run([BENCH, "--udp", "-a", addr, "--json"] + SHORT + list(args),
                       capture_output=True, text=True, timeout=120 * SCALE)
    assert r.returncode == expect, (r.returncode, r.stdout, r.stderr)
    return json.loads(r.stdout)


def all_back(out):
    assert out["sent"] > 0 and out["echoed"] == out["sent"], out
    for k in FATES:
        assert out[k] == 0, (k, out)
    assert not out["failed"]


class Proc:
    """A helper server that writes HOST:PORT (or udp:HOST:PORT) somewhere."""

    def __init__(self, cmd, read):
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        self.addr = wait_for(read(self), what="%s to bind" % cmd[0])
        self.pid = self.proc.pid

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


@pytest.fixture
def procs():
    started = []
    yield started
    for p in started:
        p.stop()


def broken(procs, tmp_path, mode, *extra):
    pf = str(tmp_path / ("broken-%s.port" % mode))

    def read(_):
        return lambda: open(pf).read().strip() if os.path.exists(pf) else None
    p = Proc([sys.executable, BROKEN, "--mode", mode, "--port-file", pf] + list(extra), read)
    procs.append(p)
    return p


def test_every_datagram_back_from_echosrv(start_server, engine):
    # In flight: at most 32 small datagrams or 2 large ones, well inside the
    # socket's default receive buffer, so a correct server loses none.
    srv = start_server("--udp-listen", "127.0.0.1:0", "--udp-rate", "0", engine=engine)
    addr = "127.0.0.1:%d" % srv.udp_addrs[0][1]
    for size, sources, window in ((64, 1, 16), (1472, 8, 4), (65000, 1, 2)):
        out = bench(addr, "-s", str(size), "--sources", str(sources), "--window", str(window),
                    "--server-pid", str(srv.proc.pid))
        all_back(out)
        assert out["options"]["size"] == size and out["options"]["sources"] == sources
        assert "server_cpu_us_per_datagram" in out


def test_every_datagram_back_over_ipv6(start_server, engine):
    srv = start_server("--udp-listen", "[::]:0", "--udp-rate", "0", engine=engine)
    port = srv.udp_addrs[0][1]
    if srv.udp_addrs[0][0] != "::":
        pytest.skip("no IPv6 here: the listener fell back to IPv4")
    all_back(bench("[::1]:%d" % port, "-s", "65527", "--window", "2"))
    all_back(bench("127.0.0.1:%d" % port, "-s", "1472", "--sources", "4"))


def test_open_loop_against_echosrv(start_server, engine):
    srv = start_server("--udp-listen", "127.0.0.1:0", "--udp-rate", "0", engine=engine)
    out = bench("127.0.0.1:%d" % srv.udp_addrs[0][1], "--rate", "2000", "--sources", "4")
    all_back(out)
    assert out["options"]["rate"] == 2000 and "window" not in out["options"]


def test_gso_sends_come_back_one_by_one(start_server, engine):
    """--gso 16: sixteen datagrams per send, cut apart by the kernel
    (UDP_SEGMENT); each is echoed and checked on its own."""
    srv = start_server("--udp-listen", "127.0.0.1:0", "--udp-rate", "0", engine=engine)
    out = bench("127.0.0.1:%d" % srv.udp_addrs[0][1], "-s", "1472", "--gso", "16",
                "--window", "32")
    all_back(out)
    assert out["options"]["gso"] == 16


def test_gso_sends_datagrams_together(procs, tmp_path):
    """A receiver with UDP_GRO gets --gso's datagrams in one buffer: they
    did leave in one send."""
    most = tmp_path / "most"
    srv = broken(procs, tmp_path, "ok", "--gro", str(most))
    all_back(bench(srv.addr, "-s", "1000", "--gso", "8", "--window", "16"))
    assert int(most.read_text()) > 1


def test_baseline_udp_passes(procs):
    def read(p):
        line = p.proc.stdout.readline().strip()
        return lambda: line[len("udp:"):] if line.startswith("udp:") else None
    base = Proc([BASELINE, "127.0.0.1", "0"], read)
    procs.append(base)
    # What is in flight fits the server socket's default receive buffer
    # (208 KiB, about 2.3 KiB a 1472-byte datagram): a correct server then
    # loses nothing.
    for size, sources, window in ((64, 1, 8), (1472, 64, 1), (65000, 1, 2)):
        all_back(bench(base.addr, "-s", str(size), "--sources", str(sources), "--window",
                       str(window), "--server-pid", str(base.pid)))


def test_json_header_is_the_tcp_modes(start_server):
    srv = start_server("--udp-listen", "127.0.0.1:0", "--udp-rate", "0")
    out = bench("127.0.0.1:%d" % srv.udp_addrs[0][1], "--cpu", "0")
    assert out["mode"] == "udp" and out["tool"]["name"] == "echosrv-bench"
    assert out["host"]["cpus"] == os.cpu_count() and out["placement"] == "loopback"
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", out["time"])
    assert out["options"]["window"] == 8 and "rate" not in out["options"]
    assert "0" in out["cpu_us_per_datagram"] and "total" in out["machine_cpu_us_per_datagram"]
    r = subprocess.run([BENCH, "-a", "127.0.0.1:%d" % srv.port, "-d", "0.2", "-w", "0",
                        "--json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and json.loads(r.stdout)["mode"] == "tcp", r.stderr


# fault -> the count it must raise, and the exit status: a datagram back
# twice or changed is a broken server; one lost or late UDP allows.
FAULTS = {"drop": ("lost", 0), "duplicate": ("duplicated", 1),
          "reorder": ("reordered", 0), "corrupt": ("corrupted", 1)}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_fault_is_caught_alone(procs, tmp_path, fault):
    counter, rc = FAULTS[fault]
    srv = broken(procs, tmp_path, fault)
    # --give-up 1: the dropped datagrams' window slots come free in time.
    out = bench(srv.addr, "-s", "100", "--window", "4", "-d", "1", "--give-up", "1",
                expect=rc)
    assert out[counter] > 0, out
    assert out["failed"] == (rc == 1)
    if fault == "corrupt":      # a changed byte, not a wrong length or source
        assert out["corrupted_kinds"] == {"size": 0, "source": 0, "bytes": out["corrupted"]}
    for other in FATES:
        # A corrupted echo is not its datagram's echo: that one is lost too.
        if other != counter and not (fault == "corrupt" and other == "lost"):
            assert out[other] == 0, (other, out)


def test_correct_helper_passes(procs, tmp_path):
    all_back(bench(broken(procs, tmp_path, "ok").addr, "--window", "4"))


def test_text_report_names_each_fate(procs, tmp_path):
    srv = broken(procs, tmp_path, "duplicate")
    r = subprocess.run([BENCH, "--udp", "-a", srv.addr] + SHORT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    dup = re.search(r"^  duplicated +(\d+)", r.stdout, re.M)
    assert dup and int(dup.group(1)) > 0, r.stdout
    for word in ("lost", "reordered", "corrupted", "echoed/s", "FAILED"):
        assert word in r.stdout


def test_bind_spreads_sources(procs, tmp_path):
    peers = tmp_path / "peers"
    srv = broken(procs, tmp_path, "ok", "--peers", str(peers))
    all_back(bench(srv.addr, "--sources", "4", "--bind", "127.0.0.2,127.0.0.3"))
    seen = [l.split() for l in peers.read_text().splitlines()]
    assert sorted(ip for ip, _ in seen) == ["127.0.0.2"] * 2 + ["127.0.0.3"] * 2, seen


def test_histogram_holds_every_round_trip(procs, tmp_path):
    hist = tmp_path / "h.csv"
    out = bench(broken(procs, tmp_path, "ok").addr, "--histogram", str(hist))
    rows = hist.read_text().splitlines()[1:]
    assert sum(int(r.split(",")[2]) for r in rows) == out["echoed"] > 0


def test_nothing_listening_is_a_setup_failure(procs, tmp_path):
    srv = broken(procs, tmp_path, "ok")
    procs.remove(srv)
    srv.stop()              # its port is now closed: ICMP port unreachable
    r = subprocess.run([BENCH, "--udp", "-a", srv.addr, "-d", "0.2", "-w", "0",
                        "--give-up", "0.2"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 3 and "port unreachable" in r.stderr, (r.returncode, r.stderr)


@pytest.mark.parametrize("args,says", [
    (["-c", "2"], "--connections means nothing with --udp"),
    (["-p", "4"], "--pipeline means nothing with --udp"),
    (["-t", "2"], "--threads means nothing with --udp"),
    (["--connect-rate", "10"], "--connect-rate means nothing with --udp"),
    (["--lifetime", "3"], "--lifetime means nothing with --udp"),
    (["--proxy", "v1"], "--proxy means nothing with --udp"),
    (["--interval", "0.1"], "--interval means nothing with --udp"),
    (["--rate", "100", "--window", "2"], "--rate and --window exclude each other"),
    (["-s", "27"], "--udp sends 28 to 65507 bytes"),
    (["-s", "65508"], "--udp sends 28 to 65507 bytes"),
    (["--sources", "0"], "--sources"),
    (["--sources", "1025"], "--sources"),
    (["--window", "0"], "--window"),
    (["--gso", "0"], "--gso"),
    (["--gso", "65"], "--gso"),
    (["-s", "1472", "--gso", "45"], "more than 65507 bytes in one send"),
    (["--rate", "100", "--gso", "2"], "--gso is for the closed loop"),
])
def test_bad_usage_exits_2(args, says):
    r = subprocess.run([BENCH, "--udp", "-a", "127.0.0.1:9"] + args, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and says in r.stderr, (r.returncode, r.stderr)


@pytest.mark.parametrize("args", [["--window", "4"], ["--sources", "2"], ["--gso", "2"]])
def test_udp_options_need_udp(args):
    r = subprocess.run([BENCH, "-a", "127.0.0.1:9"] + args, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "need --udp" in r.stderr, (r.returncode, r.stderr)


def test_every_udp_json_key_is_in_the_man_page(start_server):
    srv = start_server("--udp-listen", "127.0.0.1:0", "--udp-rate", "0")
    out = bench("127.0.0.1:%d" % srv.udp_addrs[0][1], "--server-pid", str(srv.proc.pid),
                "--cpu", "0")
    with open(os.path.join(ROOT, "man", "echosrv-bench.1")) as f:
        man = f.read()
    text = man[man.index(".It Fl Fl udp"):]
    text = text[:text.index("\n.It Fl", 1)]
    documented = set(re.findall(r"[a-z][a-z0-9_]*", " ".join(
        l for l in text.splitlines() if l.startswith((".Ql ", ".Li ", ".Pq ")))))
    for k in set(out) | set(out["options"]):
        assert k in documented, "--udp --json key %s is not in echosrv-bench(1)" % k
