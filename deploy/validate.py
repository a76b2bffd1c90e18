#!/usr/bin/env python3
"""Static checks of deploy/ (run by deploy/validate.sh).

- every YAML file parses, every dashboard is JSON;
- every metric named in a dashboard, alert rule, HPA or adapter rule is
  emitted by the code (metrics::counter!/gauge!/histogram! or a metric-name
  constant), and `_bucket` series are used only for histograms that the
  code gives buckets;
- the PrometheusRule carries exactly the groups of prometheus/alerts.yml;
- the copies shared by Compose and Kubernetes are identical;
- cluster-schema.sql matches the migrations;
- files named by kustomization.yaml and bind-mounted by Compose exist;
- every stream has explicit age and byte limits in both insite.toml files,
  and their sum fits that deployment's NATS max_file_store (JetStream
  reserves every stream's max_bytes up front), which fits the k8s volume;
- every alert has a promtool test where it fires and one where it does not;
- the demo's scrape config (prometheus/local.yml) has the deployment's jobs
  and the repo's rules.
"""
import json
import pathlib
import re
import subprocess
import sys
import tomllib

import yaml

DEPLOY = pathlib.Path(__file__).resolve().parent
ROOT = DEPLOY.parent
errors = []


def fail(msg):
    errors.append(msg)


def ok(msg):
    print(f"  ok  {msg}")


# 1. YAML and JSON parse.
yaml_files = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml") and "local" not in p.relative_to(DEPLOY).parts[:1])
docs = {}
for p in yaml_files:
    try:
        docs[p] = [d for d in yaml.safe_load_all(p.read_text()) if d is not None]
    except yaml.YAMLError as e:
        fail(f"{p.relative_to(ROOT)}: YAML: {e}")
ok(f"{len(yaml_files)} YAML files parse")
dashboards = {}
for p in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
    try:
        dashboards[p] = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        fail(f"{p.relative_to(ROOT)}: JSON: {e}")
if not dashboards:
    fail("no dashboards in deploy/grafana/dashboards")
ok(f"{len(dashboards)} dashboards parse")

# 2. Metric names: what the code emits.
code = ""
for d in ("ingest", "pipeline", "query", "sinks", "operators", "cli"):
    for p in (ROOT / d).rglob("*.rs"):
        code += p.read_text() + "\n"
emitted = set(re.findall(r'(?:counter|gauge|histogram)!\(\s*"(insite_[a-z0-9_]+)"', code))
emitted |= set(re.findall(r'pub const [A-Z_]+: &str = "(insite_[a-z0-9_]+)"', code))
bucketed = set(re.findall(r'Matcher::Full\(\s*"(insite_[a-z0-9_]+)"', code))
if len(emitted) < 20:
    fail(f"found only {len(emitted)} metric names in the code: the grep is broken")
ok(f"{len(emitted)} metric names in the code, {len(bucketed)} with buckets")

exprs = []  # (where, expr)
for p, d in dashboards.items():
    for panel in d.get("panels", []):
        for t in panel.get("targets", []):
            exprs.append((f"{p.name}: {panel.get('title')}", t.get("expr", "")))
alerts_path = DEPLOY / "prometheus" / "alerts.yml"
alerts = docs.get(alerts_path, [{}])[0]
for g in alerts.get("groups", []):
    for r in g.get("rules", []):
        exprs.append((f"alerts.yml: {r.get('alert') or r.get('record')}", r["expr"]))
adapter = docs.get(DEPLOY / "k8s" / "monitoring" / "prometheus-adapter-values.yaml", [{}])[0]
adapter_names = set()
for r in adapter.get("rules", {}).get("custom", []):
    exprs.append(("prometheus-adapter seriesQuery", r["seriesQuery"]))
    adapter_names.add(r["name"]["as"])
recorded = {r["record"] for g in alerts.get("groups", []) for r in g.get("rules", []) if "record" in r}

used = 0
for where, expr in exprs:
    for name in set(re.findall(r"\binsite[a-z0-9_:]*", expr)):
        if name in recorded:
            continue
        used += 1
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if name in emitted:
            continue
        if base in emitted:
            if name.endswith("_bucket") and base not in bucketed:
                fail(f"{where}: {name}: {base} is exported as a summary (no buckets); use {base}{{quantile=...}}")
            continue
        fail(f"{where}: metric {name} is not emitted by the code")
ok(f"{len(exprs)} PromQL expressions, {used} metric references checked")

