"""Admin writes to the corpus directory: validated, atomic, one writer at a time.

A document is accepted only once its bytes are on disk under their final name
(temp file, fsync, `os.replace`, fsync of the directory), so a 202 means the
change survives a crash; the index catches up in a rebuild job. A failure
before the rename leaves the corpus exactly as it was.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from qa.build import build_lock
from qa.corpus import EXTENSIONS, METADATA_FILE, decode, load_metadata
from qa.errors import (
    CorpusFullError,
    CorpusWriteError,
    DocumentTooLargeError,
    InvalidDocumentError,
    QAError,
    UnsupportedMediaTypeError,
)
from qa.files import keep_file_mode
from qa.textcheck import clean_title, has_visible, not_text, preview

log = logging.getLogger(__name__)

DOC_ID_MAX = 64  # 64 CJK characters are 192 bytes: file name and temp name stay under 255 bytes
# Flat ids only: a letter, digit or CJK character first, then those and `_ . -`, not ending in a dot.
# No `/`, `\`, NUL, leading dot (hidden files are not loaded) or `..`: nothing can leave the corpus directory.
DOC_ID_PATTERN = r"^[0-9A-Za-z\u3400-\u9fff](?:[0-9A-Za-z\u3400-\u9fff_.\-]*[0-9A-Za-z\u3400-\u9fff_\-])?$"
MEDIA_TYPES = {"text/plain": ".txt", "text/markdown": ".md"}
CHARSETS = {"utf-8": "utf-8", "utf8": "utf-8", "gb18030": "gb18030", "gbk": "gb18030", "gb2312": "gb18030"}
_CONTROLS = r"\x00-\x08\x0e-\x1f\x7f"  # C0 controls other than \t \n \v \f \r: a binary file
NOT_BINARY = rf"^[^{_CONTROLS}]*$"
_BINARY = re.compile(rf"[{_CONTROLS}]")


@dataclass(frozen=True)
class Upload:
    doc_id: str
    text: str
    data: bytes  # what goes on disk; `decode(data) == text`, so citations index the stored file
    encoding: str
    media_type: str  # a key of MEDIA_TYPES: the extension of a new file


def parse_upload(doc_id: str, body: bytes, content_type: str | None, max_bytes: int) -> Upload:
    """Check type, size and encoding of a PUT body; every rejection says why."""
    media, charset = _media_type(content_type)
    if media not in MEDIA_TYPES:
        raise UnsupportedMediaTypeError(
            f"Content-Type {media or '(none)'!r} is not accepted: send text/plain or text/markdown",
            {"accepted": sorted(MEDIA_TYPES)},
        )
    if len(body) > max_bytes:
        raise DocumentTooLargeError(f"document is {len(body)} bytes; the limit is {max_bytes} (QA_MAX_DOCUMENT_BYTES)")
    text, encoding = _decode_body(body, charset)
    _check_text(text, encoding)
    # auto-detected text is what the loader will read back; a declared charset may need re-encoding
    data = body if charset is None or _decodes_to(body, text) else text.encode("utf-8")
    return Upload(doc_id, text, data, encoding, media)


def _decode_body(body: bytes, charset: str | None) -> tuple[str, str]:
    """(text, encoding) as declared, or detected as the corpus loader does."""
    if charset is not None and charset not in CHARSETS:
        raise UnsupportedMediaTypeError(
            f"charset {charset!r} is not accepted: send UTF-8 or GB18030", {"accepted": sorted(CHARSETS)}
        )
    if charset is not None and CHARSETS[charset] == "gb18030":
        _refuse_utf8_labelled_gb18030(body, charset)
    try:
        if charset is None:
            return decode(body)
        return body.decode(CHARSETS[charset]).removeprefix("\ufeff"), CHARSETS[charset]
    except UnicodeDecodeError as exc:
        raise InvalidDocumentError(
            f"the body is not valid {charset or 'UTF-8 or GB18030'}: {exc.reason} at byte {exc.start}",
            {"encoding": charset or "utf-8|gb18030", "byte": exc.start},
        ) from exc


def _check_text(text: str, encoding: str) -> None:
    """Not binary, something visible, and text rather than mojibake or filler (qa.textcheck)."""
    bad = _BINARY.search(text)
    if bad:
        raise InvalidDocumentError(
            f"the body looks binary: control character U+{ord(bad.group()):04X} at character {bad.start()}",
            {"character": bad.start()},
        )
    if not has_visible(text):
        raise InvalidDocumentError(
            "the document is empty (no visible character; zero-width and other format characters do not count)"
        )
    junk = not_text(text, encoding)
    if junk is not None:
        raise InvalidDocumentError(junk.message, junk.details)


def _refuse_utf8_labelled_gb18030(body: bytes, charset: str) -> None:
    """Non-ASCII bytes that are valid UTF-8 are UTF-8 (GB18030 text almost never is): don't store mojibake."""
    if body.isascii():
        return
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return
    misread = body.removeprefix(b"\xef\xbb\xbf").decode("gb18030", errors="replace")
    raise InvalidDocumentError(
        f"the body is UTF-8 but labelled charset={charset}: read as GB18030 it would be mojibake "
        f"({preview(misread)!r}); send it with charset=utf-8",
        {"declared": charset, "detected": "utf-8", "as_declared": preview(misread)},
    )


