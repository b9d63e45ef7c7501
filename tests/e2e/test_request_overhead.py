"""Per-request work that does not depend on the request is done once (issue 20)."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRouter

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
