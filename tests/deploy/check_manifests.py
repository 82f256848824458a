#!/usr/bin/env python3
"""Checks everything under deploy/ against itself and against herald's source.

Run by tests/deploy/check.sh (which also runs promtool and kubernetes-validate); runs alone too:

    python3 tests/deploy/check_manifests.py [--herald-bin PATH] [--promql-out FILE]
    python3 tests/deploy/check_manifests.py --sync   # rewrite the two derived files, then check

Needs PyYAML. jsonschema (for the schemas in tests/deploy/schemas: compose-spec and the CRDs) is
optional: without it those parts are skipped, with a message. Metric names are read from src/metrics.rs every run, so the
check follows the code: any herald_* name in deploy/ that the code does not export fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
SCHEMAS = Path(__file__).resolve().parent / "schemas"

passed = 0
failed: list[str] = []


def check(ok: object, what: str, detail: str = "") -> bool:
    """Records one check and prints it."""
    global passed
    if ok:
        passed += 1
        print(f"  ok    {what}")
    else:
        failed.append(what)
        print(f"  FAIL  {what}" + (f": {detail}" if detail else ""))
    return bool(ok)


def skip(what: str, why: str) -> None:
    print(f"  skip  {what}: {why}")


def section(title: str) -> None:
    print(f"\n{title}")


def rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


def load_all(path: Path) -> list:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def duration_seconds(s: str) -> float:
    """'25s', '1m30s', '500ms' → seconds (humantime's common forms)."""
    total = 0.0
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h)", s)
    if not parts or "".join(n + u for n, u in parts) != s.replace(" ", ""):
        raise ValueError(f"not a duration: {s!r}")
    for n, u in parts:
        total += float(n) * units[u]
    return total


# --- metric names ------------------------------------------------------------------------------

def exported_metrics() -> set[str]:
    src = (ROOT / "src" / "metrics.rs").read_text()
    return set(re.findall(r'"(herald_[a-z_]+)"', src))


HIST_SUFFIXES = ("_bucket", "_sum", "_count")


def unknown_metrics(text: str, known: set[str]) -> list[str]:
    bad = []
    for name in sorted(set(re.findall(r"\bherald_[a-z0-9_]*[a-z0-9]", text))):
        if name in known:
            continue
        if any(name.endswith(s) and name[: -len(s)] in known for s in HIST_SUFFIXES):
            continue
        bad.append(name)
    return bad


def check_metric_names(where: str, text: str, known: set[str]) -> None:
    bad = unknown_metrics(text, known)
    check(not bad, f"{where}: every herald_* metric exists in src/metrics.rs",
          f"unknown: {', '.join(bad)}")


# --- deploy/herald.toml ------------------------------------------------------------------------

def required_vars(toml_text: str) -> set[str]:
    """Variables the config expands with no default: every herald process must have them."""
    return set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", toml_text))


def herald_config() -> tuple[str, dict]:
    text = (DEPLOY / "herald.toml").read_text()
    return text, tomllib.loads(text)


def check_herald_toml(text: str, cfg: dict) -> None:
    section("deploy/herald.toml")
    check(cfg.get("metrics", {}).get("addr") == "0.0.0.0:9477",
          "metrics.addr is 0.0.0.0:9477 (reachable from Prometheus and the kubelet)")
    conns = cfg.get("broadcasting", {}).get("connections", {})
    default = cfg.get("broadcasting", {}).get("default", [])
    check(all(c in conns for c in default), "broadcasting.default names configured connections",
          f"default {default}, connections {sorted(conns)}")
    check(conns.get("pusher", {}).get("driver") == "pusher", "a pusher connection is configured")


def run_check_config(herald_bin: str | None, text: str, envs: dict[str, dict[str, str]]) -> None:
    """`herald check-config` on deploy/herald.toml with each deployment's environment."""
    section("herald check-config on deploy/herald.toml")
    if not herald_bin:
        skip("herald check-config", "no herald binary (build one, or pass --herald-bin)")
        return
    for name, env in envs.items():
        full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
        full.pop("HERALD_CONFIG", None)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "herald.toml"
            path.write_text(text)
            r = subprocess.run([herald_bin, "check-config", "--config", str(path)],
                               env=full, capture_output=True, text=True, timeout=30)
            if r.returncode != 0 and "unknown variant `pusher`" in r.stderr:
                # This build predates the pusher driver: check the rest of the file.
                stripped = re.sub(r"(?ms)^\[broadcasting\.connections\.pusher\].*?(?=^\[|\Z)", "", text)
                path.write_text(stripped)
                full["BROADCAST_CONNECTION"] = ",".join(
                    c for c in full.get("BROADCAST_CONNECTION", "redis").split(",") if c != "pusher")
                r = subprocess.run([herald_bin, "check-config", "--config", str(path)],
                                   env=full, capture_output=True, text=True, timeout=30)
                skip(f"{name}: the pusher connection",
                     f"{herald_bin} has no pusher driver yet; checked the file without it")
        check(r.returncode == 0, f"{name}: herald check-config accepts the config with its environment",
              (r.stderr.strip() or r.stdout.strip())[-400:])
        secrets = [v for k, v in env.items() if "SECRET" in k or "PASSWORD" in k]
        check(not any(s and s in r.stdout for s in secrets),
              f"{name}: check-config output masks the secrets")


