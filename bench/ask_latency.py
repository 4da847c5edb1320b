"""In-process `Service.ask` latency over the corpus test-split questions, for comparing two versions.

    .venv/bin/python bench/ask_latency.py LABEL
    bash bench/latency_before_after.sh 6b250d4     # alternates that commit and this checkout, 4 runs each

Only `Settings`, `Service` and the question files are used, so an older checkout's code runs it too
(PYTHONPATH pointing at that checkout; bench/common.py imports nothing of `qa`). Every run builds its own
index in a temp dir and asks each question once after 10 warm-up questions; the machine is shared by
nothing else, but on a 2-core VM run-to-run noise is several ms: compare medians over alternating runs.
Prints one markdown row: label, questions, p50, p95 and mean ms, machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

import common
from common import ROOT, markdown_row, p50_p95

from qa.config import Settings
from qa.service import Service

try:
    from qa.evaluation import split_of
except ImportError:  # a checkout from before qa.evaluation.split_of: the same rule, restated

    def split_of(question_id: str) -> str:
        return "dev" if int(hashlib.sha256(question_id.encode()).hexdigest()[:8], 16) % 2 == 0 else "test"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("label", nargs="?", default="this checkout", help="first cell of the row")
    label = p.parse_args(argv).label
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
    p50, p95 = p50_p95(took)
    print(
        markdown_row([label, len(took), f"{p50:.1f}", f"{p95:.1f}", f"{statistics.mean(took):.1f}", common.machine()])
    )


if __name__ == "__main__":
    main()
