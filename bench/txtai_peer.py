"""The txtai peer for bench/peer.py: txtai's own HTTP API serving hybrid search (BM25 + dense) over given passages.

Run in txtai's venv (made by `bash bench/setup_txtai.sh`), from the project root:

    bench/.venv-txtai/bin/python bench/txtai_peer.py --model DIR --passages FILE.jsonl --port N \
        [--index-dir DIR] [--threads N]

It reads passages (`{"id": str, "text": str}` per line), builds a txtai `Embeddings` index with the local
sentence-transformers model DIR (txtai's "transformers" method: mean pooling as the model's 1_Pooling config
says, normalized vectors, faiss), `hybrid=True`, `content=True` and the e5 prompts, saves it to --index-dir (a
temporary folder by default), then serves `txtai.api:app` with uvicorn on 127.0.0.1:N over that saved index,
configured as txtai documents it: a YAML file named by the CONFIG variable, here INDEX_DIR/api.yml holding
`{path: INDEX_DIR, embeddings: null}`: the saved index, read-only (not `writable`); the `embeddings` key enables
the /search routes, and the index keeps the settings it was saved with.
`GET /search?query=...&limit=5` answers `[{"id", "text", "score"}, ...]`, best first. Once the API answers it
prints `READY <seconds to build the index>`. Threads are torch's defaults unless --threads N > 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

# Before txtai is imported: no hub look-ups, and litellm (if present) reads its bundled cost map, not the network.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
import uvicorn
import yaml
from txtai import Embeddings

E5_PROMPTS = {"query": "query: ", "data": "passage: "}


def read_passages(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return [{"id": str(p["id"]), "text": str(p["text"])} for p in map(json.loads, f) if p]


def build(model: Path, passages: list[dict[str, str]], index_dir: Path) -> float:
    """Index and save the passages; returns the seconds taken (model load included)."""
    start = time.perf_counter()
    embeddings = Embeddings(path=str(model.resolve()), hybrid=True, content=True, instructions=E5_PROMPTS)
    embeddings.index(passages)
    embeddings.save(str(index_dir))
    embeddings.close()
    return time.perf_counter() - start


def announce_when_started(server: uvicorn.Server, seconds: float) -> None:
    while not server.started:
        if server.should_exit:
            return
        time.sleep(0.1)
    print(f"READY {seconds:.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="local sentence-transformers model directory")
    parser.add_argument("--passages", type=Path, required=True, help='JSONL of {"id": str, "text": str}')
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--index-dir", type=Path, help="where the index is saved (default: a temporary folder)")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads when > 0")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    passages = read_passages(args.passages)
    index_dir = args.index_dir or Path(tempfile.mkdtemp(prefix="txtai-index-"))
    index_dir.mkdir(parents=True, exist_ok=True)
    seconds = build(args.model, passages, index_dir)
    threads = torch.get_num_threads()
    print(f"built {len(passages)} passages in {seconds:.1f} s, {threads} torch threads: {index_dir}", file=sys.stderr)

    config = index_dir / "api.yml"  # beside the files txtai saved; txtai ignores it
    config.write_text(yaml.safe_dump({"path": str(index_dir.resolve()), "embeddings": None}), encoding="utf-8")
    os.environ["CONFIG"] = str(config)  # read by txtai.api's lifespan, which loads the saved index
    server = uvicorn.Server(uvicorn.Config("txtai.api:app", host="127.0.0.1", port=args.port, log_level="warning"))
    threading.Thread(target=announce_when_started, args=(server, seconds), daemon=True).start()
    server.run()


if __name__ == "__main__":
    main()
