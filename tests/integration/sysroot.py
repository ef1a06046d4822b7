# SPDX-License-Identifier: GPL-2.0-only
"""Debian roots for the deployment tests (issue 16): a root file system made
by mmdebstrap and cached as a tarball under build/roots/, and a Machine that
boots systemd as PID 1 in a copy of it.

The machine is only namespaces, no container runtime (this host cannot run
one): `unshare --pid --fork --mount --cgroup`, then, inside, the root is
bind-mounted onto itself and made the namespace's root with pivot_root, the
host's root unmounted, and systemd exec'd.  pivot_root rather than chroot
because the kernel refuses a user namespace (PrivateUsers=, DynamicUser's
helpers) to a chrooted process, and systemd's mount namespacing (ProtectSystem=
and friends) needs the root to be a mount point; with both, every sandboxing
setting of echosrv.service is really applied.  The network namespace is the
host's: tests use free loopback ports.

`container=` is set in PID 1's environment, so systemd runs as in a container:
units that would touch the shared kernel (sysctl, modules, binfmt) are
skipped or masked, since this kernel is the host's."""
import hashlib
import os
import signal
import subprocess
import time

from conftest import ROOT, wait_for

CACHE = os.path.join(ROOT, "build", "roots")
SUITE = "bookworm"

# Units that would change the host's kernel (its sysctls, modules, binfmt
# handlers) or wait for a console: masked before the first boot.
MASKED = ("systemd-sysctl.service", "systemd-modules-load.service",
          "systemd-binfmt.service", "proc-sys-fs-binfmt_misc.automount",
          "proc-sys-fs-binfmt_misc.mount", "systemd-firstboot.service",
          "getty.target", "console-getty.service", "systemd-networkd.service",
          "systemd-networkd.socket")


def root_tarball(include, variant="minbase", extra=()):
    """The path of a cached tarball of a Debian root with these packages,
    built by mmdebstrap on first use (about 30 s); the name carries a hash
    of what went into it, so a changed package list builds a new one."""
    key = "\n".join([SUITE, variant, ",".join(sorted(include))] + list(extra))
    name = "%s-%s-%s.tar" % (SUITE, variant, hashlib.sha256(key.encode()).hexdigest()[:12])
    path = os.path.join(CACHE, name)
    if os.path.isfile(path):
        return path
    os.makedirs(CACHE, exist_ok=True)
    tmp = path + ".part"
    # Three tries: the packages come from the network, where one mirror
    # hiccup should not fail the deployment tests.
    for attempt in range(3):
        r = subprocess.run(["mmdebstrap", "--quiet", "--format=tar", "--variant=" + variant,
                            "--include=" + ",".join(include)] + list(extra)
                           + [SUITE, tmp], capture_output=True, text=True, timeout=900)
        if r.returncode == 0:
            break
        print("mmdebstrap failed (try %d of 3): %s" % (attempt + 1, r.stderr[-3000:]))
        if attempt < 2:
            time.sleep(10)
    assert r.returncode == 0, "mmdebstrap failed three times: " + r.stderr[-3000:]
    os.rename(tmp, path)
    return path


def unpack(tarball, where):
    os.makedirs(where, exist_ok=True)
    subprocess.run(["tar", "-C", where, "--numeric-owner", "-xpf", tarball],
                   check=True, timeout=300)


def _mounts_under(path):
    with open("/proc/self/mountinfo") as f:
        return [l.split()[4] for l in f if l.split()[4].startswith(path.rstrip("/") + "/")
                or l.split()[4] == path]


class Machine:
    """systemd as PID 1 in its own PID, mount and cgroup namespaces, in root
    directory `where` (an unpacked root_tarball())."""

    def __init__(self, where, log_path):
        self.root = where
        for u in MASKED:
            link = os.path.join(where, "etc/systemd/system", u)
            if not os.path.lexists(link):
                os.symlink("/dev/null", link)
        boot = ("mount --bind {r} {r} && cd {r} && mkdir -p .host && pivot_root . .host"
                " && /.host/usr/bin/mount -t proc proc /proc"
                " && /.host/usr/bin/umount -l /.host && rmdir /.host"
                " && exec /lib/systemd/systemd --system").format(r=where)
        env = {"container": "echosrv-test", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--kill-child", "--mount", "--cgroup", "sh",
             "-c", boot],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, env=env,
            start_new_session=True)
        try:
            self.pid = None
            self.pid = wait_for(self._systemd_pid, timeout=30, what="systemd to start")
            self._wait_booted()
        except BaseException:
            self.poweroff()
            raise

    def _wait_booted(self):
        # systemctl needs the manager's private bus socket, made a moment
        # after exec.
        wait_for(lambda: self.sh("test -S /run/systemd/private", check=False).returncode == 0,
                 timeout=30, what="systemd's private bus socket")
        # "degraded" is enough (a unit of Debian's own may fail in a
        # namespace); the tests look at echosrv's units themselves.
        r = self.sh("systemctl is-system-running --wait", timeout=120, check=False)
        assert r.stdout.strip() in ("running", "degraded"), (r.stdout, r.stderr,
                                                             self.sh("systemctl --failed",
                                                                     check=False).stdout)

    def _systemd_pid(self):
        if self.proc.poll() is not None:
            raise AssertionError("the machine exited with %d" % self.proc.returncode)
        try:
            with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
                kids = f.read().split()
            if kids:
                with open("/proc/%s/comm" % kids[0]) as f:
                    if f.read().strip() == "systemd":
                        return int(kids[0])
        except FileNotFoundError:
            pass
        return None

    def sh(self, script, timeout=60, check=True, input=None):
        """Run a shell command inside the machine (its PID and mount
        namespaces and its root)."""
        r = subprocess.run(["nsenter", "-t", str(self.pid), "-p", "-m", "-r", "-w",
                            "/bin/sh", "-c", script], capture_output=True, text=True,
                           timeout=timeout, input=input)
        if check:
            assert r.returncode == 0, "%s: rc %d\n%s%s" % (script, r.returncode,
                                                        r.stdout[-3000:], r.stderr[-3000:])
        return r

    def write(self, path, text):
        """A file in the machine's root, written from outside."""
        full = os.path.join(self.root, path.lstrip("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)

    def path(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def poweroff(self):
        """SIGRTMIN+4 asks systemd to power off (in a container it exits,
        and the PID namespace with it); SIGKILL if it does not within 60 s."""
        if self.proc.poll() is None:
            try:
                if self.pid is None:
                    raise subprocess.TimeoutExpired("systemd", 0)
                os.kill(self.pid, signal.SIGRTMIN + 4)
                self.proc.wait(timeout=60)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                # SIGKILL to the namespace's PID 1 ends every process in it;
                # before systemd runs, killing unshare kills it (--kill-child).
                if self.pid is not None:
                    os.kill(self.pid, signal.SIGKILL)
                else:
                    self.proc.kill()
                self.proc.wait(timeout=30)
        self.log.close()
        # The mounts lived in the machine's namespace only; make sure of it
        # before anything removes the root.
        deadline = time.monotonic() + 10
        while _mounts_under(self.root) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _mounts_under(self.root), _mounts_under(self.root)
