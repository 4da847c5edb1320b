"""Sweep retrieval settings on the corpus question set (and CMRC with --cmrc); prints a markdown table.

Chunking settings need a rebuild per value: `--chunking` builds temporary indexes.
Usage: python bench/sweep.py [--cmrc] [--chunking]
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from qa import evaluation as ev
from qa.config import Settings
from qa.service import Service


class CachedQueries:
    """Delegates to the real embedder, remembering question vectors across sweep points."""

    def __init__(self, embedder) -> None:  # type: ignore[no-untyped-def]
        self._e = embedder
        self.identity = embedder.identity
        self._q = lru_cache(maxsize=None)(lambda text: embedder.encode_queries([text])[0])

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._q(t) for t in texts])

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        return self._e.encode_passages(texts)


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


def run(service: Service, questions, relevance, grid: dict[str, list]) -> list[str]:  # type: ignore[no-untyped-def]
    rows = []
    keys = list(grid)
    for values in itertools.product(*grid.values()):
        changes = dict(zip(keys, values, strict=True))
        svc = service.with_settings(fusion="convex", **changes)  # the constants below only mean something there
        outs = ev.evaluate(lambda q, m, svc=svc: svc.ask(q, top_k=10, mode=m), questions, "hybrid", relevance)
        s = ev.summarize("", outs)
        en = [o.first_rank for o in outs if o.question.kind == "english"]
        t, a, r = best_threshold(outs)
        label = " ".join(f"{k}={v}" for k, v in changes.items())
        rows.append(
            f"| {label} | {s.hit1:.3f} | {s.hit5:.3f} | {s.mrr10:.3f} | "
            f"{ev.hit_at_k(en, 5) if en else float('nan'):.3f} | {t} | {a:.3f} | {r:.3f} |"
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cmrc", action="store_true")
    p.add_argument("--chunking", action="store_true")
    args = p.parse_args()
    base = Service(Settings.from_env())
    base.embedder = CachedQueries(base.embedder)  # type: ignore[assignment]
    base.retriever.embedder = base.embedder  # type: ignore[assignment]
    print("| settings | Hit@1 | Hit@5 | MRR@10 | EN Hit@5 | best threshold | in-domain answerable | OOD refused |")
    print("|---|---|---|---|---|---|---|---|")
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
            print(f"| chunk_size={size} chunk_overlap={overlap} |", end="")
            run(svc, questions, ev.first_answer_rank, {"dense_weight": [base.settings.dense_weight]})
        return
    if args.cmrc:
        svc, questions = ev.cmrc_service(base, Path("../shared/data/cmrc2018_trial.json"))
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
