"""The connection to Milvus (Lite or a server), whose failures become StoreUnavailableError (503)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from qa.config import Settings
from qa.errors import StoreUnavailableError


class _LiteUnimplemented(logging.Filter):
    """Lite's in-process gRPC server lacks AllocTimestamp, which pymilvus calls while waiting for an index
    it then finds built anyway; grpc logs each such call as an error with a traceback. Drop only those."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Method not implemented" not in record.getMessage()


class GuardedClient:
    """The pymilvus client, whose failures become StoreUnavailableError: the API answers 503 with the reason
    (server down, Lite directory locked by another process) instead of a 500."""

    def __init__(self, client: Any, where: str) -> None:
        self._client = client
        self._where = where

    def __getattr__(self, name: str) -> Any:
        from pymilvus.exceptions import MilvusException

        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attr(*args, **kwargs)
            except MilvusException as exc:
                raise StoreUnavailableError(f"Milvus at {self._where}: {name} failed: {exc.message}") from exc

        return call


def connect(settings: Settings) -> GuardedClient:
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    uri = settings.milvus_target
    options: dict[str, Any] = {}
    if uri.endswith(".db"):
        Path(uri).parent.mkdir(parents=True, exist_ok=True)  # pymilvus refuses a Lite path without its parent
        grpc_log = logging.getLogger("grpc._server")
        if not any(isinstance(f, _LiteUnimplemented) for f in grpc_log.filters):
            grpc_log.addFilter(_LiteUnimplemented())
        # pymilvus pings every 10 s; Lite's in-process gRPC server keeps grpc's default policy (at most one
        # ping per 5 min without data) and answers with GOAWAY "too_many_pings". Over loopback no keepalive
        # is needed: ping less often than the server's limit.
        options["grpc_options"] = {"grpc.keepalive_time_ms": 360_000, "grpc.keepalive_permit_without_calls": 0}
    if settings.milvus_token:
        options["token"] = settings.milvus_token
    try:
        client = MilvusClient(uri, **options)
    except MilvusException as exc:
        hint = (
            " (Milvus Lite allows one process per data directory: is another server or `qa build` using it? "
            "Several processes need `milvus-lite server --data-dir …` and QA_MILVUS_URI=http://…)"
            if uri.endswith(".db")
            else ""
        )
        raise StoreUnavailableError(f"can't connect to Milvus at {uri}: {exc.message}{hint}") from exc
    return GuardedClient(client, uri)