# --- Dockerfile --------------------------------------------------------------------------------

def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def dockerignore_allows(patterns: list[str], path: str) -> bool:
    """Minimal .dockerignore evaluation (last match wins; `*` and `!name` forms)."""
    import fnmatch
    allowed = True
    for p in patterns:
        neg = p.startswith("!")
        pat = p[1:] if neg else p
        top = path.split("/")[0]
        if fnmatch.fnmatch(path, pat) or fnmatch.fnmatch(top, pat):
            allowed = neg
    return allowed


def check_dockerfile() -> None:
    section("deploy/Dockerfile")
    ins = dockerfile_instructions((DEPLOY / "Dockerfile").read_text())
    of = lambda kind: [rest for k, rest in ins if k == kind]  # noqa: E731
    froms = of("FROM")
    check(len(froms) >= 2, "multi-stage: two or more FROM", f"{len(froms)} FROM")
    check(any(re.search(r"\bAS\s+\w+", f, re.I) for f in froms[:-1]), "the build stage is named")
    check(froms and re.match(r"(debian:bookworm-slim|gcr\.io/distroless/)", froms[-1]),
          "runtime stage is debian:bookworm-slim or distroless", froms[-1] if froms else "")
    check(any("cargo build --release --locked" in r for r in of("RUN")),
          "builds with cargo build --release --locked")
    users = of("USER")
    check(users and users[-1].split(":")[0] not in ("root", "0"), "runs as a non-root USER",
          users[-1] if users else "no USER")
    check(any("/healthz" in h for h in of("HEALTHCHECK")), "HEALTHCHECK hits /healthz")
    check("9477" in " ".join(of("EXPOSE")), "EXPOSE 9477")
    check("SIGTERM" in of("STOPSIGNAL"), "STOPSIGNAL SIGTERM")
    check(of("ENTRYPOINT") and json.loads(of("ENTRYPOINT")[-1]) == ["herald"], 'ENTRYPOINT ["herald"]')
    check(of("CMD") and json.loads(of("CMD")[-1]) == ["run"], 'CMD ["run"]')
    env = " ".join(of("ENV"))
    check("HERALD_CONFIG=/etc/herald/herald.toml" in env, "ENV HERALD_CONFIG=/etc/herald/herald.toml")
    check("HERALD_METRICS_ADDR=0.0.0.0:9477" in env, "ENV HERALD_METRICS_ADDR=0.0.0.0:9477")
    copies = []
    for rest in of("COPY"):
        args = [a for a in rest.split() if not a.startswith("--")]
        if "--from=" in rest:
            continue
        copies.append((args[:-1], args[-1]))
    check(any(srcs == ["config/herald.toml"] and dst == "/etc/herald/herald.toml" for srcs, dst in copies),
          "copies config/herald.toml to /etc/herald/herald.toml")
    sources = [s for srcs, _ in copies for s in srcs]
    missing = [s for s in sources if not (ROOT / s).exists()]
    check(not missing, "every COPY source exists in the repository", ", ".join(missing))
    ignore = DEPLOY / "Dockerfile.dockerignore"
    if ignore.exists():
        pats = [l.strip() for l in ignore.read_text().splitlines() if l.strip() and not l.startswith("#")]
        blocked = [s for s in sources if not dockerignore_allows(pats, s)]
        check(not blocked, "Dockerfile.dockerignore lets every COPY source through", ", ".join(blocked))
    # Everything the crate compiles in must be in the build context.
    copied_tops = {Path(s).parts[0] for s in sources}
    needed = set()
    for rs in (ROOT / "src").rglob("*.rs"):
        for inc in re.findall(r'include_(?:str|bytes)!\(\s*"([^"]+)"', rs.read_text()):
            target = (rs.parent / inc).resolve()
            try:
                needed.add(target.relative_to(ROOT).parts[0])
            except ValueError:
                pass
    check(needed <= copied_tops, "every include_str!/include_bytes! path is COPY'd into the build stage",
          f"not copied: {sorted(needed - copied_tops)}")
    # Cargo reads every workspace member and every declared bench before it builds anything (a
    # missing benches/ once broke this image without any docker build here to notice).
    manifest = tomllib.loads((ROOT / "Cargo.toml").read_text())
    read_first = {Path(m).parts[0] for m in manifest.get("workspace", {}).get("members", []) if m != "."}
    read_first |= {Path(b.get("path", f"benches/{b['name']}.rs")).parts[0] for b in manifest.get("bench", [])}
    check(read_first <= copied_tops, "every workspace member and bench target Cargo reads is COPY'd",
          f"not copied: {sorted(read_first - copied_tops)}")


