"""POST /v1/ask: ranked passages answering a question, each with its exact span in the source."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from qa.serve.deps import RuntimeDep, ServiceDep, client_of, rate_limit
from qa.serve.errors import ERRORS, NOT_FOUND
from qa.serve.jsonbody import StrictJSONRoute
from qa.serve.schemas import AskRequest, AskResponse, ErrorBody, answer_response

router = APIRouter(tags=["qa"], route_class=StrictJSONRoute)


@router.post(
    "/v1/ask",
    response_model=AskResponse,
    responses={**ERRORS, **NOT_FOUND, 429: {"model": ErrorBody, "description": "Over QA_RATE_LIMIT"}},
    dependencies=[Depends(rate_limit)],
)
async def ask(body: AskRequest, request: Request, service: ServiceDep, runtime: RuntimeDep) -> AskResponse:
    """Ranked passages answering the question, each with its exact span in the source file."""
    request.state.question = body.question
    cost = await run_in_threadpool(service.question_cost, body.question)
    if runtime.limiter is not None:
        runtime.limiter.check(client_of(request), request.headers.get("authorization"), cost)
    if cost > 1:  # long questions take turns (QA_MAX_LONG_QUESTIONS): they cannot crowd out short ones
        async with runtime.long_questions:
            answer = await run_in_threadpool(service.ask, body.question, body.top_k, body.doc_ids)
    else:
        answer = await run_in_threadpool(service.ask, body.question, body.top_k, body.doc_ids)
    runtime.metrics.observe_answer(answer)
    return answer_response(answer)
