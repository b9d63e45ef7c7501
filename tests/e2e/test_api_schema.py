"""schemathesis over the whole API: every operation of the OpenAPI document, with valid
and invalid input, as callers of several roles and as nobody; no 5xx, and every answer's
status, content type, headers and body are the ones the document declares (issue 21,
item 5).

Most generated ids are swapped for real ones (cases, subscriptions, regions, services,
event types, problem types, an Open311 ``api_key``), so requests reach the rules rather
than a 404. The default run is bounded (``FENGQIAO_SCHEMATHESIS_EXAMPLES``, default 3
per operation and mode); the deeper run is marked ``slow``: ``pytest -m slow
tests/e2e/test_api_schema.py`` (60 per operation and mode). The dashboard's pages (``/ui/``)
and the API reference page (``/docs``) are left out of the document on purpose: see
``test_only_the_pages_for_people_are_left_out_of_the_document`` and docs/api.md.
"""

from __future__ import annotations

import os
import socket
import zlib
from typing import Any

import pytest
import schemathesis
from fastapi.routing import iter_route_contexts
from hypothesis import given
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.http.services import FailedLogins, Settings
from engine import subscriptions
from tests.test_api_support import DISPUTE, HAZARD, PETITION, Api, bounded

EXAMPLES = int(os.environ.get("FENGQIAO_SCHEMATHESIS_EXAMPLES", "3"))
LONG_EXAMPLES = 60  # the `slow` run: pytest -m slow tests/e2e/test_api_schema.py
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
CALLERS = ("boss", "boss", "feed", "wang", None)
"""Who calls, in turn: a county admin (most calls, to reach the rules), an integrator, a
reporter (403s) and nobody (401s, Open311's 403)."""
REAL_GETADDRINFO = socket.getaddrinfo
STREAM_SECONDS = 0.3
"""How long a Server-Sent Events answer is read before the client hangs up."""


def test_the_api_keeps_its_own_contract(api: Api, monkeypatch: pytest.MonkeyPatch):
    check_contract(api, EXAMPLES, monkeypatch)


@pytest.mark.slow
def test_the_api_keeps_its_own_contract_at_length(api: Api, monkeypatch: pytest.MonkeyPatch):
    check_contract(api, LONG_EXAMPLES, monkeypatch)


def numeric_only(host: Any, port: Any, *args: Any, **kw: Any) -> Any:
    """Webhook targets resolve only as IP literals here: generated host names never reach a
    resolver (no traffic leaves the loopback); a name fails as an unknown host does."""
    return REAL_GETADDRINFO(host, port, *args, **{**kw, "flags": socket.AI_NUMERICHOST})


def real_ids(api: Api) -> dict[str, list[str]]:
    """Real values for the path and key parameters schemathesis would otherwise invent."""
    cases = [api.report(body, who="boss")["id"] for body in (DISPUTE, HAZARD, PETITION)]
    api.act(cases[0], "assign", {"assignee": "zhao"}, "boss")
    api.act(cases[0], "accept", None, "zhao")
    made = api.post("/v1/subscriptions", {"url": "http://127.0.0.1:9/hook"}, "feed")
    assert made.status_code == 201, made.text
    types = api.get("/v1/schemas").json()["types"]
    return {
        "case_id": cases,
        "request_id": cases[1:],  # Open311 sees hazards and petitions
        "subscription_id": [made.json()["id"]],
        "code": ["410928-001-007-03", "410928", "petition.utilities", "hazard.fire"],
        "event_type": [t["type"] for t in types[:3]],
        "name": ["validation", "not-found"],
        "fmt": ["json", "xml"],
        "api_key": [api.tokens["boss"]],
    }


def with_real_values(case: Any, real: dict[str, list[str]], n: int) -> None:
    """Most examples (three in four) act on real things; the rest keep what was generated."""
    if not n % 4:
        return
    for name, value in list((case.path_parameters or {}).items()):
        if name in real and value is not None:
            case.path_parameters[name] = real[name][n % len(real[name])]
    if isinstance(case.query, dict) and "api_key" in case.query:
        case.query["api_key"] = real["api_key"][0]
    if isinstance(case.body, dict) and "api_key" in case.body:
        case.body["api_key"] = real["api_key"][0]


def modes(definition: dict[str, Any]) -> tuple[GenerationMode, ...]:
    """Valid input always; invalid input where there is something to make invalid (a body,
    or a parameter that is more than any string: a bare string path parameter has none)."""
    constrained = any(
        set(parameter.get("schema", {})) - {"type", "title", "description"}
        or parameter.get("schema", {}).get("type", "string") != "string"
        for parameter in definition.get("parameters", [])
    )
    if constrained or "requestBody" in definition:
        return (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    return (GenerationMode.POSITIVE,)


def check_contract(api: Api, examples: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subscriptions.socket, "getaddrinfo", numeric_only)
    api.http.state.services.settings = Settings(
        max_wait_seconds=0.05, sse_heartbeat=0.05, webhook_allow_private=True
    )  # ?min_position and the stream: do not idle; a webhook on 127.0.0.1 (never called)
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.http)
    real = real_ids(api)
    failures: list[str] = []
    covered = set()
    for result in schema.get_all_operations():
        operation = result.ok()
        covered.add(operation.label)
        bodies = list(operation.definition.raw.get("requestBody", {}).get("content", {}))
        for mode in modes(operation.definition.raw):
            for media_type in bodies or [None]:  # each body it takes: Open311's form and JSON
                try:
                    check_operation(api, operation, mode, examples, real, media_type)
                except BaseException as error:  # noqa: BLE001 - collect every failure
                    inner = getattr(error, "exceptions", ())
                    failures.append(
                        f"{operation.label} {media_type} ({mode.value}): {error} {inner}"
                    )
    assert not failures, "\n\n".join(failures)
    document = api.client.get("/openapi.json").json()
    assert covered == {
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method in operations
    }


def check_operation(
    api: Api,
    operation: Any,
    mode: GenerationMode,
    examples: int,
    real: dict[str, list[str]],
    media_type: str | None,
) -> None:
    svc = api.http.state.services
    streams = "text/event-stream" in str(operation.definition.raw.get("responses"))
    timeout = STREAM_SECONDS if streams else 30  # a stream is read until the client hangs up

    @given(case=operation.as_strategy(generation_mode=mode, media_type=media_type))
    @bounded(examples)
    def check(case: Any) -> None:
        n = zlib.crc32(repr((case.path_parameters, case.query, case.body)).encode())
        with_real_values(case, real, n)  # the same choices when hypothesis replays it
        who = CALLERS[n % len(CALLERS)]
        svc.failed_logins = FailedLogins(20, 60)  # a fresh count: 429 is tested on its own
        case.call_and_validate(headers=api.headers(who), checks=CHECKS, timeout=timeout)

    check()


def test_only_the_pages_for_people_are_left_out_of_the_document(api: Api):
    """Every route the app serves is in the document, but the dashboard's HTML pages
    (``/ui/``: cookie sessions and forms for people in a browser, tested by the browser
    tests) and the reference page itself (``/docs``, ``/openapi.json`` and the docs'
    assets): no integrator calls these, and docs/api.md says so."""
    document = api.client.get("/openapi.json").json()
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    left_out = sorted(
        (method, route.path)
        for route in iter_route_contexts(api.http.routes)
        for method in route.methods or ()
        if method != "HEAD" and (method, route.path) not in documented
    )
    pages = ("/ui/", "/ui", "/docs", "/openapi.json")
    assert left_out and all(path.startswith(pages) for _, path in left_out), left_out
    assert any(path.startswith("/ui/") for _, path in left_out)
