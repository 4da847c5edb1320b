"""Every failure as one JSON shape (`ErrorBody`) with its status code; no traceback reaches a client."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from qa.errors import QAError, RateLimitedError, error_body
from qa.serve.schemas import ErrorBody

log = logging.getLogger(__name__)

ECHO_MAX = 80  # characters of a client-sent id or name echoed in an error body
LOG_PATH_MAX = 256  # characters of a request path in the request log and in 404 messages
ERRORS: dict[int | str, dict[str, Any]] = {  # the OpenAPI responses every public route may give
    400: {"model": ErrorBody, "description": "Malformed JSON body"},
    413: {"model": ErrorBody, "description": "Request body too large"},
    422: {"model": ErrorBody, "description": "Invalid request"},
    503: {"model": ErrorBody, "description": "Service not ready yet"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "Unknown document"}}


def shorten(value: str, limit: int = ECHO_MAX) -> str:
    """A client-sent string as echoed or logged: cut when long, saying how long it was, so a 60,000-character
    id cannot make a 120 kB error body or log line."""
    if len(value) <= limit:
        return value
    return f"{value[:limit]}… ({len(value)} characters)"


def error_response(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    body = ErrorBody.model_validate(error_body(code, message, details))
    return JSONResponse(body.model_dump(), status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(QAError)
    async def qa_error(request: Request, exc: QAError) -> JSONResponse:
        if isinstance(exc, RateLimitedError):
            # a client that ignores Retry-After waits for its refusal too: refusals cannot become a flood
            await asyncio.sleep(request.app.state.runtime.settings.rate_limit_delay)
        response = error_response(exc.status, exc.code, *_shorten_echoes(exc.message, exc.details))
        response.headers.update(exc.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        raw = list(exc.errors())
        errors = [_clean_error(e) for e in raw]
        broken = next((e for e in raw if e.get("type") == "json_invalid"), None)
        if broken is not None:  # parse_json says why: a duplicated key, too deep, not UTF-8, or the syntax error
            reason = (broken.get("ctx") or {}).get("error")
            message = f"request body is not valid JSON: {reason}" if reason else "request body is not valid JSON"
            return error_response(400, "malformed_json", message, errors)
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{where}: {first.get('msg')}" if where else str(first.get("msg", "invalid request"))
        return error_response(422, "invalid_request", message, errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
        message = str(exc.detail) if exc.detail else "error"
        if exc.status_code == 404:
            message = f"no route {request.method} {shorten(request.url.path, LOG_PATH_MAX)}"
        response = error_response(exc.status_code, codes.get(exc.status_code, "http_error"), message)
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        if exc.status_code == 405:
            response.headers["Allow"] = ", ".join(_allowed_methods(request))
        return response

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, shorten(request.url.path, LOG_PATH_MAX))
        return error_response(500, "internal_error", "internal server error; the incident was logged")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this path (Starlette names only the first route that matched);
    HEAD wherever GET is, as HeadAsGet answers it."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):  # included routers' routes too
        if route.methods and route.matches(request.scope)[0] != Match.NONE:
            methods |= set(route.methods)
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


ECHOED = ("doc_id", "doc_ids", "job_id", "unknown", "repeated")  # details keys holding what the client sent


def _shorten_echoes(message: str, details: Any) -> tuple[str, Any]:
    """An error's message and details with every long client-sent id or name shortened (errors are raised
    with the id as sent, in the stores too)."""
    if not isinstance(details, dict):
        return message, details
    details = dict(details)
    for key in ECHOED:
        value = details.get(key)
        sent = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        for item in sent:
            if isinstance(item, str) and len(item) > ECHO_MAX:
                message = message.replace(item, shorten(item))
        if isinstance(value, str):
            details[key] = shorten(value)
        elif isinstance(value, list):
            details[key] = [shorten(v) if isinstance(v, str) else v for v in value]
    return message, details


def _clean_error(error: Any) -> dict[str, Any]:
    """Validation errors as plain JSON: drop the raw input and context objects (may be unserialisable), and
    shorten field names from the body (an unknown 60 kB key is in `loc`)."""
    loc = [shorten(p) if isinstance(p, str) else p for p in error.get("loc", ())]
    return {"type": error.get("type"), "loc": loc, "msg": error.get("msg")}
