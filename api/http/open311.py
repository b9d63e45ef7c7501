"""Open311 GeoReport v2 (JSON) over petitions and hazards.

The petition and hazard categories are the services (``petition.utilities``,
``hazard.fire`` …). A ``POST requests.json`` reports a case through the same command
path as ``POST /v1/cases`` (channel ``platform``); ``service_request_id`` is the case
id. A request is ``open`` until the case is resolved, then ``closed``;
``expected_datetime`` is the due time of the case's resolve clock (petition: 办结
``reply``; hazard: 限时整改 ``rectification``, then 销号 ``signoff``).

Discovery and services are public. Requests need a user (``Authorization: Bearer``
or the spec's ``api_key`` parameter); reading needs the ``read`` right, posting the
``report`` right, and a caller sees only requests in their region's subtree.
Disputes are not Open311 services and never appear here. Errors are problem+json
like the rest of the API.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qs
from uuid import UUID

from eventsourcing.utils import get_topic
from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from api.http.auth import Principal, Unauthenticated, authenticated, forbid, region_not_found
from api.http.openapi_docs import problem_responses
from api.http.services import Services, services
from domain.cases import CASE_CLASSES, CATEGORIES, OPEN, Case
from domain.commands import Envelope, Party, ReportCase, check_moment
from domain.errors import NotFound, ValidationFailed
from domain.kinds import Kind
from domain.permissions import READ, REPORT, SEPARATORS, case_in_scope, mask_numbers
from engine.case_clocks import clocks_of
from engine.idempotency import once, scoped_command_id

router = APIRouter(prefix="/open311/v2", tags=["open311"], responses=problem_responses(401, 403, 404, 422))
Svc = Annotated[Services, Depends(services)]

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
SERVICE_KINDS = (Kind.PETITION, Kind.HAZARD)
RESOLVE_CLOCKS = {Kind.PETITION: ("reply",), Kind.HAZARD: ("rectification", "signoff")}
DEFAULT_WINDOW = timedelta(days=90)
MAX_REQUESTS = 1000

CATEGORY_NAMES = {
    "utilities": "水电气暖 Utilities", "environment": "环境 Environment", "traffic": "交通 Traffic",
    "housing": "住房 Housing", "social_security": "社会保障 Social security",
    "public_order": "治安 Public order", "services": "公共服务 Public services", "other": "其他 Other",
    "fire": "消防 Fire", "gas": "燃气 Gas", "electrical": "用电 Electrical", "building": "建筑 Building",
    "production": "生产 Production", "drowning": "溺水 Drowning", "small_venues": "九小场所 Small venues",
}
KIND_NAMES = {Kind.PETITION: "诉求 Petition", Kind.HAZARD: "安全隐患 Hazard"}
STATUS_NOTES = {
    "reported": "已上报 reported, awaiting dispatch", "assigned": "已派单 dispatched",
    "accepted": "已签收 signed for", "in_progress": "办理中 in progress",
}


# -- services ----------------------------------------------------------------------------


def service_code(kind: str, category: str) -> str:
    return f"{kind}.{category}"


def parse_service_code(code: str) -> tuple[Kind, str]:
    kind, _, category = code.partition(".")
    if kind not in SERVICE_KINDS or category not in CATEGORIES[Kind(kind)]:
        raise NotFound(f"no service {code!r}", resource="service", id=code)
    return Kind(kind), category


def services_list() -> list[dict[str, Any]]:
    return [
        {
            "service_code": service_code(kind, category),
            "service_name": CATEGORY_NAMES.get(category, category),
            "description": f"{KIND_NAMES[kind]}: {CATEGORY_NAMES.get(category, category)}",
            "metadata": True,
            "type": "realtime",
            "keywords": f"{kind},{category}",
            "group": KIND_NAMES[kind],
        }
        for kind in SERVICE_KINDS
        for category in CATEGORIES[kind]
    ]


def attribute(code: str, description: str, *, required: bool, order: int,
              values: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "variable": True, "code": code, "datatype": "singlevaluelist" if values else "string",
        "required": required, "datatype_description": None, "order": order, "description": description,
        "values": [{"key": v, "name": v} for v in values],
    }


@router.get("/discovery.json", summary="Open311 discovery")
def discovery(request: Request) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/") + "/open311/v2"
    return {
        "changeset": "2026-11-23T00:00:00Z",
        "contact": "县综治中心 the county's comprehensive-governance centre",
        "key_service": "fengqiao users add --role reporter (a token; send it as api_key or Bearer)",
        "endpoints": [{"specification": SPECIFICATION, "url": base, "changeset": "2026-11-23T00:00:00Z",
                       "type": "production", "formats": ["application/json"]}],
    }


@router.get("/services.json", summary="Open311 services: petition and hazard categories")
def list_services() -> list[dict[str, Any]]:
    return services_list()


@router.get("/services/{code}.json", summary="Open311 service definition")
def service_definition(code: str) -> dict[str, Any]:
    kind, _ = parse_service_code(code)
    attributes = [
        attribute("region", "区域代码 the region code where the matter is (e.g. 410928-001-007-03)",
                  required=True, order=1),
        attribute("severity", "小事/大事/重大 minor, major or critical (default minor)", required=False, order=2,
                  values=("minor", "major", "critical")),
        attribute("title", "标题 a short title (default: the start of the description)", required=False, order=3),
    ]
    if kind == Kind.HAZARD:
        attributes.append(attribute("hazard_level", "一般/重大隐患 general or major", required=False, order=4,
                                    values=("general", "major")))
    return {"service_code": code, "attributes": attributes}


# -- callers ------------------------------------------------------------------------------


async def parameters(request: Request) -> dict[str, Any]:
    """Query parameters, plus a form-encoded (the spec) or JSON body."""
    params: dict[str, Any] = dict(request.query_params)
    if request.method == "POST":
        body = await request.body()
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                data = json.loads(body or b"{}")
            except ValueError:
                raise ValidationFailed("the body is not valid JSON", field="body") from None
            if not isinstance(data, dict):
                raise ValidationFailed("the body must be a JSON object", field="body")
            params.update(data)
        else:
            params.update({k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()})
    return params


Params = Annotated[dict[str, Any], Depends(parameters)]


def caller(request: Request, svc: Svc, params: Params) -> Principal:
    """The user named by ``Authorization: Bearer`` or the spec's ``api_key``."""
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else str(params.get("api_key") or "")
    if not token:
        raise Unauthenticated("send Authorization: Bearer <token> or api_key")
    user = authenticated(request, svc, token)
    return Principal(user, svc.users.actor(user))


