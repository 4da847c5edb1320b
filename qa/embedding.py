"""The one Embedder: a sentence-transformers model, offline by default, with e5 prompts."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa.config import Settings
from qa.modelcache import MAX_SEQ_LENGTH, MODEL_NAME, ensure_model_dir

# Our machines reach no model hub; set before transformers/huggingface_hub are imported.
# Users with a hub and QA_EMBEDDING_MODEL=<hub name> export HF_HUB_OFFLINE=0.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

log = logging.getLogger(__name__)
PROGRESS_MIN = 64  # show a tqdm bar from this many texts on


@dataclass(frozen=True)
class ModelIdentity:
    """What an index remembers about the model that embedded it."""

    name: str
    fingerprint: str
    dim: int
    query_prompt: str
    passage_prompt: str
    max_seq_length: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def same_vectors(self, other: dict[str, Any]) -> bool:
        """True when vectors made by `other` are comparable with ours."""
        keys = ("name", "fingerprint", "dim", "query_prompt", "passage_prompt")
        return all(other.get(k) == getattr(self, k) for k in keys)


class Embedder:
    """Encodes questions and passages into L2-normalised float32 vectors."""

    def __init__(self, settings: Settings) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        if settings.threads > 0:
            torch.set_num_threads(settings.threads)
        if settings.embedding_model:
            path, name = settings.embedding_model, settings.embedding_model
            fingerprint = _fingerprint_of(settings.embedding_model)
        else:
            model_dir, fingerprint = ensure_model_dir(settings.models_dir)
            path, name = str(model_dir), MODEL_NAME
        self.model = SentenceTransformer(path, device=settings.device)
        prompts = getattr(self.model, "prompts", {}) or {}
        query_prompt = settings.query_prompt if settings.query_prompt is not None else prompts.get("query", "")
        passage_prompt = settings.passage_prompt if settings.passage_prompt is not None else prompts.get("passage", "")
        self.batch_size = settings.batch_size
        self.identity = ModelIdentity(
            name=name,
            fingerprint=fingerprint,
            dim=int(self.model.get_embedding_dimension() or 0),
            query_prompt=query_prompt,
            passage_prompt=passage_prompt,
            max_seq_length=int(self.model.max_seq_length or MAX_SEQ_LENGTH),
        )
        log.info("embedding model %s (%s), dim %d", name, fingerprint, self.identity.dim)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self.identity.query_prompt)

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


def _fingerprint_of(model: str) -> str:
    """A local directory is fingerprinted by its config files; a hub name by the name."""
    digest = hashlib.sha256(model.encode())
    path = Path(model)
    if path.is_dir():
        for name in ("config.json", "modules.json", "config_sentence_transformers.json"):
            if (path / name).exists():
                digest.update((path / name).read_bytes())
    return digest.hexdigest()[:16]
