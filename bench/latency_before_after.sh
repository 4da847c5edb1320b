#!/usr/bin/env bash
# Alternate `bench/ask_latency.py` between an older commit (a temporary worktree) and this checkout.
#   bash bench/latency_before_after.sh 6b250d4 [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
commit=${1:?usage: latency_before_after.sh COMMIT [RUNS]}
runs=${2:-4}
old=$(mktemp -d /tmp/qa-before-XXXX)
git worktree add --detach "$old" "$commit" >/dev/null
trap 'git worktree remove --force "$old"' EXIT
echo "| version | questions | p50 ms | p95 ms | mean ms | machine |"
echo "|---|---|---|---|---|---|"
for i in $(seq "$runs"); do
  (cd "$old" && PYTHONPATH="$old" "$OLDPWD/.venv/bin/python" "$OLDPWD/bench/ask_latency.py" "$commit run $i" 2>/dev/null | tail -1)
  .venv/bin/python bench/ask_latency.py "this checkout run $i" 2>/dev/null | tail -1
done
