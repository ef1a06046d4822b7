# SPDX-License-Identifier: GPL-2.0-only
"""The OCI image (issue 16): `make image` (scripts/image.sh) builds
localhost/echosrv:TAG with buildah.  This host cannot run containers (crun
refuses its cgroup layout), so the image is tested two ways: by its
configuration, as `buildah inspect` reads it (the non-root user, entrypoint
and command, ports, stop signal, labels), and by running its root file
system the way a runtime would, minus the runtime: a working container's
root (buildah from + mount) under `unshare --pid --fork --mount` and chroot
as the image's user, where echosrv starts, echoes, serves metrics, and
drains and exits 0 on the stop signal.

Opt-in: ECHOSRV_TEST_IMAGE=1 (`make check-image` builds the image first), as
root, with buildah.  The listening addresses are overridden with free
loopback ports: the network is the host's, and 40007 is not the test's."""
import json
import os
import re
import shutil
import signal
import subprocess
import urllib.request

import pytest

from conftest import ROOT, assert_echoes, free_port, wait_for
import socket

OUT = os.path.join(ROOT, "build", "image")
STORE = ["--root", os.path.join(OUT, "storage"), "--runroot", os.path.join(OUT, "run"),
         "--storage-driver", "vfs"]
UID = 65532

if os.environ.get("ECHOSRV_TEST_IMAGE") != "1":
    pytestmark = pytest.mark.skip(
        reason="needs the image built: set ECHOSRV_TEST_IMAGE=1 (make check-image)")
elif os.geteuid() != 0:
    pytestmark = pytest.mark.skip(reason="needs root (buildah mount, namespaces)")
elif shutil.which("buildah") is None:
    pytestmark = pytest.mark.skip(reason="needs buildah (scripts/deps.sh deploy)")


def buildah(*args, timeout=120):
    r = subprocess.run(["buildah"] + STORE + list(args), capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, (args, r.stderr)
    return r.stdout


def version():
    return subprocess.run(["sh", "scripts/version.sh"], cwd=ROOT, capture_output=True,
                          text=True, timeout=30, check=True).stdout.strip()


@pytest.fixture(scope="module")
def image():
    tag = re.sub(r"[^A-Za-z0-9_.-]", "-", version())
    name = "localhost/echosrv:" + tag
    assert os.path.isfile(os.path.join(OUT, "echosrv-%s.oci.tar" % tag)), os.listdir(OUT)
    return name, json.loads(buildah("inspect", "--type", "image", name))


def test_image_configuration(image):
    name, info = image
    cfg = info["OCIv1"]["config"]
    assert cfg["User"] == "%d:%d" % (UID, UID)              # not root, numerically
    assert cfg["Entrypoint"] == ["/usr/bin/echosrv"]
    cmd = cfg["Cmd"]
    assert cmd[cmd.index("--listen") + 1] == "[::]:40007"
    assert cmd[cmd.index("--metrics") + 1] == "[::]:9407"   # metrics on
    assert "--daemon" not in cmd                             # foreground
    assert set(cfg["ExposedPorts"]) == {"40007/tcp", "9407/tcp"}
    assert cfg["StopSignal"] == "SIGTERM"
    labels = cfg["Labels"]
    assert labels["org.opencontainers.image.version"] == version()
    assert labels["org.opencontainers.image.source"]
    assert labels["org.opencontainers.image.licenses"] == "GPL-2.0-only"
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", labels["org.opencontainers.image.revision"])
    # One layer: the root file system made by scripts/image.sh, no base.
    assert len(info["OCIv1"]["rootfs"]["diff_ids"]) == 1


@pytest.fixture
def rootfs(image):
    name, _ = image
    ctr = buildah("from", "--pull-never", name).strip()
    try:
        yield buildah("mount", ctr).strip()
    finally:
        buildah("umount", ctr)
        buildah("rm", ctr)


def test_image_holds_only_the_runtime(rootfs):
    assert os.access(os.path.join(rootfs, "usr/bin/echosrv"), os.X_OK)
    assert os.access(os.path.join(rootfs, "usr/bin/echosrvctl"), os.X_OK)
    for absent in ("bin/sh", "usr/bin/sh", "bin/bash", "usr/bin/apt-get", "usr/bin/dpkg"):
        assert not os.path.lexists(os.path.join(rootfs, absent)), absent
    with open(os.path.join(rootfs, "etc/passwd")) as f:
        assert ":%d:%d:" % (UID, UID) in f.read()
    st = os.stat(os.path.join(rootfs, "run/echosrv"))
    assert (st.st_uid, st.st_gid) == (UID, UID)


def test_image_root_runs_as_its_user_and_echoes(image, rootfs, tmp_path):
    _, info = image
    cfg = info["OCIv1"]["config"]
    port, metrics = free_port(), free_port()
    cmd = list(cfg["Cmd"])
    cmd[cmd.index("--listen") + 1] = "127.0.0.1:%d" % port
    cmd[cmd.index("--metrics") + 1] = "127.0.0.1:%d" % metrics
    for d in ("proc", "dev"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    # What a runtime gives a container, and no more: its own PID and mount
    # namespaces, /proc, /dev/null; then the image's user, entrypoint, env.
    boot = ("mount -t proc proc {r}/proc && touch {r}/dev/null && "
            "mount --bind /dev/null {r}/dev/null && "
            "exec /usr/sbin/chroot --userspec={u}:{u} {r} {ep} {args}").format(
        r=rootfs, u=UID, ep=" ".join(cfg["Entrypoint"]),
        args=" ".join("'%s'" % a for a in cmd + ["--port-file", "/tmp/port"]))
    env = dict(e.split("=", 1) for e in cfg["Env"])
    log = open(tmp_path / "stderr", "w+b")
    proc = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "--mount",
                             "sh", "-c", boot], stdout=log, stderr=log, env=env)
    try:
        wait_for(lambda: proc.poll() is None and
                 os.path.exists(os.path.join(rootfs, "tmp/port")), timeout=20,
                 what="echosrv to listen (%s)" % (tmp_path / "stderr"))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            assert_echoes(s, b"from the image")
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % metrics,
                                      timeout=10).read().decode()
        assert "echosrv_" in body
        # It runs as the image's user (the server is unshare's grandchild).
        kids = open("/proc/%d/task/%d/children" % (proc.pid, proc.pid)).read().split()
        status = open("/proc/%s/status" % kids[0]).read()
        assert re.search(r"^Uid:\s+%d\s+%d\s+%d\s+%d$" % ((UID,) * 4), status, re.M), status
        assert os.path.exists(os.path.join(rootfs, "run/echosrv/ctl"))   # its ctl socket
        # The stop signal: echosrv drains and exits 0.
        os.kill(int(kids[0]), getattr(signal, info["OCIv1"]["config"]["StopSignal"]))
        assert proc.wait(timeout=30) == 0, open(tmp_path / "stderr").read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
