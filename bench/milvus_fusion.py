"""Fusion on Milvus: the engine's own `hybrid_search` (RRF, weighted) against our fusion over its candidates.

Why: the Milvus store could fuse dense and BM25 inside Milvus (`hybrid_search` with `RRFRanker`) or fetch
both candidate lists and fuse them with the same code as the FAISS path (`qa.retrieval`). This script asks
the corpus question set both ways, on the same Milvus collections, and prints Hit@k / MRR@10.

Run after building the Milvus index (`QA_STORE=milvus .venv/bin/qa build`):

    QA_STORE=milvus .venv/bin/python bench/milvus_fusion.py

Rows:
- ours · convex: `Service.ask` (what /v1/ask does): dense top 50 + BM25 top 50 from Milvus, BM25 rescored
  with global IDF, calibrated convex fusion, overlap dedupe.
- ours · rrf: the same candidates fused by our RRF (QA_FUSION=rrf, k 60).
- milvus · rrf / weighted: `hybrid_search` over the `vector` field (the e5 query vector) and the `sparse`
  BM25 field (the raw question, tokenized by Milvus' jieba analyzer), `RRFRanker(60)` or
  `WeightedRanker(0.5, 0.5)`, top 10, no dedupe.
A hit is a passage containing a gold answer string, as in `qa eval`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from qa import evaluation as ev
from qa.config import Settings
from qa.milvus_store import MilvusSnapshot
from qa.service import Service
from qa.tokens import normalize

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    from pymilvus import AnnSearchRequest, RRFRanker, WeightedRanker

    settings = Settings.from_env(store="milvus")
    service = Service(settings)
    snap = service.snapshot()
    assert isinstance(snap, MilvusSnapshot)
    questions = [q for q in ev.load_questions(ROOT / "tests/data/corpus_qa.jsonl") if q.in_domain]
    ranks: dict[str, list[int | None]] = {
        k: [] for k in ("ours · learned", "ours · convex", "ours · rrf", "milvus · rrf", "milvus · weighted")
    }
    rrf_service = service.with_settings(fusion="rrf")
    convex_service = service.with_settings(fusion="convex")
    for q in questions:
        ranks["ours · learned"].append(ev.first_answer_rank(q, service.ask(q.question, top_k=10)))
        ranks["ours · convex"].append(ev.first_answer_rank(q, convex_service.ask(q.question, top_k=10)))
        ranks["ours · rrf"].append(ev.first_answer_rank(q, rrf_service.ask(q.question, top_k=10)))
        qvec = service.embedder.encode_queries([normalize(q.question, lower=False)])[0].tolist()
        for name, ranker in (("milvus · rrf", RRFRanker(60)), ("milvus · weighted", WeightedRanker(0.5, 0.5))):
            reqs = [
                AnnSearchRequest(data=[qvec], anns_field="vector", param={"metric_type": "COSINE"}, limit=50),
                AnnSearchRequest(data=[q.question], anns_field="sparse", param={"metric_type": "BM25"}, limit=50),
            ]
            hits = snap.client.hybrid_search(
                snap.names["chunks"], reqs=reqs, ranker=ranker, limit=10, output_fields=["text"]
            )[0]
            texts = [h["entity"]["text"] for h in hits]
            ranks[name].append(next((i + 1 for i, t in enumerate(texts) if ev.contains_answer(t, q.answers)), None))
    print(f"corpus questions (in-domain): {len(questions)}; index {snap.version} on {settings.milvus_target}\n")
    print("| fusion | Hit@1 | Hit@5 | Hit@10 | MRR@10 |")
    print("|---|---|---|---|---|")
    for name, r in ranks.items():
        print(
            f"| {name} | {ev.hit_at_k(r, 1):.3f} | {ev.hit_at_k(r, 5):.3f} | {ev.hit_at_k(r, 10):.3f} "
            f"| {ev.mrr_at_k(r, 10):.3f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
