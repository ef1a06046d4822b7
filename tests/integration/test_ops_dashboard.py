# SPDX-License-Identifier: GPL-2.0-only
"""dist/grafana/echosrv.json and dist/prometheus/echosrv-rules.yml against
a real scrape: every PromQL expression in the dashboard and the
rules names only metrics that echosrv exports (or `up`, which Prometheus
makes), and parses (promtool check rules over a generated rules file).
The rules' own unit tests are `make rules-check`."""
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT
from ops_common import metrics_url, scrape

DASHBOARD = os.path.join(ROOT, "dist", "grafana", "echosrv.json")
RULES = os.path.join(ROOT, "dist", "prometheus", "echosrv-rules.yml")

# Grafana's variables, as a query would see them once expanded.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "1m", "$job": ".+",
                "$instance": ".+"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
                "unless", "bool", "offset", "inf", "nan"}


def dashboard_exprs():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    assert dash["title"] and dash["uid"] and isinstance(dash["panels"], list)
    exprs = []
    for p in dash["panels"]:
        assert {"id", "type", "title", "gridPos"} <= set(p), p.get("title")
        for t in p.get("targets", []):
            exprs.append((p["title"], t["expr"]))
    return dash, exprs


def rules_exprs():
    exprs, text = [], open(RULES).read()
    # The rules are YAML; their expressions are `expr:` scalars, plain or
    # block (|), which this reads without a YAML library.
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"(\s*)expr:\s*(.*)$", line)
        if not m:
            continue
        if m.group(2).strip() == "|":
            body = []
            for nxt in lines[i + 1:]:
                if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= len(m.group(1)):
                    break
                body.append(nxt)
            exprs.append(("rule", "\n".join(body)))
        else:
            exprs.append(("rule", m.group(2)))
    return exprs


def expand(expr):
    for k, v in sorted(GRAFANA_VARS.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(k, v)
    return expr


def metric_names(expr):
    """The metric names a PromQL expression reads."""
    e = re.sub(r"#[^\n]*", " ", expr)                # comments
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', e)        # strings
    e = re.sub(r"\{[^}]*\}", " ", e)                 # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)                # ranges
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        word, rest = m.group(0), e[m.end():].lstrip()
        if rest.startswith("(") or word.lower() in PROMQL_WORDS:
            continue                                 # a function or a keyword
        if re.fullmatch(r"\d.*", word):
            continue
        names.add(word)
    return names


def scraped_names(text):
    return {line.split("{")[0].split()[0] for line in text.splitlines()
            if line and not line.startswith("#")}


def test_every_query_names_metrics_that_exist(start_server, engine):
    srv = start_server("--metrics", "127.0.0.1:0", "--max-conns-per-ip", "10", engine=engine)
    real = scraped_names(scrape(metrics_url(srv))[2]) | {"up"}
    dash, exprs = dashboard_exprs()
    exprs += rules_exprs()
    assert len(exprs) > 20
    for where, expr in exprs:
        names = metric_names(expand(expr))
        assert names, (where, expr)
        assert names <= real, "%s: %s names %s, not in a scrape" % (where, expr, names - real)
    # The panels the dashboard promises.
    titles = " | ".join(p["title"].lower() for p in dash["panels"])
    for want in ("connections and their limit", "accept rate", "rejections", "bytes in and out",
                 "closes by reason", "duration quantiles", "busy ratio", "cpu", "memory",
                 "descriptors and their limit"):
        assert want in titles, want


def test_every_query_parses(tmp_path):
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool not installed (Debian package prometheus; scripts/deps.sh)")
    _, exprs = dashboard_exprs()
    rules = ["groups:", "  - name: dashboard", "    rules:"]
    for i, (where, expr) in enumerate(exprs):
        rules += ["      - record: dashboard:expr_%d" % i, "        expr: %s" % json.dumps(expand(expr))]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text("\n".join(rules) + "\n")
    r = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([promtool, "check", "rules", RULES], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_metric_names_reads_promql():
    """The name extraction itself, on the shapes the files use."""
    assert metric_names('sum by (le) (rate(a_bucket{job=~".+"}[1m]))') == {"a_bucket"}
    assert metric_names("x / on(instance) group_left() y > 0.9 and z") == {"x", "y", "z"}
    assert metric_names('histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))') == \
        {"h_bucket"}
