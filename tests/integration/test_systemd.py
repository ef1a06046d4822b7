# SPDX-License-Identifier: GPL-2.0-only
"""The Debian package under a real systemd (issue 16): systemd boots
as PID 1 in a fresh Debian root (sysroot.Machine: namespaces, no container
runtime), `apt-get install ./echosrv_*.deb` there, and the installed unit is
checked the way an operator would: active and echoing, its STATUS line,
start-up failures at error priority in the journal, draining on stop, its
sandbox in force (/proc/PID/status), the watchdog, socket activation, and a
purge that leaves nothing.  The steps that need the configuration file and
the template unit (issue 11) skip, saying why, until the package has them.

The tests share one machine and run in this file's order (each leaves the
service as the next expects it: installed, running on the test port).

The machine shares the host's network: the service listens on free loopback
ports chosen here (a drop-in written before the package is installed, so that
the package's own start never binds 40007).

Opt-in: ECHOSRV_TEST_SYSTEMD=1 (`make check-systemd`), as root, with
mmdebstrap, unshare and nsenter.  The .deb is ECHOSRV_DEB if set, else
build/deb/'s when it is newer than every tracked file, else `make deb` builds
it.  The root (build/roots/, about 30 s to make) is cached between runs."""
import os
import resource
import shutil
import socket
import subprocess
import time

import pytest

from conftest import ROOT, assert_echoes, echo_roundtrip, free_port, wait_for
import sysroot

TOOLS = ("mmdebstrap", "unshare", "nsenter", "pivot_root", "dpkg-parsechangelog")

if os.environ.get("ECHOSRV_TEST_SYSTEMD") != "1":
    pytestmark = pytest.mark.skip(
        reason="boots systemd in a Debian root (half a minute; the first run also makes the root): "
               "set ECHOSRV_TEST_SYSTEMD=1 (make check-systemd)")
elif os.geteuid() != 0:
    pytestmark = pytest.mark.skip(reason="needs root (namespaces, pivot_root)")
elif any(shutil.which(t) is None for t in TOOLS):
    pytestmark = pytest.mark.skip(
        reason="needs %s (scripts/deps.sh deploy)"
        % ", ".join(t for t in TOOLS if shutil.which(t) is None))

UNIT = "echosrv.service"
DROPIN = "/etc/systemd/system/echosrv.service.d/50-test.conf"
# The run-time libraries the package depends on go into the cached root, so
# that apt installs the .deb without reaching a mirror.
BASE = ["systemd", "systemd-sysv", "dbus"]


def _tracked_newest():
    r = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                       timeout=30)
    if r.returncode != 0:
        return float("inf")            # no git tree: always rebuild
    names = [n for n in r.stdout.decode().split("\0") if n]
    return max(os.stat(os.path.join(ROOT, n)).st_mtime for n in names
               if os.path.exists(os.path.join(ROOT, n)))


def find_deb():
    if os.environ.get("ECHOSRV_DEB"):
        return os.path.abspath(os.environ["ECHOSRV_DEB"])
    out = lambda *a: subprocess.run(list(a), cwd=ROOT, capture_output=True, text=True,
                                    timeout=60).stdout.strip()
    name = "echosrv_%s_%s.deb" % (out("dpkg-parsechangelog", "-S", "Version"),
                                  out("dpkg", "--print-architecture"))
    path = os.path.join(ROOT, "build", "deb", name)
    if not os.path.isfile(path) or os.stat(path).st_mtime < _tracked_newest():
        r = subprocess.run(["make", "deb"], cwd=ROOT, capture_output=True, text=True,
                           timeout=900)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return path


def depends(deb):
    """The package names of the .deb's Depends (versions left out)."""
    r = subprocess.run(["dpkg-deb", "-f", deb, "Depends"], capture_output=True,
                       text=True, timeout=30, check=True)
    return [d.split()[0] for d in r.stdout.replace("|", ",").split(",") if d.strip()]


def snapshot(m):
    """Every path in the machine's root outside the package manager's own
    state, logs and the kernel's file systems: what a purge must restore."""
    r = m.sh("find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /run "
             "-o -path /tmp -o -path /var/log -o -path /var/cache -o -path /var/lib/apt "
             "-o -path /var/lib/dpkg -o -path /var/lib/systemd \\) -prune -o -print")
    return set(r.stdout.split("\n"))


