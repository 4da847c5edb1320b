"""Run the service: build the index if there is none to serve (with progress), then serve with uvicorn.

A missing index, or one built with another model or chunker, is built before
serving (unless QA_BUILD_ON_START=0: a read-only replica waits for a writer).
An index that only lags the corpus serves at once, and the app rebuilds it in
the background (QA_BUILD_ON_START), swapping when done.
"""

from __future__ import annotations

import logging
from typing import Any

from qa.config import Settings
from qa.logs import setup_logging
from qa.serve.protocol import GuardedH11Protocol, configure

log = logging.getLogger(__name__)


def serve(settings: Settings) -> int:
    import uvicorn

    from qa.serve.app import create_app
    from qa.service import Service

    setup_logging(settings.log_level)
    service = Service(settings)
    if not settings.build_on_start:
        # a read-only replica never builds (with Milvus it would publish its own, maybe empty, corpus): it
        # serves what the store serves, and says not_ready until a writer has built something
        log.info("QA_BUILD_ON_START=0: serving the store's current index, never building it")
    else:
        state = service.index_state()
        if state in ("missing", "config"):
            why = "missing" if state == "missing" else "built with other settings"
            log.info("index %s: building before serving", why)
            result = service.build()
            log.info("index %s ready: %d docs, %d chunks", result.version, result.documents, result.chunks)
        elif state == "corpus":
            log.warning("the corpus changed since the index was built: serving it and rebuilding in the background")
    log.info("serving on http://%s:%d (%d worker(s))", settings.host, settings.port, settings.workers)
    configure(settings)
    if settings.workers > 1:
        # each worker process loads its own model and snapshot from the same index directory
        uvicorn.run("qa.serve.app:app_from_env", factory=True, workers=settings.workers, **uvicorn_options(settings))
    else:
        uvicorn.run(create_app(settings, service), **uvicorn_options(settings))
    return 0


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn serves: no proxy headers of its own (qa.serve.proxies decides whom to believe), its h11
    protocol with our deadline for request heads, and the limits from QA_* settings."""
    return {
        "host": settings.host,
        "port": settings.port,
        "http": GuardedH11Protocol,
        "ws": "none",
        "proxy_headers": False,
        "timeout_keep_alive": settings.keep_alive_timeout,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "log_config": None,
        "access_log": False,
    }
