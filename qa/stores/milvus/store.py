"""The Milvus store: versions as collections, the serving alias, publishing and garbage collection."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from qa.config import Settings
from qa.dense import dense_spec
from qa.errors import IndexNotFoundError
from qa.manifest import DenseSpec, Manifest
from qa.stores.base import Contents
from qa.stores.milvus.client import connect
from qa.stores.milvus.layout import INDEX_TYPES, collection_names, get_blob, version_of
from qa.stores.milvus.reader import MilvusSnapshot
from qa.stores.milvus.writer import write_version

log = logging.getLogger(__name__)

KEEP_VERSIONS = 3  # the serving one and two before it (requests may still hold them)
DENSE_TYPES = {index: kind for kind, index in INDEX_TYPES.items()}  # QA_MILVUS_INDEX -> DenseSpec.type


class MilvusStore:
    """Index versions as Milvus collections and the serving alias; implements `qa.stores.base.Store`."""

    name = "milvus"

    def __init__(self, settings: Settings, client: Any | None = None) -> None:
        self.settings = settings
        self.prefix = settings.milvus_prefix
        self.alias = f"{self.prefix}_chunks"
        self._client = client
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        return self.settings.milvus_target

    @property
    def client(self) -> Any:
        """Connected on first use, so a FAISS-only process never needs pymilvus."""
        with self._lock:
            if self._client is None:
                self._client = connect(self.settings)
            return self._client

    def serving(self) -> str | None:
        # asked first: describing a missing alias raises, and pymilvus logs every failed RPC as an error
        if self.alias not in self.client.list_aliases().get("aliases", []):
            return None
        name = self.client.describe_alias(self.alias).get("collection_name")
        return version_of(self.prefix, name) if name else None

    def open(self, version: str | None = None) -> MilvusSnapshot:
        version = version or self.serving()
        if version is None:
            raise IndexNotFoundError(
                f"no index in Milvus at {self.settings.milvus_target} (alias {self.alias}): run `qa build`"
            )
        return MilvusSnapshot(self.client, self.prefix, version, self.location)

    def serving_manifest(self) -> Manifest | None:
        version = self.serving()
        if version is None:
            return None
        meta = collection_names(self.prefix, version)["meta"]
        self.client.load_collection(meta)
        return Manifest.from_dict(json.loads(get_blob(self.client, meta, "manifest")))

    def dense_spec(self, chunks: int) -> DenseSpec:
        """FLAT is exact; HNSW or IVF_FLAT for big collections (QA_MILVUS_INDEX), with the FAISS settings'
        parameters and names."""
        return dense_spec(self.settings, chunks, DENSE_TYPES[self.settings.milvus_index])

    def versions(self) -> list[str]:
        """Every version with at least one collection here, oldest first."""
        found = {version_of(self.prefix, c) for c in self.client.list_collections()}
        return sorted(v for v in found if v)

    def publish(self, manifest: Manifest, contents: Contents) -> None:
        self._drop_unfinished()
        version = manifest.version
        try:
            write_version(self.client, self.prefix, manifest, contents)
        except BaseException:
            self._drop(version)  # never leave a half-written version behind (the alias has not moved)
            raise
        self._switch(version)
        self._collect_garbage()

    def _switch(self, version: str) -> None:
        target = collection_names(self.prefix, version)["chunks"]
        if self.serving() is None:
            self.client.create_alias(target, self.alias)
        else:
            self.client.alter_alias(target, self.alias)
        log.info("milvus alias %s -> %s", self.alias, target)

    def _drop_unfinished(self) -> None:
        """Versions newer than the serving one can only be leftovers of a build that died (one writer)."""
        serving = self.serving()
        for v in self.versions():
            if serving is None or v > serving:
                self._drop(v)

    def _collect_garbage(self) -> None:
        serving = self.serving()
        if serving is None:
            return
        older = [v for v in self.versions() if v < serving]
        for v in older[: max(0, len(older) - (KEEP_VERSIONS - 1))]:
            self._drop(v)

    def _drop(self, version: str) -> None:
        existing = set(self.client.list_collections())
        for name in collection_names(self.prefix, version).values():
            if name in existing:
                self.client.drop_collection(name)
        log.info("dropped milvus version %s", version)

    def drop_all(self) -> None:
        """Remove the alias and every version (tests against a shared cluster clean up with this)."""
        if self.serving() is not None:
            self.client.drop_alias(self.alias)
        for v in self.versions():
            self._drop(v)
