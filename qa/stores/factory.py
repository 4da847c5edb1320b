"""`open_store(settings)`: the one place that knows every store (QA_STORE)."""

from __future__ import annotations

from qa.config import Settings
from qa.errors import ConfigError
from qa.stores.base import Store


def open_store(settings: Settings) -> Store:
    if settings.store == "milvus":
        try:
            import pymilvus  # noqa: F401  (only to say what is missing, in one line, before anything loads)
        except ImportError as exc:
            raise ConfigError(
                "QA_STORE=milvus needs pymilvus, which is not installed: pip install -e '.[milvus]' "
                f"(or use QA_STORE=faiss) [{exc}]"
            ) from exc
        from qa.stores.milvus.store import MilvusStore

        return MilvusStore(settings)
    from qa.stores.faiss import FaissStore

    return FaissStore(settings)
