"""Open311 GeoReport v2 (XML and JSON) over petitions and hazards.

The petition and hazard categories are the services (``petition.utilities``,
``hazard.fire`` …). A ``POST requests.{xml,json}`` reports a case through the same command
path as ``POST /v1/cases`` (channel ``platform``); ``service_request_id`` is the case
id. A request is ``open`` until the case is resolved, then ``closed``;
``expected_datetime`` is the due time of the case's resolve clock (petition: 办结
``reply``; hazard: 限时整改 ``rectification``, then 销号 ``signoff``).

Every route answers XML (the spec's default) or JSON by its extension, and refuses in
the spec's error format with the spec's statuses (:mod:`api.http.open311_format`).
``jurisdiction_id`` is the deployment (``FENGQIAO_DEPLOYMENT``): any other is 404. A
request's place is its region: ``attribute[region]``, else ``address_id`` (a region code),
else the smallest region whose geometry contains ``lat``/``long``
(``fengqiao regions import FILE.geojson``); ``lat``, ``long``, ``address_string`` and
``media_url`` are kept on the case and answered back.

Discovery and services are public. Requests need a user (``Authorization: Bearer``
or the spec's ``api_key`` parameter); reading needs the ``read`` right, posting the
``report`` right, and a caller sees only requests in their region's subtree. Without a
key, ``GET requests`` is 403 unless ``FENGQIAO_OPEN311_PUBLIC=1``: then it shows every
service request of the deployment without its personal fields (description, media_url,
lat/long, address_string). Disputes are not Open311 services and never appear here.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qs
from uuid import UUID

from eventsourcing.utils import get_topic
from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError

from api.http.auth import Principal, Unauthenticated, authenticated, forbid, region_not_found
from api.http.open311_format import Open311Route, answer, check_format, responses
from api.http.services import Services, services
from domain.cases import CASE_CLASSES, CATEGORIES, OPEN, Case
from domain.commands import LOCATION_FIELDS, Envelope, Party, ReportCase, check_moment
from domain.errors import NotFound, ValidationFailed
from domain.kinds import Kind
from domain.permissions import READ, REPORT, SEPARATORS, case_in_scope, mask_numbers
from engine.case_clocks import clocks_of
from engine.idempotency import once, scoped_command_id

router = APIRouter(prefix="/open311/v2", tags=["open311"], route_class=Open311Route)
Svc = Annotated[Services, Depends(services)]

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
SERVICE_KINDS = (Kind.PETITION, Kind.HAZARD)
RESOLVE_CLOCKS = {Kind.PETITION: ("reply",), Kind.HAZARD: ("rectification", "signoff")}
DEFAULT_WINDOW = timedelta(days=90)
MAX_REQUESTS = 1000

CATEGORY_NAMES = {
    "utilities": "水电气暖 Utilities",
    "environment": "环境 Environment",
    "traffic": "交通 Traffic",
    "housing": "住房 Housing",
    "social_security": "社会保障 Social security",
    "public_order": "治安 Public order",
    "services": "公共服务 Public services",
    "other": "其他 Other",
    "fire": "消防 Fire",
    "gas": "燃气 Gas",
    "electrical": "用电 Electrical",
    "building": "建筑 Building",
    "production": "生产 Production",
    "drowning": "溺水 Drowning",
    "small_venues": "九小场所 Small venues",
}
KIND_NAMES = {Kind.PETITION: "诉求 Petition", Kind.HAZARD: "安全隐患 Hazard"}
STATUS_NOTES = {
    "reported": "已上报 reported, awaiting dispatch",
    "assigned": "已派单 dispatched",
    "accepted": "已签收 signed for",
    "in_progress": "办理中 in progress",
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


def attribute(
    code: str, description: str, *, required: bool, order: int, values: tuple[str, ...] = ()
) -> dict[str, Any]:
    return {
        "variable": True,
        "code": code,
        "datatype": "singlevaluelist" if values else "string",
        "required": required,
        "datatype_description": None,
        "order": order,
        "description": description,
        "values": [{"key": v, "name": v} for v in values],
    }


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


def caller(request: Request, svc: Svc, params: Params) -> Principal | None:
    """The user named by ``Authorization: Bearer`` or the spec's ``api_key``; None without one."""
    header = request.headers.get("authorization", "")
    token = (
        header[7:].strip()
        if header.lower().startswith("bearer ")
        else str(params.get("api_key") or "")
    )
    if not token:
        return None
    user = authenticated(request, svc, token)
    return Principal(user, svc.users.actor(user))


def signed_in(principal: Principal | None) -> Principal:
    if principal is None:
        raise Unauthenticated("send api_key (or Authorization: Bearer <token>)")
    return principal


