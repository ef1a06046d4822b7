# SPDX-License-Identifier: GPL-2.0-only
"""The documents stand on their own and say what the programs do (issue 11):
README links only into the repository, every environment knob the source
reads is in echosrv(8), every key echosrv-bench --json prints is in
echosrv-bench(1), and README and echosrv(8) describe the info category in
the same words."""
import glob
import json
import os
import re
import subprocess

from conftest import BUILD, ROOT


def _read(*parts):
    with open(os.path.join(ROOT, *parts)) as f:
        return f.read()


def _words(text):
    return " ".join(text.split())


def test_readme_links_nothing_outside_the_repository():
    text = _read("README.md")
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    assert targets
    for t in targets:
        assert not re.match(r"[a-z]+:", t) and not t.startswith("/"), t
        path = os.path.normpath(os.path.join(ROOT, t.split("#")[0]))
        assert path.startswith(ROOT + os.sep) and os.path.exists(path), t
    assert "../shared" not in text and "SPEC.md" not in text


def test_every_environment_knob_is_in_the_man_page():
    knobs = set()
    for path in glob.glob(os.path.join(ROOT, "src", "**", "*.c"), recursive=True):
        knobs |= set(re.findall(r'"(ECHOSRV_[A-Z_]+)"', open(path).read()))
    assert "ECHOSRV_URING_SPIN_US" in knobs and "ECHOSRV_SOCKMAP_ENTRIES" in knobs
    man = _read("man", "echosrv.8")
    env = man[man.index(".Sh ENVIRONMENT"):man.index(".Sh FILES")]
    for k in sorted(knobs):
        assert ".It Ev %s" % k in env, "%s is not in echosrv(8) ENVIRONMENT" % k


def test_every_bench_json_key_is_in_the_man_page(start_server):
    srv = start_server()
    r = subprocess.run([os.path.join(BUILD, "echosrv-bench"), "-a", "127.0.0.1:%d" % srv.port,
                        "-c", "1", "-d", "0.3", "-w", "0", "--json",
                        "--server-pid", str(srv.proc.pid)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    man = _read("man", "echosrv-bench.1")
    text = man[man.index(".It Fl Fl json"):]
    text = text[:text.index("\n.It Fl", 1)]
    documented = set(re.findall(r"[a-z][a-z0-9_]*", " ".join(
        l for l in text.splitlines() if l.startswith((".Ql ", ".Li ", ".Pq ")))))
    for k in set(out) | set(out["latency_us"]):
        assert k in documented, "--json key %s is not in echosrv-bench(1)" % k
    assert "give-up" in man[:man.index(".Sh DESCRIPTION")]


def test_info_category_is_described_alike():
    readme = _words(_read("README.md"))
    man = _words(_read("man", "echosrv.8").replace("\n.", " ."))
    phrase = ("workers starting, their engine settings, pinning, draining and stopping; "
              "control and metrics requests refused or timed out; accept errors other than "
              "descriptor exhaustion; the trace file reopened")
    assert phrase in readme.lower()
    assert phrase in man.lower()


def test_stop_with_the_socket_unit_is_documented():
    ops = _words(_read("docs", "operations.md"))
    assert "With `echosrv.socket` enabled, `systemctl stop echosrv` drains" in ops
    man = _words(_read("man", "echosrv.8"))
    assert "starts it again at the next connection" in man


def _unit(name):
    return _read("dist", "systemd", name)


def test_units_carry_the_operator_choices():
    for name in ("echosrv.service", "echosrv@.service"):
        u = _unit(name)
        assert "\nRestartSec=5s\n" in u and "\nRestart=on-failure\n" in u, name
        assert "\nAfter=network-online.target\n" in u and "\nWants=network-online.target\n" in u
        assert "\nTimeoutStopSec=" in u and "EXTEND_TIMEOUT_USEC" in u, name
        assert "--ctl-mode 0660" in u and "ExecReload=/bin/kill -HUP $MAINPID" in u, name
        assert "CAP_BPF, CAP_NET_ADMIN and\n# CAP_PERFMON" in u, name
    assert "--config /etc/echosrv/echosrv.conf --ctl /run/echosrv/ctl" in _unit("echosrv.service")
    t = _unit("echosrv@.service")
    assert "--config /etc/echosrv/%i.conf --ctl /run/echosrv-%i/ctl" in t
    assert "\nRuntimeDirectory=echosrv-%i\n" in t and "\nUser=echosrv-%i\n" in t
    # The example configuration sets nothing: every line a comment.
    conf = _read("dist", "echosrv.conf")
    assert all(not l.strip() or l.startswith("#") for l in conf.splitlines())


def test_example_configuration_lines_are_valid(tmp_path):
    """Each commented-out setting of the example, switched on, passes --check."""
    lines = [l[1:] for l in _read("dist", "echosrv.conf").splitlines()
             if re.match(r"#[a-z][a-z-]+ \S", l)]
    assert len(lines) >= 10
    conf = tmp_path / "all.conf"
    conf.write_text("\n".join(lines) + "\n")
    r = subprocess.run([os.path.join(BUILD, "echosrv"), "--config", str(conf), "--check"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
