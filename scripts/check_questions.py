"""Check question files against the corpus: fields, ids, and where each gold answer occurs.

    .venv/bin/python scripts/check_questions.py tests/data/questions/*.jsonl

Text only (no model): the corpus is cleaned and chunked with the default settings, and each in-domain
question's answers are looked up in the chunks of its documents (whitespace-insensitive, as `qa eval`
counts a hit). Prints one line per problem and a summary per kind; exit status 1 when a question is
unusable (bad fields, duplicate id, an answer found in none of its documents' chunks).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from qa.chunking import ChunkParams, chunk_document
from qa.cleaning import clean
from qa.config import Settings
from qa.corpus import load_corpus
from qa.evaluation import squash
from qa.tokens import Tokenizer

KINDS = {
    "factual",
    "paraphrase",
    "keyword",
    "long",
    "typo",
    "english",
    "traditional",
    "multi",
    "ood",
    "ood_near",
}
COMMON = 4  # an answer found in more chunks than this says little about ranking


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("files", nargs="*")
    p.add_argument("--corpus", default="corpus")
    p.add_argument("--dump", metavar="DOC_ID", help="print the chunks of one document and exit")
    args = p.parse_args(argv)
    settings = Settings()
    tokenizer = Tokenizer()
    params = ChunkParams(settings.chunk_size, settings.chunk_overlap, settings.chunk_max)
    docs = load_corpus(Path(args.corpus))
    chunks = {
        d.doc_id: [squash(c.text) for c in chunk_document(d.doc_id, clean(d.text), params, tokenizer)] for d in docs
    }
    every = [c for cs in chunks.values() for c in cs]
    if args.dump:
        doc = next(d for d in docs if d.doc_id == args.dump)
        for c in chunk_document(doc.doc_id, clean(doc.text), params, tokenizer):
            print(f"--- chunk {c.ordinal} [{c.start}:{c.end}]\n{c.text}")
        return 0
    seen: set[str] = set()
    kinds: Counter[str] = Counter()
    bad = 0
    for name in args.files:
        for n, line in enumerate(Path(name).read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{name}:{n}"
            try:
                q = json.loads(line)
                qid, text, kind = q["id"], q["question"], q["kind"]
                doc_ids, answers = q["doc_ids"], q["answers"]
            except (ValueError, KeyError, TypeError) as exc:
                print(f"{where}: unreadable ({exc})")
                bad += 1
                continue
            problems = []
            if qid in seen:
                problems.append(f"duplicate id {qid}")
            seen.add(qid)
            if kind not in KINDS:
                problems.append(f"unknown kind {kind!r}")
            if not isinstance(text, str) or not text.strip():
                problems.append("empty question")
            if kind.startswith("ood"):
                if doc_ids or answers:
                    problems.append("out-of-domain questions have no doc_ids or answers")
            else:
                unknown = [d for d in doc_ids if d not in chunks]
                if unknown or not doc_ids:
                    problems.append(f"doc_ids {doc_ids} not in the corpus")
                elif not answers:
                    problems.append("no answers")
                else:
                    own = [c for d in doc_ids for c in chunks[d]]
                    found = [a for a in answers if any(squash(a) in c for c in own)]
                    if not found:
                        problems.append(f"no answer occurs in a chunk of {doc_ids}: {answers}")
                    spread = max((sum(squash(a) in c for c in every) for a in found), default=0)
                    if spread > COMMON:
                        print(f"{where}: warning: {qid} answer occurs in {spread} chunks, pick a more specific one")
                    if kind in ("paraphrase", "long", "multi"):
                        terms = set(tokenizer.term_list(text))
                        gold = [c for c in own if any(squash(a) in c for a in answers)]
                        if terms and gold:
                            overlap = max(sum(t in c for t in terms) / len(terms) for c in gold)
                            if kind == "paraphrase" and overlap > 0.6:
                                print(f"{where}: note: {qid} shares {overlap:.0%} of its terms with the passage")
            if problems:
                bad += 1
                print(f"{where}: {qid}: " + "; ".join(problems))
            kinds[kind] += 1
    print("kinds: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) + f"; total {sum(kinds.values())}")
    print(f"{bad} unusable")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
