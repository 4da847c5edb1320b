"""Admin routes: put and delete documents, rebuild, follow jobs. Bearer token only.

Every route here is on `router`, whose dependency is `require_admin`: the token (QA_ADMIN_TOKEN) is
compared in constant time. Without it configured every admin route answers 403 saying how to enable it;
without a token sent, 401; with a wrong one, 403. CORS never applies to these routes: the middleware
knows them by that dependency (qa/serve/middleware.py), not by their paths.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from qa.documents import NOT_BINARY, parse_upload
from qa.errors import DocumentNotFoundError, JobNotFoundError
from qa.jobs import Job
from qa.serve.deps import DocId, RuntimeDep, require_admin
from qa.serve.jsonbody import StrictJSONRoute
from qa.serve.schemas import VISIBLE, ErrorBody, JobList, JobOut, RebuildRequest, job_out
from qa.textcheck import clean_title as one_line_title

log = logging.getLogger(__name__)

router = APIRouter(dependencies=[Depends(require_admin)], tags=["admin"], route_class=StrictJSONRoute)


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _error("No bearer token sent"),
    403: _error("Wrong token, or the admin API is disabled (QA_ADMIN_TOKEN unset)"),
    429: _error("Too many wrong tokens from this client (QA_ADMIN_AUTH_LIMIT); see Retry-After"),
    422: _error("Invalid request"),
    500: _error("The corpus directory could not be written; nothing was changed"),
    503: _error("Service not ready yet"),
}
UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("Malformed request"),
    413: _error("Document over QA_MAX_DOCUMENT_BYTES"),
    415: _error("Not text/plain or text/markdown, or a charset other than UTF-8/GB18030"),
    507: _error("The corpus volume is full; nothing was changed"),
}
# No "type": a text/plain body has no JSON type on the wire (`{}` sent as text is the text "{}"); the patterns
# say what is checked: at least one visible character, no control characters but tab, newlines, form feeds.
_TEXT = {"allOf": [{"pattern": NOT_BINARY}, {"pattern": VISIBLE}]}
TEXT_BODY = {
    "requestBody": {
        "required": True,
        "description": "The document, UTF-8 or GB18030 (say `charset=` or let the server detect it): "
        "text with at least one visible character and no control characters but tab, newlines and form feeds.",
        "content": {"text/plain": {"schema": _TEXT}, "text/markdown": {"schema": _TEXT}},
    }
}


@router.put(
    "/v1/documents/{doc_id:anypath}",
    status_code=202,
    response_model=JobOut,
    responses={**AUTH_ERRORS, **UPLOAD_ERRORS},
    openapi_extra=TEXT_BODY,
)
async def put_document(
    doc_id: DocId,
    request: Request,
    response: Response,
    runtime: RuntimeDep,
    title: Annotated[str | None, Query(min_length=1, max_length=200, description="Display title")] = None,
) -> JobOut:
    """Add or replace a document: on disk atomically before the 202, indexed by the returned job."""
    runtime.ready()
    body = await request.body()
    upload = parse_upload(doc_id, body, request.headers.get("content-type"), runtime.settings.max_document_bytes)
    clean_title = one_line_title(title) if title else None
    replaced = await run_in_threadpool(runtime.writer.put, upload, clean_title or None)  # fsyncs
    job = runtime.runner().submit("put", {"op": "put", "doc_id": doc_id})
    log.info("admin put %s (%s)", doc_id, "replaced" if replaced else "new", extra={"qa_job": job.id})
    return _accepted(job, response)


@router.delete(
    "/v1/documents/{doc_id:anypath}",
    status_code=202,
    response_model=JobOut,
    responses={**AUTH_ERRORS, 404: _error("Unknown document")},
)
async def delete_document(doc_id: DocId, response: Response, runtime: RuntimeDep) -> JobOut:
    """Remove a document; once the job succeeds no answer cites it."""
    runtime.ready()
    if not await run_in_threadpool(runtime.writer.delete, doc_id):
        raise DocumentNotFoundError(f"no document {doc_id!r} in the corpus", {"doc_id": doc_id})
    job = runtime.runner().submit("delete", {"op": "delete", "doc_id": doc_id})
    log.info("admin delete %s", doc_id, extra={"qa_job": job.id})
    return _accepted(job, response)


@router.post(
    "/v1/index/rebuild",
    status_code=202,
    response_model=JobOut,
    responses={**AUTH_ERRORS, 400: _error("Malformed JSON body")},
)
async def rebuild(
    response: Response, runtime: RuntimeDep, body: Annotated[RebuildRequest | None, Body()] = None
) -> JobOut:
    """Bring the index up to date with the corpus directory (`force`: re-embed everything)."""
    runtime.ready()
    job = runtime.runner().submit("rebuild", force=bool(body and body.force))
    return _accepted(job, response)


@router.get(
    "/v1/jobs/{job_id}",
    response_model=JobOut,
    responses={**AUTH_ERRORS, 404: _error("Unknown job")},
)
async def get_job(job_id: Annotated[str, Path(max_length=64)], runtime: RuntimeDep) -> JobOut:
    """State, progress and result of a rebuild job (from any worker of this server)."""
    job = runtime.job(job_id)
    if job is None:
        raise JobNotFoundError(f"no job {job_id!r}", {"job_id": job_id})
    return job_out(job)


@router.get("/v1/jobs", response_model=JobList, responses=AUTH_ERRORS)
async def list_jobs(
    runtime: RuntimeDep, limit: Annotated[int, Query(ge=1, le=200, description="Newest first")] = 20
) -> JobList:
    return JobList(jobs=[job_out(j) for j in runtime.jobs.recent(limit)])


def _accepted(job: Job, response: Response) -> JobOut:
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job_out(job)
