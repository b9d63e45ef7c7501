"""Shared set-up for the API tests (no tests here): users of every role in and out of
海通乡 and a client that speaks as one of them (the `api` fixture, tests/conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

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

    def post(self, path: str, body: Any = None, who: str | None = "root", headers: dict | None = None, **kw: Any):
        all_headers = {**self.headers(who), **(headers or {})}
        if body is None:
            return self.client.post(path, headers=all_headers, **kw)
        return self.client.post(path, json=body, headers=all_headers, **kw)

    def report(self, body: dict | None = None, who: str = "wang", **kw: Any) -> dict:
        response = self.post("/v1/cases", body or DISPUTE, who, **kw)
        assert response.status_code == 201, response.text
        return response.json()

    def act(self, case_id: str, action: str, body: dict | None = None, who: str = "root",
            status: int = 200, **kw: Any) -> dict:
        response = self.post(f"/v1/cases/{case_id}/{action}", body, who, **kw)
        assert response.status_code == status, (action, who, response.text)
        return response.json()
