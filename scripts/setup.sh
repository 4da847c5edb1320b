#!/usr/bin/env bash
# Create .venv and install the project (idempotent). `--test` adds test tools and Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch first and pinned: the CPU build (an unpinned torch pulls a multi-GB CUDA build)
.venv/bin/python -m pip install -q "torch==2.13.0"
if [ "${1:-}" = "--test" ]; then
  .venv/bin/python -m pip install -q -e ".[test,milvus]"
  # Chinese fonts too: without them every CJK glyph in the widget screenshots is a box
  if [ ! -x /usr/bin/chromium ] || [ ! -d /usr/share/fonts/opentype/noto ]; then
    if [ "$(id -u)" = "0" ]; then
      apt-get update -qq && apt-get install -y -qq chromium chromium-driver fonts-noto-cjk >/dev/null
    else
      sudo apt-get update -qq && sudo apt-get install -y -qq chromium chromium-driver fonts-noto-cjk >/dev/null
    fi
  fi
else
  .venv/bin/python -m pip install -q -e ".[milvus]"  # QA_STORE=milvus works out of the box
fi
# the corpus ships in corpus/; a sibling shared/ checkout only fills it when it is empty
if [ -z "$(ls corpus/*.txt 2>/dev/null)" ] && [ -d ../shared/corpus ]; then
  cp ../shared/corpus/*.txt corpus/
fi
