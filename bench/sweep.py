"""Sweep retrieval settings on the corpus question set (and CMRC with --cmrc); prints a markdown table.

Chunking settings need a rebuild per value: `--chunking` builds temporary indexes. Without it the index is
the one QA_INDEX_DIR names (built first if it is stale). The swept constants are those of QA_FUSION=convex
(0.3.0's fusion), the "before" of the learned ranker; every row asks through `Service.ask`.
Usage: python bench/sweep.py [--cmrc] [--chunking]
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from common import machine, markdown_row, markdown_table

from qa import evaluation as ev
from qa.config import Settings
from qa.service import Service


class CachedQueries:
    """The real embedder, remembering question vectors across sweep points (everything else delegated)."""

    def __init__(self, embedder) -> None:  # type: ignore[no-untyped-def]
        self._e = embedder
        self._q = lru_cache(maxsize=None)(lambda text: embedder.encode_queries([text])[0])

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._q(t) for t in texts])

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._e, name)


def best_threshold(outcomes: list[ev.Outcome], min_refused: float = 0.85) -> tuple[float, float, float]:
    """Threshold keeping the most in-domain questions answerable while refusing >= min_refused of OOD."""
    ind = [o.confidence for o in outcomes if o.question.in_domain]
    ood = [o.confidence for o in outcomes if not o.question.in_domain]
    best = (0.0, 0.0, 0.0)
    for t in np.arange(0.05, 0.8, 0.005):
        a = sum(c >= t for c in ind) / len(ind)
        r = sum(c < t for c in ood) / len(ood) if ood else 1.0
        if r >= min_refused and a > best[1]:
            best = (round(float(t), 3), a, r)
    return best


HEADERS = [
    *("settings", "Hit@1", "Hit@5", "MRR@10", "EN Hit@5"),
    *("best threshold", "in-domain answerable", "OOD refused"),
]


def run(service: Service, questions, relevance, grid: dict[str, list], prefix: str = "") -> list[str]:  # type: ignore[no-untyped-def]
    """One row per point of the grid (printed as it is done); `prefix` opens every row's settings cell."""
    rows = []
    keys = list(grid)
    for values in itertools.product(*grid.values()):
        changes = dict(zip(keys, values, strict=True))
        # the swept constants only mean something with convex fusion (or rrf, when the grid sweeps fusion)
        svc = service.with_settings(**({"fusion": "convex"} | changes))
        outs = ev.evaluate(lambda q, m, svc=svc: svc.ask(q, top_k=10, mode=m), questions, "hybrid", relevance)
        s = ev.summarize("", outs)
        en = [o.first_rank for o in outs if o.question.kind == "english"]
        t, a, r = best_threshold(outs)
        label = " ".join([prefix, *(f"{k}={v}" for k, v in changes.items())]).strip()
        en_hit5 = ev.hit_at_k(en, 5) if en else float("nan")
        cells = [label, f"{s.hit1:.3f}", f"{s.hit5:.3f}", f"{s.mrr10:.3f}", f"{en_hit5:.3f}", t, f"{a:.3f}", f"{r:.3f}"]
        rows.append(markdown_row(cells))
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--cmrc", action="store_true", help=f"sweep fusion on CMRC ({ev.CMRC_TRIAL})")
    p.add_argument("--chunking", action="store_true", help="sweep chunk size and overlap (a temporary index each)")
    args = p.parse_args()
    base = Service(Settings.from_env())
    base.embedder = CachedQueries(base.embedder)  # type: ignore[assignment]
    base.retriever.embedder = base.embedder  # type: ignore[assignment]
    print(f"Machine: {machine()}\n")
    print(markdown_table(HEADERS, []))
    if args.chunking:
        questions = ev.load_questions(Path("tests/data/corpus_qa.jsonl"))
        for size, overlap in [(200, 40), (300, 0), (300, 60), (300, 100), (400, 80), (500, 100)]:
            root = ev.temp_dir("qa-sweep-")
            settings = replace(
                base.settings,
                index_dir=root,
                model_cache=base.settings.models_dir,
                chunk_size=size,
                chunk_overlap=overlap,
                chunk_max=max(450, size + 150),
            )
            svc = Service(settings, base.embedder, base.tokenizer)  # type: ignore[arg-type]
            svc.build(progress=False)
            run(svc, questions, ev.first_answer_rank, {}, prefix=f"chunk_size={size} chunk_overlap={overlap}")
        return
    if args.cmrc:
        svc, questions = ev.cmrc_service(base, Path(ev.CMRC_TRIAL))
        svc.embedder = base.embedder
        svc.retriever.embedder = base.embedder
        run(svc, questions, ev.first_doc_rank, {"dense_weight": [0.2, 0.3, 0.4, 0.5, 0.6], "fusion": ["convex", "rrf"]})
        return
    base.build(progress=False)
    questions = ev.load_questions(Path("tests/data/corpus_qa.jsonl"))
    run(
        base,
        questions,
        ev.first_answer_rank,
        {
            "language_gap": [0.1, 0.13, 0.16, 0.2],
            "dense_weight": [0.5, 0.6],
            "dense_floor": [0.72, 0.76, 0.8],
        },
    )


if __name__ == "__main__":
    main()
