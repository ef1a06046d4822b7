# SPDX-License-Identifier: GPL-2.0-only
"""deploy/kubernetes/ (issue 16): `kubectl kustomize` renders the
base and the sockmap overlay, and each object is checked twice:

- against the Kubernetes API's schema as Debian packages it: the object
  models of python3-kubernetes (generated from the API's OpenAPI document).
  Every field name must exist in the model of its place (a misspelt or
  misplaced field fails: the API server would drop or refuse it), every
  value must have the model's type, and the models' own checks (required
  fields) run when the object is built from them.  No cluster
  is needed.  The ServiceMonitor is a custom resource, which no Debian
  package describes: its fields are checked here by hand.
- against what the deployment promises: non-root, read-only root, every
  capability dropped, resources, a grace period longer than the drain
  timeout, readiness on /readyz and liveness on /healthz on the metrics
  port, the Service's ports, the PDB's selector; the overlay adds exactly
  the sockmap engine's capabilities; and echosrv --check accepts the args.

Opt-in: ECHOSRV_TEST_KUBE=1 (`make check-kube`), with kubectl and
python3-kubernetes (scripts/deps.sh deploy)."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import ECHOSRV, ROOT, Server, assert_echoes

KUBE = os.path.join(ROOT, "deploy", "kubernetes")

if os.environ.get("ECHOSRV_TEST_KUBE") != "1":
    pytestmark = pytest.mark.skip(reason="set ECHOSRV_TEST_KUBE=1 (make check-kube)")
elif shutil.which("kubectl") is None:
    pytestmark = pytest.mark.skip(reason="needs kubectl (scripts/deps.sh deploy)")

yaml = pytest.importorskip("yaml")
client = pytest.importorskip("kubernetes.client")


def render(path):
    r = subprocess.run(["kubectl", "kustomize", path], capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0 and "patches" in r.stderr and "unknown field" in r.stderr:
        pytest.skip("this kubectl's kustomize predates `patches:` (v3): " + r.stderr[:200])
    assert r.returncode == 0, r.stderr
    # kustomize prints deprecation warnings for old syntax: the manifests use none.
    assert "Warning" not in r.stderr, r.stderr
    objs = [o for o in yaml.safe_load_all(r.stdout) if o]
    return {o["kind"]: o for o in objs}, objs


# --- the API schema (python3-kubernetes' models) ---------------------------
MODELS = {("apps/v1", "Deployment"): "V1Deployment", ("v1", "Service"): "V1Service",
          ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget"}
SCALARS = {"str": str, "int": int, "bool": bool, "float": (int, float)}


def check_fields(value, typ, where):
    """Every field of value exists in the model named typ, with its type."""
    if typ in SCALARS:
        assert isinstance(value, SCALARS[typ]) and not (
            typ == "int" and isinstance(value, bool)), "%s: %r is not %s" % (where, value, typ)
        return
    if typ == "object":                     # IntOrString, Quantity and the like
        assert isinstance(value, (str, int, dict, list)), where
        return
    m = re.fullmatch(r"list\[(.+)\]", typ)
    if m:
        assert isinstance(value, list), "%s: not a list" % where
        for i, v in enumerate(value):
            check_fields(v, m.group(1), "%s[%d]" % (where, i))
        return
    m = re.fullmatch(r"dict\((\w+), (.+)\)", typ)
    if m:
        assert isinstance(value, dict), "%s: not a map" % where
        for k, v in value.items():
            check_fields(v, m.group(2), "%s.%s" % (where, k))
        return
    model = getattr(client, typ)
    assert isinstance(value, dict), "%s: not an object (%s)" % (where, typ)
    by_json = {j: p for p, j in model.attribute_map.items()}
    for k, v in value.items():
        assert k in by_json, "%s: %s has no field %r" % (where, typ, k)
        check_fields(v, model.openapi_types[by_json[k]], "%s.%s" % (where, k))


def check_schema(obj):
    model = MODELS[(obj["apiVersion"], obj["kind"])]
    check_fields(obj, model, obj["kind"])
    # Build the model objects: their setters refuse a missing required
    # field.  (These models check no enumerations: the values that matter,
    # such as the seccomp profile's type, are checked by the tests below.)
    api = client.ApiClient()
    api._ApiClient__deserialize(obj, model)


def check_servicemonitor(sm):
    """monitoring.coreos.com/v1 ServiceMonitor, by hand (no packaged schema):
    the fields the operator reads, and none it does not know."""
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(sm) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(sm["spec"]) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}
    assert set(sm["spec"]["selector"]) == {"matchLabels"}
    for ep in sm["spec"]["endpoints"]:
        assert set(ep) <= {"port", "path", "interval", "scrapeTimeout", "scheme"}, ep
        assert re.fullmatch(r"\d+[smh]", ep["interval"]), ep
        assert ep["path"].startswith("/")


# --- the base ---------------------------------------------------------------
def arg(args, name):
    for a in args:
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def test_base_renders_and_matches_the_api_schema():
    kinds, objs = render(os.path.join(KUBE, "base"))
    assert sorted(kinds) == ["Deployment", "PodDisruptionBudget", "Service", "ServiceMonitor"]
    assert len(objs) == 4
    for o in objs:
        if o["kind"] == "ServiceMonitor":
            check_servicemonitor(o)
        else:
            check_schema(o)


def test_base_deployment_is_sandboxed_and_probed():
    kinds, _ = render(os.path.join(KUBE, "base"))
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    psc, sc = pod["securityContext"], c["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0
    assert psc["seccompProfile"]["type"] == "RuntimeDefault"
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    assert c["resources"]["limits"]["memory"]
    # The drain finishes before the kubelet's SIGKILL.
    drain = int(arg(c["args"], "--drain-timeout") or 10)
    assert pod["terminationGracePeriodSeconds"] > drain
    # Probes on the metrics listener's health endpoints.
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert arg(c["args"], "--metrics").endswith(":%d" % ports["metrics"])
    assert arg(c["args"], "--listen").endswith(":%d" % ports["echo"])
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    # The control socket's directory is writable on a read-only root.
    ctl = arg(c["args"], "--ctl")
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert os.path.dirname(ctl) in mounts
    assert c["image"].startswith("localhost/echosrv:")


def test_base_service_pdb_and_monitor_select_the_pods():
    kinds, _ = render(os.path.join(KUBE, "base"))
    labels = kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]
    sel = kinds["Deployment"]["spec"]["selector"]["matchLabels"]
    assert sel.items() <= labels.items()
    svc = kinds["Service"]["spec"]
    assert svc["selector"].items() <= labels.items()
    assert {(p["name"], p["port"], p["protocol"]) for p in svc["ports"]} == {
        ("echo", 40007, "TCP"), ("metrics", 9407, "TCP")}
    assert kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == sel
    svc_labels = kinds["Service"]["metadata"]["labels"]
    mon = kinds["ServiceMonitor"]["spec"]
    assert mon["selector"]["matchLabels"].items() <= svc_labels.items()
    assert [e["port"] for e in mon["endpoints"]] == ["metrics"]


def test_args_are_options_echosrv_accepts():
    for path in ("base", "overlays/sockmap"):
        kinds, _ = render(os.path.join(KUBE, path))
        args = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
        # The same options, on a free port; --check validates and exits.
        args = [re.sub(r"^--listen=.*", "--listen=127.0.0.1:0", a) for a in args]
        args = [a for a in args if not a.startswith(("--metrics=", "--ctl="))]
        if "--engine=sockmap" in args and os.geteuid() != 0:
            args.remove("--engine=sockmap")   # its --check loads BPF: root only
        r = subprocess.run([ECHOSRV] + args + ["--check"], capture_output=True, text=True,
                           timeout=10)
        assert r.returncode == 0, (path, args, r.stderr)


def mebibytes(q):
    """A Kubernetes memory quantity in MiB (the suffixes the manifests use)."""
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi)", q)
    assert m, q
    return int(m.group(1)) * {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}[m.group(2)]


def test_connections_fit_the_memory_limit():
    """--max-conns auto is what the descriptor limit allows (a runtime's is
    a million), so many clients that send and never read would grow
    echosrv past the pod's memory limit: an OOM kill drops every connection
    of the pod at once, where a bound refuses only the ones too many.  The
    bound leaves half the limit to the kernel's socket buffers (charged to
    the pod's cgroup too) and the process itself."""
    for path in ("base", "overlays/sockmap"):
        kinds, _ = render(os.path.join(KUBE, path))
        (c,) = kinds["Deployment"]["spec"]["template"]["spec"]["containers"]
        limit = mebibytes(c["resources"]["limits"]["memory"])
        conns = arg(c["args"], "--max-conns")
        assert conns and conns.isdigit(), (path, c["args"])
        buf = arg(c["args"], "--conn-buffer") or "64k"
        buf_mib = int(buf.rstrip("kK")) / 1024 if buf[-1] in "kK" else int(buf) / 2 ** 20
        assert int(conns) * buf_mib <= limit / 2, (path, conns, buf, limit)


