# SPDX-License-Identifier: GPL-2.0-only
"""The source tree's own checks (issue 16): scripts/deps.sh installs the
right packages per target and says what to install without apt-get; the
hardening check names what an unhardened binary lacks; every source file
has its SPDX line; the version is one --version prints."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import ECHOSRV, ROOT

DEPS = os.path.join(ROOT, "scripts", "deps.sh")
TEST_TOOLS = {"valgrind", "prometheus", "bpftrace", "nftables", "libcmocka-dev",
              "python3-pytest", "mandoc"}


def deps(*args, env=None, path=None):
    e = {k: v for k, v in os.environ.items() if k not in ("NO_DEPS", "DEPS_DRY_RUN")}
    e.update(env or {})
    if path is not None:
        e["PATH"] = path
    return subprocess.run(["/bin/sh", DEPS] + list(args), env=e, capture_output=True,
                          text=True, timeout=60)


def listed(*sets):
    r = deps("--list", *sets)
    assert r.returncode == 0, r.stderr
    return set(r.stdout.split())


def test_deps_build_set_leaves_the_test_tools_out():
    build, test = listed("build"), listed("test")
    assert {"liburing-dev", "libbpf-dev", "clang", "libmicrohttpd-dev"} <= build
    assert not build & TEST_TOOLS
    assert build < test and (TEST_TOOLS - {"valgrind"}) <= test
    assert "valgrind" not in test                 # make valgrind-check's alone
    assert {"valgrind", "libclang-rt-14-dev", "python3-matplotlib"} <= listed("all")
    assert {"python3-matplotlib", "socat", "xinetd", "ncat", "iproute2"} <= listed("bench")
    assert {"debhelper", "lintian", "dpkg-dev"} <= listed("deb")
    assert build < listed("deb") and not listed("deb") & TEST_TOOLS
    assert {"mmdebstrap", "buildah", "kubernetes-client"} <= listed("deploy")
    assert listed("deb") | listed("test") < listed("deploy")
    assert listed("all") == listed("test", "fuzz", "bench", "valgrind", "deb", "deploy")
    assert deps("--list", "nonsense").returncode == 2


def fake_bin(tmp_path, installed, apt=True):
    """A PATH holding what deps.sh runs, with dpkg-query answering from
    `installed` and an apt-get that only records its arguments."""
    d = tmp_path / "bin"
    d.mkdir()
    for tool in ("awk", "grep", "id", "cat"):
        os.symlink(shutil.which(tool), d / tool)
    (d / "dpkg-query").write_text(
        "#!/bin/sh\nfor p in %s; do [ \"$p\" = \"$3\" ] && { echo 'install ok installed'; exit 0; }; done\n"
        "exit 1\n" % " ".join(installed))
    log = tmp_path / "apt.log"
    if apt:
        (d / "apt-get").write_text("#!/bin/sh\necho \"$*\" >> %s\n" % log)
    for f in d.iterdir():
        if not f.is_symlink():
            f.chmod(0o755)
    return str(d), log


def test_deps_installs_only_what_is_missing(tmp_path):
    build = listed("build")
    path, log = fake_bin(tmp_path, sorted(build - {"liburing-dev"}))
    r = deps("build", path=path)
    assert r.returncode == 0, r.stderr
    lines = log.read_text().splitlines()
    assert lines[0] == "update -qq"
    assert lines[1].split()[-1] == "liburing-dev" and "install" in lines[1].split()
    assert len(lines) == 2


def test_deps_leaves_another_kubectl_alone(tmp_path):
    """Any kubectl will do for kubernetes-client: one from another package
    (a cloud SDK's) is not joined by Debian's, which would conflict."""
    path, log = fake_bin(tmp_path, sorted(listed("deploy") - {"kubernetes-client"}))
    r = deps("deploy", path=path)
    assert r.returncode == 0, r.stderr
    assert log.read_text().split()[-1] == "kubernetes-client"
    log.unlink()
    kubectl = os.path.join(path, "kubectl")
    with open(kubectl, "w") as f:
        f.write("#!/bin/sh\n")
    os.chmod(kubectl, 0o755)
    r = deps("deploy", path=path)
    assert r.returncode == 0 and not log.exists(), r.stderr


def test_deps_dry_run_and_no_deps_install_nothing(tmp_path):
    path, log = fake_bin(tmp_path, [])
    r = deps("test", env={"DEPS_DRY_RUN": "1"}, path=path)
    assert r.returncode == 0 and not log.exists()
    would = set(r.stderr.split("would install:")[1].split())
    assert would == listed("test")
    r = deps("all", env={"NO_DEPS": "1"}, path=path)
    assert r.returncode == 0 and r.stderr == "" and not log.exists()


def test_deps_without_apt_get_names_what_to_install(tmp_path):
    path, _ = fake_bin(tmp_path, [], apt=False)
    r = deps("build", path=path)
    assert r.returncode == 1
    for p in listed("build"):
        assert re.search(r"^  %s +\S" % re.escape(p), r.stderr, re.M), r.stderr
    assert "NO_DEPS=1" in r.stderr and "valgrind" not in r.stderr
    # Without dpkg at all: the whole list, by Debian name, and the way out.
    os.unlink(os.path.join(path, "dpkg-query"))
    r = deps("test", path=path)
    assert r.returncode == 1 and "no dpkg" in r.stderr and "NO_DEPS=1" in r.stderr
    for p in listed("test"):
        assert re.search(r"^  %s +\S" % re.escape(p), r.stderr, re.M), r.stderr


def test_hardening_check_names_what_a_binary_lacks(tmp_path):
    src = tmp_path / "t.c"
    # A buffer and a length unknown at compile time: FORTIFY makes read() __read_chk.
    src.write_text("#include <unistd.h>\nint main(int c, char **v) { char b[64];"
                   " return (int)read(c - 1, b, (size_t)c * 100) + b[1]; }\n")
    check = os.path.join(ROOT, "scripts", "hardening-check.sh")
    plain = tmp_path / "plain"
    subprocess.run(["cc", "-O2", "-no-pie", "-fno-stack-protector", "-U_FORTIFY_SOURCE",
                    "-Wl,-z,norelro", "-Wl,-z,lazy", "-o", plain, src], check=True)
    r = subprocess.run(["sh", check, plain], capture_output=True, text=True)
    assert r.returncode == 1
    assert "missing: PIE RELRO BIND_NOW stack-protector fortify" in r.stderr
    hard = tmp_path / "hard"
    subprocess.run(["cc", "-O2", "-fPIE", "-pie", "-fstack-protector-all",
                    "-D_FORTIFY_SOURCE=2", "-Wl,-z,relro,-z,now", "-o", hard, src], check=True)
    r = subprocess.run(["sh", check, hard, plain], capture_output=True, text=True)
    assert r.returncode == 1 and "hard: PIE RELRO BIND_NOW stack-protector fortify" in r.stdout
    r = subprocess.run(["sh", check, hard], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_every_source_file_has_its_spdx_line():
    if not os.path.isdir(os.path.join(ROOT, ".git")) and not os.path.isfile(os.path.join(ROOT, ".git")):
        pytest.skip("not a git tree (scripts/spdx.sh lists files with git ls-files)")
    r = subprocess.run(["sh", os.path.join(ROOT, "scripts", "spdx.sh"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    bpf = open(os.path.join(ROOT, "bpf", "echo.bpf.c")).read()
    assert bpf.startswith("/* SPDX-License-Identifier: GPL-2.0-only */")
    assert 'SEC("license") = "GPL";' in bpf          # what the kernel reads as GPL v2
    assert "GNU GENERAL PUBLIC LICENSE\n                       Version 2" in \
        open(os.path.join(ROOT, "LICENSE")).read()


def test_version_is_the_tree_s():
    r = subprocess.run([ECHOSRV, "--version"], capture_output=True, text=True)
    want = subprocess.run(["sh", os.path.join(ROOT, "scripts", "version.sh")],
                          capture_output=True, text=True).stdout.strip()
    assert r.returncode == 0
    # The built binary carries the version of the tree it was built from
    # (a test run after a new commit without a rebuild would differ).
    assert re.match(r"echosrv \d+\.\d+\.\d+", r.stdout)
    assert open(os.path.join(ROOT, "VERSION")).read().strip() in want


LAYERS = os.path.join(ROOT, "scripts", "layers.py")


def layers(src_root, objdir=None):
    args = ["/usr/bin/python3", LAYERS] + (["--objects", str(objdir)] if objdir else [])
    return subprocess.run(args, cwd=src_root, capture_output=True, text=True, timeout=60)


def small_tree(tmp_path, files):
    for rel, text in files.items():
        p = tmp_path / "src" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


def test_the_tree_keeps_its_layers():
    r = layers(ROOT, os.path.join(ROOT, os.environ.get("ECHOSRV_BUILD", "build")))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no call circles" in r.stdout


def test_layers_refuses_an_upward_include_and_a_header_circle(tmp_path):
    ok = {"core/a.h": "", "server/b.h": '#include "core/a.h"\n', "main.c": '#include "server/b.h"\n'}
    assert layers(small_tree(tmp_path / "ok", ok)).returncode == 0
    up = dict(ok, **{"core/a.h": '#include "server/b.h"\n'})
    r = layers(small_tree(tmp_path / "up", up))
    assert r.returncode == 1 and "core/a.h (core) includes server/b.h (server)" in r.stdout
    peer = dict(ok, **{"ops/c.c": '#include "engine/d.h"\n', "engine/d.h": ""})
    r = layers(small_tree(tmp_path / "peer", peer))
    assert r.returncode == 1 and "ops/c.c (ops) includes engine/d.h (engine)" in r.stdout
    ring = dict(ok, **{"core/x.h": '#include "core/y.h"\n', "core/y.h": '#include "core/x.h"\n'})
    r = layers(small_tree(tmp_path / "ring", ring))
    assert r.returncode == 1 and "headers include each other" in r.stdout


def test_layers_refuses_two_files_that_call_each_other(tmp_path):
    tree = small_tree(tmp_path, {"core/a.c": "", "core/b.c": ""})
    objs = tmp_path / "build" / "src" / "core"
    objs.mkdir(parents=True)
    code = {"a": "void b1(void); void a1(void); void a1(void) { b1(); }",
            "b": "void a1(void); void b1(void); void b1(void) { a1(); }"}
    for name, text in code.items():
        c = tmp_path / f"{name}.c"
        c.write_text(text)
        subprocess.run(["cc", "-c", "-o", objs / f"{name}.o", c], check=True)
    r = layers(tree, tmp_path / "build")
    assert r.returncode == 1 and "files call each other: core/a -> core/b -> core/a" in r.stdout
    (objs / "b.o").unlink()
    assert layers(tree, tmp_path / "build").returncode == 0