Caller = Annotated[Principal, Depends(caller)]


# -- requests -----------------------------------------------------------------------------


def resolve_due(app: Any, case: Case) -> datetime | None:
    """The due time of the case's resolve clock, while the case is open."""
    if case.status not in OPEN:
        return None
    names = RESOLVE_CLOCKS.get(case.kind, ())
    running = [c for c in clocks_of(app, case.id) if c.clock in names and str(c.state) in ("running", "paused",
                                                                                          "breached")]
    return max(running, key=lambda c: c.started_at).due_at if running else None


def agency(svc: Services, case: Case) -> str | None:
    unit_id = case.unit or case.responsible_unit
    if unit_id is None:
        return svc.engine.region(case.region).name
    try:
        return svc.engine.ladder().tree.unit(unit_id).name
    except NotFound:
        return unit_id


def request_view(svc: Services, case: Case) -> dict[str, Any]:
    closed = case.status not in OPEN
    due = resolve_due(svc.engine, case)
    return mask_numbers({  # Open311 is an integrator's view: numbers typed into free text are masked
        "service_request_id": str(case.id),
        "status": "closed" if closed else "open",
        "status_notes": (case.resolution or "已办结 resolved") if closed else STATUS_NOTES.get(str(case.status)),
        "service_name": CATEGORY_NAMES.get(case.category, case.category),
        "service_code": service_code(case.kind, case.category),
        "description": case.description or case.title,
        "agency_responsible": agency(svc, case),
        "service_notice": None,
        "requested_datetime": case.created_on.isoformat(),
        "updated_datetime": case.modified_on.isoformat(),
        "expected_datetime": due.isoformat() if due else None,
        "address": svc.engine.region(case.region).name,
        "address_id": case.region,
        "zipcode": None,
        "lat": None,
        "long": None,
        "media_url": None,
    })


def visible_service_case(svc: Services, principal: Principal, request_id: str) -> Case:
    try:
        case = svc.engine.case(UUID(request_id))
    except (ValueError, NotFound):
        raise NotFound(f"no service request {request_id}", resource="service_request", id=request_id) from None
    if case.kind not in SERVICE_KINDS or not case_in_scope((case.region, case.origin_region), principal.region):
        raise NotFound(f"no service request {request_id}", resource="service_request", id=request_id)
    return case


def split(value: Any) -> list[str]:
    return [v.strip() for v in str(value or "").split(",") if v.strip()]


