"""The HTTP API: `create_app(settings)` builds the FastAPI app; nothing global.

The model and index load in a background thread so `/healthz` answers at once
and `/readyz` says 503 until the service is warm.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from importlib import metadata, resources
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from prometheus_fastapi_instrumentator import Instrumentator
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qa.admin import get_runtime, install_admin
from qa.config import Settings
from qa.errors import DocumentNotFoundError, InvalidRequestError, QAError, RateLimitedError, error_body
from qa.proxies import TrustedProxies
from qa.runtime import Runtime
from qa.schemas import (
    AskRequest,
    AskResponse,
    DocumentFull,
    DocumentList,
    DocumentSummary,
    ErrorBody,
    Health,
    Info,
    Ready,
    answer_response,
)
from qa.server import HeadLimit
from qa.service import Service

log = logging.getLogger(__name__)
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # echoed only if it is this safe; else a fresh one

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Malformed JSON body"},
    413: {"model": ErrorBody, "description": "Request body too large"},
    422: {"model": ErrorBody, "description": "Invalid request"},
    503: {"model": ErrorBody, "description": "Service not ready yet"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "Unknown document"}}
DEMO_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
)
ECHO_MAX = 80  # characters of a client-sent id or name echoed in an error body
LOG_PATH_MAX = 256  # characters of a request path in the request log and in 404 messages
PATH_MAX = 4096  # Linux PATH_MAX: no corpus file has a longer relative path, so no longer doc_id can exist
# /docs assets from the fastapi-offline package (Swagger UI 5.32.6 in 1.7.7), never a CDN. ReDoc is off: the
# package's ReDoc 2.5.3 bundle still loads its footer logo from cdn.redoc.ly on every view, with no option to stop it.
DOCS_PACKAGE = "fastapi-offline"
DOCS_ASSETS: dict[str, tuple[str, str]] = {  # URL path -> (file in fastapi_offline/static, media type)
    "/docs/swagger-ui-bundle.js": ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    "/docs/swagger-ui.css": ("swagger-ui.css", "text/css; charset=utf-8"),
    "/docs/favicon.png": ("favicon.png", "image/png"),
}


def shorten(value: str, limit: int = ECHO_MAX) -> str:
    """A client-sent string as echoed or logged: cut when long, saying how long it was, so a 60,000-character
    id cannot make a 120 kB error body or log line."""
    if len(value) <= limit:
        return value
    return f"{value[:limit]}… ({len(value)} characters)"


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
        return json.loads(body, object_pairs_hook=_unique_keys)
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


def get_service(request: Request) -> Service:
    return get_runtime(request).ready()


def rate_limit(request: Request) -> None:
    """Refuses a client already over its QA_RATE_LIMIT before the question is looked at (a no-op when unset);
    the question's cost is counted in the route, once it is known."""
    limiter = get_runtime(request).limiter
    if limiter is not None:
        limiter.precheck(request.client.host if request.client else None, request.headers.get("authorization"))


ServiceDep = Annotated[Service, Depends(get_service)]


