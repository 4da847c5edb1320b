"""The service core shared by the API, the CLI and the evaluation: model, index, retriever.

The serving snapshot is swapped without a restart: `snapshot()` notices when the
store's serving version moved (the FAISS `CURRENT` pointer or the Milvus alias,
checked at most once per `poll_seconds`) and opens the new one; a request keeps
the store object it started with, so it never mixes two versions.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Literal

from qa.build import BuildResult, Progress, build_config, build_index, ranker_record
from qa.config import Settings
from qa.corpus import load_corpus
from qa.embedding import Embedder
from qa.errors import IndexNotFoundError, ModelMismatchError
from qa.retrieval import Answer, Mode, Retriever
from qa.stores.base import Snapshot, Store
from qa.stores.factory import open_store
from qa.tokens import Tokenizer, normalize

log = logging.getLogger(__name__)

IndexState = Literal["missing", "config", "corpus", "current"]
TOKENS_PER_UNIT = 64  # measured: 13 tokens encode in 17 ms, 66 in 36 ms, 130 in 58 ms (2 cores)


def question_cost(tokens: int) -> int:
    """Rate-limit units of a question the encoder reads as `tokens` tokens: 1 up to 63, 3 at 128."""
    return 1 + max(0, tokens) // TOKENS_PER_UNIT


class Service:
    def __init__(
        self,
        settings: Settings,
        embedder: Embedder | None = None,
        tokenizer: Tokenizer | None = None,
        poll_seconds: float | None = None,
        store: Store | None = None,
    ) -> None:
        self.settings = settings
        self.store = store or open_store(settings)
        self.embedder = embedder or Embedder(settings)
        self.tokenizer = tokenizer or Tokenizer()
        self.retriever = Retriever(self.embedder, self.tokenizer, settings)
        self.poll_seconds = settings.poll_seconds if poll_seconds is None else poll_seconds
        self._snapshot: Snapshot | None = None
        self._stamp: str | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def with_settings(self, **changes: object) -> Service:
        """Same model and tokenizer, other retrieval settings (evaluation sweeps)."""
        settings = replace(self.settings, **changes)  # type: ignore[arg-type]
        other = Service(settings, self.embedder, self.tokenizer, self.poll_seconds, self.store)
        other._snapshot, other._stamp, other._checked = self._snapshot, self._stamp, self._checked
        return other

    def index_state(self) -> IndexState:
        """ "missing", "config" (model/chunker/tokenizer changed), "corpus" (files changed) or "current"."""
        manifest = self.store.serving_manifest()
        if manifest is None:
            return "missing"
        if manifest.config != build_config(self.settings, self.embedder):
            return "config"
        if manifest.dense_index != self.store.dense_spec(manifest.counts.chunks):
            return "config"  # the dense index type or its parameters changed: re-index (the vectors are reused)
        if manifest.ranker != ranker_record(self.settings, self.embedder):
            return "config"  # a new fit (`qa calibrate`): a new version with the same chunks and vectors
        hashes = {d.doc_id: d.sha256 for d in load_corpus(self.settings.corpus_dir)}
        return "current" if manifest.corpus == hashes else "corpus"

    def is_stale(self) -> bool:
        """True when the corpus or the build settings differ from the serving index."""
        return self.index_state() != "current"

    def build(self, *, force: bool = False, progress: bool = True, on_progress: Progress | None = None) -> BuildResult:
        result = build_index(
            self.settings,
            self.embedder,
            self.tokenizer,
            store=self.store,
            force=force,
            progress=progress,
            on_progress=on_progress,
        )
        self.refresh()
        return result

    def refresh(self) -> None:
        """Check the pointer on the next `snapshot()` call (this process just moved it)."""
        self._checked = float("-inf")

    @property
    def loaded(self) -> Snapshot | None:
        """The snapshot in memory, without checking the pointer (None before the first load)."""
        return self._snapshot

    def snapshot(self) -> Snapshot:
        now = time.monotonic()
        if self._snapshot is not None and now - self._checked < self.poll_seconds:
            return self._snapshot
        with self._lock:
            self._checked = now
            stamp = self.store.serving()
            if self._snapshot is None or stamp != self._stamp:
                self._load(stamp)
            assert self._snapshot is not None
            return self._snapshot

    def _load(self, stamp: str | None) -> None:
        if stamp is None and self._snapshot is None:
            raise IndexNotFoundError(f"no index in {self.store.location}: run `qa build` (serve.py builds it on start)")
        try:
            snap = self.store.open(stamp)  # the version just polled: no second lookup, no race with a newer one
            self._check_model(snap)
        except Exception as exc:
            if self._snapshot is None:
                raise
            # the new version can't be opened (dropped already, half-visible on a shared volume, another model):
            # keep serving the one we have and try again at the next poll
            log.error("index %s not loaded, still serving %s: %s", stamp, self._snapshot.version, exc)
            return
        if self._snapshot is not None:
            log.info("index swapped: %s -> %s", self._snapshot.version, snap.version)
        self._snapshot, self._stamp = snap, stamp

    def _check_model(self, snap: Snapshot) -> None:
        built = snap.manifest.model
        if not self.embedder.identity.same_vectors(built):
            raise ModelMismatchError(
                f"index {snap.version} was built with model {built.name!r} "
                f"(fingerprint {built.fingerprint}), but the service runs {self.embedder.identity.name!r} "
                f"(fingerprint {self.embedder.identity.fingerprint}). Rebuild the index with this model: "
                f"`qa build --force` (same QA_EMBEDDING_MODEL), or set QA_EMBEDDING_MODEL back to the index's model.",
                {"index_model": built.as_dict(), "service_model": self.embedder.identity.as_dict()},
            )

    def ask(self, question: str, top_k: int = 5, doc_ids: list[str] | None = None, mode: Mode = "hybrid") -> Answer:
        return self.retriever.ask(self.snapshot(), question, top_k, doc_ids, mode)

    def question_cost(self, question: str) -> int:
        """Rate-limit units of this question: what the encoder will read of it, in tokens (qa/ratelimit.py).
        Up to 31 characters it is at most 62 tokens, one unit, and not worth tokenising to find out."""
        if 2 * len(question) < TOKENS_PER_UNIT:
            return 1
        return question_cost(self.embedder.clip_query(normalize(question, lower=False))[1])

    def warm_up(self) -> None:
        """Load the index and run one query so the first user does not pay for lazy init."""
        self.ask("日本产业空心化", top_k=1)
