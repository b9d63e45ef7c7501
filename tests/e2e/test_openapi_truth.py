"""The API describes itself truly: its OpenAPI document, its problem ``type`` pages, its
metrics, and the absolute URLs it hands out (issue 21, items 5 and 6)."""

from __future__ import annotations

from html import escape as html_escape

import pytest
from fastapi.testclient import TestClient

from api.http.services import FailedLogins
from engine.settings import Settings
from tests.test_api_support import DISPUTE, HAZARD, Api

# -- item 6: absolute URLs follow the request's base URL ------------------------------------


def with_public_url(api: Api, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = api.engine.settings
    monkeypatch.setattr(
        api.engine, "settings", type(settings)(**{**settings.model_dump(), "public_url": url})
    )


def client_at(api: Api, base: str) -> TestClient:
    return TestClient(api.http, base_url=base, raise_server_exceptions=False)


def test_dataschema_follows_the_request_base_url_when_no_public_url_is_set(api: Api):
    api.report(DISPUTE, who="wang")
    client = client_at(api, "https://county.example:9443")
    events = client.get("/v1/events", headers=api.headers("feed")).json()
    assert events
    assert all(
        e["dataschema"] == f"https://county.example:9443/v1/schemas/{e['type']}" for e in events
    )
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
    assert (
        Settings(public_url="https://x.example/").base_url("http://host:1/") == "https://x.example"
    )


# -- item 5: the OpenAPI document tells the truth --------------------------------------------


def openapi(api: Api) -> dict:
    return api.client.get("/openapi.json").json()


def answers(document: dict):
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation.get("responses", {}).items():
                yield f"{method.upper()} {path}", operation, status, answer


def test_every_error_answer_is_declared_as_problem_json_with_its_schema(api: Api):
    document = openapi(api)
    wrong = [
        f"{op} {status} {sorted(answer.get('content', {}))}"
        for op, _, status, answer in answers(document)
        if status[0] in "45"
        and status != "409"
        and op != "GET /readyz"
        and "open311" not in op  # GeoReport's own error format: issue 21, item 1
        and answer.get("content", {}).get("application/problem+json", {}).get("schema")
        != {"$ref": "#/components/schemas/Problem"}
    ]
    assert not wrong, wrong
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_every_2xx_answer_declares_what_it_sends(api: Api):
    empty = [
        f"{op} {status} {media}"
        for op, _, status, answer in answers(openapi(api))
        if status.startswith("2") and "open311" not in op  # item 1 declares Open311's answers
        for media, content in answer.get("content", {}).items()
        if not content.get("schema")
    ]
    assert not empty, empty


def test_operation_ids_are_readable_and_unique(api: Api):
    ids = [
        operation["operationId"]
        for _, operation, status, _ in answers(openapi(api))
        if status.startswith("2")
    ]
    unique = sorted(set(ids))
    assert {
        "cases.accept",
        "cases.report",
        "cases.get",
        "regions.stats",
        "ops.readyz",
        "problems.describe",
    } <= set(unique)
    assert all(
        len(i) < 40 and "__" not in i and not i.endswith(("_get", "_post")) for i in unique
    ), unique
    operations = [
        (op, operation["operationId"]) for op, operation, status, _ in answers(openapi(api))
    ]
    assert len({op for op, _ in operations}) == len({oid for _, oid in operations})


@pytest.mark.parametrize(
    "name",
    [
        "validation",
        "invalid-transition",
        "escalation-ceiling",
        "version-conflict",
        "forbidden",
        "not-found",
        "unauthenticated",
        "not-ready",
        "internal",
    ],
)
def test_each_problem_type_uri_answers_a_page_describing_it(api: Api, name: str):
    page = api.client.get(f"/problems/{name}")
    assert page.status_code == 200
    assert page.json()["type"] == f"/problems/{name}" and page.json()["description"]
    html = api.client.get(f"/problems/{name}", headers={"Accept": "text/html,*/*;q=0.8"})
    assert html.headers["content-type"].startswith("text/html")
    assert html_escape(page.json()["title"]) in html.text


def test_the_type_uri_of_a_real_refusal_dereferences(api: Api):
    refused = api.post("/v1/cases", {"kind": "dispute"}, "wang")
    assert refused.status_code == 422
    assert api.client.get(refused.json()["type"]).json()["status"] == 422
    assert api.client.get("/problems/no-such-thing").status_code == 404


def test_metrics_count_commands_from_every_front_door(api: Api):
    api.report(DISPUTE, who="wang")
    platform = api.http.state.services.users.add("platform-12345", "reporter", "410928", by="test")
    sent = api.client.post(
        "/open311/v2/requests.json",
        data={
            "api_key": platform,
            "service_code": "petition.utilities",
            "description": "小区停水三天",
            "attribute[region]": "410928-009-001-01",
            "attribute[title]": "停水",
        },
    )
    assert sent.status_code == 201, sent.text
    text = api.get("/metrics").text
    assert 'fengqiao_commands_total{command="report",outcome="ok"} 2.0' in text


# -- the answers from around the handlers: the token limiter, the body limit ----------------


def operations_with_real_paths(api: Api) -> list[tuple[str, str, dict]]:
    """Every operation of the document, its path filled with values that exist."""
    case = api.report(HAZARD, who="boss")["id"]
    values = {
        "case_id": case,
        "request_id": case,
        "subscription_id": "no-such-subscription",  # refused after the token and the body
        "code": "410928",
        "event_type": "cn.fengqiao.hazard.reported.v1",
        "name": "validation",
    }
    filled = []
    for path, operations in openapi(api)["paths"].items():
        for method, operation in operations.items():
            for fmt in ("json", "xml") if "{fmt}" in path else ("",):
                url = path.replace("{fmt}", fmt)
                for name, value in values.items():
                    url = url.replace(f"{{{name}}}", value)
                filled.append((method.upper(), url, operation["responses"]))
    return filled


def declared(responses: dict, response) -> bool:
    """Is this answer's status declared, with its content type?"""
    content = responses.get(str(response.status_code), {}).get("content", {})
    media = response.headers.get("content-type", "").split(";")[0]
    return media in content


def test_too_many_bad_tokens_is_declared_wherever_a_token_is_checked(api: Api):
    operations = operations_with_real_paths(api)
    services = api.http.state.services
    services.failed_logins = FailedLogins(1, 60)
    services.failed_logins.failed("testclient")  # the test client's address: now limited
    limited = []
    for method, url, responses in operations:
        answer = api.client.request(method, url, headers=api.headers("boss"), json={})
        assert answer.status_code != 500, (method, url)
        if answer.status_code == 429:
            limited.append(url)
            assert declared(responses, answer), (method, url, answer.headers["content-type"])
            assert answer.headers["retry-after"]
        else:
            assert "429" not in responses, (method, url, answer.status_code)
    assert any("/open311/" in url for url in limited) and any("/v1/audit" in url for url in limited)


def test_the_body_limit_answers_are_declared_on_every_post(api: Api):
    posts = [op for op in operations_with_real_paths(api) if op[0] == "POST"]
    assert len(posts) > 30
    settings = api.engine.settings
    for _, url, responses in posts:
        # an evidence file may be larger than any other body (FENGQIAO_EVIDENCE_MAX_BYTES)
        limit = settings.evidence_max_bytes if url == "/v1/evidence" else settings.max_body_bytes
        plain = api.client.post(
            url, content=b"hello", headers={**api.headers("boss"), "Content-Type": "text/plain"}
        )
        assert plain.status_code == 415 and declared(responses, plain), (url, plain.text)
        large = api.client.post(url, content=b"{" * (limit + 1), headers=api.headers("boss"))
        assert large.status_code == 413 and declared(responses, large), (url, large.text)
        if "/open311/" in url:  # the spec's error, in the extension's format
            assert plain.headers["content-type"].startswith(
                "text/xml" if url.endswith(".xml") else "application/json"
            )
            assert "problem" not in plain.headers["content-type"]


@pytest.mark.parametrize(
    "query",
    ["proofs/inclusion?position=99999999999999999999", "proofs/consistency?from=1&to=9" + "9" * 20],
)
def test_a_proof_of_a_position_past_any_store_is_refused_not_a_500(api: Api, query: str):
    """Found by the schemathesis sweep: SQLite cannot hold the integer (500 before)."""
    refused = api.get(f"/v1/audit/{query}", "boss")
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")


def test_an_integrators_search_by_number_is_a_declared_403(api: Api):
    """Found by the schemathesis sweep (``q`` drawn as a phone number): the 403 that keeps
    integrators from searching by a personal number was not in the document."""
    refused = api.get("/v1/cases?q=13812345678", "feed")  # the integrator
    assert refused.status_code == 403, refused.text
    responses = openapi(api)["paths"]["/v1/cases"]["get"]["responses"]
    assert declared(responses, refused)
