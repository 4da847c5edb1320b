"""`qa` command line: build, stats, ask, eval, serve."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict, replace
from pathlib import Path

from qa.config import Settings
from qa.errors import QAError
from qa.evaluation import CMRC_TRIAL, QUESTION_FILES

log = logging.getLogger("qa")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        if getattr(args, "corpus", None):
            settings = replace(settings, corpus_dir=Path(args.corpus))
        if getattr(args, "index", None):
            settings = replace(settings, index_dir=Path(args.index))
        from qa.logs import setup_logging

        setup_logging(settings.log_level)
        return int(args.func(args, settings) or 0)
    except QAError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qa", description="Retrieval QA over Chinese documents")
    sub = p.add_subparsers(required=True)

    def add(name: str, func, help: str) -> argparse.ArgumentParser:  # type: ignore[no-untyped-def]
        sp = sub.add_parser(name, help=help)
        sp.add_argument("--corpus", help="corpus directory (QA_CORPUS_DIR)")
        sp.add_argument("--index", help="index directory (QA_INDEX_DIR)")
        sp.set_defaults(func=func)
        return sp

    b = add("build", cmd_build, "build or refresh the index")
    b.add_argument("--force", action="store_true", help="re-embed everything")
    add("stats", cmd_stats, "print index statistics")
    a = add("ask", cmd_ask, "ask a question")
    a.add_argument("question")
    a.add_argument("--top-k", type=int, default=5)
    a.add_argument("--json", action="store_true", help="print the API's JSON")
    e = add("eval", cmd_eval, "evaluate retrieval quality")
    e.add_argument("--set", choices=["corpus", "cmrc", "all"], default="corpus")
    e.add_argument("--mode", choices=["bm25", "dense", "hybrid", "all"], default="all")
    e.add_argument("--split", choices=["dev", "test", "all"], default="test", help="report on (default: test)")
    e.add_argument("--questions", nargs="+", default=list(QUESTION_FILES), help="question files (globs)")
    e.add_argument("--cmrc", default=CMRC_TRIAL)
    c = add("calibrate", cmd_calibrate, "fit the ranker and the confidence on the dev split")
    c.add_argument("--questions", nargs="+", default=list(QUESTION_FILES), help="question files (globs)")
    c.add_argument("--cmrc", default=CMRC_TRIAL)
    c.add_argument("--precision", type=float, default=None, help="of answerable=true on dev (default 0.925)")
    c.add_argument("--out", help="where to write the fit (default: <model cache>/ranker-<fingerprint>.json)")
    c.add_argument("--packaged", action="store_true", help="write it into qa/data, shipped with the code")
    add("serve", cmd_serve, "build the index if needed, then serve HTTP")
    return p


def _service(settings: Settings):  # type: ignore[no-untyped-def]
    from qa.service import Service

    return Service(settings)


def cmd_build(args: argparse.Namespace, settings: Settings) -> int:
    result = _service(settings).build(force=args.force)
    if not result.changed:
        print(f"index {result.version} is up to date ({result.documents} docs, {result.chunks} chunks): nothing to do")
    else:
        print(
            f"built {result.version}: {result.documents} docs, {result.chunks} chunks "
            f"({result.embedded} embedded, {result.chunks - result.embedded} reused, {result.removed} docs removed) "
            f"in {result.seconds:.1f}s, {result.chunks_per_second:.1f} chunks/s"
        )
    return 0


def cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    from qa.embedding import Embedder
    from qa.stores.factory import open_store

    snap = open_store(settings).open()
    records = [snap.document_record(d.doc_id) for d in snap.documents()]
    chunks = [c for r in records if r is not None for c in r.chunks]
    tokens = sum(len(t) for r in records if r is not None for t in r.terms)
    model = snap.manifest.model
    embedder = Embedder(settings)
    counts = [embedder.token_count(c.text, model.passage_prompt) for c in chunks]
    print(f"index      {snap.version} ({settings.store}: {snap.location})")
    print(f"documents  {len(records)}")
    print(f"chunks     {len(snap)} ({sum(len(c.text) for c in chunks)} chars, {tokens} BM25 terms)")
    print(f"model      {model.name} [{model.fingerprint}], dim {model.dim}")
    if counts:
        print(
            f"tokens     per chunk with prompt: min {min(counts)}, mean {sum(counts) / len(counts):.0f}, "
            f"max {max(counts)} (model limit {model.max_seq_length})"
        )
    print(f"chunker    {json.dumps(asdict(snap.manifest.chunker))}")
    print(f"dense      {json.dumps(snap.manifest.dense_index.as_dict())}")
    size = snap.disk_bytes()
    if size is not None:
        print(f"size       {size / 1e6:.2f} MB on disk")
    return 0


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    from qa.serve.schemas import answer_response

    answer = _service(settings).ask(args.question, top_k=args.top_k)
    if args.json:
        print(answer_response(answer).model_dump_json(indent=2))
        return 0
    print(f"answerable: {answer.answerable} (confidence {answer.confidence:.3f}) · index {answer.index_version}")
    for h in answer.hits:
        c = h.chunk
        print(f"\n#{h.rank} score {h.score:.3f} · {h.title} · {c.doc_id} [{c.start}:{c.end}]")
        print("   " + c.text.replace("\n", "\n   "))
    return 0


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from qa import evaluation as ev

    service = _service(settings)
    modes = ev.MODES if args.mode == "all" else (args.mode,)
    corpus_qs = ev.in_split(ev.load_question_files(args.questions), args.split)
    rows = []
    cmrc_qs: list[ev.Question] = []
    if args.set in ("cmrc", "all"):
        cmrc, all_cmrc = ev.cmrc_service(service, Path(args.cmrc))
        cmrc_qs = ev.in_split(all_cmrc, args.split)
    if args.set in ("corpus", "all"):
        service.build(progress=False)
        rows += ev.run_set(service, corpus_qs, modes, ev.first_answer_rank, f"corpus {args.split}")
        if cmrc_qs:  # CMRC's questions against our corpus: all out of domain
            rows += ev.run_set(service, ev.as_out_of_domain(cmrc_qs), ("hybrid",), ev.first_answer_rank, "cmrc→corpus")
    if cmrc_qs:
        rows += ev.run_set(cmrc, cmrc_qs, modes, ev.first_doc_rank, f"cmrc {args.split}")
        rows += ev.run_set(cmrc, ev.as_out_of_domain(corpus_qs), ("hybrid",), ev.first_doc_rank, "corpus→cmrc")
    print(ev.markdown(rows))
    return 0


def cmd_calibrate(args: argparse.Namespace, settings: Settings) -> int:
    from qa import calibration as cal
    from qa import evaluation as ev
    from qa.ranking import file_name, packaged

    service = _service(settings)
    service.build(progress=False)
    corpus_qs = ev.in_split(ev.load_question_files(args.questions), "dev")
    cmrc, all_cmrc = ev.cmrc_service(service, Path(args.cmrc))
    cmrc_qs = ev.in_split(all_cmrc, "dev")
    examples = [
        *cal.collect(service, corpus_qs, cal.answer_in, "corpus"),
        *cal.collect(service, ev.as_out_of_domain(cmrc_qs), cal.never, "cmrc→corpus"),
        *cal.collect(cmrc, cmrc_qs, cal.own_paragraph, "cmrc"),
        *cal.collect(cmrc, ev.as_out_of_domain(corpus_qs), cal.never, "corpus→cmrc"),
    ]
    fingerprint = service.embedder.identity.fingerprint
    ranker = cal.fit(examples, fingerprint, args.precision or cal.PRECISION)
    if args.packaged:
        out = packaged(fingerprint)
    else:
        out = Path(args.out) if args.out else settings.models_dir / file_name(fingerprint)
    ranker.save(out)
    oof = ranker.fitted["out_of_fold"]
    print(f"fitted on {ranker.fitted['questions']} (dev split), threshold {ranker.threshold}")
    print(f"out of fold: ROC AUC {oof['roc_auc']}, ECE {oof['ece']}")
    print("| confidence | n | predicted | observed |\n|---|---|---|---|")
    for r in oof["reliability"]:
        print(f"| {r['bin']} | {r['n']} | {r['predicted']} | {r['observed']} |")
    print(f"written to {out}; `qa build` (or a running server's next rebuild) puts it into the index")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from qa.serve.server import serve

    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
