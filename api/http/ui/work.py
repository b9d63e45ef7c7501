"""The grid worker's workbench (``/ui/work``): a phone's queue, report form and case forms.

Pages (:data:`router`) render on the server from the read models and the case view, like
the dashboard; the caller is the same session (:func:`~api.http.ui.session.session_principal`)
and needs only the right to read cases. Every form is sent by ``work.js`` through an
outbox in the browser's IndexedDB, to the JSON endpoints of :data:`commands`, which run
the API's own functions (:func:`api.http.cases.run_report`, :func:`api.http.cases.run_action`,
:func:`api.http.evidence.store_upload`): the same command path, permissions, region scope,
``Idempotency-Key`` and ``If-Match``; refusals are problem+json the outbox shows in words.
A service worker (``sw.js``, scope ``/ui/work``) keeps the pages and static files for
offline use; the manifest makes the workbench installable. See docs/dashboard.md.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from api.http.auth import Principal, visible_case
from api.http.cases import (
    ACTION_REQUESTS,
    IDEMPOTENCY_KEY,
    IF_MATCH,
    ActionRequest,
    ReportRequest,
    run_action,
    run_report,
)
from api.http.evidence import SHA256_PATH, served_file, store_upload
from api.http.readmodels import read_models
from api.http.services import Services, services
from api.http.ui.data import EVENT_NAMES
from api.http.ui.render import CATEGORY_NAMES, page, static_file
from api.http.ui.session import PageRoute, SameOrigin, session_principal
from domain.cases import CATEGORIES
from domain.commands import validated
from domain.errors import NotFound, NotPermitted
from domain.kinds import Kind, Severity
from domain.permissions import READ, REPORT, may, needs_assignment, works_on
from engine.evidence import IMAGES, hashes_in
from projections.cases import OPEN_STATUSES

router = APIRouter(prefix="/ui/work", include_in_schema=False, route_class=PageRoute)
commands = APIRouter(prefix="/ui/work", include_in_schema=False)  # answers problem+json
Svc = Annotated[Services, Depends(services)]

CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; worker-src 'self'; manifest-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
STATIC = {
    "work.css": "text/css",
    "work.js": "text/javascript",
    "icon-192.png": "image/png",
    "icon-512.png": "image/png",
}
SW_ALLOWED = {"Service-Worker-Allowed": "/ui/work"}
QUEUE_SHOWN = 200
FAR = datetime.max.replace(tzinfo=UTC)
# the forms a case page offers, by status (the engine decides; a form it refuses comes back
# to the outbox as a conflict): sign-for and send-back once dispatched, the kind's work once
# signed for, the return visit once a petition is answered
WORK_FORMS: dict[str, dict[str, tuple[str, ...]]] = {
    "assigned": {"*": ("accept", "send-back")},
    "accepted": {"dispute": ("mediate",), "hazard": ("rectify",), "petition": ("reply",)},
    "in_progress": {"dispute": ("mediate",), "hazard": ("rectify",), "petition": ("reply",)},
    "resolved": {"petition": ("return-visit",)},
}


def worker(request: Request, svc: Svc) -> Principal:
    """The signed-in caller, if their role may read cases (grid workers, handlers, …)."""
    principal = session_principal(request, svc)
    if not principal.may(READ):
        raise NotPermitted(f"a {principal.role} may not read cases", role=principal.role)
    return principal


Worker = Annotated[Principal, Depends(worker)]


def form_key() -> str:
    """A fresh idempotency key for one form: a double submit sends it twice, recorded once."""
    return f"work-{uuid.uuid4()}"


# -- pages ---------------------------------------------------------------------------------


def my_queue(svc: Services, principal: Principal) -> list[dict[str, Any]]:
    """Open cases assigned to the caller or their unit, in their region (from the
    projection), each with the clock that matters next from its case view (the engine's
    one clock computation): overdue first, then the soonest due."""
    models = read_models(svc)
    found: dict[str, dict[str, Any]] = {}
    for mine in ({"assignee": principal.name}, {"unit": principal.unit} if principal.unit else {}):
        if not mine:
            continue
        rows, _ = models.list_cases(
            region=principal.region, status=list(OPEN_STATUSES), limit=QUEUE_SHOWN, **mine
        )
        found.update({str(r["case_id"]): r for r in rows})
    now = svc.engine.clock.now()
    queue = []
    for case_id, row in found.items():
        shown = svc.engine.case_view(UUID(case_id), now=now)
        queue.append({**row, "overdue": shown["overdue"], "next_clock": next_clock(shown)})
    return sorted(
        queue,
        key=lambda r: (
            not r["overdue"],
            datetime.fromisoformat(r["next_clock"]["due_at"]) if r["next_clock"] else FAR,
            r["reported_at"],
        ),
    )


def next_clock(shown: dict[str, Any]) -> dict[str, Any] | None:
    """Of the case view's running clocks, the one due first (None: no clock runs)."""
    running = [c for c in shown["clocks"] if c["stopped_at"] is None and c["due_at"]]
    return min(running, key=lambda c: datetime.fromisoformat(c["due_at"]), default=None)


@router.get("")
def queue_page(request: Request, principal: Worker, svc: Svc) -> Response:
    """我的待办: my queue, most urgent first, and the outbox (drawn by work.js)."""
    return page(
        request,
        "work_queue.html",
        csp=CSP,
        cases=my_queue(svc, principal),
        may_report=principal.may(REPORT),
        now=svc.engine.clock.now(),
        tree=svc.engine.ladder().tree,
    )


