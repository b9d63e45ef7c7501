"""Per-request work that does not depend on the request is done once (issue 20)."""

from __future__ import annotations

from uuid import UUID

import pytest
from fastapi.routing import APIRouter

from api.bench.county import envelope
from domain.clocks import clocks_under
from engine.case_clocks import current_clocks
from engine.service import Fengqiao
from engine.store import StoreConfig
from engine.users import UserStore
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
    command's own stored events, decoded as a read would; the scope check finds the cached
    case current by the version the token's query read (nothing newer to look for)."""
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
    assert reads == []
    app = api.engine
    case = app.case(UUID(case_id))
    now = app.clock.now()
    kept = current_clocks(app, case, now)  # the fold the command advanced
    assert kept == clocks_under(
        app.policy(case.policy_version), app.events.get(case.id), now, app.statutory()
    )


def _counting_reads(engine: Fengqiao) -> list[dict]:
    reads: list[dict] = []
    read = engine.events.get
    engine.events.get = lambda *a, **kw: reads.append(kw) or read(*a, **kw)  # type: ignore[method-assign]
    return reads


def test_a_case_read_by_the_version_read_with_the_token(api: Api, store: StoreConfig) -> None:
    """The token's query also reads the case's last version in the store: a cached case at
    that version is shown without a look for newer events; one another process (here a
    second engine on the same store) wrote past is brought up to date, by GET and by command."""
    case_id = api.report(DISPUTE, who="wang")["id"]
    assert api.get(f"/v1/cases/{case_id}", "wang").json()["version"] == 1
    reads = _counting_reads(api.engine)
    assert api.get(f"/v1/cases/{case_id}", "wang").json()["version"] == 1
    assert reads == []  # current: nothing to look for
    other = Fengqiao(store, clock=api.engine.clock)
    try:
        other.do(
            UUID(case_id),
            "comment",
            {"text": "另一进程"},
            envelope("wang", other, command_id="x-1"),
        )
        seen = api.get(f"/v1/cases/{case_id}", "wang")
        assert seen.json()["version"] == 2 and seen.headers["etag"] == '"2"'
        assert reads[0] == {"gt": 1}  # brought up to date with the other's event (then its clocks)
        other.do(
            UUID(case_id), "comment", {"text": "又一条"}, envelope("wang", other, command_id="x-2")
        )
        done = api.post(f"/v1/cases/{case_id}/comment", {"text": "本进程"}, "wang")
        assert done.status_code == 200 and done.json()["version"] == 4
        history = [e["data"].get("text") for e in api.get(f"/v1/cases/{case_id}/history").json()]
        assert history[1:] == ["另一进程", "又一条", "本进程"]
    finally:
        other.close()


def test_a_token_revoked_elsewhere_fails_at_once_on_case_routes(
    api: Api, store: StoreConfig
) -> None:
    """The token's query on a case route (which reads the case's version too) still refuses
    a token revoked by another process the moment it is revoked."""
    case_id = api.report(DISPUTE, who="wang")["id"]
    assert api.get(f"/v1/cases/{case_id}", "wang").status_code == 200
    other = Fengqiao(store, clock=api.engine.clock)
    try:
        UserStore(other).revoke("wang")
    finally:
        other.close()
    assert api.get(f"/v1/cases/{case_id}", "wang").status_code == 401
    assert api.post(f"/v1/cases/{case_id}/comment", {"text": "一"}, "wang").status_code == 401
