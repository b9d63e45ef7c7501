"""``/v1/cases``: report, act, read, history and time travel.

Thin: every route checks the caller's right and scope, then calls the
application service; the rules live in the domain.
"""

# No ``from __future__ import annotations``: each action's route is built in a loop
# and FastAPI must see the action's body model itself, not a name.

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Header, Path, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, create_model

from api.http.auth import (
    CallerRoute,
    CurrentUser,
    Principal,
    RegionParam,
    check_region_scope,
    check_view_scope,
    require,
    visible_case,
)
from api.http.bounds import moment_within
from api.http.openapi_docs import (
    ACTION_EXAMPLES,
    ACTION_SUMMARIES,
    READ,
    REPORT_EXAMPLES,
    WRITE,
    problem_responses,
)
from api.http.schemas import CaseList, CaseView, CommandResponse, HistoryEntry
from api.http.services import Services, services
from api.http.threads import lent_slot
from domain.commands import ACTIONS, AwareDatetime, CaseAction, Envelope, ReportAt
from domain.errors import NotPermitted, ValidationFailed
from domain.permissions import (
    PUBLIC_ACTIONS,
    READ_HISTORY,
    authorize_action,
    authorize_report,
    normalised_number,
    shown_to,
)
from domain.permissions import (
    READ as READ_RIGHT,
)
from engine.feed import encode_json
from engine.idempotency import once, scoped_command_id
from engine.intake import intake_of
from engine.privacy import persons_with_number, reveal, sees_personal_data
from engine.service import CommandResult
from engine.views import event_view

router = APIRouter(prefix="/v1/cases", tags=["cases"], route_class=CallerRoute)

Svc = Annotated[Services, Depends(services)]

IDEMPOTENCY_KEY = Header(
    alias="Idempotency-Key",
    max_length=128,
    pattern=r"^[\x21-\x7e]+$",
    description="Makes the command idempotent per user: a repeat returns the first response and changes nothing.",
    examples=["7f3a2c1e-report-1"],
)
IF_MATCH = Header(
    alias="If-Match",
    max_length=40,
    description='`"<version>"`: refuse with 412 unless the case is at this version.',
    examples=['"3"'],
)
MIN_POSITION = Query(
    ge=0,
    le=2**62,
    description="Wait (at most 5 s) until the projections have caught up with this event position.",
)

IF_MATCH_PATTERN = re.compile(r'^\s*(?:W/)?"?(\d{1,12})"?\s*$')


class ViewResponse(JSONResponse):
    """A case view or a page of case rows (JSON types already) written by orjson
    (``engine.feed.encode_json``, the json module for what orjson refuses): the json
    module's encoder was ~5% of a list's server CPU (issue 20)."""

    def render(self, content: Any) -> bytes:
        return encode_json(content)


class ReportRequest(ReportAt):
    """上报: a new case. ``occurred_at`` is when it happened, if earlier than now (offline reports).
    Without ``region``, ``lat``/``long`` find it (the smallest region whose geometry holds the point)."""

    occurred_at: AwareDatetime | None = None


def _occurred(model: type[CaseAction]) -> type[CaseAction]:
    """The action's body with the optional ``occurred_at`` every command takes."""
    return create_model(
        f"{model.__name__}Request",
        __base__=model,
        __doc__=ACTION_SUMMARIES.get(model.name, model.__doc__),
        occurred_at=(AwareDatetime | None, None),
    )


def command_id(principal: Principal, key: str | None) -> str:
    """An ``Idempotency-Key`` is scoped to its user (:mod:`engine.idempotency`); without
    one, every request is new."""
    return scoped_command_id(principal.actor.id, key) if key else f"{principal.name}:{uuid.uuid4()}"


def expected_version(if_match: str | None) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    match = IF_MATCH_PATTERN.match(if_match)
    if not match or int(match.group(1)) < 1:
        raise ValidationFailed('If-Match must be a version in quotes, e.g. "3"', field="If-Match")
    return int(match.group(1))


