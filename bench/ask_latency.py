"""In-process `Service.ask` latency over the corpus test-split questions, for comparing two versions.

    .venv/bin/python bench/ask_latency.py LABEL
    bash bench/latency_before_after.sh 6b250d4     # alternates that commit and this checkout, 4 runs each

Only `Settings`, `Service` and the question files are used, so an older checkout's code runs it too
(PYTHONPATH pointing at that checkout). Every run builds its own index in a temp dir and asks each
question once after 10 warm-up questions; the machine is shared by nothing else, but on a 2-core VM
run-to-run noise is several ms: compare medians over alternating runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from qa.config import Settings
from qa.service import Service

ROOT = Path(__file__).resolve().parents[1]


def split_of(qid: str) -> str:  # qa.evaluation.split_of, restated: older versions don't have it
    return "dev" if int(hashlib.sha256(qid.encode()).hexdigest()[:8], 16) % 2 == 0 else "test"


def main() -> None:
    label = sys.argv[1] if len(sys.argv) > 1 else "this checkout"
    root = Path(tempfile.mkdtemp(prefix="qa-latency-"))
    settings = replace(
        Settings.from_env(), index_dir=root / "index", model_cache=ROOT / "index" / "models", corpus_dir=ROOT / "corpus"
    )
    service = Service(settings)
    service.build(progress=False)
    files = [ROOT / "tests/data/corpus_qa.jsonl", *sorted(ROOT.glob("tests/data/questions/*.jsonl"))]
    rows = [json.loads(line) for f in files for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    questions = [r["question"] for r in rows if split_of(r["id"]) == "test"]
    for q in questions[:10]:
        service.ask(q)
    took = [service.ask(q).took_ms for q in questions]
    p50, p95, mean = np.percentile(took, 50), np.percentile(took, 95), np.mean(took)
    machine = f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores"
    print(f"| {label} | {len(took)} | {p50:.1f} | {p95:.1f} | {mean:.1f} | {machine} |")


if __name__ == "__main__":
    main()