# --- docker-compose.yml ------------------------------------------------------------------------

def env_dict(env) -> dict[str, str]:
    if isinstance(env, list):
        return dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    return {k: "" if v is None else str(v) for k, v in (env or {}).items()}


def check_compose(cfg: dict, toml_text: str, shutdown: float) -> dict[str, str]:
    section("deploy/docker-compose.yml")
    c = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    svcs = c.get("services", {})
    try:
        import jsonschema
        spec = json.loads((SCHEMAS / "compose-spec.json").read_text())
        errs = list(jsonschema.Draft7Validator(spec).iter_errors(c))
        check(not errs, "valid against the Compose Specification schema (tests/deploy/schemas/compose-spec.json)",
              "; ".join(f"{'.'.join(map(str, e.path))}: {e.message[:160]}" for e in errs[:3]))
    except ImportError:
        skip("Compose Specification schema", "jsonschema is not installed (tests/deploy/check.sh installs it)")
    cmd = lambda s: s.get("command") if isinstance(s.get("command"), list) else str(s.get("command", "")).split()  # noqa: E731

    redis = next((s for s in svcs.values() if str(s.get("image", "")).startswith("redis:")), None)
    check(redis, "a redis service")
    if redis:
        words = cmd(redis)
        check("--appendonly" in words and words[words.index("--appendonly") + 1] == "yes",
              "redis runs with --appendonly yes", " ".join(words))
        check(any(str(v).endswith(":/data") for v in redis.get("volumes", [])), "redis keeps /data on a volume")

    workers = {n: s for n, s in svcs.items() if "herald" in str(s.get("image", "")) and cmd(s) == ["run"]}
    replicas = sum(int(s.get("deploy", {}).get("replicas", 1)) for s in workers.values())
    check(replicas == 3, "three herald replicas running `herald run`", f"{replicas}")
    migrate = [n for n, s in svcs.items() if "herald" in str(s.get("image", "")) and cmd(s) == ["migrate"]]
    check(len(migrate) == 1, "a one-shot `herald migrate` service")
    env = {}
    for name, s in workers.items():
        deps = s.get("depends_on", {})
        check(migrate and isinstance(deps, dict)
              and deps.get(migrate[0], {}).get("condition") == "service_completed_successfully",
              f"{name} waits for {migrate[0] if migrate else 'migrate'} to complete successfully")
        check(duration_seconds(str(s.get("stop_grace_period", "10s"))) > shutdown,
              f"{name}: stop_grace_period is above shutdown_timeout ({shutdown:g}s)")
        env = env_dict(s.get("environment"))
        check(env.get("HERALD_METRICS_ADDR", "0.0.0.0:9477") == "0.0.0.0:9477", f"{name}: metrics on 0.0.0.0:9477")
        check("pusher" in env.get("BROADCAST_CONNECTION", "").split(","), f"{name}: BROADCAST_CONNECTION includes pusher")
        mounts = [str(v) for v in s.get("volumes", [])]
        check(any(m.startswith("./herald.toml:/etc/herald/herald.toml") for m in mounts),
              f"{name}: mounts deploy/herald.toml at /etc/herald/herald.toml")
    for name in list(workers) + migrate:
        have = set(env_dict(svcs[name].get("environment")))
        missing = required_vars(toml_text) - have
        check(not missing, f"{name}: has every variable herald.toml requires", f"missing {sorted(missing)}")

    soketi = {n: s for n, s in svcs.items() if "soketi" in str(s.get("image", ""))
              or "sockudo" in str(s.get("image", ""))}
    check(soketi, "a Pusher-compatible server (soketi or sockudo)")
    for n, s in soketi.items():
        senv = env_dict(s.get("environment"))
        check(env.get("PUSHER_HOST") == n, f"herald's PUSHER_HOST points at the {n} service")
        check(all(senv.get(f"SOKETI_DEFAULT_APP_{k}") == env.get(f"PUSHER_APP_{k}") for k in ("ID", "KEY", "SECRET")),
              f"{n}'s app id/key/secret match herald's PUSHER_APP_*")

    prom = next((s for s in svcs.values() if "prometheus" in str(s.get("image", ""))), None)
    check(prom, "a prometheus service")
    if prom:
        mounts = [str(v) for v in prom.get("volumes", [])]
        check(any(m.startswith("./prometheus:/etc/prometheus") for m in mounts),
              "prometheus mounts deploy/prometheus at /etc/prometheus")
        pcfg = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
        check("alerts.yml" in pcfg.get("rule_files", []), "prometheus.yml loads alerts.yml (relative path)")
        job = next((j for j in pcfg.get("scrape_configs", []) if j.get("job_name") == "herald"), None)
        check(job, "prometheus.yml has a job named herald (alerts.yml matches job=\"herald\")")
        if job:
            dns = [d for d in job.get("dns_sd_configs", [])]
            check(dns and all(n in workers for d in dns for n in d.get("names", []))
                  and all(d.get("port") == 9477 for d in dns),
                  "the herald job discovers the worker service by DNS on port 9477")

    graf = next((s for s in svcs.values() if "grafana" in str(s.get("image", ""))), None)
    if graf:
        mounts = [str(v) for v in graf.get("volumes", [])]
        dash_mount = next((m for m in mounts if m.startswith("./grafana/herald-dashboard.json:")), None)
        prov = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/herald.yml").read_text())
        path = prov["providers"][0]["options"]["path"]
        check(dash_mount and dash_mount.split(":")[1].startswith(path + "/"),
              "grafana mounts the dashboard where its provisioning looks")

    for n, s in svcs.items():
        for v in s.get("volumes", []):
            src = str(v).split(":")[0]
            if src.startswith("."):
                check((DEPLOY / src).exists(), f"{n}: bind mount {src} exists")
        b = s.get("build")
        if isinstance(b, dict):
            ctx = (DEPLOY / b.get("context", ".")).resolve()
            check((ctx / b.get("dockerfile", "Dockerfile")).exists() and (ctx / "Cargo.toml").exists(),
                  f"{n}: build context is the repo root and the Dockerfile exists")
    return env


