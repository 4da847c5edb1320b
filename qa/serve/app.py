"""The HTTP API: `create_app(settings)` wires routers, error handlers and middleware; nothing global.

The model and index load in a background thread so `/healthz` answers at once
and `/readyz` says 503 until the service is warm.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from prometheus_fastapi_instrumentator import Instrumentator
from starlette.concurrency import run_in_threadpool

from qa.config import Settings
from qa.serve.deps import reject_unknown_query
from qa.serve.errors import install_error_handlers
from qa.serve.jsonbody import StrictJSONRoute
from qa.serve.middleware import HeadLimit, install_middleware
from qa.serve.proxies import TrustedProxies
from qa.serve.routes import admin, ask, documents, ops
from qa.serve.routes.ops import package_version
from qa.serve.runtime import Runtime
from qa.serve.static import install_docs, install_widget
from qa.service import Service


def create_app(settings: Settings, service: Service | None = None) -> FastAPI:
    runtime = Runtime(settings, service)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.start_loading()
        yield
        await run_in_threadpool(runtime.close)

    app = FastAPI(
        title="Chinese reports QA",
        version=package_version(),
        description="Ranked passages with exact citations from Chinese reports on Japan's industrial hollowing-out "
        "and the US–Japan economic-security alliance.",
        lifespan=lifespan,
        dependencies=[Depends(reject_unknown_query)],
        docs_url=None,  # FastAPI's page loads its assets from a CDN: install_docs serves them locally
        redoc_url=None,  # see qa.serve.static.DOCS_PACKAGE
    )
    app.router.route_class = StrictJSONRoute  # before any route is added: every route parses JSON strictly
    app.state.runtime = runtime
    install_error_handlers(app)
    install_middleware(app, settings)
    Instrumentator(
        should_group_status_codes=False, excluded_handlers=["/metrics"], registry=runtime.metrics.registry
    ).instrument(app).expose(app, include_in_schema=False)
    for module in (ask, documents, ops, admin):
        app.include_router(module.router)
    install_widget(app)
    install_docs(app)
    app.add_middleware(HeadLimit, max_bytes=settings.max_header_bytes)
    if settings.trusted_proxies:  # outermost: every layer below sees the real client
        app.add_middleware(TrustedProxies, proxies=settings.trusted_proxies)
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers (`QA_WORKERS` > 1): settings from the environment."""
    from qa.logs import setup_logging
    from qa.serve.protocol import configure

    settings = Settings.from_env()
    setup_logging(settings.log_level)
    configure(settings)
    return create_app(settings)
