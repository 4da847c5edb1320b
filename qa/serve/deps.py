"""What routes depend on: the runtime and service of this app, the question limit, the admin token, path types.

Every route takes these as `Annotated[..., Depends(...)]` parameters or router dependencies; nothing is
global, so several apps (tests) run side by side.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.convertors import Convertor, register_url_convertor

from qa.documents import DOC_ID_MAX, DOC_ID_PATTERN
from qa.errors import ForbiddenError, InvalidRequestError, UnauthorizedError
from qa.serve.runtime import Runtime
from qa.service import Service

bearer = HTTPBearer(auto_error=False, description="The admin token (QA_ADMIN_TOKEN).")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_service(request: Request) -> Service:
    return get_runtime(request).ready()


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ServiceDep = Annotated[Service, Depends(get_service)]


def client_of(request: Request) -> str | None:
    return request.client.host if request.client else None


def rate_limit(request: Request) -> None:
    """Refuses a client already over its QA_RATE_LIMIT before the question is looked at (a no-op when unset);
    the question's cost is counted in the route, once it is known."""
    limiter = get_runtime(request).limiter
    if limiter is not None:
        limiter.precheck(client_of(request), request.headers.get("authorization"))


def require_admin(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    """The admin router's dependency: the token compared in constant time, wrong guesses throttled."""
    token = get_runtime(request).settings.admin_token
    if not token:
        raise ForbiddenError("the admin API is disabled: set QA_ADMIN_TOKEN on the server to enable it")
    throttle = get_runtime(request).auth_throttle
    client = client_of(request)
    throttle.precheck(client)  # a throttled client learns nothing, not even from the right token
    if credentials is None:
        err = UnauthorizedError("send the admin token as `Authorization: Bearer <QA_ADMIN_TOKEN>`")
        err.headers = {"WWW-Authenticate": "Bearer"}
        raise err
    if not hmac.compare_digest(credentials.credentials.encode("latin-1"), token.encode("ascii")):
        throttle.failed(client)
        raise ForbiddenError("wrong admin token")


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


class AnyPath(Convertor[str]):
    """Like Starlette's `path`, but line breaks match too: every id reaches the route, and a bad one gets
    the route's 422 instead of a 404 from a router that found no route."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anypath", AnyPath())  # Starlette's registry is per process; registering is idempotent


DocId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=DOC_ID_MAX,
        pattern=DOC_ID_PATTERN,
        description="Letters, digits, CJK, `_`, `.`, `-`; no `/`, `\\`, no leading or trailing dot; ≤ 64 chars.",
        examples=["report-2026"],
    ),
]
