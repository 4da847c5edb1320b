"""Run the service: build or refresh the index (with progress), then serve with uvicorn."""

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
    if service.is_stale():
        log.info("index missing or out of date: building")
        result = service.build()
        log.info("index %s ready: %d docs, %d chunks", result.version, result.documents, result.chunks)
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
