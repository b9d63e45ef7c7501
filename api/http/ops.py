"""Operations: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import hmac
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from api.http.auth import Unauthenticated
from api.http.metrics import CONTENT_TYPE
from api.http.openapi_docs import problem_responses, served_as
from api.http.schemas import Readiness
from api.http.services import Services, services
from workflows.timer_index import missing_years

router = APIRouter(tags=["ops"])
Svc = Annotated[Services, Depends(services)]


@router.get("/healthz", summary="The process is alive")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database answers and the projections are not too far behind",
    response_model=Readiness,
    responses={503: {"description": "Not ready", "model": Readiness}},
)
def readyz(svc: Svc) -> JSONResponse:
    checks: dict[str, object] = {}
    try:
        checks["position"] = svc.engine.head_position()
        checks["database"] = svc.users.reachable() and svc.users.writable()
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        checks["database"] = False
    failed_at = svc.database_error_at
    if (
        failed_at is not None
        and time.monotonic() - failed_at < svc.settings.unready_after_database_error
    ):
        checks["database"] = False  # a request was just refused for the database
    lag, failures = None, []
    try:
        lag = svc.projection_lag()
        failures = svc.projection_failures()
    except Exception:  # noqa: BLE001
        checks["projections"] = "unavailable"
    checks["projection_lag"] = lag
    checks["max_lag"] = svc.settings.ready_max_lag
    checks["calendar"] = calendar_check(svc)
    if failures:  # a projection stopped on an event: loud until it applies or is skipped
        checks["projections"] = "stopped"
        checks["projection_failures"] = failures
    ready = (
        checks["database"] is True
        and (lag is None or lag <= svc.settings.ready_max_lag)
        and "projections" not in checks
    )
    return JSONResponse(
        {"status": "ready" if ready else "not ready", **checks}, status_code=200 if ready else 503
    )


def calendar_check(svc: Services) -> object:
    """``ok``, or a warning (not a failure) naming the years without statutory data
    that open working-time clocks run into (as the timer index last computed them)."""
    try:
        years = missing_years(svc.read_models.db) if svc.read_models is not None else {}
        statutory = svc.engine.statutory()
    except Exception:  # noqa: BLE001 - no timer index in this database yet
        return "unknown"
    years = {year: n for year, n in years.items() if not statutory.covers(year)}
    if not years:
        return "ok"
    return {
        "warning": "open clocks run into years without statutory holiday data (counted Monday to "
        "Friday): import the State Council's notice with `fengqiao calendar import`",
        "years": sorted(years),
        "clocks": sum(years.values()),
    }


@router.get(
    "/metrics",
    summary="Prometheus metrics (with FENGQIAO_METRICS_TOKEN set: Authorization: Bearer)",
    response_class=Response,
    responses={**served_as(CONTENT_TYPE, "string"), **problem_responses(401)},
)
def metrics(request: Request, svc: Svc) -> Response:
    wanted = svc.settings.metrics_token
    if wanted:
        sent = request.headers.get("authorization", "")
        scheme, _, token = sent.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), wanted.encode()
        ):
            raise Unauthenticated("/metrics needs Authorization: Bearer <FENGQIAO_METRICS_TOKEN>")
    return Response(svc.metrics.render(), media_type=CONTENT_TYPE)
