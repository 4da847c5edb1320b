"""Retrieval evaluation: Hit@k, MRR@k, answerable rates, latency — through the same code as /v1/ask."""

from __future__ import annotations

import glob
import hashlib
import json
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from qa.retrieval import Answer, Mode

if TYPE_CHECKING:
    from qa.service import Service

_WS = re.compile(r"\s+")
QUESTION_FILES = ("tests/data/corpus_qa.jsonl", "tests/data/questions/*.jsonl")
CMRC_TRIAL = "../shared/data/cmrc2018_trial.json"


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    kind: str
    lang: str
    doc_ids: tuple[str, ...]
    answers: tuple[str, ...]

    @property
    def in_domain(self) -> bool:
        return not self.kind.startswith("ood")  # "ood" (other domains) and "ood_near" (near the topic)


@dataclass(frozen=True)
class Outcome:
    question: Question
    first_rank: int | None  # 1-based rank of the first relevant passage, None if none in the list
    answer_in_top5: bool
    answerable: bool
    confidence: float
    latency_ms: float


def hit_at_k(ranks: Iterable[int | None], k: int) -> float:
    """Share of questions whose first relevant passage is within the top k."""
    ranks = list(ranks)
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks) if ranks else 0.0


def mrr_at_k(ranks: Iterable[int | None], k: int) -> float:
    """Mean reciprocal rank of the first relevant passage, counting 0 beyond rank k."""
    ranks = list(ranks)
    return sum(1 / r for r in ranks if r is not None and r <= k) / len(ranks) if ranks else 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    idx = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[idx]


def split_of(question_id: str) -> str:
    """ "dev" or "test", fixed by a hash of the id: tune on dev, report test; a new question never moves others."""
    return "dev" if int(hashlib.sha256(question_id.encode()).hexdigest()[:8], 16) % 2 == 0 else "test"


def in_split(questions: list[Question], split: str) -> list[Question]:
    return questions if split == "all" else [q for q in questions if split_of(q.id) == split]


def as_out_of_domain(questions: list[Question]) -> list[Question]:
    """Questions of another corpus asked against this one: free negatives."""
    return [replace(q, kind="ood_cross", doc_ids=(), answers=()) for q in questions]


def load_question_files(patterns: Iterable[str]) -> list[Question]:
    paths = sorted({p for pattern in patterns for p in glob.glob(pattern)})
    if not paths:
        raise FileNotFoundError(f"no question files match {list(patterns)}")
    return [q for p in paths for q in load_questions(Path(p))]


def squash(text: str) -> str:
    return _WS.sub("", text)


def load_questions(path: Path) -> list[Question]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            out.append(
                Question(
                    d["id"], d["question"], d["kind"], d.get("lang", "zh"), tuple(d["doc_ids"]), tuple(d["answers"])
                )
            )
    return out


def contains_answer(text: str, answers: tuple[str, ...]) -> bool:
    flat = squash(text)
    return any(squash(a) in flat for a in answers)


Relevance = Callable[[Question, Answer], int | None]


def first_answer_rank(q: Question, answer: Answer) -> int | None:
    """Our corpus set: a hit is a passage containing a gold answer string (whitespace-insensitive)."""
    for hit in answer.hits:
        if contains_answer(hit.chunk.text, q.answers):
            return hit.rank
    return None


def first_doc_rank(q: Question, answer: Answer) -> int | None:
    """CMRC: a hit is a passage from the question's own paragraph."""
    for hit in answer.hits:
        if hit.chunk.doc_id in q.doc_ids:
            return hit.rank
    return None


def evaluate(
    ask: Callable[[str, Mode], Answer], questions: list[Question], mode: Mode, relevance: Relevance
) -> list[Outcome]:
    out = []
    for q in questions:
        answer = ask(q.question, mode)
        top5 = [h.chunk.text for h in answer.hits[:5]]
        out.append(
            Outcome(
                question=q,
                first_rank=relevance(q, answer) if q.in_domain else None,
                answer_in_top5=q.in_domain and any(contains_answer(t, q.answers) for t in top5),
                answerable=answer.answerable,
                confidence=answer.confidence,
                latency_ms=answer.took_ms,
            )
        )
    return out


@dataclass(frozen=True)
class Summary:
    label: str
    n: int
    n_ood: int
    hit1: float
    hit5: float
    hit10: float
    mrr10: float
    answer_top5: float
    ood_refused: float | None  # share of out-of-domain questions answered `answerable=false`
    in_domain_answerable: float | None
    p50_ms: float
    p95_ms: float


