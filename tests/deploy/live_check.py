#!/usr/bin/env python3
"""Runs the monitoring pieces of deploy/ against real herald processes, on loopback only.

    python3 tests/deploy/live_check.py --herald-bin target/debug/herald

Starts its own redis-server, two `herald run` replicas (deploy/herald.toml without the pusher
connection, as there is no Pusher here) and a Prometheus that scrapes them as job `herald` and loads
deploy/prometheus/alerts.yml; pushes events and one undecodable envelope; then checks that every
alert rule evaluates without error, that HeraldDeadLetters fires on the real dead letter, that the
KEDA query and every dashboard query evaluate (the KEDA one to exactly one sample), and that a
replica drains and exits 0 on SIGTERM. Stops everything it started, by PID. About 15 seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

passed = 0
failed: list[str] = []


def check(ok: object, what: str, detail: str = "") -> bool:
    global passed
    if ok:
        passed += 1
        print(f"  ok    {what}")
    else:
        failed.append(what)
        print(f"  FAIL  {what}" + (f": {detail}" if detail else ""))
    return bool(ok)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout: float, every: float = 0.25):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            v = pred()
            if v:
                return v
        except Exception:  # noqa: BLE001 - polling a server that is still starting
            pass
        time.sleep(every)
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--herald-bin", required=True)
    ap.add_argument("--promql", help="rule file of dashboard/KEDA expressions (check_manifests.py --promql-out)")
    args = ap.parse_args()
    herald = str(Path(args.herald_bin).resolve())

    tmp = Path(tempfile.mkdtemp(prefix="herald-live-"))
    procs: list[subprocess.Popen] = []

    def start(cmd, name, env=None):
        log = open(tmp / f"{name}.log", "w")
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp)
        procs.append(p)
        return p

    try:
        text = (DEPLOY / "herald.toml").read_text()
        text = re.sub(r"(?ms)^\[broadcasting\.connections\.pusher\].*?(?=^\[|\Z)", "", text)
        (tmp / "herald.toml").write_text(text)
        rport, m1, m2, pport = free_port(), free_port(), free_port(), free_port()
        start(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(tmp)], "redis")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "REDIS_URL": f"redis://127.0.0.1:{rport}",
               "HERALD_CONFIG": str(tmp / "herald.toml"), "BROADCAST_CONNECTION": "redis",
               "HERALD_LOG_FORMAT": "json"}
        cli = lambda *a: subprocess.run([herald, *a], env=env, capture_output=True, text=True, timeout=30)  # noqa: E731
        check(wait_for(lambda: cli("check-config", "--ping").returncode == 0, 10), "redis-server is up")
        r = cli("migrate")
        check(r.returncode == 0, "herald migrate", r.stderr[-300:])
        replicas = [start([herald, "run"], f"herald{i}", {**env, "HERALD_METRICS_ADDR": f"127.0.0.1:{m}"})
                    for i, m in enumerate((m1, m2))]
        ready = lambda m: urllib.request.urlopen(f"http://127.0.0.1:{m}/readyz", timeout=2).status == 200  # noqa: E731
        check(wait_for(lambda: ready(m1) and ready(m2), 15), "both replicas answer /readyz 200")

        (tmp / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(DEPLOY / "prometheus" / "alerts.yml")],
            "scrape_configs": [{"job_name": "herald",
                                "static_configs": [{"targets": [f"127.0.0.1:{m1}", f"127.0.0.1:{m2}"]}]}],
        }))
        start(["prometheus", f"--config.file={tmp / 'prometheus.yml'}", f"--web.listen-address=127.0.0.1:{pport}",
               f"--storage.tsdb.path={tmp / 'data'}"], "prometheus")

        def api(path, **params):
            url = f"http://127.0.0.1:{pport}/api/v1/{path}"
            if params:
                url += "?" + urllib.parse.urlencode(params)
            return json.load(urllib.request.urlopen(url, timeout=5))

        def query(q):
            return api("query", query=q)

        r = cli("enqueue", "App\\Events\\OrderShipped", "-c", "orders.1", "-d", '{"order_id":1}', "--count", "2000")
        check(r.returncode == 0, "enqueue 2000 envelopes", r.stderr[-300:])
        subprocess.run(["redis-cli", "-p", str(rport), "LPUSH", "herald:default", "not json"],
                       capture_output=True, timeout=10)

        check(wait_for(lambda: query('count(up{job="herald"} == 1) == 2')["data"]["result"], 30),
              "Prometheus scrapes both replicas as job herald")
        check(wait_for(lambda: query('max(herald_queue_depth{state="failed"}) >= 1')["data"]["result"], 20),
              "the dead letter shows in herald_queue_depth{state=\"failed\"}")
        check(wait_for(lambda: query('sum(herald_deliveries_total{outcome="ok"}) >= 2000')["data"]["result"], 20),
              "all 2000 deliveries counted ok")

        def rules():
            return [r for g in api("rules")["data"]["groups"] for r in g["rules"]]
        firing = wait_for(lambda: [r for r in rules() if r["name"] == "HeraldDeadLetters" and r["state"] == "firing"], 20)
        check(firing, "HeraldDeadLetters fires on a real first dead letter")
        rs = rules()
        bad = [(r["name"], r.get("lastError")) for r in rs if r.get("health") != "ok"]
        check(rs and not bad, f"all {len(rs)} alert rules evaluate without error", f"{bad}")
        # Gauges start at 0 until a replica's first check, so an alert may be pending for a moment.
        others = lambda: [r["name"] for r in rules() if r["state"] != "inactive" and r["name"] != "HeraldDeadLetters"]  # noqa: E731
        check(wait_for(lambda: not others(), 15), "no other alert is pending or firing on a healthy pair of replicas",
              f"{others()}")

        so = yaml.safe_load((DEPLOY / "kubernetes" / "keda-scaledobject-prometheus.yaml").read_text())
        kq = so["spec"]["triggers"][0]["metadata"]["query"]
        res = query(kq)
        check(res["status"] == "success" and len(res["data"]["result"]) == 1,
              "the KEDA prometheus query returns exactly one sample", json.dumps(res)[:300])

        if args.promql:
            exprs = [r["expr"] for g in yaml.safe_load(Path(args.promql).read_text())["groups"] for r in g["rules"]]
            errs = []
            for e in exprs:
                try:
                    if query(e)["status"] != "success":
                        errs.append(e)
                except Exception as ex:  # noqa: BLE001 - HTTP 400 on a bad query
                    errs.append(f"{e}: {ex}")
            check(not errs, f"all {len(exprs)} dashboard and KEDA queries evaluate", "; ".join(errs[:2]))

        p = replicas[0]
        p.send_signal(signal.SIGTERM)
        try:
            code = p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            code = None
        check(code == 0, "a replica drains and exits 0 on SIGTERM", f"exit {code}")
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if failed:
            for log in sorted(tmp.glob("*.log")):
                print(f"--- {log.name} (tail)")
                print("\n".join(log.read_text().splitlines()[-5:]))
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nlive: {passed} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
