"""Schemathesis against the app's own OpenAPI schema: no 5xx, every response as documented.

Driven through hypothesis directly (schemathesis' pytest plugin does not run under pytest 9).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from qa.api import create_app
from qa.service import Service

pytestmark = pytest.mark.slow
EXAMPLES = 300  # per operation (routes without parameters run out of distinct cases sooner)


@pytest.fixture(scope="module")
def api_schema(corpus_service: Service):  # type: ignore[no-untyped-def]
    corpus_service.warm_up()  # the ASGI transport runs no lifespan: load before the first case
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(corpus_service.settings, corpus_service))


def test_every_operation_conforms_to_its_schema(api_schema) -> None:  # type: ignore[no-untyped-def]
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 6
    calls: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def check(case: schemathesis.Case) -> None:
            calls.append(case.call_and_validate().status_code)

        check()
    assert len(calls) >= 500  # the campaign really ran (≈650 cases)
    assert max(calls) < 500