def summarize(label: str, outcomes: list[Outcome]) -> Summary:
    ind = [o for o in outcomes if o.question.in_domain]
    ood = [o for o in outcomes if not o.question.in_domain]
    ranks = [o.first_rank for o in ind]
    lat = [o.latency_ms for o in outcomes]
    return Summary(
        label=label,
        n=len(ind),
        n_ood=len(ood),
        hit1=hit_at_k(ranks, 1),
        hit5=hit_at_k(ranks, 5),
        hit10=hit_at_k(ranks, 10),
        mrr10=mrr_at_k(ranks, 10),
        answer_top5=sum(o.answer_in_top5 for o in ind) / len(ind) if ind else 0.0,
        ood_refused=sum(not o.answerable for o in ood) / len(ood) if ood else None,
        in_domain_answerable=sum(o.answerable for o in ind) / len(ind) if ind and ood else None,
        p50_ms=percentile(lat, 50),
        p95_ms=percentile(lat, 95),
    )


def by_kind(outcomes: list[Outcome]) -> dict[str, list[Outcome]]:
    kinds: dict[str, list[Outcome]] = {}
    for o in outcomes:
        kinds.setdefault(o.question.kind, []).append(o)
    return kinds


def markdown(rows: list[Summary]) -> str:
    head = (
        "| set / mode | n | Hit@1 | Hit@5 | Hit@10 | MRR@10 | answer in top 5 | n OOD | OOD refused "
        "| in-domain answerable | p50 ms | p95 ms |"
    )
    lines = [head, "|" + "---|" * 12]
    for s in rows:

        def f(x: float | None, show: bool = True) -> str:
            return "–" if x is None or not show else f"{x:.3f}"

        has = s.n > 0
        lines.append(
            f"| {s.label} | {s.n} | {f(s.hit1, has)} | {f(s.hit5, has)} | {f(s.hit10, has)} | {f(s.mrr10, has)} "
            f"| {f(s.answer_top5, has)} | {s.n_ood} | {f(s.ood_refused)} | {f(s.in_domain_answerable)} "
            f"| {s.p50_ms:.1f} | {s.p95_ms:.1f} |"
        )
    return "\n".join(lines)


def cmrc_corpus(path: Path, out_dir: Path) -> list[Question]:
    """Write each CMRC paragraph as one document into `out_dir`; return its questions."""
    data = json.loads(path.read_text(encoding="utf-8"))
    questions = []
    for article in data["data"]:
        for i, para in enumerate(article["paragraphs"]):
            doc_id = f"{para.get('id') or article.get('id', 'p')}_{i}".replace("/", "_")
            (out_dir / f"{doc_id}.txt").write_text(para["context"], encoding="utf-8")
            for qa in para["qas"]:
                answers = tuple(a["text"] for a in qa["answers"] if a["text"].strip())
                questions.append(Question(qa["id"], qa["question"], "cmrc", "zh", (doc_id,), answers))
    return questions


def temp_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


MODES: tuple[Mode, ...] = ("bm25", "dense", "hybrid")


def run_set(
    service: Service, questions: list[Question], modes: Iterable[Mode], relevance: Relevance, name: str
) -> list[Summary]:
    """Every mode on one question set, plus the per-kind breakdown of the hybrid run."""
    rows = []
    for mode in modes:
        outcomes = evaluate(lambda q, m: service.ask(q, top_k=10, mode=m), questions, mode, relevance)
        rows.append(summarize(f"{name} · {mode}", outcomes))
        if mode == "hybrid":
            kinds = by_kind(outcomes)
            if len(kinds) > 1:
                rows += [summarize(f"{name} · hybrid · {kind}", outs) for kind, outs in sorted(kinds.items())]
    return rows


def cmrc_service(service, data_path: Path):  # type: ignore[no-untyped-def]
    """A service over a temporary corpus/index with one document per CMRC paragraph."""
    from qa.service import Service

    root = temp_dir("qa-cmrc-")
    (root / "corpus").mkdir()
    questions = cmrc_corpus(data_path, root / "corpus")
    settings = replace(
        service.settings,
        corpus_dir=root / "corpus",
        index_dir=root / "index",  # Milvus Lite follows it (a fresh data dir) unless QA_MILVUS_URI is set
        model_cache=service.settings.models_dir,
        milvus_prefix=f"{service.settings.milvus_prefix}_cmrc",  # never the served collections on a cluster
    )
    cmrc = Service(settings, service.embedder, service.tokenizer)
    cmrc.build()
    return cmrc, questions
