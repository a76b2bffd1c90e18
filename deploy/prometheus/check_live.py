#!/usr/bin/env python3
"""A real Prometheus against a running insite service (run by validate.sh).

Starts, on free loopback ports: a NATS server, `insite query serve` (its
Redis and ClickHouse point at a closed port, as in an outage), and Debian's
Prometheus with deploy/prometheus/local.yml (the demo's scrape config, with
the targets moved to those ports; the pipeline and ingest targets are left
on closed ports) and the repo's alert rules. Then checks, through
Prometheus's own HTTP API, what an operator would look at:

- the query service is scraped (`up` 1), the pipeline is not (`up` 0);
- the query service's request and ClickHouse-time series arrive, labelled
  by route;
- every rule group loads and every rule evaluates without error;
- InsitePipelineDown is pending or firing, and no query alert fires yet.

Every process it starts is stopped when it ends, whatever happens.
"""
import argparse
import json
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml

DEPLOY = pathlib.Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=2):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None, ""


def wait_for(what, check, seconds):
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (KeyError, IndexError, ValueError) as e:
            last = e
        time.sleep(0.5)
    raise SystemExit(f"  FAIL {what} (after {seconds} s; last: {last!r})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--insite", required=True)
    ap.add_argument("--nats", required=True)
    args = ap.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="insite-prom-"))
    nats_port, query_port, prom_port, closed = (free_port() for _ in range(4))
    procs = []
    try:
        procs.append(subprocess.Popen(
            [args.nats, "-a", "127.0.0.1", "-p", str(nats_port)],
            stdout=open(tmp / "nats.log", "w"), stderr=subprocess.STDOUT))
        def accepts(port):
            with socket.socket() as c:
                c.settimeout(0.5)
                return c.connect_ex(("127.0.0.1", port)) == 0
        wait_for("NATS accepts connections", lambda: accepts(nats_port), 30)
        env = {
            "PATH": "/usr/bin:/bin",
            "INSITE_LOG": "info",
            "INSITE_NATS__URL": f"nats://127.0.0.1:{nats_port}",
            "INSITE_REDIS__URL": f"redis://127.0.0.1:{closed}/0",
            "INSITE_CLICKHOUSE__URL": f"http://127.0.0.1:{closed}",
        }
        procs.append(subprocess.Popen(
            [args.insite, "query", "serve", "--listen", f"127.0.0.1:{query_port}"],
            env=env, stdout=open(tmp / "query.log", "w"), stderr=subprocess.STDOUT))
        wait_for("the query service answers /healthz",
                 lambda: get(f"http://127.0.0.1:{query_port}/healthz")[0] == 200, 60)

        config = yaml.safe_load((DEPLOY / "prometheus" / "local.yml").read_text())
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        config["rule_files"] = [str(DEPLOY / "prometheus" / "alerts.yml")]
        for job in config["scrape_configs"]:
            port = query_port if job["job_name"] == "insite-query" else closed
            job["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        procs.append(subprocess.Popen(
            ["prometheus", f"--config.file={tmp / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp / 'data'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=open(tmp / "prometheus.log", "w"), stderr=subprocess.STDOUT))
        api = f"http://127.0.0.1:{prom_port}/api/v1"
        wait_for("Prometheus is ready",
                 lambda: get(f"http://127.0.0.1:{prom_port}/-/ready")[0] == 200, 30)

        # Requests a client would make; ClickHouse and Redis are down.
        base = f"http://127.0.0.1:{query_port}"
        for path in ["/v1/aggs/AAPL/range/1m/2024-03-01/2024-03-02",
                     "/v1/symbols/AAPL/bar?interval=1m", "/v1/trending?interval=1m",
                     "/v1/aggs/AAPL/range/1m/yesterday/today"]:
            status, _ = get(base + path, timeout=15)
            print(f"  ..  GET {path} -> {status}")

        def query(expr):
            status, body = get(f"{api}/query?query={urllib.parse.quote(expr)}")
            if status != 200:
                raise ValueError(f"{expr}: HTTP {status} {body}")
            return json.loads(body)["data"]["result"]

        def value(expr):
            result = query(expr)
            return float(result[0]["value"][1]) if result else None

        wait_for("up{job=\"insite-query\"} is 1", lambda: value('up{job="insite-query"}') == 1, 30)
        print("  ok  the query service is scraped: up{job=\"insite-query\"} 1")
        wait_for("up{job=\"insite-pipeline\"} is 0", lambda: value('up{job="insite-pipeline"}') == 0, 30)
        print("  ok  the pipeline target is down: up{job=\"insite-pipeline\"} 0")
        routes = wait_for(
            "ClickHouse query times arrive by route",
            lambda: sorted(r["metric"]["route"] for r in query("insite_query_clickhouse_seconds_count")),
            30)
        print(f"  ok  insite_query_clickhouse_seconds by route: {routes}")
        statuses = wait_for(
            "request counts arrive by route and status",
            lambda: sorted({(r["metric"]["route"], r["metric"]["status"])
                            for r in query("insite_query_requests_total")}),
            30)
        print(f"  ok  insite_query_requests_total: {statuses}")

        def rules_ok():
            status, body = get(f"{api}/rules")
            groups = json.loads(body)["data"]["groups"]
            rules = [r for g in groups for r in g["rules"]]
            bad = [(r["name"], r.get("lastError")) for r in rules if r.get("health") == "err"]
            if bad:
                raise SystemExit(f"  FAIL rules with errors: {bad}")
            # "unknown" until a rule's first evaluation.
            if rules and all(r.get("health") == "ok" for r in rules):
                return len(groups), len(rules)
            return None
        groups, rules = wait_for("every rule evaluates", rules_ok, 30)
        print(f"  ok  {groups} rule groups, {rules} rules loaded and evaluated without error")

        def alerts():
            status, body = get(f"{api}/alerts")
            return {(a["labels"]["alertname"], a["state"]) for a in json.loads(body)["data"]["alerts"]}
        active = wait_for("InsitePipelineDown becomes active",
                          lambda: (lambda a: a if any(n == "InsitePipelineDown" for n, _ in a) else None)(alerts()), 30)
        print(f"  ok  active alerts: {sorted(active)}")
        unexpected = [n for n, _ in active if n.startswith("InsiteQuery")]
        if unexpected:
            raise SystemExit(f"  FAIL query alerts active after seconds: {unexpected}")
    except SystemExit:
        for name in ("nats.log", "query.log", "prometheus.log"):
            if (tmp / name).exists():
                print(f"--- {name} (last lines)", file=sys.stderr)
                print("\n".join((tmp / name).read_text().splitlines()[-20:]), file=sys.stderr)
        raise
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        subprocess.run(["rm", "-rf", str(tmp)], check=False)


if __name__ == "__main__":
    main()
