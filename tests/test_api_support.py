"""Shared set-up for the API tests (no tests here): users of every role in and out of
海通乡 and a client that speaks as one of them (the `api` fixture, tests/conftest.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from api.bench.county import (  # noqa: F401
    DISPUTE,
    GRID,
    HAITONG,
    HAZARD,
    PETITION,
    USERS,
    XUZHEN,
    XUZHEN_GRID,
)
from engine.service import Fengqiao
from workflows.timers import TimerService


@dataclass
class Api:
    http: FastAPI
    client: TestClient
    engine: Fengqiao
    tokens: dict[str, str]

    def headers(self, who: str | None, **extra: str) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return {**headers, **{k.replace("_", "-"): v for k, v in extra.items()}}

    def get(self, path: str, who: str | None = "root", **kw: Any):
        return self.client.get(path, headers=self.headers(who), **kw)

    def post(
        self,
        path: str,
        body: Any = None,
        who: str | None = "root",
        headers: dict | None = None,
        **kw: Any,
    ):
        all_headers = {**self.headers(who), **(headers or {})}
        if body is None:
            return self.client.post(path, headers=all_headers, **kw)
        return self.client.post(path, json=body, headers=all_headers, **kw)

    def report(self, body: dict | None = None, who: str = "wang", **kw: Any) -> dict:
        response = self.post("/v1/cases", body or DISPUTE, who, **kw)
        assert response.status_code == 201, response.text
        return response.json()

    def act(
        self,
        case_id: str,
        action: str,
        body: dict | None = None,
        who: str = "root",
        status: int = 200,
        **kw: Any,
    ) -> dict:
        response = self.post(f"/v1/cases/{case_id}/{action}", body, who, **kw)
        assert response.status_code == status, (action, who, response.text)
        return response.json()


ORIGIN = {
    "Origin": "http://testserver"
}  # the test client's own origin: what a browser sends with a form


def ui_sign_in(api: Api, who: str) -> str:
    """Sign in to the dashboard as ``who``; the session cookie is set for ``/ui`` pages."""
    api.client.cookies.clear()
    response = api.client.post(
        "/ui/login",
        data={"token": api.tokens[who], "next": "/ui/board"},
        headers=ORIGIN,
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    session = re.match(r'fengqiao_ui="?([^;"]+)', response.headers["set-cookie"]).group(1)
    api.client.cookies.set(
        "fengqiao_ui", session, path="/ui"
    )  # the test client keeps Path=/ui cookies apart
    return session


def bounded(examples: int) -> settings:
    """hypothesis settings for a short, repeatable schemathesis run: ``examples`` per
    operation, no deadline, no example database, no health checks (the app is slow to
    call, not the strategy)."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


def tick_timers(engine: Fengqiao) -> None:
    """One tick of the timer service (clocks warned and breached as of the engine's clock)."""
    timers = TimerService(engine)
    try:
        timers.tick()
    finally:
        timers.close()
