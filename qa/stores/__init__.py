"""Where index snapshots live: `base` (the protocols), `faiss` (the default), `milvus/`, and `factory`."""
