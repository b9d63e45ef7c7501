"""Every router of the HTTP API, in one list: add yours here.

Routers reuse :mod:`api.http.auth` (``current_user``, ``require_right``,
``require_role``, ``check_case_scope``, ``check_region_scope``) and
:mod:`api.http.problems` for refusals.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.http import (
    audit,
    calendar,
    cases,
    evidence,
    feed,
    open311,
    ops,
    problems,
    regions,
    subscriptions,
    ui,
)
from api.http.ui import work


def routers() -> list[APIRouter]:
    return [
        ops.router,
        evidence.router,  # before cases': /v1/cases/{id}/evidence/{sha256}
        cases.router,
        regions.router,
        feed.router,  # integrators: the event feed, webhook subscriptions, Open311
        subscriptions.router,
        open311.router,
        audit.router,  # chain verification, checkpoints, the case file
        ui.router,  # the supervisor dashboard under /ui/
        ui.actions_router,  # its forms that act (the API's command path)
        work.router,  # the grid worker's workbench under /ui/work (pages)
        work.commands,  # … and its outbox's endpoints (problem+json)
        calendar.router,  # the statutory calendar
        problems.router,  # each problem type URI, dereferenced
    ]
