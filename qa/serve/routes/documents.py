"""GET /v1/documents and /v1/documents/{doc_id}: what is indexed, and the text citations index into."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from qa.errors import DocumentNotFoundError
from qa.serve.deps import ServiceDep
from qa.serve.errors import ERRORS, NOT_FOUND
from qa.serve.jsonbody import StrictJSONRoute
from qa.serve.schemas import DocumentFull, DocumentList, DocumentSummary

PATH_MAX = 4096  # Linux PATH_MAX: no corpus file has a longer relative path, so no longer doc_id can exist

router = APIRouter(tags=["documents"], route_class=StrictJSONRoute)


@router.get("/v1/documents", response_model=DocumentList, responses=ERRORS)
async def documents(service: ServiceDep) -> DocumentList:
    # store calls leave the event loop: with Milvus they are network round trips
    snap = await run_in_threadpool(service.snapshot)
    return DocumentList(documents=[DocumentSummary(**d.__dict__) for d in snap.documents()], index_version=snap.version)


@router.get("/v1/documents/{doc_id:anypath}", response_model=DocumentFull, responses={**ERRORS, **NOT_FOUND})
async def document(doc_id: str, service: ServiceDep) -> DocumentFull:
    """The document with its raw text: passage `start`/`end` index into `text`."""
    if len(doc_id) > PATH_MAX:  # no such file can exist: the store is not asked (the error shortens the id)
        raise DocumentNotFoundError(f"unknown doc_id: {doc_id}", {"doc_id": doc_id})
    snap = await run_in_threadpool(service.snapshot)
    info = snap.document(doc_id)
    text = await run_in_threadpool(snap.document_text, doc_id)
    return DocumentFull(**info.__dict__, text=text, index_version=snap.version)
