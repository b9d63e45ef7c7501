"""Per-request work that does not depend on the request is done once (issue 20)."""

from __future__ import annotations

from uuid import UUID

import pytest
from fastapi.routing import APIRouter

from domain.clocks import clocks_under
from engine.case_clocks import current_clocks
from tests.test_api_support import DISPUTE, Api


def test_finding_a_route_does_not_walk_the_routers_on_each_request(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    case_id = api.report(DISPUTE, who="wang")["id"]
    walks = []
    walk = APIRouter._get_routes_version
    monkeypatch.setattr(
        APIRouter,
        "_get_routes_version",
        lambda self, seen=None: walks.append(self) or walk(self, seen),
    )
    assert api.get(f"/v1/cases/{case_id}", "wang").status_code == 200
    assert api.post(f"/v1/cases/{case_id}/comment", {"text": "一"}, "wang").status_code == 200
    assert api.get("/problems/not-found", None).status_code == 200  # a router further down
    assert walks == []


def test_a_command_reads_back_none_of_the_events_it_wrote(api: Api) -> None:
    """The case view a command answers with folds its clocks from the cached fold and the
    command's own stored events, decoded as a read would: the only read of the case's
    events is the scope check's look for newer ones (another process may have written)."""
    case_id = api.report(DISPUTE, who="wang")["id"]
    assert api.get(f"/v1/cases/{case_id}", "wang").status_code == 200  # the clocks folded
    reads = []
    events = api.engine.events
    read = events.get
    events.get = lambda *a, **kw: reads.append(kw) or read(*a, **kw)
    try:
        done = api.post(f"/v1/cases/{case_id}/comment", {"text": "一"}, "wang")
    finally:
        events.get = read
    assert done.status_code == 200
    assert reads == [{"gt": 1}]  # bringing the cached case up to date: nothing newer
    app = api.engine
    case = app.case(UUID(case_id))
    now = app.clock.now()
    kept = current_clocks(app, case, now)  # the fold the command advanced
    assert kept == clocks_under(
        app.policy(case.policy_version), app.events.get(case.id), now, app.statutory()
    )
