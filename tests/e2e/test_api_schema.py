"""schemathesis against the app's own OpenAPI document: no 5xx, responses match the schema.

The default run is bounded (``FENGQIAO_SCHEMATHESIS_EXAMPLES``, default 6 per
operation); the longer run is marked ``slow``: ``pytest -m slow tests/test_api_schema.py``
(150 per operation). Most generated case ids are swapped for real cases, so bodies reach
the rules rather than a 404.
"""

from __future__ import annotations

import itertools
import os
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.http.services import Settings
from tests.test_api_support import DISPUTE, HAZARD, PETITION, Api

EXAMPLES = int(os.environ.get("FENGQIAO_SCHEMATHESIS_EXAMPLES", "6"))
LONG_EXAMPLES = 150  # the `slow` run: pytest -m slow tests/test_api_schema.py
OWN_PATHS = re.compile(
    r"^/(v1/cases|v1/regions|v1/sla|v1/schemas|v1/calendar|problems/|healthz|readyz|metrics)"
)
"""This suite's routes (cases, regions, SLA, event schemas, calendar, problem types, ops); the feed's
routers test their own."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_the_api_keeps_its_own_contract(api: Api):
    check_contract(api, EXAMPLES)


@pytest.mark.slow
def test_the_api_keeps_its_own_contract_at_length(api: Api):
    check_contract(api, LONG_EXAMPLES)


def check_contract(api: Api, examples: int) -> None:
    api.http.state.services.settings = Settings(max_wait_seconds=0.05)  # ?min_position: do not idle
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.http)
    headers = api.headers("boss")
    real = [api.report(body, who="boss")["id"] for body in (DISPUTE, HAZARD, PETITION)]
    api.act(real[0], "assign", {"assignee": "zhao"}, "boss")
    api.act(real[0], "accept", None, "zhao")
    sent = itertools.count()
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if not OWN_PATHS.match(operation.path):
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=examples,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case) -> None:
            n = next(sent)
            if (case.path_parameters or {}).get("case_id") is not None and n % 4:
                case.path_parameters["case_id"] = real[n % 3]  # most examples act on real cases
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            check()
        except Exception as error:  # noqa: BLE001 - collect every operation's failure
            failures.append(f"{operation.label}: {error}")
    assert not failures, "\n\n".join(failures)
