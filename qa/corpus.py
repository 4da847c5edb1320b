"""Corpus loading: `.txt`/`.md` files under a directory, decoded, titled, hashed."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from qa.textcheck import clean_title, not_text

log = logging.getLogger(__name__)

EXTENSIONS = (".txt", ".md")
METADATA_FILE = "metadata.json"  # {"doc_id": {"title": "...", "source": "..."}}


@dataclass(frozen=True)
class Document:
    doc_id: str
    path: str  # relative to the corpus directory
    text: str  # the raw decoded file text: chunk offsets index into it
    sha256: str
    title: str
    source: str
    encoding: str


def decode(data: bytes) -> tuple[str, str]:
    """UTF-8 (BOM or not), else GB18030; raises UnicodeDecodeError if neither fits."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    text = data.decode("gb18030")
    if "\x00" in text:
        raise UnicodeDecodeError("gb18030", data, 0, 1, "NUL characters: not a text file")
    return text, "gb18030"


def doc_id_for(corpus_dir: Path, path: Path) -> str:
    return path.relative_to(corpus_dir).with_suffix("").as_posix()


def load_metadata(corpus_dir: Path) -> dict[str, dict[str, str]]:
    meta_path = corpus_dir / METADATA_FILE
    if not meta_path.exists():
        return {}
    try:
        data = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", meta_path, exc)
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, dict)}


def load_corpus(corpus_dir: Path) -> list[Document]:
    """Every decodable document, sorted by doc_id; undecodable files are skipped with a warning."""
    if not corpus_dir.is_dir():
        log.warning("corpus directory %s does not exist", corpus_dir)
        return []
    meta = load_metadata(corpus_dir)
    docs = []
    for path in sorted(corpus_dir.rglob("*")):
        if path.suffix.lower() not in EXTENSIONS or not path.is_file() or path.name.startswith("."):
            continue
        doc = load_document(corpus_dir, path, meta)
        if doc is not None:
            docs.append(doc)
    return sorted(docs, key=lambda d: d.doc_id)


def load_document(corpus_dir: Path, path: Path, meta: dict[str, dict[str, str]]) -> Document | None:
    data = path.read_bytes()
    try:
        text, encoding = decode(data)
    except UnicodeDecodeError as exc:
        log.warning("skipping %s: neither UTF-8 nor GB18030 (%s)", path, exc.reason)
        return None
    junk = not_text(text, encoding)
    if junk is not None:  # what the admin upload refuses, a file copied in by hand doesn't get indexed either
        log.warning("skipping %s: %s", path, junk.message)
        return None
    doc_id = doc_id_for(corpus_dir, path)
    info = meta.get(doc_id, {})
    title = _title(info.get("title")) or first_line(text) or doc_id
    return Document(
        doc_id=doc_id,
        path=path.relative_to(corpus_dir).as_posix(),
        text=text,
        sha256=hashlib.sha256(data).hexdigest(),
        title=title,
        source=info.get("source", path.relative_to(corpus_dir).as_posix()),
        encoding=encoding,
    )


def _title(value: object) -> str:
    """A title from metadata.json, which may be edited by hand: one visible line or nothing."""
    return clean_title(value) if isinstance(value, str) else ""


def first_line(text: str, limit: int = 80) -> str:
    for line in text.splitlines():
        line = clean_title(line)
        if line:
            return line[:limit]
    return ""