def unit_dropin(m, port, metrics, extra=""):
    m.write(DROPIN, "[Service]\nExecStart=\n"
            "ExecStart=/usr/bin/echosrv --config /etc/echosrv/echosrv.conf --ctl /run/echosrv/ctl "
            "--listen 127.0.0.1:%d "
            "--metrics 127.0.0.1:%d\n%s" % (port, metrics, extra))


def show(m, prop, unit=UNIT):
    return m.sh("systemctl show -p %s --value %s" % (prop, unit)).stdout.strip()


def connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def echoes(port):
    try:
        with connect(port) as s:
            return echo_roundtrip(s, b"ping") == b"ping"
    except OSError:
        return False


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    deb = find_deb()
    tar = sysroot.root_tarball(BASE + depends(deb))
    where = str(tmp_path_factory.mktemp("machine") / "root")
    sysroot.unpack(tar, where)
    log = os.path.join(os.path.dirname(where), "console.log")
    m = sysroot.Machine(where, log)
    try:
        m.before = snapshot(m)
        m.port, m.metrics = free_port(), free_port()
        unit_dropin(m, m.port, m.metrics)
        shutil.copy(deb, m.path("/tmp/" + os.path.basename(deb)))
        m.deb = "/tmp/" + os.path.basename(deb)
        yield m
    finally:
        m.poweroff()
        shutil.rmtree(os.path.dirname(where), ignore_errors=True)


def restart_with(m, extra="", port=None):
    unit_dropin(m, port or m.port, m.metrics, extra)
    m.sh("systemctl daemon-reload && systemctl reset-failed %s; systemctl restart %s"
         % (UNIT, UNIT), check=False)


@pytest.mark.timeout(900)
def test_install_starts_the_service_and_it_echoes(machine):
    m = machine
    r = m.sh("DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
             + m.deb, timeout=300)
    assert "Setting up echosrv" in r.stdout
    assert m.sh("systemctl is-enabled " + UNIT).stdout.strip() == "enabled"
    wait_for(lambda: show(m, "ActiveState") == "active", timeout=30,
             what="echosrv.service active after install")
    wait_for(lambda: echoes(m.port), timeout=10, what="the service to echo")


def test_status_shows_the_status_line(machine):
    out = machine.sh("systemctl status --no-pager " + UNIT).stdout
    assert 'Status: "Serving 0 connections' in out, out
    with connect(machine.port) as s:
        assert_echoes(s)
        wait_for(lambda: 'Status: "Serving 1 connection' in
                 machine.sh("systemctl status --no-pager " + UNIT).stdout,
                 what="STATUS with the open connection")


def test_sandbox_in_force(machine):
    """A dynamic user, NoNewPrivileges, no capabilities, a seccomp filter:
    read from the kernel's view of the running process."""
    m = machine
    pid = show(m, "MainPID")
    status = dict(l.split(":", 1) for l in
                  m.sh("cat /proc/%s/status" % pid).stdout.splitlines() if ":" in l)
    uids = status["Uid"].split()
    # DynamicUser= allocates from 61184-65519, and the process has no uid 0
    # in any of real, effective, saved, file-system.
    assert all(61184 <= int(u) <= 65519 for u in uids), uids
    assert all(int(g) >= 61184 for g in status["Gid"].split()), status["Gid"]
    assert status["NoNewPrivs"].strip() == "1"
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[cap], 16) == 0, (cap, status[cap])
    assert status["Seccomp"].strip() == "2"              # SystemCallFilter=
    # PrivateUsers=: the process sees a user namespace of its own.
    own = m.sh("readlink /proc/%s/ns/user /proc/1/ns/user" % pid).stdout.split()
    assert own[0] != own[1], own
    # LimitNOFILE=1048576, as far as the host lets PID 1 raise a hard limit
    # (it needs CAP_SYS_RESOURCE, which some hosts, this test's CI among
    # them, leave out of the bounding set: then the host's hard limit).
    with open("/proc/self/status") as f:
        bnd = int([l for l in f if l.startswith("CapBnd")][0].split()[1], 16)
    want = 1048576 if bnd & (1 << 24) else min(1048576, resource.getrlimit(
        resource.RLIMIT_NOFILE)[1])
    limits = m.sh("cat /proc/%s/limits" % pid).stdout
    nofile = [l.split()[3:5] for l in limits.splitlines() if l.startswith("Max open files")]
    assert nofile == [[str(want), str(want)]], (want, nofile)
    # ProtectSystem=strict: / is read-only for it.
    mounts = m.sh("cat /proc/%s/mountinfo" % pid).stdout
    assert any(l.split()[4] == "/" and "ro" in l.split()[5].split(",")
               for l in mounts.splitlines()), mounts[:2000]