def command_response(
    svc: Services,
    result: CommandResult,
    status: int,
    role: str,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body = shown_to(
        role, svc.engine.case_view(result.case_id, result.version, now=svc.engine.clock.now())
    )
    body["position"] = result.position
    body.update(shown_to(role, extra or {}))
    headers = {"ETag": f'"{result.version}"'}
    if status == 201:
        headers["Location"] = f"/v1/cases/{result.case_id}"
    if result.repeated:
        headers["Idempotent-Replayed"] = "true"
    return ViewResponse(body, status_code=status, headers=headers)


def wait_for_projections(svc: Services, position: int | None) -> None:
    """Read-your-writes: wait (bounded) until the projections have applied ``position``.
    A position beyond the last event recorded is waited for only up to that event."""
    if position is not None and svc.runner is not None:
        target = min(position, svc.engine.head_position())
        if svc.runner.wait_for(target, timeout=0):
            return
        with lent_slot():  # waiting holds up no other request (api.http.threads)
            svc.runner.wait_for(target, timeout=svc.settings.max_wait_seconds)


# -- commands ---------------------------------------------------------------------


@router.post(
    "",
    status_code=201,
    summary="上报 — report a new case",
    response_model=None,
    responses={
        201: {
            "model": CommandResponse,
            "description": "The case as reported",
            "headers": {
                "Location": {"description": "/v1/cases/{id}", "schema": {"type": "string"}}
            },
        },
        **problem_responses(*WRITE),
    },
)
def report_case(
    principal: CurrentUser,
    svc: Svc,
    body: Annotated[ReportRequest, Body(openapi_examples=REPORT_EXAMPLES)],
    idempotency_key: Annotated[str | None, IDEMPOTENCY_KEY] = None,
) -> JSONResponse:
    return run_report(svc, principal, body, idempotency_key)


def run_report(
    svc: Services, principal: Principal, body: ReportRequest, idempotency_key: str | None
) -> JSONResponse:
    """上报 as ``principal``: the API's route and the workbench's form alike."""
    body = svc.engine.placed(
        body
    )  # the region given, or the one the point lies in (422 outside all)
    assert body.region is not None  # placed
    authorize_report(principal.actor, body.region)
    svc.engine.region(body.region)
    envelope = Envelope(
        actor=principal.actor,
        command_id=command_id(principal, idempotency_key),
        occurred_at=body.occurred_at,
    )
    result = once(
        svc.engine,
        principal.actor.id,
        idempotency_key,  # counted by the metrics (command_observers)
        lambda: svc.engine.report(body, envelope),
    )
    duplicates = possible_duplicates(svc, principal, result.case_id)
    return command_response(svc, result, 201, principal.role, {"possible_duplicates": duplicates})


def possible_duplicates(svc: Services, principal: Principal, case_id: UUID) -> list[dict[str, Any]]:
    """Open cases the new report may repeat, in the caller's scope (never blocks the report:
    without read models the answer is an empty list)."""
    if svc.read_models is None:
        return []
    intake, area, rule = intake_of(svc.engine, case_id)
    return svc.read_models.possible_duplicates(intake, area, principal.region, rule)


@dataclass(frozen=True)
class ActionRequest:
    """A person's case action as it arrived: who, which action on which case, its body,
    the caller's idempotency key."""

    principal: Principal
    name: str
    case_id: UUID
    body: CaseAction
    key: str | None


def perform_action(svc: Services, request: ActionRequest, expected: int | None) -> CommandResult:
    """The one path of a person's case action over HTTP (the API and the dashboard): the
    right and region scope (``authorize_action``), the key scoped to the caller, the
    expected version, then ``Fengqiao.act``."""
    principal, case_id, body = request.principal, request.case_id, request.body
    stored = principal.stored_version(case_id)
    case = authorize_action(
        principal.actor,
        request.name,
        lambda: svc.engine.current_case(case_id, stored),
        body.model_dump(),
    )
    envelope = Envelope(
        actor=principal.actor,
        command_id=command_id(principal, request.key),
        expected_version=expected,
        occurred_at=getattr(body, "occurred_at", None),
    )
    return once(
        svc.engine,
        principal.actor.id,
        request.key,
        lambda: svc.engine.act(case_id, body, envelope),
        case_id,
        case,  # as the scope check just read it: no second read for the legacy-key lookup
    )


def run_action(svc: Services, request: ActionRequest, if_match: str | None) -> JSONResponse:
    result = perform_action(svc, request, expected_version(if_match))
    return command_response(svc, result, 200, request.principal.role)


ACTION_REQUESTS = {name: _occurred(ACTIONS[name]) for name in sorted(PUBLIC_ACTIONS)}
"""Each public action's request body: its fields and ``occurred_at``."""


def _register_action(name: str) -> None:
    model = ACTION_REQUESTS[name]
    optional = not any(f.is_required() for f in model.model_fields.values())
    example = {"example": {"summary": ACTION_SUMMARIES[name], "value": ACTION_EXAMPLES[name]}}
    # ``model`` is built at run time: FastAPI reads these annotations, mypy cannot
    endpoint: Callable[..., JSONResponse]
    if optional:

        def optional_body(
            principal: CurrentUser,
            svc: Svc,
            case_id: Annotated[UUID, Path(description="the case id")],
            body: Annotated[model | None, Body(openapi_examples=example)] = None,  # type: ignore[valid-type]
            idempotency_key: Annotated[str | None, IDEMPOTENCY_KEY] = None,
            if_match: Annotated[str | None, IF_MATCH] = None,
        ) -> JSONResponse:
            body = body if body is not None else model()
            request = ActionRequest(principal, name, case_id, body, idempotency_key)
            return run_action(svc, request, if_match)

        endpoint = optional_body
    else:

        def required_body(
            principal: CurrentUser,
            svc: Svc,
            case_id: Annotated[UUID, Path(description="the case id")],
            body: Annotated[model, Body(openapi_examples=example)],  # type: ignore[valid-type]
            idempotency_key: Annotated[str | None, IDEMPOTENCY_KEY] = None,
            if_match: Annotated[str | None, IF_MATCH] = None,
        ) -> JSONResponse:
            request = ActionRequest(principal, name, case_id, body, idempotency_key)
            return run_action(svc, request, if_match)

        endpoint = required_body

    endpoint.__name__ = f"case_{name.replace('-', '_')}"
    router.post(
        f"/{{case_id}}/{name}",
        summary=ACTION_SUMMARIES[name],
        response_model=None,
        responses={
            200: {"model": CommandResponse, "description": "The case after the action"},
            **problem_responses(*WRITE),
        },
    )(endpoint)


# -- queries ----------------------------------------------------------------------


class CaseQuery(BaseModel):
    """``GET /v1/cases``'s query: the region, the filters and page ``ReadModels.list_cases``
    takes as they are, ``min_position`` and the search words ``q``. A query parameter
    model: FastAPI validates it in one call (twelve parameters one by one were a third of a
    list's event-loop time, issue 20); the OpenAPI document lists the same parameters."""

    region: RegionParam = None
    status: Annotated[str | None, Query(max_length=40)] = None
    kind: Annotated[str | None, Query(max_length=40)] = None
    severity: Annotated[str | None, Query(max_length=40)] = None
    rank: Annotated[str | None, Query(max_length=40)] = None
    assignee: Annotated[str | None, Query(max_length=200)] = None
    overdue: bool | None = None
    due_soon: bool | None = None
    limit: Annotated[int, Query(ge=1, le=500)] = 50
    cursor: Annotated[str | None, Query(max_length=500)] = None
    min_position: Annotated[int | None, MIN_POSITION] = None
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            description="words to find in titles, descriptions, comments, replies and "
            "resolutions (each at least two characters; all must match; the cases whose title "
            "holds them first, then the others, newest first in each), or a phone or ID "
            "number to find its parties' cases (not for integrators)",
            examples=["水费", "13812345678"],
        ),
    ] = None

    def filters(self) -> dict[str, Any]:
        """What ``ReadModels.list_cases`` takes as it is."""
        own = ("region", "min_position", "q")
        return {k: getattr(self, k) for k in type(self).model_fields if k not in own}