# HPA custom metrics are served by the adapter.
for p, ds in docs.items():
    for d in ds:
        if isinstance(d, dict) and d.get("kind") == "HorizontalPodAutoscaler":
            for m in d["spec"].get("metrics", []):
                if m["type"] == "Pods" and m["pods"]["metric"]["name"] not in adapter_names:
                    fail(f"{p.name}: HPA metric {m['pods']['metric']['name']} has no prometheus-adapter rule")
ok("HPA custom metric has an adapter rule")

# 3. PrometheusRule == alerts.yml.
rule_path = DEPLOY / "k8s" / "monitoring" / "prometheusrule.yaml"
if "--write-rule" in sys.argv:
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "insite", "labels": {"release": "kube-prometheus-stack"}},
        "spec": {"groups": alerts["groups"]},
    }
    with open(rule_path, "w") as f:
        f.write("# Generated from deploy/prometheus/alerts.yml (same groups; deploy/validate.sh\n"
                "# checks they match). Regenerate: ./deploy/validate.sh --write-rule\n")
        yaml.safe_dump(rule, f, sort_keys=False, width=1000)
    docs[rule_path] = [yaml.safe_load(rule_path.read_text())]
if docs.get(rule_path, [{}])[0].get("spec", {}).get("groups") != alerts.get("groups"):
    fail(f"{rule_path.relative_to(ROOT)} differs from alerts.yml: run ./deploy/validate.sh --write-rule")
else:
    ok("PrometheusRule matches alerts.yml")

# 4. Shared copies.
for a, b in [("compose/nats/permissions.conf", "k8s/nats/permissions.conf"),
             ("compose/redis/acl.sh", "k8s/redis/acl.sh")]:
    if (DEPLOY / a).read_bytes() != (DEPLOY / b).read_bytes():
        fail(f"deploy/{a} and deploy/{b} differ (they must be the same file)")
ok("shared NATS permissions and Redis ACL script are identical copies")

# 5. Cluster schema.
r = subprocess.run([sys.executable, str(DEPLOY / "k8s/clickhouse/gen_cluster_schema.py"), "--check"],
                   capture_output=True, text=True)
if r.returncode != 0:
    fail((r.stdout + r.stderr).strip())
else:
    ok("cluster-schema.sql matches schemas/migrations")

# 6. Referenced files exist.
k = docs[DEPLOY / "k8s" / "kustomization.yaml"][0]
refs = list(k.get("resources", []))
for gen in k.get("configMapGenerator", []):
    refs += gen.get("files", [])
for ref in refs:
    if not (DEPLOY / "k8s" / ref).exists():
        fail(f"kustomization.yaml names {ref}, which does not exist")
compose = docs[DEPLOY / "compose" / "docker-compose.yml"][0]
for name, svc in compose["services"].items():
    for v in svc.get("volumes", []):
        src = v.split(":")[0]
        if src.startswith(".") and not (DEPLOY / "compose" / src).exists():
            fail(f"compose service {name} mounts {src}, which does not exist")
ok(f"{len(refs)} kustomization references and the Compose bind mounts exist")

# 7. Every Kubernetes workload has probes and resources.
for p, ds in docs.items():
    if "k8s" not in p.parts:
        continue
    for d in ds:
        if not isinstance(d, dict) or d.get("kind") not in ("Deployment", "StatefulSet"):
            continue
        for c in d["spec"]["template"]["spec"]["containers"]:
            if "resources" not in c or "requests" not in c["resources"]:
                fail(f"{p.name}: {d['metadata']['name']}/{c['name']} has no resource requests")
            if "livenessProbe" not in c:
                fail(f"{p.name}: {d['metadata']['name']}/{c['name']} has no liveness probe")
ok("every workload has requests and a liveness probe")

# 8. Stream limits fit JetStream's storage (it reserves every max_bytes).
def nats_size(text):
    """A NATS config size in bytes: k/m/g/t are powers of 1000, kb/mb/gb/tb
    (and ki/kib, ...) powers of 1024, as nats-server reads them."""
    m = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    if not m:
        raise ValueError(f"not a size: {text!r}")
    n, unit = int(m.group(1)), m.group(2).lower()
    powers = {"": (1, 0), "k": (1000, 1), "m": (1000, 2), "g": (1000, 3), "t": (1000, 4)}
    for base, p in (("kb", 1), ("mb", 2), ("gb", 3), ("tb", 4)):
        powers[base] = powers[base[0] + "i"] = powers[base[0] + "ib"] = (1024, p)
    if unit not in powers:
        raise ValueError(f"unknown size unit in {text!r}")
    base, p = powers[unit]
    return n * base**p


