#!/usr/bin/env bash
# Makes bench/.venv-txtai: txtai's own API for bench/txtai_peer.py (the peer in bench/peer.py). Idempotent.
#
#   bash bench/setup_txtai.sh        # ~1-2 min, ~1.4 GB
#
# torch is pinned to the local CPU build and named on every pip line: an unpinned torch (txtai requires
# torch>=2.4) would pull a multi-GB CUDA build. Only txtai's `api` extra is installed: the default "transformers"
# vectors method (mean pooling from the model's 1_Pooling config, normalized) and BM25 need nothing more, and
# the `similarity`/`vectors` extras bring llama-cpp-python, bitsandbytes, milvus-lite, litellm, ... unused here.
set -euo pipefail

TORCH=2.13.0
TXTAI=9.14.0
cd "$(dirname "$0")/.."
VENV=bench/.venv-txtai

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
if "$VENV/bin/python" - "$TORCH" "$TXTAI" <<'EOF' 2>/dev/null; then
import sys
from importlib.metadata import version

import fastapi, uvicorn  # noqa: F401  (the api extra is there)

assert version("torch").split("+")[0] == sys.argv[1] and version("txtai") == sys.argv[2]
EOF
    echo "$VENV: torch $TORCH, txtai $TXTAI already installed"
    exit 0
fi
"$VENV/bin/pip" install -q "torch==$TORCH"
"$VENV/bin/pip" install -q "torch==$TORCH" "txtai[api]==$TXTAI"
"$VENV/bin/pip" check
"$VENV/bin/pip" show torch txtai 2>/dev/null | grep -E '^(Name|Version)' | paste - -
