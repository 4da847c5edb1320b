"""Review #17, findings 5 and 6: what an upload must look like to be indexed, and who can read what was written.

Finding 5: junk and mislabelled bodies (random bytes, UTF-8 sent as GB18030, zero-width-only text, filler
bytes) are refused with 422 invalid_document and a reason; titles are one visible line. Finding 6: files
written by temp file + rename keep the target's mode, or get the umask default, never mkstemp's 0600.
Fast unit tests first; the HTTP tests at the end run the real app with the real model on a FAISS index.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import opencc
import pytest
from charset_normalizer.md import mess_ratio
from fastapi.testclient import TestClient

from conftest import CORPUS, QUESTIONS, ROOT, assert_error, serving
from qa.config import Settings
from qa.corpus import load_corpus
from qa.documents import CorpusWriter, Upload, clean_title, parse_upload
from qa.embedding import Embedder
from qa.errors import InvalidDocumentError
from qa.files import file_mode, keep_file_mode, set_dir_mode, umask
from qa.jobs import FINISHED, Job, JobStore
from qa.serve.app import create_app
from qa.service import Service
from qa.stores.faiss import new_snapshot_dir, switch_pointer
from qa.textcheck import MESS_THRESHOLD
from qa.tokens import Tokenizer

LIMIT = 10_000_000
CORPUS_FILES = sorted(CORPUS.glob("*.txt"))
TOKEN = "input-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE_DOC = "002_ba0bb63e0258bd58"


def random_high_bytes(seed: int, n: int, low: int = 0x81, high: int = 0xFE) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.randrange(low, high + 1) for _ in range(n))


def refusal(body: bytes, content_type: str = "text/plain") -> str:
    """The message of the 422 that parse_upload must raise."""
    with pytest.raises(InvalidDocumentError) as info:
        parse_upload("doc", body, content_type, LIMIT)
    assert info.value.code == "invalid_document" and info.value.status == 422
    return info.value.message


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- finding 5: junk is not a document ------------------------------------------------------------


@pytest.mark.parametrize("n", [500, 4000, 20_000])
@pytest.mark.parametrize("seed", range(5))
def test_random_high_bytes_without_a_charset_are_refused_as_mojibake(seed: int, n: int) -> None:
    message = refusal(random_high_bytes(seed, n))
    assert "does not look like text in a known encoding" in message and "mojibake" in message


@pytest.mark.parametrize("seed", range(5))
def test_random_high_bytes_under_a_gb18030_label_are_refused_too(seed: int) -> None:
    assert "mojibake" in refusal(random_high_bytes(seed, 4000), "text/plain; charset=gb18030")


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes_over_the_whole_high_range_are_refused(seed: int) -> None:
    """0x80 and 0xFF are no GB18030 lead bytes: such bodies fail to decode at all (a 422 since before)."""
    refusal(random_high_bytes(seed, 4000, 0x80, 0xFF))


def test_the_reviewers_repeated_byte_body_is_refused() -> None:
    """The review's reproduction makes a fresh Random(0) per byte: 4000 times one byte, 忖 2000 times."""
    body = bytes(random.Random(0).randrange(0x80, 0x100) for _ in range(4000))
    assert "does not look like text in a known encoding" in refusal(body)


@pytest.mark.parametrize(("byte", "shown"), [(b"\xcc", "烫"), (b"\xcd", "屯")])
def test_fill_bytes_read_as_gb18030_are_refused(byte: bytes, shown: str) -> None:
    """MSVC fills uninitialised stack with 0xCC and heap with 0xCD: 烫烫烫 and 屯屯屯 when read as GBK."""
    message = refusal(byte * 600)
    assert "does not look like text in a known encoding" in message and "filler" in message and shown in message


def test_text_of_replacement_characters_is_refused() -> None:
    """锟斤拷 in GBK is the UTF-8 of U+FFFD U+FFFD: what an earlier conversion lost, whatever the label says."""
    lost = "锟斤拷".encode("gb18030") * 40
    assert "U+FFFD" in refusal(lost)
    assert "锟斤拷" in refusal(lost, "text/plain; charset=gbk")  # valid UTF-8 under a GB label, shown as read


@pytest.mark.parametrize("label", ["gb18030", "GBK", "gb2312"])
def test_utf8_sent_under_a_gb_label_is_refused_with_what_it_would_read_as(label: str) -> None:
    message = refusal("日本经济".encode(), f"text/plain; charset={label}")
    assert "UTF-8" in message and "charset=utf-8" in message
    assert "鏃ユ湰" in message  # what 日本 would have been stored as


def test_gb18030_text_under_its_label_is_accepted() -> None:
    upload = parse_upload("doc", "日本经济".encode("gb18030"), "text/plain; charset=gb18030", LIMIT)
    assert upload.text == "日本经济" and upload.encoding == "gb18030"


