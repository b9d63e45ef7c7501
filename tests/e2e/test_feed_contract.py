"""schemathesis against the integrators' routes: no 5xx for any input, responses as
documented. The SSE stream is left out (it never ends); tests/test_feed_sse.py covers it."""

from __future__ import annotations

import os
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

from tests.feed_support import make_api, workload

EXAMPLES = int(os.environ.get("FENGQIAO_SCHEMATHESIS_EXAMPLES", "8"))
OUR_PATHS = re.compile(r"^/(v1/events$|v1/schemas|v1/subscriptions|open311/)")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]


@pytest.fixture
def api(app, monkeypatch):
    monkeypatch.setenv("FENGQIAO_WEBHOOK_ALLOW_PRIVATE", "1")  # no DNS look-ups of invented hosts
    client = make_api(app)
    yield client
    client.close()


def test_the_integrator_routes_never_fail_on_bad_input(app, api):
    workload(app)
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.client.app)
    headers = api.headers("admin")
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if not OUR_PATHS.match(operation.path):
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            check()
        except Exception as error:  # noqa: BLE001 - collect every operation's failure
            failures.append(f"{operation.label}: {error}")
    assert not failures, "\n\n".join(failures)