# --- the sockmap overlay ------------------------------------------------------
def test_sockmap_overlay_adds_only_the_engines_capabilities():
    kinds, objs = render(os.path.join(KUBE, "overlays", "sockmap"))
    for o in objs:
        if o["kind"] != "ServiceMonitor":
            check_schema(o)
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert arg(c["args"], "--engine") == "sockmap"
    caps = c["securityContext"]["capabilities"]
    assert caps["drop"] == ["ALL"]
    # What the sockmap engine asks for when it is refused (its error message
    # names CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON).
    src = open(os.path.join(ROOT, "src", _sockmap_loader())).read()
    needed = set(re.findall(r"CAP_(BPF|NET_ADMIN|PERFMON)", src))
    assert needed == {"BPF", "NET_ADMIN", "PERFMON"}
    assert sorted(caps["add"]) == sorted(needed)
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    # The rest of the base is kept.
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["terminationGracePeriodSeconds"] > int(arg(c["args"], "--drain-timeout"))


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to narrow the capabilities")
def test_sockmap_overlay_capabilities_are_enough(tmp_path):
    """echosrv serves with the sockmap engine holding only the overlay's
    capabilities (setpriv narrows the bounding set as the runtime would),
    and is refused with one of them less."""
    kinds, _ = render(os.path.join(KUBE, "overlays", "sockmap"))
    c = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    caps = [x.lower() for x in c["securityContext"]["capabilities"]["add"]]
    args = [a for a in c["args"] if a.startswith(("--workers=", "--drain-timeout="))]
    narrow = lambda keep: ["setpriv", "--inh-caps=-all",
                           "--bounding-set=-all," + ",".join("+" + k for k in keep)]
    srv = Server(tmp_path, args, engine="sockmap", wrapper=narrow(caps))
    try:
        with srv.connect() as s:
            assert_echoes(s, b"through the kernel")
    finally:
        assert srv.stop() == 0, srv.stderr()
    r = subprocess.run(narrow(caps[1:]) + [ECHOSRV, "--engine", "sockmap", "--check"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0 and "sockmap engine needs" in r.stderr, r.stderr


def _sockmap_loader():
    """The file holding the sockmap engine's capability check (src/ is being
    reorganised into folders: look it up)."""
    for d, _, files in os.walk(os.path.join(ROOT, "src")):
        for f in files:
            p = os.path.join(d, f)
            if f.endswith(".c") and "the sockmap engine needs root" in open(p).read():
                return os.path.relpath(p, os.path.join(ROOT, "src"))
    raise AssertionError("no sockmap capability check found in src/")
