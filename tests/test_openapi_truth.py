# ruff: noqa: F811 - the `api` fixture is imported from tests.test_api_support
"""The API describes itself truly: its OpenAPI document, its problem ``type`` pages, its
metrics, and the absolute URLs it hands out (issue 21, items 5 and 6)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from engine.settings import Settings
from tests.test_api_support import DISPUTE, Api, api  # noqa: F401

# -- item 6: absolute URLs follow the request's base URL ------------------------------------


def with_public_url(api: Api, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = api.engine.settings
    monkeypatch.setattr(api.engine, "settings", type(settings)(**{**settings.model_dump(), "public_url": url}))


def client_at(api: Api, base: str) -> TestClient:
    return TestClient(api.http, base_url=base, raise_server_exceptions=False)


def test_dataschema_follows_the_request_base_url_when_no_public_url_is_set(api: Api):
    api.report(DISPUTE, who="wang")
    client = client_at(api, "https://county.example:9443")
    events = client.get("/v1/events", headers=api.headers("feed")).json()
    assert events
    assert all(e["dataschema"] == f"https://county.example:9443/v1/schemas/{e['type']}" for e in events)
    listed = client.get("/v1/schemas", headers=api.headers("feed")).json()["types"]
    assert all(t["schema"].startswith("https://county.example:9443/v1/schemas/") for t in listed)
    one = client.get(f"/v1/schemas/{listed[0]['type']}", headers=api.headers("feed")).json()
    assert one["$id"] == listed[0]["schema"]


def test_dataschema_follows_the_request_base_url_on_the_stream(api: Api):
    api.report(DISPUTE, who="wang")
    client = client_at(api, "http://10.0.0.7:8080")
    api.http.state.services.settings = Settings(sse_heartbeat=0.05)
    with client.stream("GET", "/v1/events/stream", headers=api.headers("feed")) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                assert '"dataschema":"http://10.0.0.7:8080/v1/schemas/' in line
                break


def test_a_set_public_url_wins_over_the_request_base_url(api: Api, monkeypatch: pytest.MonkeyPatch):
    with_public_url(api, "https://fengqiao.example.gov.cn/", monkeypatch)
    api.report(DISPUTE, who="wang")
    client = client_at(api, "http://10.0.0.7:8080")
    events = client.get("/v1/events", headers=api.headers("feed")).json()
    assert events[0]["dataschema"].startswith("https://fengqiao.example.gov.cn/v1/schemas/")
    listed = client.get("/v1/schemas", headers=api.headers("feed")).json()["types"]
    assert listed[0]["schema"].startswith("https://fengqiao.example.gov.cn/v1/schemas/")


def test_the_settings_name_the_base_url():
    assert Settings().base_url("http://host:1/") == "http://host:1"
    assert Settings().base_url(None) == "http://localhost:8000"
    assert Settings(public_url="https://x.example/").base_url("http://host:1/") == "https://x.example"