def parse_date(value: Any, name: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed(f"{name} must be a W3C date-time, e.g. 2026-09-28T09:00:00+08:00",
                               field=name) from None
    try:
        return check_moment(moment)
    except ValueError as error:
        raise ValidationFailed(f"{name}: {error}", field=name) from None


def reported_events(svc: Services, kinds: set[Kind]) -> list[Any]:
    """Every Reported event of the given kinds, oldest first."""
    topics = [get_topic(CASE_CLASSES[kind].Reported) for kind in kinds]
    found, start = [], 1
    while True:
        batch = svc.engine.recorder.select_notifications(start, 1000, topics=topics)
        if not batch:
            return found
        found += [svc.engine.mapper.to_domain_event(n) for n in batch]
        start = batch[-1].id + 1


@router.get("/requests.json", summary="Open311 service requests (filters as in the spec)")
def list_requests(svc: Svc, principal: Caller, params: Params) -> list[dict[str, Any]]:
    if not principal.may(READ):
        raise forbid(principal, READ)
    ids = split(params.get("service_request_id"))
    if ids:
        found = []
        for request_id in ids:
            try:
                found.append(request_view(svc, visible_service_case(svc, principal, request_id)))
            except NotFound:
                continue
        return found
    codes = [parse_service_code(c) for c in split(params.get("service_code"))]
    statuses = set(split(params.get("status")))
    if statuses - {"open", "closed"}:
        raise ValidationFailed("status is open, closed or both", field="status")
    end = parse_date(params.get("end_date"), "end_date") or svc.engine.clock.now()
    start = parse_date(params.get("start_date"), "start_date") or end - DEFAULT_WINDOW
    kinds = {kind for kind, _ in codes} or set(SERVICE_KINDS)
    views = []
    for reported in reversed(reported_events(svc, kinds)):  # newest first
        if not start <= reported.timestamp <= end:
            continue
        if codes and (Kind(reported.kind), reported.category) not in codes:
            continue
        case = svc.engine.case(reported.originator_id)
        if not case_in_scope((case.region, case.origin_region), principal.region):
            continue
        view = request_view(svc, case)
        if statuses and view["status"] not in statuses:
            continue
        views.append(view)
        if len(views) == MAX_REQUESTS:
            break
    return views


@router.get("/requests/{request_id}.json", summary="One Open311 service request")
def get_request(request_id: str, svc: Svc, principal: Caller) -> list[dict[str, Any]]:
    if not principal.may(READ):
        raise forbid(principal, READ)
    return [request_view(svc, visible_service_case(svc, principal, request_id))]


def attributes_of(params: dict[str, Any]) -> dict[str, Any]:
    """``attribute[code]=value`` (the spec's form) or ``{"attribute": {...}}`` (JSON)."""
    found = dict(params.get("attribute") or {}) if isinstance(params.get("attribute"), dict) else {}
    for key, value in params.items():
        match = re.fullmatch(r"attribute\[(\w+)\]", key)
        if match:
            found[match.group(1)] = value
    return found


TITLE_LENGTH = 60
NUMBERISH = re.compile(rf"[\d{SEPARATORS}XxＸｘ]+$")


def first_words(description: str) -> str:
    """The description's first line, cut to ``TITLE_LENGTH``; a number the cut would split is
    left out whole (half a phone number would slip past the masking)."""
    line = description.split("\n")[0]
    if len(line) <= TITLE_LENGTH:
        return line
    cut = line[:TITLE_LENGTH]
    return NUMBERISH.sub("", cut) if line[TITLE_LENGTH].isdigit() or line[TITLE_LENGTH] in "XxＸｘ" else cut


def reporter_party(kind: Kind, params: dict[str, Any]) -> list[Party]:
    first, last = str(params.get("first_name") or "").strip(), str(params.get("last_name") or "").strip()
    cjk = re.search(r"[\u4e00-\u9fff]", first + last)
    name = (last + first) if cjk else " ".join(p for p in (first, last) if p)
    if not name:
        return []
    role = "petitioner" if kind == Kind.PETITION else "reporter"
    return [Party(name=name, role=role, phone=params.get("phone") or None)]


@router.post("/requests.json", status_code=201, summary="Report a petition or hazard (Open311)")
def create_request(request: Request, svc: Svc, principal: Caller, params: Params) -> JSONResponse:
    if not principal.may(REPORT):
        raise forbid(principal, REPORT)
    kind, category = parse_service_code(str(params.get("service_code") or ""))
    attributes = attributes_of(params)
    description = str(params.get("description") or "").strip()
    if params.get("address_string"):
        description = f"{description}\n地址 address: {params['address_string']}".strip()
    title = str(attributes.get("title") or first_words(description) or CATEGORY_NAMES.get(category, category))
    try:
        body = ReportCase(
            kind=kind, category=category, severity=attributes.get("severity") or "minor",
            region=str(attributes.get("region") or ""), title=title, description=description, channel="platform",
            parties=reporter_party(kind, params),
            **({"hazard_level": attributes["hazard_level"]} if attributes.get("hazard_level") else {}),
        )
        key = request.headers.get("idempotency-key") or None
        envelope = Envelope(actor=principal.actor, command_id=scoped_command_id(principal.actor.id, key)
                            if key else f"open311:{uuid.uuid4()}")
    except ValidationError as error:
        raise RequestValidationError(error.errors()) from None
    if not case_in_scope((body.region,), principal.region):
        raise region_not_found(body.region)
    result = once(svc.engine, principal.actor.id, key, lambda: svc.engine.report(body, envelope))
    return JSONResponse(
        [{"service_request_id": str(result.case_id), "service_notice": None, "account_id": None}],
        status_code=201,
        headers={"Location": f"/open311/v2/requests/{result.case_id}.json"},
    )