def _query_names(dependant: Any) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def reject_unknown_query(request: Request) -> None:
    """Unknown or repeated query parameters are refused, like unknown JSON fields: a typo must not silently
    do nothing, and `?title=a&title=b` must not silently pick one."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not request.query_params or not getattr(route, "include_in_schema", False):
        return  # the demo page and widget assets take any query (`widget.js?v=3` cache busting)
    known = _query_names(dependant)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise InvalidRequestError(
            f"unknown query parameter: {', '.join(unknown)[:200]}", {"unknown": unknown[:20], "known": sorted(known)}
        )
    repeated = sorted(k for k in known if len(request.query_params.getlist(k)) > 1)
    if repeated:
        raise InvalidRequestError(
            f"query parameter given more than once: {', '.join(repeated)}", {"repeated": repeated}
        )


def create_app(settings: Settings, service: Service | None = None) -> FastAPI:
    runtime = Runtime(settings, service)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.start_loading()
        yield
        await run_in_threadpool(runtime.close)

    app = FastAPI(
        title="Chinese reports QA",
        version=_version(),
        description="Ranked passages with exact citations from Chinese reports on Japan's industrial hollowing-out "
        "and the US–Japan economic-security alliance.",
        lifespan=lifespan,
        dependencies=[Depends(reject_unknown_query)],
        docs_url=None,  # FastAPI's page loads its assets from a CDN: _install_docs serves them locally
        redoc_url=None,  # see DOCS_PACKAGE
    )
    app.router.route_class = StrictJSONRoute  # before any route is added: app.get/post/put all use it
    app.state.runtime = runtime
    _install_errors(app)
    _install_middleware(app, settings)
    Instrumentator(
        should_group_status_codes=False, excluded_handlers=["/metrics"], registry=runtime.metrics.registry
    ).instrument(app).expose(app, include_in_schema=False)

    @app.post(
        "/v1/ask",
        response_model=AskResponse,
        responses={**ERRORS, **NOT_FOUND, 429: {"model": ErrorBody, "description": "Over QA_RATE_LIMIT"}},
        dependencies=[Depends(rate_limit)],
        tags=["qa"],
    )
    async def ask(body: AskRequest, request: Request, service: ServiceDep) -> AskResponse:
        """Ranked passages answering the question, each with its exact span in the source file."""
        request.state.question = body.question
        cost = await run_in_threadpool(service.question_cost, body.question)
        if runtime.limiter is not None:
            runtime.limiter.check(
                request.client.host if request.client else None, request.headers.get("authorization"), cost
            )
        if cost > 1:  # long questions take turns (QA_MAX_LONG_QUESTIONS): they cannot crowd out short ones
            async with runtime.long_questions:
                answer = await run_in_threadpool(service.ask, body.question, body.top_k, body.doc_ids)
        else:
            answer = await run_in_threadpool(service.ask, body.question, body.top_k, body.doc_ids)
        runtime.metrics.observe_answer(answer)
        return answer_response(answer)

    @app.get("/v1/documents", response_model=DocumentList, responses=ERRORS, tags=["documents"])
    async def documents(service: ServiceDep) -> DocumentList:
        # store calls leave the event loop: with Milvus they are network round trips
        snap = await run_in_threadpool(service.snapshot)
        return DocumentList(
            documents=[DocumentSummary(**d.__dict__) for d in snap.documents()], index_version=snap.version
        )

    @app.get(
        "/v1/documents/{doc_id:anypath}",
        response_model=DocumentFull,
        responses={**ERRORS, **NOT_FOUND},
        tags=["documents"],
    )
    async def document(doc_id: str, service: ServiceDep) -> DocumentFull:
        """The document with its raw text: passage `start`/`end` index into `text`."""
        if len(doc_id) > PATH_MAX:  # no such file can exist: the store is not asked (the error shortens the id)
            raise DocumentNotFoundError(f"unknown doc_id: {doc_id}", {"doc_id": doc_id})
        snap = await run_in_threadpool(service.snapshot)
        info = snap.document(doc_id)
        text = await run_in_threadpool(snap.document_text, doc_id)
        return DocumentFull(**info.__dict__, text=text, index_version=snap.version)

    @app.get("/healthz", response_model=Health, tags=["ops"])
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get("/readyz", response_model=Ready, responses={503: {"model": Ready}}, tags=["ops"])
    async def readyz(request: Request) -> Response:
        try:
            service = runtime.ready()
            body = Ready(status="ready", index_version=(await run_in_threadpool(service.snapshot)).version)
            return JSONResponse(body.model_dump())
        except QAError as exc:
            return JSONResponse(Ready(status="not_ready", detail=exc.message).model_dump(), status_code=503)

    @app.get("/v1/info", response_model=Info, responses=ERRORS, tags=["ops"])
    async def info(service: ServiceDep) -> Info:
        snap = await run_in_threadpool(service.snapshot)
        m = snap.manifest
        return Info(
            version=_version(),
            pid=os.getpid(),
            model=service.embedder.identity.as_dict(),
            index={
                "version": snap.version,
                "store": service.backend.name,
                "dense_index": m.get("dense_index", {"type": "flat"}),
                "built_at": m.get("built_at"),
                "format_version": m.get("format_version"),
                "counts": m.get("counts"),
                "chunker": m.get("chunker"),
                "ranker": _ranker_summary(m.get("ranker")),
            },
            settings={
                "fusion": settings.fusion,
                "candidates": settings.candidates,
            },
        )

    install_admin(app)
    _install_widget(app)
    _install_docs(app)
    app.add_middleware(HeadLimit, max_bytes=settings.max_header_bytes)
    if settings.trusted_proxies:  # outermost: every layer below sees the real client
        app.add_middleware(TrustedProxies, proxies=settings.trusted_proxies)
    return app


def _ranker_summary(ranker: dict[str, Any] | None) -> dict[str, Any] | None:
    """What an operator checks: which fit ranks, its threshold and how it was fitted (not the weights)."""
    if not ranker:
        return None
    fitted = ranker.get("fitted", {})
    return {
        "model": ranker.get("model"),
        "threshold": ranker.get("threshold"),
        "fitted_at": fitted.get("at"),
        "questions": fitted.get("questions"),
        "out_of_fold": {k: v for k, v in fitted.get("out_of_fold", {}).items() if k != "reliability"},
    }


def _install_widget(app: FastAPI) -> None:
    files = resources.files("qa") / "widget"

    def static(name: str, media_type: str, csp: bool = False) -> Callable[[], Awaitable[Response]]:
        async def handler() -> Response:
            headers = {"Cache-Control": "no-cache"}
            if csp:
                headers["Content-Security-Policy"] = DEMO_CSP
            return Response((files / name).read_bytes(), media_type=media_type, headers=headers)

        return handler

    app.add_api_route("/widget.js", static("widget.js", "text/javascript; charset=utf-8"), include_in_schema=False)
    app.add_api_route("/widget.css", static("widget.css", "text/css; charset=utf-8"), include_in_schema=False)
    app.add_api_route("/", static("demo.html", "text/html; charset=utf-8", csp=True), include_in_schema=False)


def _install_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) with every asset served from this server: FastAPI's own page loads them from a CDN,
    so on an offline network it is blank. Swagger's validator badge (an online service) is off."""
    files = resources.files(DOCS_PACKAGE.replace("-", "_")) / "static"
    stamp = f"?v={metadata.version(DOCS_PACKAGE)}"  # a new package version is a new URL: caches may keep a day
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    def asset(name: str, media_type: str) -> Callable[[], Awaitable[Response]]:
        loaded: list[bytes] = []  # read on first use, then kept (the Swagger bundle is 1.5 MB)

        async def handler() -> Response:
            if not loaded:
                loaded.append((files / name).read_bytes())
            return Response(loaded[0], media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})

        return handler

    for path, (name, media_type) in DOCS_ASSETS.items():
        app.add_api_route(path, asset(name, media_type), include_in_schema=False)

    def local(request: Request, path: str) -> str:
        return request.scope.get("root_path", "").rstrip("/") + path  # behind a proxy's path prefix too

    async def swagger_ui(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=local(request, openapi_url),
            title=f"{app.title} - Swagger UI",
            swagger_js_url=local(request, "/docs/swagger-ui-bundle.js") + stamp,
            swagger_css_url=local(request, "/docs/swagger-ui.css") + stamp,
            swagger_favicon_url=local(request, "/docs/favicon.png") + stamp,
            oauth2_redirect_url=local(request, oauth2_redirect_url),
            swagger_ui_parameters={"validatorUrl": None},
        )

    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    app.add_api_route("/docs", swagger_ui, include_in_schema=False)
    app.add_api_route(oauth2_redirect_url, swagger_ui_redirect, include_in_schema=False)


