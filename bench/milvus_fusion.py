"""Fusion on Milvus: the engine's own `hybrid_search` (RRF, weighted) against our ranking over its candidates.

Why: the Milvus store could fuse dense and BM25 inside Milvus (`hybrid_search` with `RRFRanker`) or fetch
both candidate lists and rank them with the same code as the FAISS path (`qa.retrieval`). This script asks
the corpus question set both ways, on the same Milvus collections, and prints Hit@k / MRR@10.

Run after building the Milvus index (`QA_STORE=milvus .venv/bin/qa build`):

    QA_STORE=milvus .venv/bin/python bench/milvus_fusion.py

Rows (k = QA_CANDIDATES, 50; top 10 each):
- ours · learned: `Service.ask` (what /v1/ask does): dense top k + BM25 top k from Milvus, BM25 rescored
  with global IDF, the learned ranker recorded in the index, overlap dedupe.
- ours · convex / rrf: the same candidates fused by 0.3.0's convex fusion or our RRF (QA_FUSION=convex|rrf,
  QA_DENSE_WEIGHT, QA_RRF_K).
- milvus · rrf / weighted: `hybrid_search` over the `vector` field (the e5 query vector) and the `sparse`
  BM25 field (the raw question, tokenized by Milvus' jieba analyzer), `RRFRanker(QA_RRF_K)` or
  `WeightedRanker(QA_DENSE_WEIGHT, 1 − QA_DENSE_WEIGHT)`, no dedupe.
A hit is a passage containing a gold answer string, as in `qa eval`.
"""

from __future__ import annotations

import argparse
import sys

import common
from common import ROOT

from qa import evaluation as ev
from qa.config import Settings
from qa.service import Service
from qa.stores.milvus.reader import MilvusSnapshot
from qa.tokens import normalize


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0]).parse_args(argv)
    from pymilvus import AnnSearchRequest, RRFRanker, WeightedRanker

    settings = Settings.from_env(store="milvus")
    service = Service(settings)
    snap = service.snapshot()
    assert isinstance(snap, MilvusSnapshot)
    questions = [q for q in ev.load_questions(ROOT / "tests/data/corpus_qa.jsonl") if q.in_domain]
    ranks: dict[str, list[int | None]] = {
        k: [] for k in ("ours · learned", "ours · convex", "ours · rrf", "milvus · rrf", "milvus · weighted")
    }
    learned_service = service.with_settings(fusion="learned")
    rrf_service = service.with_settings(fusion="rrf")
    convex_service = service.with_settings(fusion="convex")
    k, w = settings.candidates, settings.dense_weight
    milvus_rankers = (("milvus · rrf", RRFRanker(settings.rrf_k)), ("milvus · weighted", WeightedRanker(w, 1 - w)))
    for q in questions:
        ranks["ours · learned"].append(ev.first_answer_rank(q, learned_service.ask(q.question, top_k=10)))
        ranks["ours · convex"].append(ev.first_answer_rank(q, convex_service.ask(q.question, top_k=10)))
        ranks["ours · rrf"].append(ev.first_answer_rank(q, rrf_service.ask(q.question, top_k=10)))
        qvec = service.embedder.encode_queries([normalize(q.question, lower=False)])[0].tolist()
        for name, ranker in milvus_rankers:
            reqs = [
                AnnSearchRequest(data=[qvec], anns_field="vector", param={"metric_type": "COSINE"}, limit=k),
                AnnSearchRequest(data=[q.question], anns_field="sparse", param={"metric_type": "BM25"}, limit=k),
            ]
            hits = snap.client.hybrid_search(
                snap.names["chunks"], reqs=reqs, ranker=ranker, limit=10, output_fields=["text"]
            )[0]
            texts = [h["entity"]["text"] for h in hits]
            ranks[name].append(next((i + 1 for i, t in enumerate(texts) if ev.contains_answer(t, q.answers)), None))
    print(f"corpus questions (in-domain): {len(questions)}; index {snap.version} on {settings.milvus_target}")
    print(f"machine: {common.machine()}\n")
    rows = [
        [
            name,
            f"{ev.hit_at_k(r, 1):.3f}",
            f"{ev.hit_at_k(r, 5):.3f}",
            f"{ev.hit_at_k(r, 10):.3f}",
            f"{ev.mrr_at_k(r, 10):.3f}",
        ]
        for name, r in ranks.items()
    ]
    print(common.markdown_table(["fusion", "Hit@1", "Hit@5", "Hit@10", "MRR@10"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