def test_startup_failure_is_logged_at_error_priority(machine):
    m = machine
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    since = m.sh("date +%s").stdout.strip()
    try:
        restart_with(m, port=port)
        # RestartSec= keeps it trying (activating, auto-restart) rather
        # than failed: what matters is the line in the journal.
        log = lambda *p: m.sh("journalctl --no-pager -u %s %s --since @%s -o cat"
                              % (UNIT, " ".join(p), since)).stdout
        wait_for(lambda: "cannot listen" in log(), timeout=60,
                 what="the service to say it cannot listen on a taken port")
        err, info = log("-p", "err"), log()
        assert "cannot listen" in info, info      # it is said, at some priority
        if "cannot listen" not in err:
            # Known, and issue 11's to fix: said loudly here rather than
            # skipped, and it passes by itself once the fix lands.
            pytest.xfail("issue 11: echosrv prints start-up failures to stderr "
                         "without a <3> prefix, so the journal files them at info "
                         "priority: " + next(l for l in info.splitlines()
                                             if "cannot listen" in l))
    finally:
        taken.close()
        restart_with(m)
        wait_for(lambda: echoes(m.port), timeout=30, what="the service back")


def test_stop_drains_open_connections(machine):
    m = machine
    s = connect(m.port)
    assert_echoes(s, b"before")
    m.sh("systemctl stop --no-block " + UNIT)
    wait_for(lambda: show(m, "ActiveState") == "deactivating", timeout=10,
             what="the service to start draining")
    # Draining: the open connection is still served, new ones are not.
    assert_echoes(s, b"during the drain")
    assert not echoes(m.port)
    assert show(m, "ActiveState") == "deactivating"
    s.close()
    wait_for(lambda: show(m, "ActiveState") == "inactive", timeout=20,
             what="the service to stop once the connection closed")
    assert show(m, "Result") == "success"
    m.sh("systemctl start " + UNIT)
    wait_for(lambda: echoes(m.port), timeout=30, what="the service back")


def test_watchdog_restarts_a_hung_server(machine):
    """SIGSTOP: the watchdog pings stop, systemd kills and restarts it.  The
    drop-in shortens WatchdogSec= (30 s in the unit) to keep the test short."""
    m = machine
    restart_with(m, "WatchdogSec=2\nTimeoutAbortSec=2\n")
    wait_for(lambda: echoes(m.port), timeout=30, what="the service with a 2 s watchdog")
    pid = show(m, "MainPID")
    since = m.sh("date +%s").stdout.strip()
    m.sh("kill -STOP " + pid)
    wait_for(lambda: show(m, "MainPID") not in ("0", pid) and
             show(m, "ActiveState") == "active", timeout=60,
             what="a new main process after the watchdog timeout")
    log = m.sh("journalctl --no-pager -u %s --since @%s -o cat" % (UNIT, since)).stdout
    assert "Watchdog timeout" in log, log
    wait_for(lambda: echoes(m.port), timeout=30, what="the restarted service to echo")
    restart_with(m)
    wait_for(lambda: echoes(m.port), timeout=30, what="the service back")


