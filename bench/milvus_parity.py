"""WIP (#9): copy the serving FAISS snapshot into Milvus Lite and compare answers question by question."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from qa.config import Settings
from qa.milvus_store import MilvusSnapshot, connect, serving_version, switch_alias, write_version
from qa.service import Service

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    settings = Settings.from_env()
    service = Service(settings)
    snap = service.snapshot()
    uri = sys.argv[1] if len(sys.argv) > 1 else "/tmp/mil/milvus.db"
    client = connect(uri)
    t0 = time.perf_counter()
    if serving_version(client, "qa") != snap.version:
        docs = [SimpleNamespace(**d.__dict__, text=snap.document_text(d.doc_id)) for d in snap.documents()]
        chunks = [snap.chunk(i) for i in range(len(snap))]
        terms = [snap.chunk_terms(i) for i in range(len(snap))]
        write_version(client, "qa", snap.manifest, docs, chunks, terms, snap.vectors, snap.cjk_share)
        switch_alias(client, "qa", snap.version)
    print(f"write {time.perf_counter() - t0:.1f}s; serving {serving_version(client, 'qa')}")
    milvus = MilvusSnapshot(client, "qa", snap.version)
    qs = [json.loads(line) for line in (ROOT / "tests/data/corpus_qa.jsonl").read_text("utf-8").splitlines()]
    same_top1 = same_top5 = 0
    lat: list[float] = []
    for q in qs:
        a = service.retriever.ask(snap, q["question"], 5)
        t = time.perf_counter()
        b = service.retriever.ask(milvus, q["question"], 5)
        lat.append((time.perf_counter() - t) * 1000)
        ka = [(h.chunk.doc_id, h.chunk.start) for h in a.hits]
        kb = [(h.chunk.doc_id, h.chunk.start) for h in b.hits]
        same_top1 += ka[:1] == kb[:1]
        same_top5 += ka == kb
    print(
        f"{len(qs)} questions: same top-1 {same_top1}, same top-5 list {same_top5}; milvus p50 {np.median(lat):.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