def error_response(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    body = ErrorBody.model_validate(error_body(code, message, details))
    return JSONResponse(body.model_dump(), status_code=status)


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(QAError)
    async def qa_error(request: Request, exc: QAError) -> JSONResponse:
        if isinstance(exc, RateLimitedError):
            # a client that ignores Retry-After waits for its refusal too: refusals cannot become a flood
            await asyncio.sleep(get_runtime(request).settings.rate_limit_delay)
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
    for route in request.app.router.routes:
        if getattr(route, "methods", None) and route.matches(request.scope)[0] != Match.NONE:
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


def _install_middleware(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(HeadAsGet)  # innermost of these: the request log and CORS still see HEAD
    if settings.cors_origins:
        app.add_middleware(PublicCORS, origins=list(settings.cors_origins))
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
            "qa_client": request.client.host if request.client else None,
        }
        question = getattr(request.state, "question", None)
        if settings.log_questions and question is not None:
            extra["qa_question"] = question
        log.info("%s %s %d", request.method, path, response.status_code, extra=extra)
        return response


def is_admin_request(scope: Scope) -> bool:
    """Admin routes, and CORS preflights asking for an admin method."""
    path: str = scope.get("path", "")
    if path.startswith(("/v1/jobs", "/v1/index/")):
        return True
    method: str = scope.get("method", "")
    if method == "OPTIONS":
        method = dict(scope.get("headers", [])).get(b"access-control-request-method", b"").decode("latin-1").upper()
    return path.startswith("/v1/documents/") and method in ("PUT", "DELETE")


class PublicCORS:
    """CORS for QA_CORS_ORIGINS on the public routes only: admin routes never answer cross-origin."""

    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        self.app = app
        self.cors = JSONRefusalCORS(
            app,
            allow_origins=origins,
            allow_credentials=False,
            allow_methods=["GET", "POST"],
            allow_headers=["content-type", "x-request-id"],
            expose_headers=["x-request-id"],
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_admin_request(scope):
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


def _version() -> str:
    try:
        return metadata.version("qa")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers (`QA_WORKERS` > 1): settings from the environment."""
    from qa.logs import setup_logging
    from qa.server import configure

    settings = Settings.from_env()
    setup_logging(settings.log_level)
    configure(settings)
    return create_app(settings)