Caller = Annotated[Principal | None, Depends(caller)]


def format_of(fmt: str) -> str:
    """The path's extension: ``xml`` or ``json`` (else 404)."""
    return check_format(fmt)


Fmt = Annotated[str, Depends(format_of)]


def check_jurisdiction(svc: Services, params: dict[str, Any]) -> None:
    """``jurisdiction_id`` is optional (one jurisdiction: the deployment); another is 404."""
    given = str(params.get("jurisdiction_id") or "").strip()
    if given and given != svc.settings.deployment:
        raise NotFound(
            f"no jurisdiction {given!r} here (this is {svc.settings.deployment!r})",
            resource="jurisdiction",
            id=given,
        )


@router.get("/discovery.{fmt}", summary="Open311 discovery", responses=responses(None, 404))
def discovery(request: Request, fmt: Fmt) -> Response:
    base = str(request.base_url).rstrip("/") + "/open311/v2"
    return answer(
        fmt,
        "discovery",
        {
            "changeset": "2026-11-23T00:00:00Z",
            "contact": "县综治中心 the county's comprehensive-governance centre",
            "key_service": "fengqiao users add --role reporter (a token; send it as api_key or Bearer)",
            "endpoints": [
                {
                    "specification": SPECIFICATION,
                    "url": base,
                    "changeset": "2026-11-23T00:00:00Z",
                    "type": "production",
                    "formats": ["text/xml", "application/json"],
                }
            ],
        },
    )


@router.get(
    "/services.{fmt}",
    summary="Open311 services: petition and hazard categories",
    responses=responses(None, 404),
)
def list_services(svc: Svc, fmt: Fmt, params: Params) -> Response:
    check_jurisdiction(svc, params)
    return answer(fmt, "services", services_list())


@router.get(
    "/services/{code}.{fmt}", summary="Open311 service definition", responses=responses(None, 404)
)
def service_definition(svc: Svc, code: str, fmt: Fmt, params: Params) -> Response:
    check_jurisdiction(svc, params)
    kind, _ = parse_service_code(code)
    attributes = [
        attribute(
            "region",
            "区域代码 the region code (or send address_id, or lat/long to find it)",
            required=False,
            order=1,
        ),
        attribute(
            "severity",
            "小事/大事/重大 minor, major or critical (default minor)",
            required=False,
            order=2,
            values=("minor", "major", "critical"),
        ),
        attribute(
            "title",
            "标题 a short title (default: the start of the description)",
            required=False,
            order=3,
        ),
    ]
    if kind == Kind.HAZARD:
        attributes.append(
            attribute(
                "hazard_level",
                "一般/重大隐患 general or major",
                required=False,
                order=4,
                values=("general", "major"),
            )
        )
    return answer(fmt, "service_definition", {"service_code": code, "attributes": attributes})


# -- requests -----------------------------------------------------------------------------


def resolve_due(app: Any, case: Case) -> datetime | None:
    """The due time of the case's resolve clock, while the case is open."""
    if case.status not in OPEN:
        return None
    names = RESOLVE_CLOCKS.get(case.kind, ())
    running = [
        c
        for c in clocks_of(app, case.id)
        if c.clock in names and str(c.state) in ("running", "paused", "breached")
    ]
    return max(running, key=lambda c: c.started_at).due_at if running else None


def agency(svc: Services, case: Case) -> str | None:
    unit_id = case.unit or case.responsible_unit
    if unit_id is None:
        return svc.engine.region(case.region).name
    try:
        return svc.engine.ladder().tree.unit(unit_id).name
    except NotFound:
        return unit_id


def request_view(svc: Services, case: Case, public: bool = False) -> dict[str, Any]:
    """A service request with the spec's fields, in the spec's order. ``public`` (an
    anonymous reader, ``FENGQIAO_OPEN311_PUBLIC=1``): without its personal fields."""
    closed = case.status not in OPEN
    due = resolve_due(svc.engine, case)
    place = case.details
    region_name = svc.engine.region(
        case.origin_region
    ).name  # where it is, not the rank handling it
    return mask_numbers(
        {  # Open311 is an integrator's view: numbers typed into free text are masked
            "service_request_id": str(case.id),
            "status": "closed" if closed else "open",
            "status_notes": (case.resolution or "已办结 resolved")
            if closed
            else STATUS_NOTES.get(str(case.status)),
            "service_name": CATEGORY_NAMES.get(case.category, case.category),
            "service_code": service_code(case.kind, case.category),
            "description": None if public else (case.description or case.title),
            "agency_responsible": agency(svc, case),
            "service_notice": None,
            "requested_datetime": case.created_on.isoformat(),
            "updated_datetime": case.modified_on.isoformat(),
            "expected_datetime": due.isoformat() if due else None,
            "address": region_name if public else (place.get("address_string") or region_name),
            "address_id": case.origin_region,
            "zipcode": None,
            "lat": None if public else place.get("lat"),
            "long": None if public else place.get("long"),
            "media_url": None if public else place.get("media_url"),
        }
    )


