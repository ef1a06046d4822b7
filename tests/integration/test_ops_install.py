# SPDX-License-Identifier: GPL-2.0-only
"""`make install` with PREFIX and DESTDIR, and the man pages."""
import os
import re
import shutil
import stat
import subprocess

import pytest

from conftest import BUILD, ECHOSRV, ROOT
from ops_common import ECHOSRVCTL, make_install


def test_install_into_destdir(tmp_path):
    dest = tmp_path / "dest"
    make_install(DESTDIR=str(dest), PREFIX="/usr")
    root = dest / "usr"
    expect = {
        "bin/echosrv": 0o755, "bin/echosrvctl": 0o755,
        "share/man/man8/echosrv.8": 0o644, "share/man/man8/echosrvctl.8": 0o644,
        "lib/systemd/system/echosrv.service": 0o644,
        "lib/systemd/system/echosrv.socket": 0o644,
        "lib/systemd/system/echosrv@.service": 0o644,
        "share/doc/echosrv/operations.md": 0o644,
    }
    if os.path.exists(os.path.join(BUILD, "echosrv-bench")):
        expect["bin/echosrv-bench"] = 0o755
    if os.path.exists(os.path.join(ROOT, "man", "echosrv-bench.1")):
        expect["share/man/man1/echosrv-bench.1"] = 0o644
    for rel, mode in expect.items():
        st = os.stat(root / rel)
        assert stat.S_IMODE(st.st_mode) == mode, rel
    # Nothing lands outside DESTDIR/PREFIX but the configuration file.
    assert sorted(os.listdir(dest)) == ["etc", "usr"]
    conf = dest / "etc/echosrv/echosrv.conf"
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o644
    assert conf.read_text() == open(os.path.join(ROOT, "dist", "echosrv.conf")).read()
    # The units and the installed docs name the installed binary, not the
    # source tree's default.
    unit = (root / "lib/systemd/system/echosrv.service").read_text()
    assert "ExecStart=/usr/bin/echosrv --config /etc/echosrv/echosrv.conf " \
        "--ctl /run/echosrv/ctl" in unit
    tmpl = (root / "lib/systemd/system/echosrv@.service").read_text()
    assert "ExecStart=/usr/bin/echosrv --config /etc/echosrv/%i.conf " \
        "--ctl /run/echosrv-%i/ctl" in tmpl and "RuntimeDirectory=echosrv-%i" in tmpl
    assert "ExecReload=/bin/kill -HUP $MAINPID" in tmpl
    for text in (unit, tmpl, (root / "share/doc/echosrv/operations.md").read_text()):
        assert "/usr/local/" not in text
    # The installed binaries are the built ones and run.
    r = subprocess.run([str(root / "bin/echosrv"), "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("echosrv ")
    r = subprocess.run([str(root / "bin/echosrvctl"), "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("echosrvctl ")


def test_install_keeps_an_existing_configuration(tmp_path):
    dest = tmp_path / "dest"
    conf = dest / "etc/echosrv/echosrv.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("max-conns 5\n")
    r = make_install(DESTDIR=str(dest), PREFIX="/usr")
    assert conf.read_text() == "max-conns 5\n"
    assert "keeping" in r.stdout
    make_install("uninstall", DESTDIR=str(dest), PREFIX="/usr")
    assert conf.read_text() == "max-conns 5\n"     # edited: the operator's


def test_install_with_another_sysconfdir(tmp_path):
    dest = tmp_path / "dest"
    make_install(DESTDIR=str(dest), PREFIX="/opt/es", SYSCONFDIR="/opt/es/etc")
    unit = (dest / "opt/es/lib/systemd/system/echosrv.service").read_text()
    assert "/opt/es/bin/echosrv --config /opt/es/etc/echosrv/echosrv.conf" in unit
    assert (dest / "opt/es/etc/echosrv/echosrv.conf").exists()


def _files(top):
    return sorted(os.path.relpath(os.path.join(d, f), top)
                  for d, _, fs in os.walk(top) for f in fs)


def test_uninstall_removes_what_install_installed(tmp_path):
    """`make uninstall` with the same PREFIX and DESTDIR leaves no file of
    ours, and leaves alone a file it did not install in a shared directory."""
    dest = tmp_path / "dest"
    make_install(DESTDIR=str(dest), PREFIX="/opt/es")
    installed = _files(dest)
    assert "opt/es/bin/echosrv" in installed and len(installed) >= 7
    foreign = dest / "opt/es/bin/other-tool"
    foreign.write_text("not ours\n")
    make_install("uninstall", DESTDIR=str(dest), PREFIX="/opt/es")
    assert _files(dest) == ["opt/es/bin/other-tool"]
    assert not (dest / "opt/es/share/doc/echosrv").exists()
    foreign.unlink()
    # Uninstalling what is not there is not an error (rm -f).
    make_install("uninstall", DESTDIR=str(dest), PREFIX="/opt/es")
    assert _files(dest) == []


def _mandoc():
    exe = shutil.which("mandoc")
    if not exe:
        pytest.skip("mandoc not installed (Debian package mandoc; scripts/deps.sh)")
    return exe


def _pages():
    d = os.path.join(ROOT, "man")
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f[-2:] in (".1", ".8"))


def test_man_pages_lint_clean():
    exe = _mandoc()
    pages = _pages()
    assert any(p.endswith("echosrv.8") for p in pages)
    assert any(p.endswith("echosrvctl.8") for p in pages)
    r = subprocess.run([exe, "-T", "lint"] + pages, capture_output=True, text=True)
    # The one finding allowed: a cross-reference to one of our own pages
    # that is not installed on this machine (mandoc looks in its database).
    ours = ("Xr echosrv 8", "Xr echosrvctl 8", "Xr echosrv-bench 1")
    findings = [l for l in (r.stdout + r.stderr).splitlines()
                if not ("referenced manual not found" in l and any(o in l for o in ours))
                and "outdated mandoc.db" not in l]
    assert findings == [], "\n".join(findings)


def test_man_page_documents_every_option_and_probe():
    """echosrv.8 stays in step with the option table and the probes."""
    text = open(os.path.join(ROOT, "man", "echosrv.8")).read()
    help_text = subprocess.run([ECHOSRV, "--help"], capture_output=True, text=True).stdout
    options = [re.match(r"[a-z0-9-]*", w).group(0) for w in help_text.split("--")[1:]]
    options = sorted({o for o in options if o and o[0].isalpha()})
    assert len(options) > 15
    for o in options:
        assert "Fl \\-" + o in text or "Fl -" + o in text, "--%s missing from echosrv.8" % o
    for probe in ("accept", "close", "recv", "send", "reject"):
        assert "Sy %s" % probe in text, "probe %s missing from echosrv.8" % probe
    ctl_text = open(os.path.join(ROOT, "man", "echosrvctl.8")).read()
    for cmd in ("stats", "trace", "conns", "kill", "drain", "stop"):
        assert "Cm %s" % cmd in ctl_text
