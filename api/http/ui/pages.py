"""The dashboard's pages under ``/ui/``: sign-in, SLA board, 小事不出村, 三率, search, the case page,
待审批 approvals (the forms that act are :mod:`api.http.ui.actions`).

Every page takes the caller from the cookie (:func:`api.http.ui.session.signed_in`)
and the region from ``?region=`` (default: the caller's own), checked with the
API's :func:`~api.http.auth.check_region_scope`; a case page checks the case with
:func:`~api.http.auth.visible_case`. Outside the caller's region is 404, the
same page as a region or case that does not exist.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any
from urllib.parse import parse_qs
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from api.http.auth import (
    Principal,
    RegionParam,
    Unauthenticated,
    authenticated,
    check_region_scope,
    visible_case,
)
from api.http.cases import search_terms
from api.http.readmodels import read_models
from api.http.services import Services, services
from api.http.ui import charts, data
from api.http.ui.render import page, static_file
from api.http.ui.session import COOKIE, PageRoute, SameOrigin, SignedIn, clear_token, set_session
from domain.errors import NotFound
from domain.ladder import Rank, Region
from domain.permissions import READ_BOARD, may
from engine.audit.verify import verify_case
from engine.evidence import IMAGES, hashes_in
from engine.views import event_view

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=PageRoute)
Svc = Annotated[Services, Depends(services)]

STATIC = {"ui.css": "text/css", "ui.js": "text/javascript"}


def scoped_region(principal: Principal, svc: Services, code: str | None) -> Region:
    return check_region_scope(principal, code or principal.region, svc)


def form_key() -> str:
    """A fresh idempotency key for one form of a page (a double click sends it twice)."""
    return f"ui-{uuid.uuid4()}"


def region_context(principal: Principal, svc: Services, region: Region) -> dict:
    """What every region page shows around its content: breadcrumb and sub-regions (and
    the region tree, for the names of the regions it lists)."""
    tree = svc.engine.ladder().tree
    return {
        "tree": tree,
        "region": region,
        "trail": data.lineage(tree, region.code, principal.region),
        "children": tree.children_of(region.code) if region.rank > Rank.GRID else [],
    }


@dataclass
class RegionPage:
    """A region page asked for: the signed-in caller and the region of ``?region=`` (checked)."""

    request: Request
    principal: Principal
    svc: Services
    place: Region

    @cached_property
    def context(self) -> dict:
        return region_context(self.principal, self.svc, self.place)

    def render(self, template: str, **content: Any) -> Response:
        """The page with ``content`` inside the region's breadcrumb and sub-regions."""
        return page(self.request, template, **content, **self.context)


def region_page(
    request: Request, principal: SignedIn, svc: Svc, region: RegionParam = None
) -> RegionPage:
    return RegionPage(request, principal, svc, scoped_region(principal, svc, region))


ScopedPage = Annotated[RegionPage, Depends(region_page)]


# -- signing in and out ---------------------------------------------------------------


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/ui/board", status_code=303)


def _next_page(target: str | None) -> str:
    """Only a dashboard path may follow the sign-in (no open redirect)."""
    if (
        target
        and target.startswith("/ui/")
        and not target.startswith("/ui//")
        and "\\" not in target
    ):
        return target
    return "/ui/board"


@router.get("/login")
def login_form(
    request: Request, next: Annotated[str | None, Query(max_length=500)] = None
) -> Response:
    return page(request, "login.html", next=_next_page(next), error=None)


@router.post("/login", dependencies=[SameOrigin])
async def login(request: Request, svc: Svc) -> Response:
    form = {
        k: v[-1] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()
    }
    token = form.get("token", "").strip()
    target = _next_page(form.get("next"))
    try:
        user = authenticated(request, svc, token)
    except Unauthenticated as error:
        message = "请输入令牌 enter your token" if not token else f"令牌无效 {error.message}"
        return page(request, "login.html", status_code=401, next=target, error=message)
    if target == "/ui/board" and not may(user.role, READ_BOARD):
        target = "/ui/work"  # a grid worker or handler: their workbench, not the boards
    response = RedirectResponse(target, status_code=303)
    set_session(response, svc.sessions.open(user, token), secure=request.url.scheme == "https")  # type: ignore[union-attr]
    return response


@router.post("/logout", dependencies=[SameOrigin])
def logout(request: Request, svc: Svc) -> Response:
    session_id = request.cookies.get(COOKIE)
    if session_id:
        svc.sessions.close(session_id)  # type: ignore[union-attr]
    response = RedirectResponse("/ui/login", status_code=303)
    clear_token(response)
    return response


# -- the pages --------------------------------------------------------------------------


@router.get("/board")
def sla_board(view: ScopedPage) -> Response:
    """SLA board: open, overdue, due soon, breaches by clock; overdue cases, the longest past due first."""
    svc, code = view.svc, view.place.code
    models = read_models(svc)
    now = svc.engine.clock.now()
    board = models.sla_board(code)
    repeats = models.region_stats(code)  # 重复件率 of the region's petitions
    overdue = data.overdue_cases(models, code, now)
    return view.render(
        "board.html",
        board=board,
        repeats=repeats,
        overdue=overdue,
        now=now,
        shown_limit=data.OVERDUE_SHOWN,
        form_key=form_key(),
    )


@router.get("/compliance")
def compliance(view: ScopedPage) -> Response:
    """小事不出村: within-ceiling rate, resolved at each rank, 矛盾上交 — worst first; the rate by week."""
    svc, place = view.svc, view.place
    models = read_models(svc)
    tables = [
        (level, title, models.compliance(place.code, level=level))
        for level, title, rank in (
            ("township", "各乡镇 per township", Rank.COUNTY),
            ("village", "各村/社区 per village", Rank.TOWNSHIP),
        )
        if place.rank >= rank
    ]
    weeks = data.weekly_rates(models, place.code, svc.engine.clock.now())
    chart = charts.line_chart([(w["label"], w["rate"]) for w in weeks])
    return view.render(
        "compliance.html",
        total=models.region_stats(place.code),
        tables=tables,
        weeks=weeks,
        chart=chart,
        charts=charts,
    )


@router.get("/rates")
def three_rates(view: ScopedPage) -> Response:
    """三率 of petitions: 响应率, 解决率, 满意率 for the region and each region below it."""
    models = read_models(view.svc)
    regions = [view.place, *view.context["children"]]
    return view.render(
        "rates.html", rows=[(r, models.region_stats(r.code)) for r in regions], charts=charts
    )


@router.get("/search")
def search(
    view: ScopedPage,
    q: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    """查找: cases whose words hold ``q`` (or whose parties carry the phone or ID number), newest first."""
    rows, following = [], None
    if q and q.strip():
        words, persons = search_terms(view.svc, view.principal, q)
        rows, following = read_models(view.svc).list_cases(
            region=view.place.code, q=words, persons=persons, cursor=cursor
        )
    return view.render(
        "search.html",
        q=q or "",
        rows=rows,
        following=following,
    )


@router.get("/cases/{case_id}")
def case_page(
    request: Request,
    principal: SignedIn,
    svc: Svc,
    case_id: UUID,
    version: Annotated[int | None, Query(ge=1, le=2**31)] = None,
) -> Response:
    """The case now or as of an earlier version, its whole timeline and its chain verification."""
    current = visible_case(svc, principal, case_id)
    shown = svc.engine.case_view(case_id, version)
    recorded = svc.engine.history(case_id)
    history = [event_view(r.position, r.event) for r in recorded]
    timeline = [data.timeline_entry(entry, shown["version"]) for entry in history]
    try:
        verification = verify_case(svc.engine, case_id)
    except NotFound:
        verification = None
    tree = svc.engine.ladder().tree
    acting = version is None or version == current.version
    return page(
        request,
        "case.html",
        case=shown,
        current_version=current.version,
        version=version,
        timeline=timeline,
        verification=verification,
        tree=tree,
        evidence=hashes_in(r.event for r in recorded),  # thumbnails (the workbench serves them)
        images=IMAGES,
        acting=acting,
        pending_extensions=current.pending_extensions,
        pending_suspension=current.pending_suspension,
        picker=data.pickable(tree, current.region, principal.region) if acting else None,
        form_key=form_key,
    )


@router.get("/approvals")
def approvals(view: ScopedPage) -> Response:
    """待审批: the extension and suspension requests awaiting approval, the longest waiting first."""
    waiting = read_models(view.svc).awaiting_approval(view.place.code)
    return view.render("approvals.html", waiting=waiting, form_key=form_key)


@router.get("/static/{name}")
def static(name: str) -> Response:
    return static_file(name, STATIC, "public, max-age=3600")
