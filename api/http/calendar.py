"""``/v1/calendar``: the statutory holiday years the clocks count with, and their source."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from api.http.auth import CallerRoute, CurrentUser
from api.http.openapi_docs import problem_responses
from api.http.schemas import StatutoryCalendar
from api.http.services import Services, services

router = APIRouter(prefix="/v1", tags=["calendar"], route_class=CallerRoute)
Svc = Annotated[Services, Depends(services)]


@router.get(
    "/calendar",
    summary="Years with statutory holiday data and where each came from",
    response_model=StatutoryCalendar,
    responses=problem_responses(401),
)
def calendar(principal: CurrentUser, svc: Svc) -> JSONResponse:
    return JSONResponse({"years": svc.engine.statutory().sources()})