def visible_service_case(svc: Services, principal: Principal | None, request_id: str) -> Case:
    try:
        case = svc.engine.case(UUID(request_id))
    except (ValueError, NotFound):
        raise NotFound(
            f"no service request {request_id}", resource="service_request", id=request_id
        ) from None
    if case.kind not in SERVICE_KINDS or not in_view(svc, principal, case):
        raise NotFound(
            f"no service request {request_id}", resource="service_request", id=request_id
        )
    return case


def split(value: Any) -> list[str]:
    return [v.strip() for v in str(value or "").split(",") if v.strip()]


def parse_date(value: Any, name: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed(
            f"{name} must be a W3C date-time, e.g. 2026-09-28T09:00:00+08:00", field=name
        ) from None
    try:
        return check_moment(moment)
    except ValueError as error:
        raise ValidationFailed(f"{name}: {error}", field=name) from None


def reported_events(svc: Services, kinds: set[Kind]) -> list[Any]:
    """Every Reported event of the given kinds, oldest first."""
    topics = [get_topic(CASE_CLASSES[kind].Reported) for kind in kinds]
    found: list[Any] = []
    start = 1
    while True:
        batch = svc.engine.recorder.select_notifications(start, 1000, topics=topics)
        if not batch:
            return found
        found += [svc.engine.mapper.to_domain_event(n) for n in batch]
        start = batch[-1].id + 1


def reader(svc: Services, principal: Principal | None) -> Principal | None:
    """The caller who may read requests; None: an anonymous reader of a public deployment."""
    if principal is None:
        if svc.settings.open311_public:
            return None
        raise Unauthenticated(
            "send api_key: this deployment's requests are not public (FENGQIAO_OPEN311_PUBLIC)"
        )
    if not principal.may(READ):
        raise forbid(principal, READ)
    return principal


def in_view(svc: Services, principal: Principal | None, case: Case) -> bool:
    return principal is None or case_in_scope((case.region, case.origin_region), principal.region)


@router.get(
    "/requests.{fmt}",
    summary="Open311 service requests (filters as in the spec)",
    responses=responses(None, 400, 403, 404),
)
def list_requests(svc: Svc, principal: Caller, params: Params, fmt: Fmt) -> Response:
    check_jurisdiction(svc, params)
    who = reader(svc, principal)
    ids = split(params.get("service_request_id"))
    if ids:
        found = []
        for request_id in ids:
            try:
                found.append(
                    request_view(svc, visible_service_case(svc, who, request_id), who is None)
                )
            except NotFound:
                continue
        return answer(fmt, "service_requests", found)
    return answer(fmt, "service_requests", matching_requests(svc, who, params))


def matching_requests(
    svc: Services, who: Principal | None, params: dict[str, Any]
) -> list[dict[str, Any]]:
    """The spec's filters: service_code, status, start_date and end_date (default: 90 days)."""
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
        if not in_view(svc, who, case):
            continue
        view = request_view(svc, case, who is None)
        if statuses and view["status"] not in statuses:
            continue
        views.append(view)
        if len(views) == MAX_REQUESTS:
            break
    return views


@router.get(
    "/requests/{request_id}.{fmt}",
    summary="One Open311 service request",
    responses=responses(None, 403, 404),
)
def get_request(request_id: str, svc: Svc, principal: Caller, params: Params, fmt: Fmt) -> Response:
    check_jurisdiction(svc, params)
    who = reader(svc, principal)
    return answer(
        fmt,
        "service_requests",
        [request_view(svc, visible_service_case(svc, who, request_id), who is None)],
    )


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
    return (
        NUMBERISH.sub("", cut)
        if line[TITLE_LENGTH].isdigit() or line[TITLE_LENGTH] in "XxＸｘ"
        else cut
    )


def reporter_party(kind: Kind, params: dict[str, Any]) -> list[Party]:
    first, last = (
        str(params.get("first_name") or "").strip(),
        str(params.get("last_name") or "").strip(),
    )
    cjk = re.search(r"[\u4e00-\u9fff]", first + last)
    name = (last + first) if cjk else " ".join(p for p in (first, last) if p)
    if not name:
        return []
    role = "petitioner" if kind == Kind.PETITION else "reporter"
    return [Party(name=name, role=role, phone=params.get("phone") or None)]


def region_of(svc: Services, params: dict[str, Any], attributes: dict[str, Any]) -> str:
    """``attribute[region]``, else ``address_id`` (a region code), else the region whose
    geometry holds ``lat``/``long`` (a point outside every region is 400)."""
    region = str(attributes.get("region") or params.get("address_id") or "").strip()
    if region:
        return region
    lat, long = params.get("lat"), params.get("long")
    if lat in (None, "") or long in (None, ""):
        raise ValidationFailed(
            "a location is required: address_id (the region code) or lat and long "
            "(address_string alone cannot be placed)",
            field="address_id",
        )
    try:
        point = float(lat), float(long)
    except (TypeError, ValueError):
        raise ValidationFailed("lat and long are WGS-84 degrees (numbers)", field="lat") from None
    if not all(math.isfinite(x) for x in point):
        raise ValidationFailed("lat and long are WGS-84 degrees (numbers)", field="lat")
    return svc.engine.locate(*point)


def new_report(svc: Services, params: dict[str, Any]) -> ReportCase:
    """The ``ReportCase`` a POST asks for, its fields as the spec names them."""
    kind, category = parse_service_code(str(params.get("service_code") or ""))
    attributes = attributes_of(params)
    description = str(params.get("description") or "").strip()
    title = str(
        attributes.get("title")
        or first_words(description)
        or CATEGORY_NAMES.get(category, category)
    )
    place = {name: params[name] for name in LOCATION_FIELDS if params.get(name) not in (None, "")}
    try:
        return ReportCase(
            kind=kind,
            category=category,
            severity=attributes.get("severity") or "minor",
            region=region_of(svc, params, attributes),
            title=title,
            description=description,
            channel="platform",
            parties=reporter_party(kind, params),
            **place,
            **(
                {"hazard_level": attributes["hazard_level"]}
                if attributes.get("hazard_level")
                else {}
            ),
        )
    except ValidationError as error:
        raise RequestValidationError(error.errors()) from None


FORM_FIELDS = (
    "jurisdiction_id",
    "api_key",
    "service_code",
    "lat",
    "long",
    "address_string",
    "address_id",
    "email",
    "device_id",
    "account_id",
    "first_name",
    "last_name",
    "phone",
    "description",
    "media_url",
)
REQUEST_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["service_code"],
    "properties": {
        **{name: {"type": "string"} for name in FORM_FIELDS},
        "lat": {"type": "number", "minimum": -90, "maximum": 90},
        "long": {"type": "number", "minimum": -180, "maximum": 180},
        "attribute[region]": {"type": "string"},
        "attribute[severity]": {"type": "string"},
        "attribute[title]": {"type": "string"},
        "attribute[hazard_level]": {"type": "string"},
    },
}
JSON_BODY = {
    **REQUEST_BODY,
    "properties": {
        **{k: v for k, v in REQUEST_BODY["properties"].items() if not k.startswith("attribute[")},
        "attribute": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
CREATED = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "service_request_id": {"type": "string"},
            "service_notice": {"type": ["string", "null"]},
            "account_id": {"type": ["string", "null"]},
        },
    },
}


