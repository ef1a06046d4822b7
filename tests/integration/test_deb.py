# SPDX-License-Identifier: GPL-2.0-only
"""The Debian package (issue 16): `make deb` builds echosrv_VERSION_ARCH.deb
into build/deb/, the package holds the binaries, man pages and units, its
maintainer scripts enable and start the service the Debian way
(dh_installsystemd: deb-systemd-helper, deb-systemd-invoke), and lintian
finds no error and no warning.

Opt-in: the package build takes a minute and rewrites build/deb/, so these
run only with ECHOSRV_TEST_DEB=1 (and dpkg-buildpackage, dh and lintian
installed: `scripts/deps.sh deb`).  Installing the package under a real
systemd is a later test."""
import os
import shutil
import subprocess

import pytest

from conftest import ROOT

OUT = os.path.join(ROOT, "build", "deb")
TOOLS = ("dpkg-buildpackage", "dh", "lintian", "dpkg-deb", "dpkg-parsechangelog")

if os.environ.get("ECHOSRV_TEST_DEB") != "1":
    pytestmark = pytest.mark.skip(
        reason="the package build takes a minute: set ECHOSRV_TEST_DEB=1 to run it")
elif any(shutil.which(t) is None for t in TOOLS):
    pytestmark = pytest.mark.skip(
        reason="needs %s (scripts/deps.sh deb)"
        % ", ".join(t for t in TOOLS if shutil.which(t) is None))


def run(*argv, **kw):
    return subprocess.run(list(argv), cwd=ROOT, capture_output=True, text=True,
                          timeout=kw.pop("timeout", 120), **kw)


@pytest.fixture(scope="module")
def deb():
    """Build the package once for the module; the path of the .deb."""
    r = run("make", "deb", timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    version = run("dpkg-parsechangelog", "-S", "Version").stdout.strip()
    arch = run("dpkg-architecture", "-qDEB_HOST_ARCH").stdout.strip()
    with open(os.path.join(ROOT, "VERSION")) as f:
        assert version.startswith(f.read().strip() + "-"), version
    path = os.path.join(OUT, "echosrv_%s_%s.deb" % (version, arch))
    assert os.path.isfile(path), os.listdir(OUT)
    # Everything dpkg-buildpackage wrote to the parent directory moved here.
    name = "echosrv_%s_%s" % (version, arch)
    for f in (name + ".changes", name + ".buildinfo"):
        assert os.path.isfile(os.path.join(OUT, f)), f
        assert not os.path.exists(os.path.join(os.path.dirname(ROOT), f)), f
    return path


def contents(path):
    r = run("dpkg-deb", "-c", path)
    assert r.returncode == 0, r.stderr
    # "-rwxr-xr-x root/root 176144 2026-12-01 10:51 ./usr/bin/echosrv"
    return {line.split(None, 5)[5].lstrip("."): line.split()[0]
            for line in r.stdout.splitlines()}


@pytest.mark.timeout(900)
def test_deb_holds_binaries_man_pages_and_units(deb):
    files = contents(deb)
    for b in ("echosrv", "echosrvctl", "echosrv-bench"):
        assert files.get("/usr/bin/" + b, "").startswith("-rwxr-xr-x"), b
    for m in ("man8/echosrv.8.gz", "man8/echosrvctl.8.gz", "man1/echosrv-bench.1.gz"):
        assert "/usr/share/man/" + m in files, m
    for u in ("echosrv.service", "echosrv@.service", "echosrv.socket"):
        assert ("/lib/systemd/system/" + u in files
                or "/usr/lib/systemd/system/" + u in files), u
    assert "/usr/share/doc/echosrv/copyright" in files
    # The unit names the packaged binary, not the source tree's default.
    unit = [p for p in files if p.endswith("/systemd/system/echosrv.service")][0]
    r = subprocess.run("dpkg-deb --fsys-tarfile '%s' | tar -xOf - '.%s'" % (deb, unit),
                       shell=True, capture_output=True, text=True, timeout=60)
    assert "ExecStart=/usr/bin/echosrv " in r.stdout and "/usr/local/" not in r.stdout
    # The example configuration, a conffile: an administrator's edits
    # survive an upgrade.
    assert "/etc/echosrv/echosrv.conf" in files
    r = subprocess.run("dpkg-deb --ctrl-tarfile '%s' | tar -xOf - ./conffiles" % deb,
                       shell=True, capture_output=True, text=True, timeout=60)
    assert "/etc/echosrv/echosrv.conf" in r.stdout.split(), r.stdout
    # The package's metadata.
    info = run("dpkg-deb", "-f", deb, "Section", "Priority", "Depends").stdout
    assert "Section: net" in info and "Priority: optional" in info
    assert "libc6" in info and "liburing" in info


@pytest.mark.timeout(900)
def test_deb_maintainer_scripts_start_the_service_the_debian_way(deb, tmp_path):
    ctl = tmp_path / "control"
    r = run("dpkg-deb", "-e", deb, str(ctl))
    assert r.returncode == 0, r.stderr
    postinst = (ctl / "postinst").read_text()
    prerm = (ctl / "prerm").read_text()
    postrm = (ctl / "postrm").read_text()
    # Enabled and started on install, stopped on removal, its state purged.
    assert "deb-systemd-helper enable 'echosrv.service'" in postinst
    assert "deb-systemd-invoke $_dh_action 'echosrv.service'" in postinst
    assert "deb-systemd-invoke stop 'echosrv.service'" in prerm
    assert "deb-systemd-helper purge 'echosrv.service'" in postrm
    # The socket unit is the alternative to the service binding the port
    # itself: installed, never started by the package.
    # (dh_installsystemd --no-enable --no-start: enabled again only where
    # the administrator had enabled it, "debian-installed"; never invoked.)
    assert "deb-systemd-helper debian-installed 'echosrv.socket'" in postinst
    invoked = [l for l in postinst.splitlines() if "deb-systemd-invoke" in l]
    assert invoked and not [l for l in invoked if "echosrv.socket" in l], invoked


@pytest.mark.timeout(900)
def test_deb_lintian_clean(deb):
    debs = sorted(os.path.join(OUT, f) for f in os.listdir(OUT) if f.endswith(".deb"))
    assert deb in debs                    # and the -dbgsym package, if any
    r = run("lintian", "--fail-on", "error,warning", *debs, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    tags = [l for l in r.stdout.splitlines() if l[:2] in ("E:", "W:")]
    assert tags == []
