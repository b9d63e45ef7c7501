"""Every router of the HTTP API, in one list: add yours here.

Routers reuse :mod:`api.http.auth` (``current_user``, ``require_right``,
``require_role``, ``check_case_scope``, ``check_region_scope``) and
:mod:`api.http.problems` for refusals.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.http import cases, ops, regions


def routers() -> list[APIRouter]:
    extra: list[APIRouter] = []
    # -- more routers here, one import + one line each (events, subscriptions, schemas, open311 …) --
    from api.http import feed, open311, subscriptions  # issue 6: integrators

    extra += [feed.router, subscriptions.router, open311.router]
    from api.http import audit  # issue 7: audit verify, checkpoints, case file

    extra += [audit.router]
    from api.http import ui  # issue 8: the supervisor dashboard under /ui/

    extra += [ui.router]
    from api.http import calendar  # issue 17: the statutory calendar

    extra += [calendar.router]
    # -- end of routers --
    return [ops.router, cases.router, regions.router, *extra]