@router.get("/report")
def report_page(request: Request, principal: Worker, svc: Svc) -> Response:
    """上报: a new case, the region preset to the caller's own (a grid worker's grid)."""
    if not principal.may(REPORT):
        raise NotPermitted(f"a {principal.role} may not report cases", role=principal.role)
    tree = svc.engine.ladder().tree
    return page(
        request,
        "work_report.html",
        csp=CSP,
        key=form_key(),
        kinds=list(Kind),
        severities=list(Severity),
        categories={str(k): list(v) for k, v in CATEGORIES.items()},
        categories_json=json.dumps(
            {
                str(k): [[c, f"{CATEGORY_NAMES.get(c, c)} {c}"] for c in v]
                for k, v in CATEGORIES.items()
            },
            ensure_ascii=False,
        ),
        regions=list(tree.subtree(principal.region)),
    )


def offered_forms(principal: Principal, case: dict[str, Any]) -> list[str]:
    """The work forms the case page shows this caller (each also a right they hold)."""
    by_kind = WORK_FORMS.get(case["status"], {})
    names = [*by_kind.get("*", ()), *by_kind.get(case["kind"], ())]
    mine = works_on(
        name=principal.name,
        unit=principal.unit,
        case_assignee=case.get("assignee"),
        case_unit=case.get("unit"),
    )
    return [
        n
        for n in names
        if may(principal.role, n) and (mine or not needs_assignment(principal.role, n))
    ]


@router.get("/cases/{case_id}")
def case_page(request: Request, principal: Worker, svc: Svc, case_id: UUID) -> Response:
    """One case: its facts and clocks, its evidence as thumbnails, and the forms of its kind."""
    visible_case(svc, principal, case_id)
    shown = svc.engine.case_view(case_id)
    history = svc.engine.history(case_id)
    evidence = hashes_in(recorded.event for recorded in history)
    return page(
        request,
        "work_case.html",
        csp=CSP,
        case=shown,
        forms=offered_forms(principal, shown),
        may_comment=principal.may("comment"),
        keys={name: form_key() for name in ("accept", "send-back", "work", "comment")},
        evidence=evidence,
        images=IMAGES,
        events=[(r.event, event_name(r.event)) for r in history][-8:],
        tree=svc.engine.ladder().tree,
    )


def event_name(event: Any) -> str:
    name = type(event).__name__
    return EVENT_NAMES.get(name, name)


@router.get("/manifest.webmanifest")
def manifest() -> Response:
    body = {
        "name": "枫桥 网格工作台 Fengqiao workbench",
        "short_name": "枫桥工作台",
        "start_url": "/ui/work",
        "scope": "/ui/work",
        "display": "standalone",
        "background_color": "#f6f8fa",
        "theme_color": "#8b1a1a",
        "lang": "zh-CN",
        "icons": [
            {"src": f"/ui/work/static/icon-{n}.png", "sizes": f"{n}x{n}", "type": "image/png"}
            for n in (192, 512)
        ],
    }
    return Response(json.dumps(body, ensure_ascii=False), media_type="application/manifest+json")


@router.get("/sw.js")
def service_worker() -> Response:
    """The service worker, allowed the scope ``/ui/work`` (the queue page itself included)."""
    return static_file("work-sw.js", {"work-sw.js": "text/javascript"}, "no-cache", **SW_ALLOWED)


@router.get("/static/{name}")
def static(name: str) -> Response:
    return static_file(name, STATIC, "no-cache")  # the service worker keeps them offline


# -- the outbox's endpoints: the API's functions, over the session ---------------------------


@commands.post("/evidence", dependencies=[SameOrigin])
async def upload(request: Request, svc: Svc) -> JSONResponse:
    principal = await run_in_threadpool(worker, request, svc)
    content = await request.body()
    stored = await run_in_threadpool(store_upload, svc, principal, content)
    return JSONResponse(stored, status_code=201)


@commands.post("/report", dependencies=[SameOrigin])
def report(
    principal: Worker,
    svc: Svc,
    body: ReportRequest,
    idempotency_key: Annotated[str | None, IDEMPOTENCY_KEY] = None,
) -> JSONResponse:
    return run_report(svc, principal, body, idempotency_key)


@commands.post("/cases/{case_id}/{action}", dependencies=[SameOrigin])
def act(
    principal: Worker,
    svc: Svc,
    case_id: UUID,
    action: Annotated[str, Path(max_length=40)],
    body: Annotated[dict[str, Any], Body()],
    idempotency_key: Annotated[str | None, IDEMPOTENCY_KEY] = None,
    if_match: Annotated[str | None, IF_MATCH] = None,
) -> JSONResponse:
    model = ACTION_REQUESTS.get(action)
    if model is None:
        raise NotFound(f"no action {action!r}", resource="action", id=action)
    request = ActionRequest(principal, action, case_id, validated(model, body), idempotency_key)
    return run_action(svc, request, if_match)


@commands.get("/cases/{case_id}/evidence/{sha256}")
def evidence_file(
    principal: Worker, svc: Svc, case_id: UUID, sha256: Annotated[str, SHA256_PATH]
) -> Response:
    return served_file(svc, principal, case_id, sha256)
