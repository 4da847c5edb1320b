"""Run the service: build the index if there is none to serve (with progress), then serve with uvicorn.

A missing index, or one built with another model or chunker, is built before
serving (unless QA_BUILD_ON_START=0: a read-only replica waits for a writer).
An index that only lags the corpus serves at once, and the app rebuilds it in
the background (QA_BUILD_ON_START), swapping when done.
"""

from __future__ import annotations

import logging

from qa.config import Settings
from qa.logs import setup_logging

log = logging.getLogger(__name__)


def serve(settings: Settings) -> int:
    import uvicorn

    from qa.api import create_app
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
    if settings.workers > 1:
        # each worker process loads its own model and snapshot from the same index directory
        uvicorn.run(
            "qa.api:app_from_env",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_config=None,
            access_log=False,
        )
    else:
        app = create_app(settings, service)
        uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False)
    return 0
