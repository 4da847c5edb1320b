#!/usr/bin/env bash
# Throughput with and without the question batcher (qa/batching.py), alternating runs on one machine:
# one server per setting on the built index (index/ must be current: `make serve` once), bench/load.py at
# 1 and 8 closed-loop clients. The vector cache is off in every run: the load's questions repeat, and
# cached answers would measure the cache, not the encoder.
#   bash bench/load_batching.sh [rounds=2] [seconds=40]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-2}
SECONDS_PER_RUN=${2:-40}
PORT=${QA_BENCH_PORT:-8011}
run() {  # QA_QUERY_BATCH label
  QA_PORT=$PORT QA_BUILD_ON_START=0 QA_QUERY_BATCH=$1 QA_QUERY_CACHE=0 QA_LOG_LEVEL=warning \
    .venv/bin/qa serve > "/tmp/qa-load-batching-$2.log" 2>&1 &
  local server=$!
  for _ in $(seq 1 180); do curl -sf "http://127.0.0.1:$PORT/readyz" > /dev/null && break; sleep 1; done
  for clients in 1 8; do
    .venv/bin/python bench/load.py --url "http://127.0.0.1:$PORT" --pid $server --scenario plain \
      --concurrency $clients --duration "$SECONDS_PER_RUN" --warmup 5 | grep -E '^\| plain' | sed "s/^/| $2 | $clients /"
  done
  kill $server; wait $server 2> /dev/null || true
}
echo "| QA_QUERY_BATCH | clients | scenario | requests | errors | QPS | p50 ms | p95 ms | p99 ms | max ms | RSS start MiB | RSS end MiB | RSS growth % | index versions seen |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for _ in $(seq 1 "$ROUNDS"); do run 1 1; run 8 8; done