@router.post(
    "/requests.{fmt}",
    status_code=201,
    summary="Report a petition or hazard (Open311)",
    responses={
        201: responses(CREATED)[200],
        **{k: v for k, v in responses(None, 400, 403, 404).items() if k != 200},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {"schema": REQUEST_BODY},
                "application/json": {"schema": JSON_BODY},
            },
        }
    },
)
def create_request(
    request: Request, svc: Svc, principal: Caller, params: Params, fmt: Fmt
) -> Response:
    check_jurisdiction(svc, params)
    principal = signed_in(principal)
    if not principal.may(REPORT):
        raise forbid(principal, REPORT)
    body = new_report(svc, params)
    if not case_in_scope((body.region,), principal.region):
        raise region_not_found(body.region)
    key = request.headers.get("idempotency-key") or None
    envelope = Envelope(
        actor=principal.actor,
        command_id=scoped_command_id(principal.actor.id, key) if key else f"open311:{uuid.uuid4()}",
    )
    result = once(
        svc.engine, principal.actor.id, key, lambda: svc.engine.report(body, envelope)
    )  # counted
    return answer(
        fmt,
        "service_requests",
        [{"service_request_id": str(result.case_id), "service_notice": None, "account_id": None}],
        201,
        {"Location": f"/open311/v2/requests/{result.case_id}.{fmt}"},
    )