@pytest.mark.parametrize(
    "invisible", ["\u200b" * 50, "\u200e\u202e\u2066\u2069", "\ufeff\u2060\u00ad", "\u200b \u200c\n\u200d"]
)
def test_a_document_of_format_characters_only_is_empty(invisible: str) -> None:
    assert "empty" in refusal(invisible.encode())


@pytest.mark.parametrize(
    "text",
    [
        "\ue000" * 100 + "日本",  # private use
        "\ufdd0" * 100 + "日本",  # noncharacters: unassigned for good
        "日本" + "\u200b\u200c" * 60,  # zero-width padding around two characters
    ],
)
def test_text_that_is_mostly_unassigned_private_use_or_format_characters_is_refused(text: str) -> None:
    for body in (text.encode(), text.encode("gb18030")):
        assert "mostly invisible" in refusal(body)


def test_a_few_format_characters_in_real_text_are_accepted() -> None:
    text = CORPUS_FILES[2].read_text(encoding="utf-8")[:600].replace("。", "。\u200b").replace("产业", "产\u00ad业")
    for body, content_type in ((text.encode(), "text/plain"), (text.encode("gb18030"), "text/plain")):
        assert parse_upload("doc", body, content_type, LIMIT).text == text


def legitimate_texts() -> list[tuple[str, str]]:
    s2t = opencc.OpenCC("s2t")
    corpus = [(p.stem, p.read_text(encoding="utf-8")) for p in CORPUS_FILES]
    questions = [json.loads(line)["question"] for line in QUESTIONS.read_text(encoding="utf-8").splitlines()]
    return [
        *corpus,
        *((f"{name} s2t", s2t.convert(text)) for name, text in corpus),
        ("one sentence", "日本产业空心化。"),
        ("one traditional sentence", "日本產業空心化。"),
        ("two characters", "你好"),
        ("questions", "\n".join(questions)),
        ("English", "Japan's manufacturers moved production abroad after the Plaza Accord."),
        ("Markdown README", (ROOT / "README.md").read_text(encoding="utf-8")),
        ("Markdown CHANGELOG", (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")),
        ("Markdown table", "| 年份 | 海外生产比率 |\n|---|---|\n| 2020 | 44.4% |\n| 2021 | 45.1% |\n"),
    ]


@pytest.mark.parametrize(("name", "text"), legitimate_texts(), ids=[n for n, _ in legitimate_texts()])
def test_legitimate_documents_are_accepted_in_both_encodings(name: str, text: str) -> None:
    for body, content_type in [
        (text.encode(), "text/markdown"),
        (text.encode(), "text/markdown; charset=utf-8"),
        (text.encode("gb18030"), "text/markdown"),
        (text.encode("gb18030"), "text/markdown; charset=gb18030"),
    ]:
        assert parse_upload("doc", body, content_type, LIMIT).text == text, (name, content_type)


SYMBOL_HEAVY = ["今天天气很好😀👍🎉！我们去公园🌳🌸吧～" * 10, "┌──┬──┐\n│日│本│\n└──┴──┘\n" * 10]


@pytest.mark.parametrize("text", SYMBOL_HEAVY)
def test_utf8_text_is_not_judged_by_the_mess_ratio(text: str) -> None:
    """Valid UTF-8 is its own evidence of the encoding: emoji or box drawing don't make it mojibake."""
    assert parse_upload("doc", text.encode(), "text/plain", LIMIT).text == text


@pytest.mark.parametrize("text", SYMBOL_HEAVY)
def test_gb18030_text_that_scores_as_mess_is_told_to_come_as_utf8(text: str) -> None:
    """The price of judging GB18030 readings: such text scores 1.0 (emoji) and 1.87 (box drawing)."""
    assert "send it as UTF-8 with charset=utf-8" in refusal(text.encode("gb18030"))


def test_every_corpus_file_and_its_traditional_conversion_score_far_below_the_mess_threshold() -> None:
    s2t = opencc.OpenCC("s2t")
    for path in CORPUS_FILES:
        text = path.read_text(encoding="utf-8")
        for version in (text, s2t.convert(text)):
            assert mess_ratio(version, maximum_threshold=math.inf) < MESS_THRESHOLD / 10, path.name


# --- finding 5: titles ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "control", ["\u061c", "\u200e", "\u200f", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))]
)
def test_titles_lose_bidi_controls(control: str) -> None:
    assert clean_title(f"报告{control}txt.exe") == "报告txt.exe"


def test_titles_lose_other_format_characters() -> None:
    assert clean_title("北海\u200b道\u200d晶\ufeff圆\u2060厂\u00ad") == "北海道晶圆厂"


@pytest.mark.parametrize("brk", ["\r", "\n", "\r\n", "\u2028", "\u2029", "\x85", "\v", "\f"])
def test_line_breaks_in_titles_become_one_space(brk: str) -> None:
    assert clean_title(f"第一行{brk}第二行") == "第一行 第二行"


def test_whitespace_runs_in_titles_collapse_and_ends_are_trimmed() -> None:
    assert clean_title("  日本 \t\n\n  经济  ") == "日本 经济"


def test_controls_and_lone_surrogates_in_titles_are_neutralised() -> None:
    assert clean_title("a\x00b\x7fc\x9fd\ud800") == "a b c d\ufffd"


def test_a_title_of_only_invisible_characters_is_empty() -> None:
    assert clean_title("\u202e\u200b\n\u2028 ") == ""


def test_hand_edited_metadata_titles_are_cleaned_when_the_corpus_is_loaded(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("甲文档正文。", encoding="utf-8")
    (tmp_path / "b.txt").write_text("\u202e乙文档\u200b第一行\n正文。", encoding="utf-8")
    (tmp_path / "c.txt").write_text("丙文档正文。", encoding="utf-8")
    meta = {"a": {"title": "第一行\n\u202e第二行"}, "b": {"title": "\u200b\n"}, "c": {"title": 42}}
    (tmp_path / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    titles = {d.doc_id: d.title for d in load_corpus(tmp_path)}
    assert titles == {"a": "第一行 第二行", "b": "乙文档第一行", "c": "丙文档正文。"}  # empty or odd: first line


def test_the_corpus_loader_skips_junk_files_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "good.txt").write_bytes("日本经济产业省发布海外经营活动调查。".encode("gb18030"))
    (tmp_path / "random.txt").write_bytes(random_high_bytes(1, 4000))
    (tmp_path / "filler.txt").write_bytes(b"\xcc" * 4000)
    with caplog.at_level(logging.WARNING, logger="qa.corpus"):
        docs = load_corpus(tmp_path)
    assert [d.doc_id for d in docs] == ["good"]
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "random.txt" in warned and "filler.txt" in warned


# --- finding 6: file modes ------------------------------------------------------------------------


def test_the_umask_is_read_without_changing_it(umask_022: None) -> None:
    assert umask() == 0o022
    os.umask(0o027)
    assert umask() == 0o027


def test_a_new_file_gets_the_umask_default(tmp_path: Path, umask_022: None) -> None:
    assert file_mode(tmp_path / "new") == 0o644
    os.umask(0o027)
    assert file_mode(tmp_path / "new") == 0o640


def test_a_replaced_file_keeps_its_mode(tmp_path: Path, umask_022: None) -> None:
    target = tmp_path / "kept"
    target.write_text("old")
    target.chmod(0o640)
    fd = os.open(tmp_path / ".tmp", os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        keep_file_mode(fd, target)
    finally:
        os.close(fd)
    assert mode(tmp_path / ".tmp") == 0o640


def test_a_directory_renamed_into_place_gets_mkdirs_mode(tmp_path: Path, umask_022: None) -> None:
    path = tmp_path / "d"
    path.mkdir(mode=0o700)
    set_dir_mode(path)
    assert mode(path) == 0o755


def upload(doc_id: str, text: str) -> Upload:
    return parse_upload(doc_id, text.encode(), "text/plain; charset=utf-8", LIMIT)


def test_a_new_document_is_0644(tmp_path: Path, umask_022: None) -> None:
    (tmp_path / "corpus").mkdir()
    CorpusWriter(tmp_path / "corpus", tmp_path / "index").put(upload("new", "新文档。"), None)
    assert mode(tmp_path / "corpus" / "new.txt") == 0o644


def test_a_replaced_document_keeps_its_0640(tmp_path: Path, umask_022: None) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    writer = CorpusWriter(corpus, tmp_path / "index")
    writer.put(upload("doc", "第一版。"), None)
    (corpus / "doc.txt").chmod(0o640)
    assert writer.put(upload("doc", "第二版。"), None)
    assert mode(corpus / "doc.txt") == 0o640 and (corpus / "doc.txt").read_text(encoding="utf-8") == "第二版。"


@pytest.mark.parametrize("before", [0o644, 0o640])
def test_metadata_keeps_its_mode_after_a_titled_put(tmp_path: Path, umask_022: None, before: int) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "metadata.json").write_text("{}", encoding="utf-8")
    (corpus / "metadata.json").chmod(before)
    CorpusWriter(corpus, tmp_path / "index").put(upload("doc", "正文。"), "标题")
    assert mode(corpus / "metadata.json") == before
    assert json.loads((corpus / "metadata.json").read_text(encoding="utf-8"))["doc"]["title"] == "标题"


def test_metadata_created_by_a_titled_put_is_0644(tmp_path: Path, umask_022: None) -> None:
    (tmp_path / "corpus").mkdir()
    CorpusWriter(tmp_path / "corpus", tmp_path / "index").put(upload("doc", "正文。"), "标题")
    assert mode(tmp_path / "corpus" / "metadata.json") == 0o644


def test_the_current_pointer_is_0644(tmp_path: Path, umask_022: None) -> None:
    switch_pointer(tmp_path, "v1")
    assert mode(tmp_path / "CURRENT") == 0o644
    (tmp_path / "CURRENT").chmod(0o640)
    switch_pointer(tmp_path, "v2")
    assert mode(tmp_path / "CURRENT") == 0o640 and (tmp_path / "CURRENT").read_text() == "v2\n"


def test_a_snapshot_directory_is_0755(tmp_path: Path, umask_022: None) -> None:
    with new_snapshot_dir(tmp_path, "v1") as out:
        (out / "manifest.json").write_text("{}")
    assert mode(tmp_path / "snapshots" / "v1") == 0o755


def test_job_records_are_0644(tmp_path: Path, umask_022: None) -> None:
    store = JobStore(tmp_path)
    store.save(Job(id="20260101T000000000000-abcdef12", kind="rebuild"))
    assert mode(tmp_path / "jobs" / "20260101T000000000000-abcdef12.json") == 0o644


# --- through the HTTP API: real app, real model, FAISS index ----------------------------------------


@pytest.fixture(scope="module")
def api_settings(tmp_path_factory: pytest.TempPathFactory, base_settings: Settings) -> Settings:
    root = tmp_path_factory.mktemp("input")
    (root / "corpus").mkdir()
    shutil.copy2(CORPUS / f"{BASE_DOC}.txt", root / "corpus")
    return replace(
        base_settings,
        corpus_dir=root / "corpus",
        index_dir=root / "index",
        admin_token=TOKEN,
        poll_seconds=0.05,
        store="faiss",
    )


@pytest.fixture(scope="module")
def api(api_settings: Settings, embedder: Embedder, tokenizer: Tokenizer) -> Iterator[TestClient]:
    old = os.umask(0o022)
    try:
        service = Service(api_settings, embedder, tokenizer)
        service.build(progress=False)
        with serving(create_app(api_settings, service)) as client:
            yield client
    finally:
        os.umask(old)


def wait_job(client: TestClient, job_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while (job := client.get(f"/v1/jobs/{job_id}", headers=AUTH).json())["state"] not in FINISHED:
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    return job


def corpus_state(settings: Settings) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), mode(p)) for p in sorted(settings.corpus_dir.iterdir())}


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (random_high_bytes(0, 4000), "text/plain", "does not look like text in a known encoding"),
        (bytes(random.Random(0).randrange(0x80, 0x100) for _ in range(4000)), "text/plain", "known encoding"),
        ("日本经济".encode(), "text/plain; charset=gb18030", "charset=utf-8"),
        ("\u200b\u200c\u200d\u2060".encode(), "text/plain", "empty"),
    ],
    ids=["random-bytes", "repeated-byte", "utf8-labelled-gb18030", "zero-width-only"],
)
def test_the_api_refuses_junk_with_422_and_writes_nothing(
    api: TestClient, api_settings: Settings, body: bytes, content_type: str, reason: str
) -> None:
    before = corpus_state(api_settings)
    r = api.put(
        "/v1/documents/junk", params={"title": "垃圾"}, content=body, headers={**AUTH, "Content-Type": content_type}
    )
    assert reason in assert_error(r, 422, "invalid_document")["message"]
    assert corpus_state(api_settings) == before
    assert api.get("/v1/documents/junk").status_code == 404


def test_a_titled_put_stores_one_clean_line_and_world_readable_files(api: TestClient, api_settings: Settings) -> None:
    corpus, index = api_settings.corpus_dir, api_settings.index_dir
    assert mode(index / "CURRENT") == 0o644  # written by the fixture's build under umask 022
    r = api.put(
        "/v1/documents/titled",
        params={"title": "北海道\n晶圆厂\u202e报告\u200b"},
        content="北海道千岁市的晶圆厂完成了第二期扩建。",
        headers={**AUTH, "Content-Type": "text/plain; charset=utf-8"},
    )
    assert r.status_code == 202, r.text
    assert mode(corpus / "titled.txt") == 0o644 and mode(corpus / "metadata.json") == 0o644
    assert wait_job(api, r.json()["id"])["state"] == "succeeded"
    assert api.get("/v1/documents/titled").json()["title"] == "北海道 晶圆厂报告"
    assert mode(index / "CURRENT") == 0o644  # the rebuild switched the pointer again