def test_socket_activation(machine):
    m = machine
    sport = free_port()
    m.write("/etc/systemd/system/echosrv.socket.d/50-test.conf",
            "[Socket]\nListenStream=\nListenStream=127.0.0.1:%d\n" % sport)
    m.sh("systemctl stop %s && systemctl daemon-reload && systemctl start echosrv.socket"
         % UNIT)
    try:
        assert show(m, "ActiveState") == "inactive"
        assert show(m, "ActiveState", "echosrv.socket") == "active"
        wait_for(lambda: echoes(sport), timeout=30, what="an echo through echosrv.socket")
        assert show(m, "ActiveState") == "active"
        # The service serves systemd's socket, not its own --listen.
        assert not echoes(m.port)
        out = m.sh("journalctl --no-pager -u %s -n 20 -o cat" % UNIT).stdout
        assert "127.0.0.1:%d" % sport in out, out
    finally:
        m.sh("systemctl stop echosrv.socket %s" % UNIT, check=False)
        os.unlink(m.path("/etc/systemd/system/echosrv.socket.d/50-test.conf"))
        m.sh("systemctl daemon-reload && systemctl start " + UNIT)
    wait_for(lambda: echoes(m.port), timeout=30, what="the service back")


def _has_config_support(m):
    help_ = m.sh("echosrv --help", check=False).stdout
    return "--config" in help_ and os.path.isfile(m.path("/etc/echosrv/echosrv.conf"))


def test_reload_applies_the_config_file_with_connections_kept(machine):
    m = machine
    if not _has_config_support(m):
        pytest.skip("issue 11: the packaged echosrv has no --config and no "
                    "/etc/echosrv/echosrv.conf yet")
    conf = m.path("/etc/echosrv/echosrv.conf")
    with open(conf) as f:
        orig = f.read()
    s = connect(m.port)
    assert_echoes(s)
    pid = show(m, "MainPID")
    try:
        with open(conf, "a") as f:
            f.write("\nmax-conns-per-ip 1\n")
        m.sh("systemctl reload " + UNIT)
        assert show(m, "MainPID") == pid
        # The kept connection is served.  It was opened while there was no
        # per-address limit, so it is not counted (docs/configuration.md):
        # the next one is, and the one after it is refused.
        assert_echoes(s, b"kept across the reload")
        s2 = connect(m.port)
        assert_echoes(s2, b"the first counted")
        wait_for(lambda: not echoes(m.port), timeout=10,
                 what="the reloaded per-address limit to refuse a second connection")
        s2.close()
    finally:
        s.close()
        with open(conf, "w") as f:
            f.write(orig)
        m.sh("systemctl reload " + UNIT, check=False)


def test_template_unit_two_instances_on_two_ports(machine):
    m = machine
    unit = m.path("/lib/systemd/system/echosrv@.service")
    if not os.path.isfile(unit) or not _has_config_support(m):
        pytest.skip("issue 11: the package has no echosrv@.service (and no "
                    "--config) yet")
    ports = {"a": free_port(), "b": free_port()}
    for inst, port in ports.items():
        m.write("/etc/echosrv/%s.conf" % inst,
                "listen 127.0.0.1:%d\nmetrics 127.0.0.1:%d\n" % (port, free_port()))
    try:
        m.sh("systemctl start echosrv@a echosrv@b")
        for inst, port in ports.items():
            wait_for(lambda: echoes(port), timeout=30, what="echosrv@%s to echo" % inst)
            assert show(m, "ActiveState", "echosrv@%s" % inst) == "active"
        assert show(m, "MainPID", "echosrv@a") != show(m, "MainPID", "echosrv@b")
    finally:
        m.sh("systemctl stop echosrv@a echosrv@b; rm -f /etc/echosrv/a.conf "
             "/etc/echosrv/b.conf", check=False)


def test_purge_leaves_nothing(machine):
    m = machine
    for d in ("/etc/systemd/system/echosrv.service.d",
              "/etc/systemd/system/echosrv.socket.d"):
        shutil.rmtree(m.path(d), ignore_errors=True)
    m.sh("DEBIAN_FRONTEND=noninteractive apt-get purge -y echosrv", timeout=300)
    assert show(m, "LoadState") == "not-found"
    assert not echoes(m.port)
    after = snapshot(m)
    assert after - m.before == set(), sorted(after - m.before)
    left = m.sh("find /var/lib/systemd /run -name '*echosrv*'").stdout.split()
    assert left == [], left
