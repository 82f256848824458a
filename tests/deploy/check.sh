#!/usr/bin/env bash
# Validates everything under deploy/. Run from anywhere:
#
#   bash tests/deploy/check.sh
#
# Installs what it lacks: promtool (Debian's `prometheus` package, needs root and apt) and a Python
# venv with kubernetes-validate + jsonschema (PyPI), kept in $HERALD_DEPLOY_VENV
# (default ~/.cache/herald/deploy-venv) so later runs take a few seconds. Runs every check, then
# prints a summary and exits 1 if any failed. Optional tools (kubectl, docker compose, a built herald
# binary, redis-server for the live check) are used when present and reported as skipped otherwise.
# HERALD_BIN picks the herald binary (default: the newer of target/{release,debug}/herald);
# HERALD_DEPLOY_LIVE=0 skips the live check.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

PASSED=0
FAILED=()
SKIPPED=()

# step NAME COMMAND...: runs one check, shows its output indented, records the result.
step() {
  local name="$1"; shift
  echo "== $name"
  if "$@" >"$TMP/out" 2>&1; then
    sed 's/^/   /' "$TMP/out"
    echo "   -> ok"
    PASSED=$((PASSED + 1))
  else
    sed 's/^/   /' "$TMP/out"
    echo "   -> FAILED: $*"
    FAILED+=("$name")
  fi
}

skip() {
  echo "== $1"
  echo "   -> skipped: $2"
  SKIPPED+=("$1")
}

# --- tools -----------------------------------------------------------------------------------

if ! command -v promtool >/dev/null 2>&1; then
  echo "== installing promtool (apt-get install prometheus)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
promtool --version 2>&1 | head -1

VENV="${HERALD_DEPLOY_VENV:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/herald/deploy-venv}"
if ! "$VENV/bin/python" -c 'import yaml, jsonschema, kubernetes_validate' >/dev/null 2>&1; then
  echo "== creating $VENV (kubernetes-validate, jsonschema)"
  rm -rf "$VENV"
  if ! python3 -m venv --system-site-packages "$VENV" >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv --system-site-packages "$VENV"
  fi
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check kubernetes-validate==1.37.0 jsonschema
  "$VENV/bin/python" -c 'import yaml' 2>/dev/null \
    || "$VENV/bin/python" -m pip install -q --disable-pip-version-check pyyaml
fi
PY="$VENV/bin/python"

# --- Prometheus ------------------------------------------------------------------------------

step "promtool check rules deploy/prometheus/alerts.yml" \
  promtool check rules deploy/prometheus/alerts.yml
step "promtool test rules deploy/prometheus/alerts_test.yml" \
  promtool test rules deploy/prometheus/alerts_test.yml
step "promtool check config deploy/prometheus/prometheus.yml (from the repo root)" \
  promtool check config deploy/prometheus/prometheus.yml
step "promtool check config prometheus.yml (from deploy/prometheus)" \
  bash -c 'cd deploy/prometheus && promtool check config prometheus.yml'

# --- manifests -------------------------------------------------------------------------------

HERALD_BIN="${HERALD_BIN:-}"
if [[ -z "$HERALD_BIN" ]]; then
  HERALD_BIN="$(ls -t target/release/herald target/debug/herald 2>/dev/null | head -1 || true)"
fi
BIN_ARGS=()
if [[ -n "$HERALD_BIN" && -x "$HERALD_BIN" ]]; then
  BIN_ARGS=(--herald-bin "$HERALD_BIN")
  echo "herald binary for check-config: $HERALD_BIN ($(date -r "$HERALD_BIN" '+built %F %T'))"
fi
step "tests/deploy/check_manifests.py (deploy/ against itself and src/metrics.rs)" \
  "$PY" tests/deploy/check_manifests.py --promql-out "$TMP/promql.yml" "${BIN_ARGS[@]}"
if [[ -s "$TMP/promql.yml" ]]; then
  step "PromQL syntax of every dashboard and KEDA query (promtool check rules)" \
    promtool check rules "$TMP/promql.yml"
fi

CORE=(deploy/kubernetes/secret.example.yaml)
if command -v kubectl >/dev/null 2>&1; then
  step "kubectl kustomize deploy/kubernetes" \
    bash -c "kubectl kustomize deploy/kubernetes > '$TMP/built.yaml'"
  CORE+=("$TMP/built.yaml")
else
  skip "kubectl kustomize deploy/kubernetes" "kubectl is not installed"
  CORE+=(deploy/kubernetes/{configmap,deployment,service,pdb}.yaml)
fi
# Core kinds only; custom resources (KEDA, prometheus-operator) were checked by check_manifests.py.
step "kubernetes-validate --strict (Deployment, Service, PDB, ConfigMaps, Secret)" \
  "$VENV/bin/kubernetes-validate" --strict --no-warn "${CORE[@]}"

# --- live: real replicas, real Prometheus ---------------------------------------------------

if [[ "${HERALD_DEPLOY_LIVE:-1}" == 0 ]]; then
  skip "live check (herald + redis-server + prometheus)" "HERALD_DEPLOY_LIVE=0"
elif [[ ${#BIN_ARGS[@]} -eq 0 ]]; then
  skip "live check (herald + redis-server + prometheus)" "no herald binary (cargo build, or set HERALD_BIN)"
elif ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null || ! command -v prometheus >/dev/null; then
  skip "live check (herald + redis-server + prometheus)" "redis-server, redis-cli or prometheus is not installed"
else
  step "live check: alerts, KEDA and dashboard queries against 2 real replicas (tests/deploy/live_check.py)" \
    "$PY" tests/deploy/live_check.py "${BIN_ARGS[@]}" --promql "$TMP/promql.yml"
fi

# --- compose ---------------------------------------------------------------------------------

if docker compose version >/dev/null 2>&1; then
  step "docker compose -f deploy/docker-compose.yml config -q" \
    docker compose -f deploy/docker-compose.yml config -q
else
  skip "docker compose config" "the docker compose plugin is not installed (check_manifests.py validated the file against the compose-spec schema)"
fi

# --- summary ---------------------------------------------------------------------------------

echo
for s in "${SKIPPED[@]}"; do echo "skipped: $s"; done
for f in "${FAILED[@]}"; do echo "failed: $f"; done
echo "deploy: ${PASSED} passed, ${#FAILED[@]} failed, ${#SKIPPED[@]} skipped"
[[ ${#FAILED[@]} -eq 0 ]]
