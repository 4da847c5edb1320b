"""Wire shapes of the HTTP API (pydantic lives only at this edge)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from qa.jobs import Job
from qa.retrieval import Answer

MAX_QUESTION = 1000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff]")
# At least one such character, or the question is blank (422): not a space, a control, or a format character
# (Unicode's Cf in the BMP: soft hyphen, zero-width spaces and joiners, bidi controls, BOM). The schema publishes
# the same pattern, so a client's validator and the server agree on every string.
_FORMAT = (
    r"\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e"
    r"\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
)
VISIBLE = rf"[^\s\x00-\x1f\x7f-\x9f{_FORMAT}]"
_VISIBLE = re.compile(VISIBLE)
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def sanitize(text: str) -> str:
    """Control characters become spaces, lone surrogates U+FFFD: nothing downstream chokes on them."""
    return _SURROGATE.sub("\ufffd", _CONTROL.sub(" ", text))


class AskRequest(BaseModel):
    """A question; unknown fields are rejected so typos don't silently do nothing."""

    model_config = ConfigDict(extra="forbid", strict=True)

    question: Annotated[str, StringConstraints(min_length=1, max_length=MAX_QUESTION, pattern=VISIBLE)] = Field(
        description="Question in simplified/traditional Chinese or English, 1–1000 characters, at least one "
        "visible (format characters such as zero-width spaces are not). The encoder reads the first "
        "QA_MAX_QUESTION_TOKENS tokens (default 128, about 120 Chinese characters); BM25 reads all of it. "
        "Under QA_RATE_LIMIT a question costs 1 unit plus 1 per 64 encoder tokens.",
        examples=["日本产业空心化有哪些表现？"],
    )
    top_k: Annotated[int, Field(ge=1, le=50)] = Field(default=5, description="Passages to return, 1–50.")
    doc_ids: (
        Annotated[list[Annotated[str, StringConstraints(min_length=1, max_length=200)]], Field(max_length=100)] | None
    ) = Field(default=None, description="Restrict the search to these documents.")

    @field_validator("top_k", mode="before")
    @classmethod
    def _integral_float(cls, value: Any) -> Any:
        """JSON Schema counts 5.0 as an integer; accept it, but never booleans or strings."""
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    @field_validator("question", mode="before")
    @classmethod
    def _not_blank(cls, value: Any) -> Any:
        """Runs first so a blank question gets this message rather than the schema pattern's."""
        if isinstance(value, str):
            value = sanitize(value)
            if not _VISIBLE.search(value):
                raise ValueError("question must not be empty, whitespace or only invisible characters")
        return value


class Passage(BaseModel):
    rank: int
    score: float = Field(description="P(this passage answers the question), from the fitted ranker.")
    doc_id: str
    title: str
    chunk_id: str
    text: str = Field(description="The cleaned passage.")
    start: int = Field(description="Start offset (Python str index) into the raw source file.")
    end: int = Field(description="End offset (exclusive) into the raw source file.")
    highlights: list[tuple[int, int]] = Field(description="[start, end) spans in `text` matching question terms.")
    evidence: tuple[int, int] | None = Field(description="[start, end) of the sentence in `text` that best answers.")
    matched_terms: list[str]
    dense_rank: int | None = Field(description="Rank from the dense retriever, null if it did not return it.")
    bm25_rank: int | None = Field(description="Rank from BM25, null if it did not return it.")
    dense_score: float = Field(description="Cosine similarity of question and passage.")
    bm25_score: float = Field(description="BM25 as a fraction of the best possible for this question.")


class AskResponse(BaseModel):
    question: str
    answerable: bool
    confidence: float = Field(
        description="P(one of the top 5 passages answers the question), calibrated on the dev questions; "
        "`answerable` is confidence >= the fitted threshold."
    )
    passages: list[Passage]
    index_version: str
    took_ms: float


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class DocumentSummary(BaseModel):
    doc_id: str
    title: str
    source: str
    chars: int
    chunks: int


class DocumentList(BaseModel):
    documents: list[DocumentSummary]
    index_version: str


class DocumentFull(DocumentSummary):
    text: str = Field(description="The raw source file text that passage offsets index into.")
    index_version: str


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    index_version: str | None = None
    detail: str | None = None


class Info(BaseModel):
    version: str
    pid: int = Field(description="The worker process that answered (with QA_WORKERS > 1 there are several).")
    model: dict[str, Any]
    index: dict[str, Any]
    settings: dict[str, Any]


def answer_response(answer: Answer) -> AskResponse:
    return AskResponse(
        question=answer.question,
        answerable=answer.answerable,
        confidence=round(answer.confidence, 4),
        index_version=answer.index_version,
        took_ms=answer.took_ms,
        passages=[
            Passage(
                rank=h.rank,
                score=h.score,
                doc_id=h.chunk.doc_id,
                title=h.title,
                chunk_id=h.chunk.chunk_id,
                text=h.chunk.text,
                start=h.chunk.start,
                end=h.chunk.end,
                highlights=h.highlights,
                evidence=h.evidence,
                matched_terms=h.matched_terms,
                dense_rank=h.dense_rank,
                bm25_rank=h.bm25_rank,
                dense_score=h.dense_score,
                bm25_score=h.bm25_score,
            )
            for h in answer.hits
        ],
    )


class RebuildRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    force: bool = Field(default=False, description="Re-embed every document, not only changed ones.")


class JobChange(BaseModel):
    op: str = Field(description='"put" or "delete"')
    doc_id: str


class JobProgress(BaseModel):
    stage: str = Field(description="queued, waiting for the build lock, reading corpus, chunking, embedding, …, done")
    done: int
    total: int
    fraction: float = Field(description="Rough share of the job done, 0–1.")


class JobOut(BaseModel):
    id: str
    kind: str = Field(description="put, delete, rebuild, or startup (a stale index found when the server started)")
    state: str = Field(description="queued, running, succeeded, failed, or interrupted (the server stopped)")
    force: bool
    changes: list[JobChange] = Field(description="Document changes this build applies (changes coalesce).")
    created_at: str
    started_at: str | None
    finished_at: str | None
    duration_s: float | None
    progress: JobProgress
    chunks_embedded: int
    documents: int | None
    chunks: int | None
    index_version_before: str | None
    index_version: str | None = Field(description="The snapshot this job produced, once it succeeded.")
    error: str | None


class JobList(BaseModel):
    jobs: list[JobOut]


def job_out(job: Job) -> JobOut:
    return JobOut(
        id=job.id,
        kind=job.kind,
        state=job.state,
        force=job.force,
        changes=[JobChange(**c) for c in job.changes],
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        duration_s=job.duration_s,
        progress=JobProgress(stage=job.stage.value, done=job.done, total=job.total, fraction=round(job.fraction, 3)),
        chunks_embedded=job.chunks_embedded,
        documents=job.documents,
        chunks=job.chunks,
        index_version_before=job.index_version_before,
        index_version=job.index_version,
        error=job.error,
    )
