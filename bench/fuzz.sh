#!/usr/bin/env bash
# Longer schemathesis campaign against a live server on 127.0.0.1 (bounded by count and by `timeout`).
# Usage: bash bench/fuzz.sh [cases per operation, default 1000] [seed, default 7]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
SEED=${2:-7}
PORT=${QA_PORT:-8765}
QA_PORT=$PORT .venv/bin/python serve.py >/tmp/qa-fuzz-server.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  sleep 1
done
timeout 600 .venv/bin/schemathesis run "http://127.0.0.1:$PORT/openapi.json" -n "$N" \
  --phases coverage,fuzzing --seed "$SEED" --generation-database none -c all | tail -20
