"""Writing one version: create and fill its collections, flushed, without making it serving."""

from __future__ import annotations

import json
from typing import Any

from qa.manifest import FORMAT_VERSION, Manifest
from qa.stores.base import Contents, Windows
from qa.stores.milvus.layout import DUMMY, INSERT_BATCH, blob_rows, collection_names, index_params
from qa.tokens import cjk_share


def write_version(client: Any, prefix: str, manifest: Manifest, contents: Contents) -> None:
    """Create and fill the collections of one version, flushed; does not make it serving."""
    from pymilvus import DataType, Function, FunctionType

    chunks, terms, vectors = contents.chunks, contents.terms, contents.vectors
    names = collection_names(prefix, manifest.version)
    dim = manifest.model.dim
    index_type, build_params, _ = index_params(manifest.dense_index)

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("row", DataType.INT64, is_primary=True)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=1024)
    schema.add_field("chunk_id", DataType.VARCHAR, max_length=64)
    schema.add_field("ordinal", DataType.INT64)
    schema.add_field("start", DataType.INT64)
    schema.add_field("end", DataType.INT64)
    # Lite rejects {"type": "chinese"}; the jieba tokenizer is what we tokenize with anyway
    schema.add_field(
        "text", DataType.VARCHAR, max_length=65535, enable_analyzer=True, analyzer_params={"tokenizer": "jieba"}
    )
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("terms", DataType.VARCHAR, max_length=65535)
    schema.add_field("dl", DataType.INT64)
    schema.add_field("cjk", DataType.FLOAT)
    schema.add_function(
        Function(
            name="bm25", function_type=FunctionType.BM25, input_field_names=["text"], output_field_names=["sparse"]
        )
    )
    index = client.prepare_index_params()
    index.add_index("vector", index_type=index_type, metric_type="COSINE", params=build_params)
    index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    index.add_index("doc_id", index_type="INVERTED")
    client.create_collection(names["chunks"], schema=schema, index_params=index)
    for start in range(0, len(chunks), INSERT_BATCH):
        client.insert(
            names["chunks"],
            [
                {
                    "row": i,
                    "doc_id": c.doc_id,
                    "chunk_id": c.chunk_id,
                    "ordinal": c.ordinal,
                    "start": c.start,
                    "end": c.end,
                    "text": c.text,
                    "vector": vectors[i].tolist(),
                    "terms": " ".join(terms[i]),
                    "dl": len(terms[i]),
                    "cjk": cjk_share(c.text),
                }
                for i, c in enumerate(chunks[start : start + INSERT_BATCH], start=start)
            ],
        )
    client.flush(names["chunks"])  # unflushed data searches ~100x slower in Lite
    _write_windows(client, names["windows"], dim, contents.windows)

    df: dict[str, int] = {}
    for t in terms:
        for term in set(t):
            df[term] = df.get(term, 0) + 1
    _kv_collection(client, names["terms"], DataType.INT64, "df")
    rows = [{"key": k, "df": v, "dummy": DUMMY} for k, v in df.items() if k]
    for start in range(0, len(rows), 4 * INSERT_BATCH):
        client.insert(names["terms"], rows[start : start + 4 * INSERT_BATCH])
    client.flush(names["terms"])

    _kv_collection(client, names["meta"], DataType.VARCHAR, "value")
    per_doc = contents.chunks_per_document()
    documents = [
        {
            "doc_id": d.doc_id,
            "title": d.title,
            "source": d.source,
            "chars": len(d.text),
            "chunks": per_doc.get(d.doc_id, 0),
            "sha256": d.sha256,
        }
        for d in contents.docs
    ]
    n = len(chunks)
    stats = {"format_version": FORMAT_VERSION, "n": n, "avgdl": (sum(len(t) for t in terms) / n) if n else 1.0}
    blobs = {
        "manifest": json.dumps(manifest.as_dict(), ensure_ascii=False),
        "stats": json.dumps(stats),
        "documents": json.dumps(documents, ensure_ascii=False),
        **{f"text:{d.doc_id}": d.text for d in contents.docs},
    }
    rows = [row for key, text in blobs.items() for row in blob_rows(key, text)]
    for start in range(0, len(rows), 100):
        client.insert(names["meta"], rows[start : start + 100])
    client.flush(names["meta"])


def _write_windows(client: Any, name: str, dim: int, windows: list[Windows]) -> None:
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("chunk_row", DataType.INT64)
    schema.add_field("start", DataType.INT64)
    schema.add_field("end", DataType.INT64)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="FLAT", metric_type="COSINE")  # read by chunk_row, never searched
    index.add_index("chunk_row", index_type="INVERTED")
    client.create_collection(name, schema=schema, index_params=index)
    rows = [
        {"id": 0, "chunk_row": row, "start": a, "end": b, "vector": w.vectors[j].tolist()}
        for row, w in enumerate(windows)
        for j, (a, b) in enumerate(w.spans)
    ]
    for i, r in enumerate(rows):
        r["id"] = i
    for start in range(0, len(rows), INSERT_BATCH):
        client.insert(name, rows[start : start + INSERT_BATCH])
    client.flush(name)


def _kv_collection(client: Any, name: str, value_type: Any, value: str) -> None:
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=2048)
    if value_type == DataType.VARCHAR:
        schema.add_field(value, DataType.VARCHAR, max_length=65535)
    else:
        schema.add_field(value, value_type)
    schema.add_field("dummy", DataType.FLOAT_VECTOR, dim=len(DUMMY))
    index = client.prepare_index_params()
    index.add_index("dummy", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index)
