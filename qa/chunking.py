"""Sentence-aware chunking of cleaned Chinese text; every chunk keeps its raw `[start, end)` span.

Sentences end at `。！？；…` (and `.?!` before a space), closing quotes and
brackets staying with their sentence; a paragraph break also ends one. Sentences
are packed up to `chunk_size` characters, the last ~`overlap` characters of
sentences repeat at the head of the next chunk, a heading never ends a chunk,
and a sentence longer than `chunk_size` is cut at a jieba word boundary that
splits no number, percentage or Latin word.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from qa.cleaning import CleanText, is_heading
from qa.tokens import Tokenizer

_SENTENCE_END = re.compile(r"(?:[。！？；]|…+|[.?!;](?=\s))[”’」』）)\]】》\"']*")
_SOFT_BREAK = "，、,：:"
_LATIN_RUN = re.compile(r"[A-Za-z0-9.%％]")


@dataclass(frozen=True)
class ChunkParams:
    size: int = 300
    overlap: int = 100  # the defaults are Settings' (chunk_size, chunk_overlap, chunk_max)
    max_size: int = 450


@dataclass(frozen=True)
class Chunk:
    doc_id: str
    chunk_id: str
    ordinal: int
    start: int  # raw offsets: raw_text[start:end] is the cited source span
    end: int
    text: str  # cleaned text shown to the reader


@dataclass(frozen=True)
class _Sentence:
    start: int  # cleaned offsets
    end: int
    heading: bool

    @property
    def size(self) -> int:
        return self.end - self.start


def sentences(text: str) -> list[_Sentence]:
    """Sentence spans of cleaned text, paragraph by paragraph, whitespace trimmed."""
    out: list[_Sentence] = []
    for para in re.finditer(r"[^\n]+", text):
        heading = is_heading(para.group())
        pos = para.start()
        cuts = [m.end() + para.start() for m in _SENTENCE_END.finditer(para.group())]
        for cut in [*cuts, para.end()]:
            span = _trim(text, pos, cut)
            if span:
                out.append(_Sentence(span[0], span[1], heading and pos == para.start()))
            pos = cut
    return out


def windows(text: str) -> list[tuple[int, int]]:
    """The sentence spans of a chunk's text: embedded at build time, they score a chunk by its best
    sentence and give the evidence sentence without an encode at request time."""
    return [(s.start, s.end) for s in sentences(text)] or [(0, len(text))]


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


def split_long(text: str, sent: _Sentence, limit: int, tokenizer: Tokenizer) -> list[_Sentence]:
    """Cut a sentence over `limit` chars at word boundaries, preferring just after a comma."""
    if sent.size <= limit:
        return [sent]
    body = text[sent.start : sent.end]
    bounds = [w.end for w in tokenizer.words(body)]
    safe = [b for b in bounds if 0 < b < len(body) and not _inside_run(body, b)]
    pieces: list[tuple[int, int]] = []
    begin = 0
    while len(body) - begin > limit:
        window = [b for b in safe if begin < b <= begin + limit]
        if not window:  # no safe boundary (one enormous token): cut at any word boundary
            window = [b for b in bounds if begin < b <= begin + limit] or [begin + limit]
        soft = [b for b in window if body[b - 1] in _SOFT_BREAK and b - begin >= limit // 2]
        cut = (soft or window)[-1]
        pieces.append((begin, cut))
        begin = cut
    pieces.append((begin, len(body)))
    out: list[_Sentence] = []
    for a, b in pieces:
        span = _trim(text, sent.start + a, sent.start + b)
        if span:
            out.append(_Sentence(span[0], span[1], sent.heading and not out))
    return out


def _inside_run(body: str, b: int) -> bool:
    return bool(_LATIN_RUN.match(body[b - 1]) and _LATIN_RUN.match(body[b]))


def chunk_document(doc_id: str, clean: CleanText, params: ChunkParams, tokenizer: Tokenizer) -> list[Chunk]:
    text = clean.text
    sents = [p for s in sentences(text) for p in split_long(text, s, params.size, tokenizer)]
    groups = [g for seg in _segments(sents, clean.breaks) for g in _pack(seg, params)]
    groups = _merge_small(groups, clean, params)
    chunks = []
    for ordinal, group in enumerate(groups):
        start, end = group[0].start, group[-1].end
        raw_start, raw_end = clean.raw_span(start, end)
        body = text[start:end]
        digest = hashlib.sha1(f"{doc_id}\x00{raw_start}\x00{raw_end}\x00{body}".encode()).hexdigest()
        chunks.append(Chunk(doc_id, digest[:16], ordinal, raw_start, raw_end, body))
    return chunks


def _pack(sents: list[_Sentence], params: ChunkParams) -> list[list[_Sentence]]:
    groups: list[list[_Sentence]] = []
    cur: list[_Sentence] = []
    for sent in sents:
        if cur and _span([*cur, sent]) > params.size and not all(s.heading for s in cur):
            carry = _trailing_headings(cur)
            done = cur[: len(cur) - len(carry)]
            groups.append(done)
            cur = _overlap(done, params.overlap) + carry
            while cur and _span([*cur, sent]) > params.max_size and not cur[0].heading:
                cur = cur[1:]
        cur.append(sent)
    if cur:
        if groups and _span(cur) < params.size // 4 and _span(groups[-1] + cur) <= params.max_size:
            tail = [s for s in cur if s.start >= groups[-1][-1].end]
            groups[-1] = groups[-1] + tail
        else:
            groups.append(cur)
    return groups


def _segments(sents: list[_Sentence], breaks: frozenset[int]) -> list[list[_Sentence]]:
    """Runs of sentences between hard breaks (where noise was dropped)."""
    segs: list[list[_Sentence]] = [[]]
    for sent in sents:
        if segs[-1] and any(segs[-1][-1].end <= b <= sent.start for b in breaks):
            segs.append([])
        segs[-1].append(sent)
    return [s for s in segs if s]


def _merge_small(groups: list[list[_Sentence]], clean: CleanText, params: ChunkParams) -> list[list[_Sentence]]:
    """Fold a chunk under a quarter of the target size into its predecessor if little noise lies between."""
    out: list[list[_Sentence]] = []
    for group in groups:
        if out and _span(group) < params.size // 4 and _span(out[-1] + group) <= params.max_size:
            merged = out[-1] + [s for s in group if s.start >= out[-1][-1].end]
            raw_start, raw_end = clean.raw_span(merged[0].start, merged[-1].end)
            kept = _nonspace(clean.text[merged[0].start : merged[-1].end])
            if kept >= 0.95 * _nonspace(clean.raw[raw_start:raw_end]):
                out[-1] = merged
                continue
        out.append(group)
    return out


def _nonspace(text: str) -> int:
    return sum(1 for ch in text if not ch.isspace())


def _span(group: list[_Sentence]) -> int:
    return group[-1].end - group[0].start


def _trailing_headings(cur: list[_Sentence]) -> list[_Sentence]:
    n = 0
    while n < len(cur) - 1 and cur[len(cur) - 1 - n].heading:
        n += 1
    return cur[len(cur) - n :]


def _overlap(done: list[_Sentence], budget: int) -> list[_Sentence]:
    """Trailing sentences of the finished chunk, at most `budget` chars, never all of it."""
    out: list[_Sentence] = []
    for sent in reversed(done[1:]):
        size = _span([sent, *out]) if out else sent.size
        if size > budget:
            break
        out.insert(0, sent)
    return out
