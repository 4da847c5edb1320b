"""The app's middleware: request log and headers, body and head limits, public-only CORS, HEAD as GET."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi.routing import RouteContext, iter_route_contexts
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qa.config import Settings
from qa.errors import error_body
from qa.serve.deps import client_of, require_admin
from qa.serve.errors import LOG_PATH_MAX, error_response, shorten

log = logging.getLogger("qa.api")  # the request log keeps the name it has always had (log pipelines filter on it)
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # echoed only if it is this safe; else a fresh one


def install_middleware(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(HeadAsGet)  # innermost of these: the request log and CORS still see HEAD
    if settings.cors_origins:
        app.add_middleware(PublicCORS, origins=list(settings.cors_origins), routes=app.router.routes)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, max_document_bytes=settings.max_document_bytes)

    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        sent = request.headers.get("x-request-id", "")
        request_id = sent if REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex
        started = time.perf_counter()
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Request-ID"] = request_id
        path = shorten(request.url.path, LOG_PATH_MAX)
        extra: dict[str, Any] = {
            "qa_request_id": request_id,
            "qa_method": request.method,
            "qa_path": path,
            "qa_status": response.status_code,
            "qa_ms": round((time.perf_counter() - started) * 1000, 1),
            "qa_client": client_of(request),
        }
        question = getattr(request.state, "question", None)
        if settings.log_questions and question is not None:
            extra["qa_question"] = question
        log.info("%s %s %d", request.method, path, response.status_code, extra=extra)
        return response


def requires_admin(route: BaseRoute | RouteContext) -> bool:
    """An admin route is one that asks for the admin token: every route of the admin router does."""
    return any(d.dependency is require_admin for d in getattr(route, "dependencies", None) or ())


def is_admin_request(scope: Scope, routes: list[BaseRoute]) -> bool:
    """A request an admin route answers, or a CORS preflight asking for one: an admin route matches it fully
    (path and method), or matches its path only while no public route matches the path at all (a preflight
    for POST /v1/jobs stays admin, GET /v1/documents/x is public)."""
    if scope.get("method") == "OPTIONS":
        asked = dict(scope.get("headers", [])).get(b"access-control-request-method", b"")
        scope = {**scope, "method": asked.decode("latin-1").upper()}
    admin_path = public_path = False
    for route in iter_route_contexts(routes):  # included routers' routes too, with their dependencies
        match, _ = route.matches(scope)
        if match == Match.NONE:
            continue
        if requires_admin(route):
            if match == Match.FULL:
                return True
            admin_path = True
        else:
            public_path = True
    return admin_path and not public_path


class PublicCORS:
    """CORS for QA_CORS_ORIGINS on the public routes only: admin routes never answer cross-origin."""

    def __init__(self, app: ASGIApp, origins: list[str], routes: list[BaseRoute]) -> None:
        self.app = app
        self.routes = routes  # the app's own list: routes added after the middleware count too
        self.cors = JSONRefusalCORS(
            app,
            allow_origins=origins,
            allow_credentials=False,
            allow_methods=["GET", "POST"],
            allow_headers=["content-type", "x-request-id"],
            expose_headers=["x-request-id"],
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_admin_request(scope, self.routes):
            await self.app(scope, receive, send)
        else:
            await self.cors(scope, receive, send)


class JSONRefusalCORS(CORSMiddleware):
    """Starlette's CORS, except that a refused preflight answers in the API's error shape (Starlette's is the
    plain text "Disallowed CORS origin") and names what was refused; an allowed preflight is Starlette's own."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        # Starlette's verdict, e.g. "Disallowed CORS origin, headers": which checks failed
        refused = bytes(response.body).decode().removeprefix("Disallowed CORS ").split(", ")
        origin = request_headers["origin"]
        method = request_headers["access-control-request-method"]
        asked = request_headers.get("access-control-request-headers")
        reasons = {
            "origin": f"origin {shorten(origin)!r} is not in QA_CORS_ORIGINS",
            "method": f"method {shorten(method)!r} is not allowed (allowed: {', '.join(self.allow_methods)})",
            "headers": f"request headers {shorten(asked or '')!r} are not allowed "
            f"(allowed: {', '.join(sorted(set(self.allow_headers)))})",
            "private-network": "private network access is not allowed",
        }
        message = "CORS preflight refused: " + "; ".join(reasons.get(r, r) for r in refused)
        details = {
            "refused": refused,
            "origin": shorten(origin),
            "method": shorten(method),
            "headers": shorten(asked) if asked is not None else None,
        }
        error = error_response(400, "cors_refused", message, details)
        for key, value in response.headers.items():  # Vary, Allow-Methods, ... as Starlette sends them
            if key not in ("content-length", "content-type"):
                error.headers[key] = value
        return error


class HeadAsGet:
    """HEAD wherever GET is: the request runs as GET and the body is dropped, so status and headers
    (Content-Length included) are the GET's. FastAPI's routes list GET only, and adding HEAD to them would
    put a HEAD operation for every GET into the OpenAPI schema. A path without GET still answers 405."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        # a copy: the server's own scope must still say HEAD (uvicorn then sends no body either)
        await self.app({**scope, "method": "GET"}, receive, headers_only)


class BodyLimit:
    """413 for bodies over the limit, by Content-Length or while streaming a chunked body."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_document_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_document_bytes = max_document_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        document = scope.get("method") == "PUT" and scope.get("path", "").startswith("/v1/documents/")
        limit = self.max_document_bytes if document else self.max_bytes
        what = "document" if document else "request body"
        setting = "QA_MAX_DOCUMENT_BYTES" if document else "QA_MAX_BODY_BYTES"
        message = f"{what} over {limit} bytes ({setting})"
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await error_response(413, "payload_too_large", message)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            received = await receive()
            if received["type"] == "http.request":
                seen += len(received.get("body", b""))
                if seen > limit:
                    raise StarletteHTTPException(413, message)
            return received

        await self.app(scope, limited, send)


class HeadLimit:
    """431 for a request head over QA_MAX_HEADER_BYTES. uvicorn's h11 limit only bounds a head still
    being received; one that arrives whole in a single read is parsed at any size."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = len(scope.get("raw_path", b"")) + len(scope.get("query_string", b""))
            size += sum(len(k) + len(v) + 4 for k, v in scope.get("headers", []))
            if size > self.max_bytes:
                message = f"request head over {self.max_bytes} bytes (QA_MAX_HEADER_BYTES)"
                body = error_body("headers_too_large", message, {"bytes": size})
                await JSONResponse(body, status_code=431)(scope, receive, send)
                return
        await self.app(scope, receive, send)