@router.get(
    "",
    summary="List cases in the caller's region (from the projections)",
    response_model=None,
    responses={200: {"model": CaseList}, **problem_responses(*READ, 403, 503)},
)
def list_cases(
    principal: CurrentUser, svc: Svc, query: Annotated[CaseQuery, Query()]
) -> JSONResponse:
    from api.http.readmodels import read_models

    if not principal.may(READ_RIGHT):
        raise NotPermitted(f"a {principal.role} may not read cases", role=principal.role)
    code = query.region or principal.region
    check_region_scope(principal, code, svc)
    wait_for_projections(svc, query.min_position)
    q, persons = search_terms(svc, principal, query.q)
    rows, next_cursor = read_models(svc).list_cases(
        region=code, q=q, persons=persons, **query.filters()
    )
    items = shown_to(principal.role, rows)  # JSON types already (``projections.queries.case_row``)
    return ViewResponse({"items": items, "next_cursor": next_cursor})


def search_terms(
    svc: Services, principal: Principal, q: str | None
) -> tuple[str | None, list[str] | None]:
    """``q`` as the case list takes it: words, or — for a phone or ID number — the persons
    whose number it is (their keyed hash; integrators may not search by number)."""
    if q is None or normalised_number(q) is None:
        return q, None
    if not sees_personal_data(principal.role):
        raise NotPermitted(
            f"a {principal.role} may not search by a personal number", role=principal.role
        )
    return None, persons_with_number(svc.engine, q)


