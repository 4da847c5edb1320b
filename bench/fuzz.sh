#!/usr/bin/env bash
# Longer schemathesis campaign against a live server on 127.0.0.1, every route, bounded by count and `timeout`.
# Two passes: anonymous (admin routes must refuse) and with the admin token (documents really get written,
# into a private copy of the corpus). Positive and negative cases; prints schemathesis' summary of each pass.
# Usage: bash bench/fuzz.sh [cases per operation, default 1000] [seed, default 7]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
SEED=${2:-7}
PORT=${QA_PORT:-8765}
WORK=$(mktemp -d)
TOKEN=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(24))')
cp -r corpus "$WORK/corpus"
QA_PORT=$PORT QA_CORPUS_DIR="$WORK/corpus" QA_INDEX_DIR="$WORK/index" QA_MODEL_CACHE="${QA_MODEL_CACHE:-index/models}" \
  QA_ADMIN_TOKEN=$TOKEN QA_LOG_LEVEL=warning .venv/bin/python serve.py >"$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  sleep 1
done
run() {
  timeout 900 .venv/bin/schemathesis run "http://127.0.0.1:$PORT/openapi.json" -n "$N" --mode all \
    --phases coverage,fuzzing --seed "$SEED" --generation-database none -c all "$@" | tail -${TAIL:-25} || true
}
echo "== anonymous: every operation =="
run
echo "== with the admin token: admin operations =="
run --include-tag admin -H "Authorization: Bearer $TOKEN"
echo "server log lines at level error: $(grep -c '"level": "error"' "$WORK/server.log" || true)"