def _decodes_to(data: bytes, text: str) -> bool:
    try:
        return decode(data)[0] == text
    except UnicodeDecodeError:
        return False


def _media_type(content_type: str | None) -> tuple[str, str | None]:
    if not content_type:
        return "", None
    media, *params = (p.strip() for p in content_type.split(";"))
    charset = None
    for p in params:
        key, _, value = p.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    return media.lower(), charset


class CorpusWriter:
    """Puts and deletes documents; the file lock keeps workers of one server from interleaving."""

    def __init__(self, corpus_dir: Path, index_dir: Path) -> None:
        self.corpus_dir = corpus_dir
        self.index_dir = index_dir
        self._lock = threading.Lock()

    def path_of(self, doc_id: str) -> Path | None:
        for ext in EXTENSIONS:
            path = self.corpus_dir / f"{doc_id}{ext}"
            if path.is_file():
                return path
        return None

    def put(self, upload: Upload, title: str | None) -> bool:
        """Write the document (and its title); True if it replaced an existing one."""
        title = (clean_title(title) or None) if title is not None else None  # whoever calls: one visible line
        with self._locked():
            existing = self.path_of(upload.doc_id)
            # a replaced document keeps its file name, so the swap is one rename and never two files
            target = existing or self.corpus_dir / f"{upload.doc_id}{MEDIA_TYPES[upload.media_type]}"
            meta = load_metadata(self.corpus_dir) if title is not None else None
            with _staged(self.corpus_dir, target.name, upload.data) as doc_tmp:
                if meta is not None and title is not None:
                    entry = dict(meta.get(upload.doc_id, {}))
                    entry["title"] = title
                    entry.setdefault("source", "uploaded through the admin API")
                    meta[upload.doc_id] = entry
                    with _staged(self.corpus_dir, METADATA_FILE, _json(meta)) as meta_tmp:
                        _replace(doc_tmp, target)
                        _replace(meta_tmp, self.corpus_dir / METADATA_FILE)
                else:
                    _replace(doc_tmp, target)
            _fsync_dir(self.corpus_dir)
            log.info("document %s written (%d bytes)", upload.doc_id, len(upload.data))
            return existing is not None

    def delete(self, doc_id: str) -> bool:
        """Remove the document and its metadata entry; False if there was no such document."""
        with self._locked():
            path = self.path_of(doc_id)
            if path is None:
                return False
            meta = load_metadata(self.corpus_dir)
            try:
                if doc_id in meta:
                    del meta[doc_id]
                    with _staged(self.corpus_dir, METADATA_FILE, _json(meta)) as meta_tmp:
                        path.unlink()
                        _replace(meta_tmp, self.corpus_dir / METADATA_FILE)
                else:
                    path.unlink()
            except OSError as exc:
                raise _write_error(exc) from exc
            _fsync_dir(self.corpus_dir)
            log.info("document %s deleted", doc_id)
            return True

    def clean_stale(self) -> int:
        """Remove temp files left by a crash mid-write (never renamed, so never acknowledged)."""
        if not self.corpus_dir.is_dir():
            return 0
        try:
            with self._locked():
                stale = list(self.corpus_dir.glob(".*.tmp"))
                for tmp in stale:
                    tmp.unlink(missing_ok=True)
                return len(stale)
        except (QAError, OSError) as exc:
            log.warning("could not clean temp files in %s: %s", self.corpus_dir, exc)
            return 0

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if not self.corpus_dir.is_dir():
            raise CorpusWriteError(f"the corpus directory {self.corpus_dir} does not exist")
        with self._lock, ExitStack() as stack:
            try:
                stack.enter_context(build_lock(self.index_dir, name=".corpus.lock"))
            except OSError as exc:
                raise _write_error(exc) from exc
            yield


@contextmanager
def _staged(directory: Path, name: str, data: bytes) -> Iterator[Path]:
    """A fsynced hidden temp file beside `name`; removed unless the caller renamed it."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "wb") as fh:
            keep_file_mode(fh.fileno(), directory / name)  # not mkstemp's 0600: other readers keep access
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise _write_error(exc) from exc
    try:
        yield Path(tmp)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _replace(tmp: Path, target: Path) -> None:
    try:
        os.replace(tmp, target)
    except OSError as exc:
        raise _write_error(exc) from exc


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _json(data: object) -> bytes:
    return (json.dumps(data, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _write_error(exc: OSError) -> CorpusWriteError:
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    log.error("corpus write failed: %s", exc)
    kind = CorpusFullError if exc.errno in (errno.ENOSPC, errno.EDQUOT) else CorpusWriteError
    return kind(f"the corpus directory cannot be written ({reason}); nothing was changed")
