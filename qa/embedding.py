"""The one Embedder: a sentence-transformers model, offline by default, with e5 prompts."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qa.batching import QueryBatcher, VectorCache
from qa.config import Settings
from qa.errors import ConfigError
from qa.manifest import ModelIdentity
from qa.modelcache import MAX_SEQ_LENGTH, MODEL_NAME, ensure_model_dir, ensure_openvino_dir

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# Our machines reach no model hub; set before transformers/huggingface_hub are imported.
# Users with a hub and QA_EMBEDDING_MODEL=<hub name> export HF_HUB_OFFLINE=0.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

log = logging.getLogger(__name__)
PROGRESS_MIN = 64  # show a tqdm bar from this many texts on
CHARS_PER_TOKEN = 4  # a question is cut to 4 × max tokens characters before tokenising (bounds that cost too)


class Embedder:
    """Encodes questions and passages into L2-normalised float32 vectors."""

    def __init__(self, settings: Settings) -> None:
        if settings.embedding_backend == "openvino":
            _require_openvino()  # before a first-use conversion: a missing package fails in a second, not 20
        import torch

        if settings.threads > 0:
            torch.set_num_threads(settings.threads)  # tokenising and pooling run on torch with either backend
        if settings.embedding_model:
            path, name = settings.embedding_model, settings.embedding_model
            fingerprint = _fingerprint_of(settings.embedding_model)
        else:
            model_dir, fingerprint = ensure_model_dir(settings.models_dir)
            path, name = str(model_dir), MODEL_NAME
        self.backend = settings.embedding_backend
        self.model = _load(path, fingerprint, settings)
        prompts = getattr(self.model, "prompts", {}) or {}
        query_prompt = settings.query_prompt if settings.query_prompt is not None else prompts.get("query", "")
        passage_prompt = settings.passage_prompt if settings.passage_prompt is not None else prompts.get("passage", "")
        self.batch_size = settings.batch_size
        self.max_query_tokens = settings.max_question_tokens
        self._clip = functools.lru_cache(maxsize=1024)(self._clip_uncached)
        self.query_cache = VectorCache(settings.query_cache)
        self.batcher = QueryBatcher(self.encode_queries, settings.query_batch) if settings.query_batch > 1 else None
        self.identity = ModelIdentity(
            name=name,
            fingerprint=fingerprint,
            dim=int(self.model.get_embedding_dimension() or 0),
            query_prompt=query_prompt,
            passage_prompt=passage_prompt,
            max_seq_length=int(self.model.max_seq_length or MAX_SEQ_LENGTH),
        )
        log.info("embedding model %s (%s), dim %d, backend %s", name, fingerprint, self.identity.dim, self.backend)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Questions are clipped to QA_MAX_QUESTION_TOKENS first: a 1000-character question costs the
        encoder what a 128-token one does (attention grows with the square of the length)."""
        clipped = [t if 2 * len(t) <= self.max_query_tokens else self.clip_query(t)[0] for t in texts]
        return self._encode(clipped, self.identity.query_prompt)

    def encode_query(self, text: str) -> np.ndarray:
        """One question's vector, as `encode_queries([text])[0]` gives it: from the cache, else through the
        batcher (questions arriving together share one pass), else directly. Read-only."""
        vector = self.query_cache.get(text)
        if vector is None:
            vector = self.batcher.encode(text) if self.batcher is not None else self.encode_queries([text])[0]
            self.query_cache.put(text, vector)
        return vector

    def clip_query(self, text: str) -> tuple[str, int]:
        """The part of a question the encoder reads, and its token count (cached: the rate limiter asks too).
        A character is at most two tokens, so a question of up to half the cap in characters is never cut
        and is not tokenised here (the encoder tokenises it anyway)."""
        return self._clip(text)

    def _clip_uncached(self, text: str) -> tuple[str, int]:
        # tokenising is linear but not free (~40 µs per CJK character here): cut by characters first
        head = text[: CHARS_PER_TOKEN * self.max_query_tokens]
        encoded = self.model.tokenizer(head, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        ids = encoded["input_ids"]
        if len(ids) <= self.max_query_tokens:
            return head, len(ids)
        return head[: encoded["offset_mapping"][self.max_query_tokens - 1][1]], self.max_query_tokens

    def encode_passages(self, texts: list[str], progress: bool | None = None) -> np.ndarray:
        return self._encode(texts, self.identity.passage_prompt, progress)

    def _encode(self, texts: list[str], prompt: str, progress: bool | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.identity.dim), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            prompt=prompt,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=len(texts) >= PROGRESS_MIN if progress is None else progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def token_count(self, text: str, prompt: str = "") -> int:
        return len(self.model.tokenizer(prompt + text)["input_ids"])


def _load(path: str, fingerprint: str, settings: Settings) -> SentenceTransformer:
    """The model on the configured backend. OpenVINO loads the IR that sentence-transformers exported
    into the model cache on first use; its vectors match torch's to cosine >= 0.9999 (tests/system)."""
    from sentence_transformers import SentenceTransformer

    if settings.embedding_backend == "torch":
        return SentenceTransformer(path, device=settings.device)
    exported = ensure_openvino_dir(path, fingerprint, settings.models_dir)
    ov_config: dict[str, str] = {"PERFORMANCE_HINT": "LATENCY"}  # one request at a time, all cores on it
    if settings.openvino_precision != "auto":
        ov_config["INFERENCE_PRECISION_HINT"] = settings.openvino_precision
    if settings.threads > 0:
        ov_config["INFERENCE_NUM_THREADS"] = str(settings.threads)
    return SentenceTransformer(str(exported), device="cpu", backend="openvino", model_kwargs={"ov_config": ov_config})


def _require_openvino() -> None:
    try:
        import openvino  # noqa: F401
        from optimum.intel import OVModelForFeatureExtraction  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"QA_EMBEDDING_BACKEND=openvino needs optimum-intel and openvino ({exc.name or exc} is missing): "
            "pip install 'optimum-intel==2.1.0', or set QA_EMBEDDING_BACKEND=torch"
        ) from exc


def _fingerprint_of(model: str) -> str:
    """A local directory is fingerprinted by its config files; a hub name by the name."""
    digest = hashlib.sha256(model.encode())
    path = Path(model)
    if path.is_dir():
        for name in ("config.json", "modules.json", "config_sentence_transformers.json"):
            if (path / name).exists():
                digest.update((path / name).read_bytes())
    return digest.hexdigest()[:16]
