"""Operations: /healthz (the process is up), /readyz (model and index loaded), /v1/info (what serves)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict
from importlib import metadata
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from qa.errors import QAError
from qa.serve.deps import RuntimeDep, ServiceDep
from qa.serve.errors import ERRORS
from qa.serve.jsonbody import StrictJSONRoute
from qa.serve.schemas import Health, Info, Ready

router = APIRouter(tags=["ops"], route_class=StrictJSONRoute)


def package_version() -> str:
    try:
        return metadata.version("qa")
    except metadata.PackageNotFoundError:
        return "0.0.0"


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Ready, responses={503: {"model": Ready}})
async def readyz(runtime: RuntimeDep) -> Response:
    try:
        service = runtime.ready()
        body = Ready(status="ready", index_version=(await run_in_threadpool(service.snapshot)).version)
        return JSONResponse(body.model_dump())
    except QAError as exc:
        return JSONResponse(Ready(status="not_ready", detail=exc.message).model_dump(), status_code=503)


@router.get("/v1/info", response_model=Info, responses=ERRORS)
async def info(service: ServiceDep, runtime: RuntimeDep) -> Info:
    snap = await run_in_threadpool(service.snapshot)
    m = snap.manifest
    return Info(
        version=package_version(),
        pid=os.getpid(),
        model={**service.embedder.identity.as_dict(), "backend": service.embedder.backend},
        index={
            "version": snap.version,
            "store": service.store.name,
            "dense_index": m.dense_index.as_dict(),
            "built_at": m.built_at or None,
            "format_version": m.format_version,
            "counts": asdict(m.counts),
            "chunker": asdict(m.chunker),
            "ranker": _ranker_summary(m.ranker),
            "encoder_backend": m.encoder_backend or None,
        },
        settings={
            "fusion": runtime.settings.fusion,
            "candidates": runtime.settings.candidates,
        },
    )


def _ranker_summary(ranker: Mapping[str, Any] | None) -> dict[str, Any] | None:
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
