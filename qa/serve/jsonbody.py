"""JSON bodies as the API reads them: strict about duplicate keys, depth and encoding."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

from qa.serve.errors import shorten


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _DuplicateKeyError(key)
        obj[key] = value
    return obj


def parse_json(body: bytes) -> Any:
    """JSON as the API reads it. A duplicated key is refused (json.loads keeps the last one silently, so
    `{"question": "a", "question": "b"}` would mean whatever the last parser in a chain decides); so are
    nesting too deep to parse and bytes that are not UTF-8. Each refusal is a JSONDecodeError: FastAPI turns
    that into the RequestValidationError answered as 400 malformed_json, its other errors into a bare 400."""
    try:
        # decoded here (a UTF-8 BOM allowed): json.loads on bytes would also take UTF-16 and UTF-32
        return json.loads(body.decode("utf-8-sig"), object_pairs_hook=_unique_keys)
    except _DuplicateKeyError as exc:
        raise json.JSONDecodeError(f"duplicate key {shorten(exc.key)!r}", "", 0) from exc
    except RecursionError as exc:
        raise json.JSONDecodeError("nested too deeply", "", 0) from exc
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError(f"not UTF-8 ({exc.reason} at byte {exc.start})", "", 0) from exc


class StrictJSONRequest(Request):
    """A request whose `.json()` is `parse_json`; FastAPI reads every JSON body through `.json()`."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """The router's route class (FastAPI's documented hook for a custom Request): every route, the admin
    ones included, parses its JSON body with `parse_json`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict
