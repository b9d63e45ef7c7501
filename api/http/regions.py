"""``/v1/regions`` and ``/v1/sla``: the ladder as the caller may see it, boards and statistics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from api.http.auth import (
    CallerRoute,
    CurrentUser,
    RegionParam,
    check_region_scope,
    require,
    with_caller,
)
from api.http.bounds import period_within
from api.http.cases import ViewResponse
from api.http.openapi_docs import READ, problem_responses
from api.http.readmodels import read_models
from api.http.schemas import Compliance, RegionNode, RegionStats, SlaBoard
from api.http.services import Services, services
from domain.errors import ValidationFailed
from domain.ladder import Rank, Region
from domain.permissions import READ_BOARD

router = APIRouter(prefix="/v1", tags=["regions"], route_class=CallerRoute)
Svc = Annotated[Services, Depends(services)]

BEIJING = timezone(timedelta(hours=8))
F = TypeVar("F", bound=Callable[..., Any])


def brief(region: Region) -> dict[str, Any]:
    return {
        "code": region.code,
        "name": region.name,
        "rank": region.rank.label,
        "profile": str(region.profile),
    }


def node(svc: Services, region: Region) -> dict[str, Any]:
    tree = svc.engine.ladder().tree
    return {
        **brief(region),
        "parent": region.parent,
        "children": [brief(c) for c in tree.children_of(region.code)],
        "units": [{"id": u.id, "name": u.name, "kind": u.kind} for u in tree.units_in(region.code)],
    }


@router.get(
    "/regions",
    summary="The regions the caller can see (the root of their subtree)",
    response_model=None,
    responses={200: {"model": list[RegionNode]}, **problem_responses(401)},
)
def list_regions(principal: CurrentUser, svc: Svc) -> JSONResponse:
    return JSONResponse([node(svc, svc.engine.region(principal.region))])


@router.get(
    "/regions/{code}",
    summary="A region with its children and units",
    response_model=None,
    responses={200: {"model": RegionNode}, **problem_responses(*READ)},
)
def get_region(principal: CurrentUser, svc: Svc, code: str) -> JSONResponse:
    return JSONResponse(node(svc, check_region_scope(principal, code, svc)))


def _moment(value: str | None, *, end: bool) -> datetime | None:
    """A date is a whole day in Beijing time (``to`` includes it); a time needs a zone."""
    field = "to" if end else "from"
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value) + timedelta(days=1 if end else 0)
            return datetime.combine(day, time(0), tzinfo=BEIJING)
        moment = datetime.fromisoformat(value)
    except OverflowError:  # the day after 9999-12-31
        raise ValidationFailed(f"{field} is out of range", field=field) from None
    except ValueError:
        raise ValidationFailed(
            f"{field} must be a date (YYYY-MM-DD) or an RFC 3339 time", field=field
        ) from None
    if moment.tzinfo is None:
        raise ValidationFailed("a time zone is required (RFC 3339)", field=field)
    return moment


def _period(
    start: str | None, end: str | None, now: datetime
) -> tuple[datetime | None, datetime | None]:
    """A statistics period, each bound in range (``api.http.bounds.period_within``)."""
    begin, stop = _moment(start, end=False), _moment(end, end=True)
    period_within(begin, stop, now)
    return begin, stop


PERIOD = "a date (YYYY-MM-DD, a whole day in Beijing time) or an RFC 3339 time"


def _bound(name: str, example: str, default: str) -> Any:
    """The ``from`` or ``to`` query parameter of a statistics period."""
    return Query(alias=name, max_length=40, examples=[example], description=f"{PERIOD}{default}")


PeriodFrom = Annotated[str | None, _bound("from", "2026-09-01", "; default: since the first case")]
PeriodTo = Annotated[str | None, _bound("to", "2026-09-30", ", inclusive; default: up to now")]


@dataclass(frozen=True)
class BoardRead:
    """A board or statistics read of one region over a period, by a caller who may read
    boards and sees the region (checked in that order, before the period is)."""

    svc: Services
    code: str
    region: Region
    start: str | None
    end: str | None

    def period(self) -> tuple[datetime | None, datetime | None]:
        return _period(self.start, self.end, self.svc.engine.clock.now())


@with_caller  # it takes the caller: its token is looked up in this dependency's hop
def board_read(
    principal: CurrentUser, svc: Svc, code: str, start: PeriodFrom = None, end: PeriodTo = None
) -> BoardRead:
    require(principal, READ_BOARD)
    return BoardRead(svc, code, check_region_scope(principal, code, svc), start, end)


Board = Annotated[BoardRead, Depends(board_read)]


def board_route(path: str, summary: str, model: type) -> Callable[[F], F]:
    """A ``GET`` for supervisors: 403 without the right, 503 while the read models lag."""
    responses = {200: {"model": model}, **problem_responses(403, *READ, 503)}
    return router.get(path, summary=summary, response_model=None, responses=responses)


@board_route(
    "/regions/{code}/stats",
    "小事不出村 and 三率 for a region over a period (supervisors)",
    RegionStats,
)
def region_stats(board: Board) -> JSONResponse:
    begin, stop = board.period()
    stats = read_models(board.svc).region_stats(board.code, begin, stop)
    return JSONResponse(
        jsonable_encoder({"region": board.code, "from": begin, "to": stop, **dict(stats)})
    )


LEVELS = {"township": Rank.TOWNSHIP, "village": Rank.VILLAGE}


@board_route(
    "/regions/{code}/compliance",
    "小事不出村 per child region: each village or township (supervisors)",
    Compliance,
)
def region_compliance(
    board: Board,
    level: Annotated[
        str | None,
        Query(
            max_length=20,
            description="village or township; default: the rank "
            "just below the region (a county's townships, a township's villages)",
        ),
    ] = None,
) -> JSONResponse:
    """The dashboard's compliance table as JSON (``ReadModels.compliance``)."""
    region = board.region
    if level is None:
        level = "township" if region.rank > Rank.TOWNSHIP else "village"
    if level not in LEVELS or LEVELS[level] >= region.rank:
        raise ValidationFailed(
            f"compliance under a {region.rank.label} is per village or township below it",
            field="level",
            allowed=[name for name, rank in LEVELS.items() if rank < region.rank],
        )
    begin, stop = board.period()
    rows = read_models(board.svc).compliance(board.code, begin, stop, level=level)
    body = {"region": board.code, "level": level, "from": begin, "to": stop, "rows": rows}
    return JSONResponse(jsonable_encoder(body))


@router.get(
    "/sla/board",
    summary="SLA board: overdue and about-to-breach cases (supervisors)",
    response_model=None,
    tags=["sla"],
    responses={200: {"model": SlaBoard}, **problem_responses(403, *READ, 503)},
)
def sla_board(
    principal: CurrentUser,
    svc: Svc,
    region: RegionParam = None,
) -> JSONResponse:
    require(principal, READ_BOARD)
    code = region or principal.region
    check_region_scope(principal, code, svc)
    return ViewResponse(read_models(svc).sla_board(code))  # JSON types already: no jsonable_encoder
