"""Chunks cut Chinese at sentence ends, never inside a word, and point to their raw spans."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CORPUS
from qa.chunking import Chunk, ChunkParams, chunk_document, sentences
from qa.cleaning import clean
from qa.config import Settings
from qa.corpus import load_corpus
from qa.tokens import Tokenizer

DOCS = {d.doc_id: d for d in load_corpus(CORPUS)}
DEFAULTS = Settings()
PARAMS = ChunkParams(DEFAULTS.chunk_size, DEFAULTS.chunk_overlap, DEFAULTS.chunk_max)


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def is_subsequence(small: str, big: str) -> bool:
    it = iter(big)
    return all(ch in it for ch in small)


@pytest.fixture(scope="module")
def chunks(tokenizer: Tokenizer) -> list[Chunk]:
    return [c for d in DOCS.values() for c in chunk_document(d.doc_id, clean(d.text), PARAMS, tokenizer)]


def test_chunk_span_points_into_source(chunks: list[Chunk]) -> None:
    for c in chunks:
        raw = squash(DOCS[c.doc_id].text[c.start : c.end])
        text = squash(c.text)
        assert is_subsequence(text, raw), c.chunk_id
        assert len(text) >= 0.9 * len(raw), (c.chunk_id, len(text), len(raw))


def test_chunk_span_starts_and_ends_on_its_text(chunks: list[Chunk]) -> None:
    for c in chunks:
        raw = DOCS[c.doc_id].text
        assert raw[c.start] == c.text[0] and raw[c.end - 1] == c.text[-1]


def test_no_noise_in_any_chunk(chunks: list[Chunk]) -> None:
    for c in chunks:
        for noise in ("![]()", "资料来源", "特别声明", "Notice: The content above", "［1", "①"):
            assert noise not in c.text
        assert not re.search(r"(?:\d{1,2}\.\s*){5,}", c.text)


def test_sizes_stay_within_bounds(chunks: list[Chunk]) -> None:
    assert all(1 <= len(c.text) <= PARAMS.max_size for c in chunks)
    assert sum(len(c.text) for c in chunks) / len(chunks) >= PARAMS.size / 2


def test_chunk_never_cuts_a_jieba_word_or_number(chunks: list[Chunk], tokenizer: Tokenizer) -> None:
    for doc_id, doc in DOCS.items():
        text = clean(doc.text).text
        bounds = {0, len(text)} | {w.end for w in tokenizer.words(text)}
        c_text = [c for c in chunks if c.doc_id == doc_id]
        for c in c_text:
            start = text.find(c.text)
            assert start >= 0
            assert start in bounds and start + len(c.text) in bounds, c.text[:20]
            after = text[start + len(c.text) : start + len(c.text) + 1]
            assert not (c.text[-1].isdigit() and after[:1].isdigit())


def test_sentences_keep_closing_quotes() -> None:
    text = "他说：“这是第一句。”然后是第二句！（括号句。）最后"
    parts = [text[s.start : s.end] for s in sentences(text)]
    assert parts == ["他说：“这是第一句。”", "然后是第二句！", "（括号句。）", "最后"]


def test_heading_stays_with_following_text(chunks: list[Chunk]) -> None:
    heading = re.compile(r"^(?:[一二三四五六七八九十]+、|（[一二三四五六七八九十]+）)")
    for c in chunks:
        last_line = c.text.split("\n")[-1]
        assert not (heading.match(last_line) and len(last_line) <= 40 and not last_line.endswith("。")), c.text[-50:]


def test_chunk_ids_are_stable_across_runs(tokenizer: Tokenizer) -> None:
    doc = DOCS["002_ba0bb63e0258bd58"]
    a = chunk_document(doc.doc_id, clean(doc.text), PARAMS, tokenizer)
    b = chunk_document(doc.doc_id, clean(doc.text), PARAMS, tokenizer)
    assert [c.chunk_id for c in a] == [c.chunk_id for c in b]
    assert len({c.chunk_id for c in a}) == len(a)


def test_long_sentence_is_split_at_a_safe_word_boundary(tokenizer: Tokenizer) -> None:
    sentence = "日本运输机械行业海外生产比率已达到44.4%，" * 40 + "结束。"
    chunks = chunk_document("x", clean(sentence), ChunkParams(100, 0, 150), tokenizer)
    assert len(chunks) > 5
    for c in chunks:
        assert len(c.text) <= 150
        assert not c.text.startswith(("4%", ".4%", "%"))
        assert not c.text.endswith(("44", "44."))


CJK = st.text(alphabet="日本产业空心化经济安全同盟美国半导体供应链投资比率", min_size=1, max_size=30)
WORDS = st.sampled_from(["44.4%", "5500亿美元", "2 纳米", "Data Free Flow with Trust", "U.S.-Japan", "JBIC", "2021年"])
PUNCT = st.sampled_from(
    ["。", "！", "？", "；", "，", "”", "\n\n", " ", "\n一、标题\n", "![]()", "［3］", "资料来源：Wind\n"]
)


@settings(max_examples=120, deadline=None)
@given(st.lists(st.one_of(CJK, WORDS, PUNCT), min_size=1, max_size=80).map("".join))
def test_generated_text_chunks_point_into_source(raw: str) -> None:
    tokenizer = _TOKENIZER
    for c in chunk_document("g", clean(raw), ChunkParams(60, 15, 100), tokenizer):
        span = squash(raw[c.start : c.end])
        assert is_subsequence(squash(c.text), span)
        assert len(c.text) <= 100
        assert c.text == c.text.strip()


_TOKENIZER = Tokenizer()