@router.get(
    "/{case_id}",
    summary="The case view now",
    response_model=None,
    responses={200: {"model": CaseView}, **problem_responses(*READ)},
)
def get_case(
    principal: CurrentUser,
    svc: Svc,
    case_id: UUID,
    min_position: Annotated[int | None, MIN_POSITION] = None,
) -> JSONResponse:
    wait_for_projections(svc, min_position)
    shown = svc.engine.case_view(case_id, stored_version=principal.stored_version(case_id))
    check_view_scope(principal, shown)
    return ViewResponse(shown_to(principal.role, shown), headers={"ETag": f'"{shown["version"]}"'})


@router.get(
    "/{case_id}/history",
    summary="Every event of the case, in order (auditors)",
    response_model=None,
    responses={200: {"model": list[HistoryEntry]}, **problem_responses(403, *READ)},
)
def case_history(principal: CurrentUser, svc: Svc, case_id: UUID) -> JSONResponse:
    require(principal, READ_HISTORY)
    visible_case(svc, principal, case_id)
    entries = []
    for recorded in svc.engine.history(case_id):
        entry = event_view(recorded.position, recorded.event)
        if isinstance(entry["data"].get("parties"), list):
            entry["data"]["parties"] = reveal(entry["data"]["parties"], principal.role)
        entries.append(entry)
    return JSONResponse(shown_to(principal.role, jsonable_encoder(entries)))


@router.get(
    "/{case_id}/state",
    summary="The case as replayed at a version or a moment (auditors)",
    response_model=None,
    responses={200: {"model": CaseView}, **problem_responses(403, *READ)},
)
def case_state(
    principal: CurrentUser,
    svc: Svc,
    case_id: UUID,
    version: Annotated[
        int | None, Query(ge=1, le=2**31, description="the case at this version")
    ] = None,
    as_of: Annotated[
        datetime | None,
        Query(
            description="the case as recorded at this moment (RFC 3339)",
            examples=["2026-09-28T10:00:00+08:00"],
        ),
    ] = None,
) -> JSONResponse:
    require(principal, READ_HISTORY)
    visible_case(svc, principal, case_id)
    if (version is None) == (as_of is None):
        raise ValidationFailed("give exactly one of version or as_of", field="version")
    if as_of is not None:
        if as_of.tzinfo is None:
            raise ValidationFailed("as_of needs a time zone", field="as_of")
        moment_within(as_of, "as_of", svc.engine.clock.now())
    return JSONResponse(
        shown_to(principal.role, svc.engine.case_view(case_id, version=version, as_of=as_of))
    )


# The actions' routes come after the reads: a request is matched against the routes in order,
# and reads (the most frequent requests) then pass ~30 fewer candidates (docs/performance-log.md).
for _name in sorted(PUBLIC_ACTIONS):
    _register_action(_name)
