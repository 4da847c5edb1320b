"""The manifest every snapshot carries: what built it, from what, and how to read it.

One frozen value, written as `manifest.json` (FAISS) or a `meta` row (Milvus) and read back by every
store, the service and the API. `FORMAT_VERSION` is the one number that says whether this code can read
a snapshot; both stores write and check it. The JSON keeps the key order and spelling of earlier
releases, so an index built before the typed manifest still loads and keeps its version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

FORMAT_VERSION = 2  # bump when a store's layout changes (2: sentence windows); an older index is rebuilt

DenseType = Literal["flat", "hnsw", "ivf"]


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

    def same_vectors(self, other: ModelIdentity) -> bool:
        """True when vectors made by `other` are comparable with ours (the sequence cap may differ)."""
        keys = ("name", "fingerprint", "dim", "query_prompt", "passage_prompt")
        return all(getattr(other, k) == getattr(self, k) for k in keys)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelIdentity:
        return cls(
            name=str(data.get("name", "")),
            fingerprint=str(data.get("fingerprint", "")),
            dim=int(data.get("dim", 0)),
            query_prompt=str(data.get("query_prompt", "")),
            passage_prompt=str(data.get("passage_prompt", "")),
            max_seq_length=int(data.get("max_seq_length", 0)),
        )


@dataclass(frozen=True)
class ChunkerSpec:
    size: int
    overlap: int
    max_size: int
    cleaner_version: int


@dataclass(frozen=True)
class TokenizerSpec:
    userdict_sha256: str
    stopwords_sha256: str


@dataclass(frozen=True)
class DenseSpec:
    """The vector index of a snapshot, spelled the same for every store (each maps it to its engine's names).

    flat: exact; hnsw: m, ef_construction, ef_search; ivf: nlist, nprobe."""

    type: DenseType = "flat"
    m: int | None = None
    ef_construction: int | None = None
    ef_search: int | None = None
    nlist: int | None = None
    nprobe: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> DenseSpec:
        """Snapshots from before the choice existed have no spec: they are flat."""
        if not data:
            return cls()
        data = _from_legacy_milvus(data)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _from_legacy_milvus(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """Milvus manifests before 0.6.0 spelled the spec in Milvus' names; read as today's, they need no re-index."""
    kind = data.get("type")
    if kind == "milvus-flat":
        return {"type": "flat"}
    if kind == "milvus-hnsw":
        return {"type": "hnsw", "m": data["M"], "ef_construction": data["efConstruction"], "ef_search": data["ef"]}
    if kind == "milvus-ivf_flat":
        return {"type": "ivf", "nlist": data["nlist"], "nprobe": data["nprobe"]}
    return data


FLAT = DenseSpec()


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides the content of a chunk or a vector; a change forces re-chunking or re-embedding."""

    model: ModelIdentity
    chunker: ChunkerSpec
    tokenizer: TokenizerSpec
    format_version: int = FORMAT_VERSION

    def as_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "model": self.model.as_dict(),
            "chunker": asdict(self.chunker),
            "tokenizer": asdict(self.tokenizer),
        }


@dataclass(frozen=True)
class Counts:
    documents: int = 0
    chunks: int = 0
    embedded_this_build: int = 0


@dataclass(frozen=True)
class Manifest:
    config: BuildConfig
    version: str
    built_at: str
    corpus: Mapping[str, str]  # doc_id -> sha256 of the source file
    counts: Counts
    dense_index: DenseSpec = FLAT
    store: str = "faiss"
    ranker: Mapping[str, Any] | None = None  # the fitted ranker's record (qa/ranking.py), None before `qa calibrate`
    # the backend that embedded this build's new chunks ("" before 0.7); not part of `config`: backends give
    # the same vectors (cosine >= 0.9999), so switching one reuses an index instead of rebuilding it
    encoder_backend: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys this code does not know, kept as read

    @property
    def format_version(self) -> int:
        return self.config.format_version

    @property
    def model(self) -> ModelIdentity:
        return self.config.model

    @property
    def chunker(self) -> ChunkerSpec:
        return self.config.chunker

    def as_dict(self) -> dict[str, Any]:
        """The JSON object, in the key order of earlier releases."""
        return {
            **self.config.as_dict(),
            "version": self.version,
            "built_at": self.built_at,
            "corpus": dict(self.corpus),
            "counts": asdict(self.counts),
            "dense_index": self.dense_index.as_dict(),
            "store": self.store,
            "ranker": dict(self.ranker) if self.ranker is not None else None,
            "encoder_backend": self.encoder_backend,
            **self.extra,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        """Tolerant of what older releases wrote (no dense_index, no store, no ranker); a missing
        part reads as empty, and the format check then says what to do."""
        chunker = data.get("chunker") or {}
        tokenizer = data.get("tokenizer") or {}
        counts = data.get("counts") or {}
        config = BuildConfig(
            model=ModelIdentity.from_dict(data.get("model") or {}),
            chunker=ChunkerSpec(
                size=int(chunker.get("size", 0)),
                overlap=int(chunker.get("overlap", 0)),
                max_size=int(chunker.get("max_size", 0)),
                cleaner_version=int(chunker.get("cleaner_version", 0)),
            ),
            tokenizer=TokenizerSpec(
                userdict_sha256=str(tokenizer.get("userdict_sha256", "")),
                stopwords_sha256=str(tokenizer.get("stopwords_sha256", "")),
            ),
            format_version=int(data.get("format_version") or 0),
        )
        known = {"format_version", "model", "chunker", "tokenizer", "version", "built_at", "corpus", "counts"}
        known |= {"dense_index", "store", "ranker", "encoder_backend"}
        return cls(
            config=config,
            version=str(data.get("version", "")),
            built_at=str(data.get("built_at", "")),
            corpus={str(k): str(v) for k, v in (data.get("corpus") or {}).items()},
            counts=Counts(**{k: int(v) for k, v in counts.items() if k in {f.name for f in fields(Counts)}}),
            dense_index=DenseSpec.from_dict(data.get("dense_index")),
            store=str(data.get("store", "faiss")),
            ranker=data.get("ranker"),
            encoder_backend=str(data.get("encoder_backend", "")),
            extra={k: v for k, v in data.items() if k not in known},
        )