# --- Kubernetes --------------------------------------------------------------------------------

def k8s_docs() -> dict[str, list[tuple[str, dict]]]:
    by_kind: dict[str, list[tuple[str, dict]]] = {}
    for f in sorted(K8S.glob("*.yaml")):
        for d in load_all(f):
            by_kind.setdefault(d.get("kind", "?"), []).append((f.name, d))
    return by_kind


def matches(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_crd_schemas(by_kind) -> None:
    section("custom resources against their CRD schemas (tests/deploy/schemas)")
    try:
        import jsonschema
    except ImportError:
        skip("CRD schemas", "jsonschema is not installed (tests/deploy/check.sh installs it)")
        return

    def strict(s):
        """OpenAPI (structural) → JSON Schema that rejects unknown fields, like --validate=strict."""
        if isinstance(s, list):
            return [strict(x) for x in s]
        if not isinstance(s, dict):
            return s
        s = {k: strict(v) for k, v in s.items()}
        if s.pop("x-kubernetes-int-or-string", False):
            s.pop("type", None)
            s["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        if s.get("type") == "object" and "properties" in s and "additionalProperties" not in s \
                and not s.get("x-kubernetes-preserve-unknown-fields"):
            s["additionalProperties"] = False
        return s

    schemas = {}
    for f in SCHEMAS.glob("*.json"):
        d = json.loads(f.read_text())
        if "apiVersion" not in d:
            continue  # compose-spec.json
        schema = strict(d["schema"])
        schema.setdefault("properties", {})["metadata"] = {"type": "object"}
        schemas[(d["apiVersion"], d["kind"])] = schema
    for kind, docs in by_kind.items():
        for fname, d in docs:
            key = (d.get("apiVersion"), kind)
            if "." not in str(d.get("apiVersion")).split("/")[0]:
                continue  # a core kind: kubernetes-validate checks those
            if kind == "Kustomization":
                continue  # read by kustomize, never sent to a cluster
            if key not in schemas:
                check(False, f"{fname}: {kind} has a schema in tests/deploy/schemas", f"{key}")
                continue
            errs = sorted(jsonschema.Draft7Validator(schemas[key]).iter_errors(d), key=lambda e: list(e.path))
            check(not errs, f"{fname}: {kind}/{d['metadata']['name']} is valid for {key[0]}",
                  "; ".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errs[:3]))


def check_kubernetes(cfg: dict, toml_text: str, shutdown: float, known: set[str], promql: list) -> dict[str, str]:
    section("deploy/kubernetes")
    by_kind = k8s_docs()
    one = lambda kind: by_kind.get(kind, [(None, {})])[0][1]  # noqa: E731

    dep = one("Deployment")
    check(dep, "a Deployment")
    tpl = dep.get("spec", {}).get("template", {})
    pod = tpl.get("spec", {})
    pod_labels = tpl.get("metadata", {}).get("labels", {})
    check(matches(dep.get("spec", {}).get("selector", {}).get("matchLabels", {}), pod_labels),
          "Deployment selector matches its pod labels")
    containers = pod.get("containers", [])
    inits = pod.get("initContainers", [])
    c = next((c for c in containers if c.get("args") == ["run"] or c.get("name") == "herald"), {})
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
    check(ports.get("metrics") == 9477, "container port 9477 is named metrics")

    def probe(name, path):
        p = c.get(name, {}).get("httpGet", {})
        port = ports.get(p.get("port"), p.get("port"))
        check(p.get("path") == path and port == 9477, f"{name} is GET {path} on 9477", f"{p}")
    probe("livenessProbe", "/healthz")
    probe("readinessProbe", "/readyz")

    grace = pod.get("terminationGracePeriodSeconds", 30)
    env_cm = next((d for _, d in by_kind.get("ConfigMap", []) if d["metadata"]["name"] == "herald-env"), {})
    cm_env = {k: str(v) for k, v in env_cm.get("data", {}).items()}
    if "HERALD_SHUTDOWN_TIMEOUT" in cm_env:
        shutdown = duration_seconds(cm_env["HERALD_SHUTDOWN_TIMEOUT"])
    check(grace > 25 and grace > shutdown,
          f"terminationGracePeriodSeconds ({grace}) is above 25 and shutdown_timeout ({shutdown:g}s)")
    for ct in containers + inits:
        r = ct.get("resources", {})
        check(all(k in r.get(t, {}) for t in ("requests", "limits") for k in ("cpu", "memory")),
              f"{ct.get('name')}: cpu and memory requests and limits")
        sc = {**pod.get("securityContext", {}), **ct.get("securityContext", {})}
        check(sc.get("runAsNonRoot") is True and sc.get("runAsUser", 1) != 0,
              f"{ct.get('name')}: runAsNonRoot with a non-zero user")
        check(sc.get("allowPrivilegeEscalation") is False, f"{ct.get('name')}: no privilege escalation")
    check(any(i.get("args") == ["migrate"] or i.get("command", [])[-1:] == ["migrate"] for i in inits),
          "an initContainer runs `herald migrate`")

    secret = one("Secret")
    secret_keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    cm_names = {d["metadata"]["name"] for _, d in by_kind.get("ConfigMap", [])}
    for ct in containers + inits:
        envs = {e["name"]: e for e in ct.get("env", [])}
        for var in ("REDIS_URL", "PUSHER_APP_SECRET"):
            ref = envs.get(var, {}).get("valueFrom", {}).get("secretKeyRef", {})
            check(ref.get("name") == secret.get("metadata", {}).get("name") and ref.get("key") in secret_keys,
                  f"{ct.get('name')}: {var} comes from a key of the Secret")
        have = set(envs)
        for ef in ct.get("envFrom", []):
            name = ef.get("configMapRef", {}).get("name")
            check(name in cm_names, f"{ct.get('name')}: envFrom ConfigMap {name} exists")
            if name == "herald-env":
                have |= set(cm_env)
        missing = required_vars(toml_text) - have
        check(not missing, f"{ct.get('name')}: has every variable herald.toml requires", f"missing {sorted(missing)}")
        mounts = {m.get("name"): m.get("mountPath") for m in ct.get("volumeMounts", [])}
        check(mounts.get("config") == "/etc/herald", f"{ct.get('name')}: config mounted at /etc/herald")
    vol = next((v for v in pod.get("volumes", []) if v.get("name") == "config"), {})
    check(vol.get("configMap", {}).get("name") == "herald-config"
          and {"key": "herald.toml", "path": "herald.toml"} in vol.get("configMap", {}).get("items", []),
          "the config volume is herald-config's herald.toml")
    cm = next((d for _, d in by_kind.get("ConfigMap", []) if d["metadata"]["name"] == "herald-config"), {})
    check(cm.get("data", {}).get("herald.toml") == toml_text,
          "ConfigMap herald-config holds deploy/herald.toml verbatim",
          "differs: run tests/deploy/check_manifests.py --sync")

    svc = one("Service")
    svc_ports = {p.get("name"): p for p in svc.get("spec", {}).get("ports", [])}
    check(svc_ports.get("metrics", {}).get("port") == 9477, "Service exposes 9477 as port metrics")
    check(matches(svc.get("spec", {}).get("selector", {}), pod_labels), "Service selects the herald pods")

    pdb = one("PodDisruptionBudget")
    check(pdb, "a PodDisruptionBudget")
    check(matches(pdb.get("spec", {}).get("selector", {}).get("matchLabels", {}), pod_labels)
          and ("maxUnavailable" in pdb.get("spec", {}) or "minAvailable" in pdb.get("spec", {})),
          "PodDisruptionBudget selects the herald pods and bounds disruption")

    sm = one("ServiceMonitor")
    pm = one("PodMonitor")
    check(sm or pm, "a ServiceMonitor or PodMonitor")
    if sm:
        check(matches(sm["spec"].get("selector", {}).get("matchLabels", {}), svc.get("metadata", {}).get("labels", {}))
              and any(e.get("port") == "metrics" for e in sm["spec"].get("endpoints", [])),
              "ServiceMonitor selects the Service and scrapes port metrics")
        check(svc.get("metadata", {}).get("name") == "herald" and "jobLabel" not in sm["spec"],
              "ServiceMonitor's job label will be `herald`, as the alerts expect")
    if pm:
        check(matches(pm["spec"].get("selector", {}).get("matchLabels", {}), pod_labels)
              and any(e.get("port") == "metrics" for e in pm["spec"].get("podMetricsEndpoints", [])),
              "PodMonitor selects the pods and scrapes port metrics")
        check(pod_labels.get(pm["spec"].get("jobLabel", ""), "") == "herald",
              "PodMonitor's job label will be `herald`, as the alerts expect")

    rules = one("PrometheusRule")
    alerts = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    check(rules.get("spec", {}).get("groups") == alerts.get("groups"),
          "PrometheusRule holds deploy/prometheus/alerts.yml's groups",
          "differs: run tests/deploy/check_manifests.py --sync")

    sos = by_kind.get("ScaledObject", [])
    check(len(sos) == 2, "two ScaledObjects", f"{len(sos)}")
    trig = lambda t: [(f, so, tr) for f, so in sos for tr in so["spec"].get("triggers", []) if tr.get("type") == t]  # noqa: E731
    queue = (cfg.get("redis", {}).get("prefix", "") or "") + cfg.get("worker", {}).get("queues", ["herald:default"])[0]
    redis_t = trig("redis")
    check(len(redis_t) == 1, "one ScaledObject with a redis trigger")
    for f, so, tr in redis_t:
        md = tr.get("metadata", {})
        check(md.get("listName") == queue, f"{f}: redis trigger listName is the queue key {queue}", md.get("listName"))
        check(str(md.get("listLength", "")).isdigit(), f"{f}: redis trigger has a numeric listLength")
        check(md.get("address") or (md.get("host") and md.get("port")), f"{f}: redis trigger has an address")
        auth = tr.get("authenticationRef", {}).get("name")
        ta = next((d for _, d in by_kind.get("TriggerAuthentication", []) if d["metadata"]["name"] == auth), None)
        check(ta and all(r.get("name") == secret.get("metadata", {}).get("name") and r.get("key") in secret_keys
                         for r in ta["spec"].get("secretTargetRef", []))
              and any(r.get("parameter") == "password" for r in ta["spec"].get("secretTargetRef", [])),
              f"{f}: the password comes from a TriggerAuthentication on a key of the Secret")
    prom_t = trig("prometheus")
    check(len(prom_t) == 1, "one ScaledObject with a prometheus trigger")
    for f, so, tr in prom_t:
        q = tr.get("metadata", {}).get("query", "")
        check("herald_inflight" in q and "herald_queue_depth" in q and "delayed_due" in q and "waiting" in q,
              f"{f}: prometheus query counts waiting + due-delayed + in-flight")
        check(re.search(r"max by \(queue, state\) \(herald_queue_depth", q) and "sum(herald_inflight" in q,
              f"{f}: depth deduplicated with max by (queue, state), in-flight summed")
        check(f'queue="{queue}"' in q, f"{f}: prometheus query is about the queue {queue}")
        check(tr.get("metadata", {}).get("threshold"), f"{f}: prometheus trigger has a threshold")
        check_metric_names(f"{f} query", q, known)
        promql.append((f"{f} query", q))
    for f, so in sos:
        check(so["spec"].get("scaleTargetRef", {}).get("name") == dep.get("metadata", {}).get("name"),
              f"{f}: scales the herald Deployment")
        check(so["spec"].get("minReplicaCount", 0) >= 1, f"{f}: minReplicaCount >= 1 (due retries need a replica)")

    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    kust_text = (K8S / "kustomization.yaml").read_text()
    res = kust.get("resources", [])
    check(all((K8S / r).exists() for r in res), "kustomization resources exist")
    listed_sos = [f for f, _ in sos if f in res]
    check(len(listed_sos) == 1, "kustomization applies exactly one ScaledObject", f"{listed_sos}")
    check("secret.example.yaml" not in res, "kustomization does not apply the example Secret")
    unlisted = [p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml" and p.name not in res]
    check(all(u in kust_text for u in unlisted), "every manifest left out of kustomization.yaml is explained there",
          f"{unlisted}")
    images = {i.get("name") for i in kust.get("images", [])}
    check(all(ct.get("image") in images for ct in containers + inits), "kustomization sets the image of every container")
    check_crd_schemas(by_kind)
    return cm_env


# --- Grafana -----------------------------------------------------------------------------------

def check_grafana(known: set[str], promql: list) -> None:
    section("deploy/grafana/herald-dashboard.json")
    path = DEPLOY / "grafana" / "herald-dashboard.json"
    try:
        dash = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        check(False, "the dashboard is valid JSON", str(e))
        return
    check(True, "the dashboard is valid JSON")
    check(dash.get("schemaVersion", 0) >= 36, f"schemaVersion {dash.get('schemaVersion')} (>= 36)")
    check(dash.get("uid") and dash.get("title"), "has a uid and a title")
    tvars = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    ds_vars = [n for n, v in tvars.items() if v.get("type") == "datasource" and v.get("query") == "prometheus"]
    check(ds_vars, "a Prometheus data source variable")
    check(tvars.get("queue", {}).get("type") == "query", "a queue variable")
    panels = []
    stack = list(dash.get("panels", []))
    while stack:
        p = stack.pop(0)
        panels.append(p)
        stack.extend(p.get("panels", []))
    ids = [p.get("id") for p in panels]
    check(len(ids) == len(set(ids)), "panel ids are unique")
    cells = {}
    overlap = []
    for p in panels:
        g = p.get("gridPos", {})
        for x in range(g.get("x", 0), g.get("x", 0) + g.get("w", 0)):
            for y in range(g.get("y", 0), g.get("y", 0) + g.get("h", 0)):
                if (x, y) in cells:
                    overlap.append((cells[(x, y)], p.get("title")))
                cells[(x, y)] = p.get("title")
    check(not overlap and all(g.get("x", 0) + g.get("w", 0) <= 24 for g in (p.get("gridPos", {}) for p in panels)),
          "panels fit the 24-column grid without overlapping", f"{overlap[:2]}")
    exprs = []
    no_ds, no_expr = [], []
    for p in panels:
        if p.get("type") == "row":
            continue
        for obj in [p] + p.get("targets", []):
            if not any("${%s}" % n in json.dumps(obj.get("datasource", {})) for n in ds_vars):
                no_ds.append(p.get("title"))
        if not p.get("targets"):
            no_expr.append(p.get("title"))
        for t in p.get("targets", []):
            if not (t.get("expr") and t.get("refId")):
                no_expr.append(p.get("title"))
            exprs.append((f"panel '{p.get('title')}'", t.get("expr", "")))
    check(not no_ds, f"all {len(panels)} panels and their targets use the data source variable", f"{no_ds}")
    check(not no_expr, "every panel has targets, each with a refId and an expr", f"{no_expr}")
    for n, v in tvars.items():
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.match(r"label_values\((.+),\s*\w+\)$", q or "")
        if v.get("type") == "query" and m:
            exprs.append((f"variable {n}", m.group(1)))
    alltext = "\n".join(e for _, e in exprs)
    for what, pat in [("throughput by outcome", r"herald_deliveries_total.*outcome"),
                      ("event age p50", r"histogram_quantile\(0\.5, .*herald_event_age_seconds_bucket"),
                      ("event age p99", r"histogram_quantile\(0\.99, .*herald_event_age_seconds_bucket"),
                      ("queue depth by state", r"herald_queue_depth\{[^}]*\}\)?$|by \(queue, state\) \(herald_queue_depth"),
                      ("dead letters by reason", r"by \(reason\).*herald_dead_letters_total"),
                      ("retries", r'outcome="retry"'),
                      ("circuit state", r"herald_circuit_open"),
                      ("in-flight", r"herald_inflight"),
                      ("live processes", r"herald_live_processes"),
                      ("redis errors", r"herald_redis_errors_total")]:
        check(re.search(pat, alltext, re.M), f"a panel shows {what}")
    bad = [f"{what}: {', '.join(unknown_metrics(e, known))}" for what, e in exprs if unknown_metrics(e, known)]
    check(not bad, f"dashboard: every herald_* metric in its {len(exprs)} queries exists in src/metrics.rs",
          "; ".join(bad))
    for what, e in exprs:
        e = e.replace("$__rate_interval", "5m").replace("$__interval", "1m")
        e = re.sub(r"\$\{?\w+\}?", ".*", e)
        promql.append((f"dashboard {what}", e))


# --- prometheus files, README ------------------------------------------------------------------

def check_prometheus_files(known: set[str]) -> None:
    section("deploy/prometheus")
    alerts_text = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    alerts = yaml.safe_load(alerts_text)
    groups = {g["name"]: g for g in alerts.get("groups", [])}
    check("herald" in groups, "alerts.yml has the rule group herald")
    names = set()
    for r in groups.get("herald", {}).get("rules", []):
        names.add(r.get("alert"))
        a = r.get("annotations", {})
        check(r.get("labels", {}).get("severity") in ("warning", "critical", "info")
              and a.get("summary") and a.get("description") and a.get("runbook"),
              f"{r.get('alert')}: severity, summary, description and runbook")
    for want in ["HeraldBacklogGrowing", "HeraldOldestWaitingTooOld", "HeraldDeadLetters", "HeraldCircuitOpen",
                 "HeraldNoLiveWorkers", "HeraldReplicaDown", "HeraldRedisUnreachable"]:
        check(want in names, f"alert {want} is defined")
    check_metric_names("alerts.yml", alerts_text, known)
    tests = yaml.safe_load((DEPLOY / "prometheus" / "alerts_test.yml").read_text())
    series = "\n".join(s["series"] for t in tests.get("tests", []) for s in t.get("input_series", []))
    check_metric_names("alerts_test.yml input series", series, known)
    tested = {}
    for t in tests.get("tests", []):
        for a in t.get("alert_rule_test", []):
            tested.setdefault(a["alertname"], set()).add(bool(a.get("exp_alerts")))
    for n in sorted(names):
        check(tested.get(n) == {True, False}, f"{n}: alerts_test.yml shows it firing and not firing")


def check_readme(known: set[str]) -> None:
    section("deploy/README.md")
    text = (DEPLOY / "README.md").read_text()
    check_metric_names("README.md", text, known)
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    local = [l for l in links if not re.match(r"[a-z]+://", l)]
    missing = [l for l in local if not (DEPLOY / l).exists()]
    check(not missing, "README.md links to files that exist", ", ".join(missing))
    for heading in ("alerts",):
        check(re.search(rf"^#+ .*{heading}", text, re.I | re.M), f"README.md has a section on {heading} (runbook links)")


# --- --sync ------------------------------------------------------------------------------------

def sync() -> None:
    toml_text = (DEPLOY / "herald.toml").read_text()
    p = K8S / "configmap.yaml"
    s = p.read_text()
    head, sep, rest = s.partition("  herald.toml: |\n")
    tail = rest[rest.index("---\n"):] if "---\n" in rest else ""
    body = "".join(("    " + l if l.strip() else "\n") for l in toml_text.splitlines(True))
    p.write_text(head + sep + body + tail)

    class Dumper(yaml.SafeDumper):
        pass
    Dumper.add_representer(str, lambda d, v: d.represent_scalar(
        "tag:yaml.org,2002:str", v, style="|" if "\n" in v else None))
    groups = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    p = K8S / "prometheusrule.yaml"
    head = p.read_text().partition("\nspec:\n")[0]
    dumped = yaml.dump(groups, Dumper=Dumper, sort_keys=False, width=1000, allow_unicode=True)
    p.write_text(head + "\nspec:\n" + "".join(("  " + l if l.strip() else l) for l in dumped.splitlines(True)))
    print("synced kubernetes/configmap.yaml and kubernetes/prometheusrule.yaml")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--herald-bin", help="a herald binary for `herald check-config`")
    ap.add_argument("--promql-out", help="write every PromQL expression as a rule file, for promtool")
    ap.add_argument("--sync", action="store_true", help="rewrite the derived files first")
    args = ap.parse_args()
    if args.sync:
        sync()

    section("every YAML file under deploy/ parses")
    for f in sorted(list(DEPLOY.rglob("*.yml")) + list(DEPLOY.rglob("*.yaml"))):
        try:
            load_all(f)
            check(True, rel(f))
        except yaml.YAMLError as e:
            check(False, rel(f), str(e).replace("\n", " "))

    known = exported_metrics()
    section("src/metrics.rs")
    check(len(known) >= 10 and "herald_queue_depth" in known and "herald_inflight" in known,
          f"{len(known)} herald_* metric names read from src/metrics.rs")

    toml_text, cfg = herald_config()
    check_herald_toml(toml_text, cfg)
    shutdown = duration_seconds(cfg.get("worker", {}).get("shutdown_timeout", "25s"))
    promql: list = []
    check_dockerfile()
    compose_env = check_compose(cfg, toml_text, shutdown)
    k8s_env = check_kubernetes(cfg, toml_text, shutdown, known, promql)
    check_prometheus_files(known)
    check_grafana(known, promql)
    check_readme(known)
    run_check_config(args.herald_bin, toml_text, {
        "compose": compose_env,
        "kubernetes": {**k8s_env, "REDIS_URL": "redis://:example@redis:6379/0",
                       "PUSHER_APP_SECRET": "example-secret"},
    })

    if args.promql_out:
        rules = [{"record": f"deploy_check:expr_{i}", "expr": e} for i, (_, e) in enumerate(promql)]
        Path(args.promql_out).write_text(yaml.safe_dump({"groups": [{"name": "deploy-promql", "rules": rules}]}))
        print(f"\nwrote {len(rules)} PromQL expressions to {args.promql_out}")

    print(f"\nmanifests: {passed} passed, {len(failed)} failed")
    for f in failed:
        print(f"  failed: {f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