def k8s_storage(text):
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti|K|M|G|T)?", text)
    base, p = {None: (1, 0), "K": (1000, 1), "M": (1000, 2), "G": (1000, 3), "T": (1000, 4),
               "Ki": (1024, 1), "Mi": (1024, 2), "Gi": (1024, 3), "Ti": (1024, 4)}[m.group(2)]
    return int(m.group(1)) * base**p


LIMITS = ("raw_max_bytes", "raw_max_age_s", "derived_max_bytes", "derived_max_age_s",
          "dlq_max_bytes", "dlq_max_age_s")
HEADROOM = 0.9  # the streams may reserve at most 90 % of max_file_store
for where in ("compose", "k8s"):
    toml_path = DEPLOY / where / "insite.toml"
    streams = tomllib.loads(toml_path.read_text()).get("nats", {}).get("streams", {})
    missing = [k for k in LIMITS if k not in streams]
    if missing:
        fail(f"deploy/{where}/insite.toml: [nats.streams] sets no {', '.join(missing)} (set every limit explicitly)")
        continue
    bad = [k for k in LIMITS if streams[k] <= 0]
    if bad:
        fail(f"deploy/{where}/insite.toml: {', '.join(bad)} must be positive (a bounded stream)")
        continue
    reserved = 2 * streams["raw_max_bytes"] + streams["derived_max_bytes"] + streams["dlq_max_bytes"]
    conf = (DEPLOY / where / "nats" / "nats.conf").read_text()
    m = re.search(r"^\s*max_file_store:\s*(\S+)", conf, re.M)
    if not m:
        fail(f"deploy/{where}/nats/nats.conf sets no max_file_store")
        continue
    store = nats_size(m.group(1))
    if reserved > HEADROOM * store:
        fail(f"deploy/{where}: the streams reserve {reserved / 2**30:.1f} GiB, more than "
             f"{HEADROOM:.0%} of max_file_store {m.group(1)} ({store / 2**30:.1f} GiB)")
        continue
    if where == "k8s":
        sts = next(d for d in docs[DEPLOY / "k8s" / "nats" / "nats.yaml"] if d.get("kind") == "StatefulSet")
        volume = k8s_storage(sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"])
        if store > HEADROOM * volume:
            fail(f"deploy/k8s: max_file_store {m.group(1)} leaves under 10 % of the NATS volume ({volume / 2**30:.0f} GiB)")
            continue
    ok(f"deploy/{where}: streams reserve {reserved / 2**30:.1f} GiB of max_file_store {m.group(1)}")

# 9. Every alert has promtool unit tests: one where it fires, one where it
# stays silent (promtool itself runs them: validate.sh).
tests_path = DEPLOY / "prometheus" / "alerts.test.yml"
tests = docs.get(tests_path, [{}])[0]
fires, silent = set(), set()
for t in tests.get("tests", []):
    for a in t.get("alert_rule_test", []):
        (fires if a.get("exp_alerts") else silent).add(a["alertname"])
alert_names = [r["alert"] for g in alerts.get("groups", []) for r in g.get("rules", []) if "alert" in r]
for name in alert_names:
    if name not in fires:
        fail(f"{tests_path.relative_to(ROOT)}: no test where {name} fires")
    if name not in silent:
        fail(f"{tests_path.relative_to(ROOT)}: no test where {name} stays silent")
for name in (fires | silent) - set(alert_names):
    fail(f"{tests_path.relative_to(ROOT)}: tests an alert that alerts.yml lacks: {name}")
ok(f"{len(alert_names)} alerts, each with a firing and a silent promtool test")

# 10. The local scrape config (the demo's, on loopback) scrapes the same
# jobs as the deployment's and loads the same rules.
local_path = DEPLOY / "prometheus" / "local.yml"
local = docs.get(local_path, [{}])[0]
jobs = lambda c: sorted(j["job_name"] for j in c.get("scrape_configs", []))
deployed = docs.get(DEPLOY / "prometheus" / "prometheus.yml", [{}])[0]
if jobs(local) != jobs(deployed):
    fail(f"{local_path.relative_to(ROOT)}: jobs {jobs(local)} differ from prometheus.yml's {jobs(deployed)}")
elif local.get("rule_files") != ["alerts.yml"]:
    fail(f"{local_path.relative_to(ROOT)}: rule_files must be [alerts.yml] (the repo's rules)")
else:
    ok("local.yml scrapes the deployment's jobs with the repo's rules")

if errors:
    print("\n".join(f"FAIL {e}" for e in errors), file=sys.stderr)
    sys.exit(1)
