"""The HTTP API through the real ASGI app, on both stores: every action, every problem type."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

import pytest

from domain.errors import NotFound, ValidationFailed
from tests.test_api_support import DISPUTE, GRID, HAZARD, PETITION, Api

NOW_PLUS = "2026-10-10T18:00:00+08:00"


def test_a_dispute_through_every_shared_action(api: Api):
    case = api.report(DISPUTE, who="wang")
    cid = case["id"]
    assert (case["status"], case["rank"], case["ceiling"], case["version"]) == (
        "reported",
        "grid",
        "village",
        1,
    )
    assert case["position"] > 0
    steps = [
        ("comment", {"text": "已电话联系"}, "wang"),
        ("assign", {"assignee": "zhao"}, "li"),
        ("send-back", {"reason": "不属于本单位"}, "zhao"),
        ("assign", {"assignee": "zhao"}, "li"),
        ("accept", None, "zhao"),
        ("whistle", {"departments": ["wz-tjh", "派出所"], "reason": "联合处置"}, "zhao"),
        ("check-in", {"department": "wz-tjh"}, "zhao"),
        ("suspend", {"reason": "当事人外出"}, "li"),
        ("resume", None, "li"),
        ("extend", {"days": 5, "reason": "等待鉴定"}, "li"),
        ("supervise", {"note": "请尽快办结"}, "zhou"),
        ("mediate", {"outcome": "adjourned", "summary": "择期再调"}, "zhao"),
        ("mediate", {"outcome": "agreed", "summary": "协商一致", "agreement": "停止施工"}, "zhao"),
        ("court-confirmation", {"note": "共同申请"}, "zhao"),
        ("resolve", {"resolution": "协议履行"}, "zhao"),
        ("close", None, "li"),
        ("reopen", {"reason": "协议未履行"}, "li"),
    ]
    version, position = case["version"], case["position"]
    for action, body, who in steps:
        after = api.act(cid, action, body, who=who)
        assert after["version"] == version + 1 and after["position"] > position, action
        version, position = after["version"], after["position"]
    assert after["status"] == "in_progress" and after["version"] == len(steps) + 1
    history = api.get(f"/v1/cases/{cid}/history", "audit").json()
    assert [e["type"] for e in history][:3] == ["Reported", "Commented", "Assigned"]
    assert len(history) == version


def test_a_hazard_through_rectification(api: Api):
    cid = api.report(HAZARD)["id"]
    api.act(cid, "assign", {"assignee": "zhao"}, "li")
    api.act(cid, "accept", None, "zhao")
    api.act(cid, "order-rectification", {"deadline": NOW_PLUS, "measures": "清理通道"}, "zhao")
    api.act(cid, "rectify", {"note": "已清理"}, "zhao")
    assert (
        api.act(cid, "reinspect", {"passed": False, "note": "仍有杂物"}, "zhao")["status"]
        == "in_progress"
    )
    api.act(cid, "rectify", {"note": "再次清理"}, "zhao")
    api.act(cid, "reinspect", {"passed": True, "note": "合格"}, "zhao")
    assert api.act(cid, "resolve", {"resolution": "销号"}, "zhao")["status"] == "resolved"
    assert api.act(cid, "close", None, "li")["status"] == "closed"


def test_a_petition_redone_after_a_dissatisfied_return_visit(api: Api):
    cid = api.report(PETITION)["id"]
    api.act(cid, "assign", {"assignee": "zhao"}, "li")
    api.act(cid, "accept", None, "zhao")
    api.act(cid, "reply", {"text": "已协调"}, "zhao")
    api.act(cid, "resolve", {"resolution": "恢复供水"}, "zhao")
    assert (
        api.act(cid, "return-visit", {"satisfaction": "dissatisfied"}, "zhao")["status"]
        == "in_progress"
    )
    api.act(cid, "reply", {"text": "再次协调"}, "zhao")
    api.act(cid, "resolve", {"resolution": "彻底解决"}, "zhao")
    api.act(cid, "return-visit", {"satisfaction": "satisfied", "note": "满意"}, "zhao")
    assert api.act(cid, "close", None, "li")["status"] == "closed"


def test_escalation_the_ceiling_and_reclassification(api: Api):
    cid = api.report(DISPUTE)["id"]
    api.act(cid, "assign", {"assignee": "wang"}, "li")
    api.act(cid, "accept", None, "li")
    up = api.act(cid, "escalate", {"reason": "网格化解不了"}, "li")
    assert (up["rank"], up["region"], up["unit"]) == ("village", "410928-001-007", "wz-tjh")
    refused = api.post(
        f"/v1/cases/{cid}/escalate", {"reason": "村里调不了", "to": "township"}, "li"
    )
    assert refused.status_code == 422
    problem = refused.json()
    assert refused.headers["content-type"] == "application/problem+json"
    assert (problem["type"], problem["severity"], problem["ceiling"], problem["requested"]) == (
        "/problems/escalation-ceiling",
        "minor",
        "village",
        "township",
    )
    assert (
        api.act(cid, "reclassify", {"severity": "major", "reason": "涉及多户"}, "li")["severity"]
        == "major"
    )
    moved = api.act(cid, "escalate", {"reason": "乡里处理", "to": "township"}, "li")
    assert moved["rank"] == "township" and moved["region"] == "410928-001"
    # the village that reported it still sees it (origin region); the township sees it too
    assert api.get(f"/v1/cases/{cid}", "zhao").status_code == 200
    assert api.get(f"/v1/cases/{cid}", "zhou").status_code == 200


def test_idempotent_report_and_action(api: Api):
    key = {"Idempotency-Key": "report-1"}
    first = api.post("/v1/cases", DISPUTE, "wang", headers=key)
    again = api.post("/v1/cases", DISPUTE, "wang", headers=key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert (
        first.json() == again.json()
        and again.headers["Location"] == f"/v1/cases/{first.json()['id']}"
    )
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = api.post("/v1/cases", DISPUTE, "root", headers=key)
    assert other.json()["id"] != first.json()["id"]  # keys are scoped per user
    cid = first.json()["id"]
    once = api.post(
        f"/v1/cases/{cid}/comment", {"text": "一"}, "wang", headers={"Idempotency-Key": "c-1"}
    )
    twice = api.post(
        f"/v1/cases/{cid}/comment", {"text": "一"}, "wang", headers={"Idempotency-Key": "c-1"}
    )
    assert once.json() == twice.json() and once.json()["version"] == 2
    assert len(api.get(f"/v1/cases/{cid}/history", "audit").json()) == 2
    assert sum(1 for _ in api.engine.case_ids()) == 2


def test_if_match_and_version_conflict(api: Api):
    cid = api.report()["id"]
    ok = api.post(f"/v1/cases/{cid}/comment", {"text": "x"}, "wang", headers={"If-Match": '"1"'})
    assert ok.status_code == 200 and ok.headers["ETag"] == '"2"'
    stale = api.post(f"/v1/cases/{cid}/comment", {"text": "y"}, "wang", headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    assert (stale.json()["type"], stale.json()["expected"], stale.json()["actual"]) == (
        "/problems/version-conflict",
        1,
        2,
    )
    bad = api.post(
        f"/v1/cases/{cid}/comment", {"text": "y"}, "wang", headers={"If-Match": "yesterday"}
    )
    assert bad.status_code == 422 and bad.json()["field"] == "If-Match"


def test_every_problem_type(api: Api):
    cid = api.report()["id"]

    def problem(response, status: int, kind: str) -> dict:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert body["type"] == f"/problems/{kind}" and body["status"] == status and body["title"]
        return body

    body = problem(
        api.post("/v1/cases", {**DISPUTE, "severity": "huge"}, "wang"), 422, "validation"
    )
    assert body["field"] == "severity"
    body = problem(api.post("/v1/cases", {**DISPUTE, "colour": "red"}, "wang"), 422, "validation")
    assert body["field"] == "colour"
    body = problem(
        api.post("/v1/cases", {k: v for k, v in DISPUTE.items() if k != "title"}, "wang"),
        422,
        "validation",
    )
    assert body["field"] == "title"
    body = problem(
        api.post("/v1/cases", {**DISPUTE, "category": "weather"}, "wang"), 422, "validation"
    )
    assert body["field"] == "category"
    body = problem(
        api.post("/v1/cases", {**DISPUTE, "parties": [{"name": "x", "phone": "abc"}]}, "wang"),
        422,
        "validation",
    )
    assert body["field"] == "parties.0.phone"
    body = problem(
        api.client.post(
            f"/v1/cases/{cid}/comment",
            content=b'{"text": ',
            headers={**api.headers("wang"), "Content-Type": "application/json"},
        ),
        422,
        "validation",
    )
    assert body["field"] == "body"
    problem(
        api.client.post(
            f"/v1/cases/{cid}/comment",
            content=b"[1, 2]",
            headers={**api.headers("wang"), "Content-Type": "application/json"},
        ),
        422,
        "validation",
    )
    body = problem(api.post(f"/v1/cases/{cid}/comment", None, "wang"), 422, "validation")
    assert body["field"] == "body"  # a required body left out
    problem(api.get(f"/v1/cases/{cid}/state?version=0", "audit"), 422, "validation")
    problem(api.get("/v1/cases/not-a-uuid", "audit"), 422, "validation")
    problem(api.post(f"/v1/cases/{cid}/accept", None, "li"), 409, "invalid-transition")
    problem(
        api.post(f"/v1/cases/{cid}/comment", {"text": "x"}, "wang", headers={"If-Match": '"9"'}),
        412,
        "version-conflict",
    )
    problem(api.post(f"/v1/cases/{cid}/assign", {"assignee": "zhao"}, "wang"), 403, "forbidden")
    problem(api.post(f"/v1/cases/{cid}/comment", {"text": "x"}, "audit"), 403, "forbidden")
    problem(api.get(f"/v1/cases/{uuid.uuid4()}", "wang"), 404, "not-found")
    problem(api.get("/v1/nowhere", "wang"), 404, "not-found")
    body = problem(api.get(f"/v1/cases/{cid}", None), 401, "unauthenticated")
    problem(
        api.client.get(f"/v1/cases/{cid}", headers={"Authorization": "Bearer fq_nope"}),
        401,
        "unauthenticated",
    )
    problem(
        api.client.get(f"/v1/cases/{cid}", headers={"Authorization": "Basic d2FuZzp4"}),
        401,
        "unauthenticated",
    )
    problem(
        api.client.get(f"/v1/cases/{cid}/assign", headers=api.headers("li")),
        405,
        "method-not-allowed",
    )
    problem(
        api.client.post(
            f"/v1/cases/{cid}/comment",
            content=b"text=x",
            headers={**api.headers("wang"), "Content-Type": "text/plain"},
        ),
        415,
        "unsupported-media-type",
    )
    big = b'{"text": "' + b"x" * (1024 * 1024) + b'"}'
    problem(
        api.client.post(
            f"/v1/cases/{cid}/comment",
            content=big,
            headers={**api.headers("wang"), "Content-Type": "application/json"},
        ),
        413,
        "payload-too-large",
    )
    # none of the refusals touched the case
    assert api.get(f"/v1/cases/{cid}", "wang").json()["version"] == 1


def test_an_escalation_ceiling_problem_names_severity_ceiling_and_rank_asked(api: Api):
    cid = api.report()["id"]
    api.act(cid, "assign", {"assignee": "wang"}, "li")
    refused = api.post(f"/v1/cases/{cid}/escalate", {"reason": "x", "to": "county"}, "li")
    body = refused.json()
    assert refused.status_code == 422 and body["type"] == "/problems/escalation-ceiling"
    assert (body["severity"], body["ceiling"], body["requested"]) == ("minor", "village", "county")


def test_revoked_tokens_and_unknown_roles(api: Api):
    users = api.http.state.services.users
    cid = api.report()["id"]
    assert api.get(f"/v1/cases/{cid}", "wang").status_code == 200
    users.revoke("wang")
    assert api.get(f"/v1/cases/{cid}", "wang").status_code == 401
    new_token = users.add(
        "wang", "reporter", GRID
    )  # re-issuing gives a new token, the old stays dead
    assert (
        api.client.get(
            f"/v1/cases/{cid}", headers={"Authorization": f"Bearer {new_token}"}
        ).status_code
        == 200
    )
    assert api.get(f"/v1/cases/{cid}", "wang").status_code == 401
    with pytest.raises(ValidationFailed) as refused:
        users.add("mayor", "mayor", GRID)
    assert refused.value.details["field"] == "role"
    with pytest.raises(NotFound):
        users.add("ghost", "reporter", "410928-999")
    with pytest.raises(NotFound):
        users.revoke("nobody")
    stored = users.db.query(f"SELECT token_hash FROM {users.table} WHERE name = ?", ("wang",))[0][
        "token_hash"
    ]
    assert stored == hashlib.sha256(new_token.encode()).hexdigest() and new_token not in stored


def test_history_and_time_travel(api: Api, clock):
    from datetime import timedelta

    cid = api.report(DISPUTE)["id"]
    reported_at = clock.now()
    clock.advance(timedelta(hours=1))
    api.act(cid, "assign", {"assignee": "zhao"}, "li")
    clock.advance(timedelta(hours=1))
    api.act(cid, "accept", None, "zhao")
    history = api.get(f"/v1/cases/{cid}/history", "audit").json()
    assert [(e["version"], e["type"]) for e in history] == [
        (1, "Reported"),
        (2, "Assigned"),
        (3, "Accepted"),
    ]
    first = history[0]
    assert {
        "version",
        "position",
        "type",
        "occurred_at",
        "recorded_at",
        "actor",
        "policy_version",
        "data",
    } <= set(first)
    assert first["actor"]["id"] == "wang" and first["actor"]["role"] == "reporter"
    assert first["data"]["parties"][0]["phone"] == "13812345678"
    masked = api.get(f"/v1/cases/{cid}/history", "feed").json()[0]["data"]["parties"][0]
    assert (
        masked["phone"] == "138****5678"
        and masked["name"] == "张*"
        and "1234" in masked["id_number"]
    )
    assert masked["id_number"].startswith("410928") and "19900101" not in masked["id_number"]
    assert api.get(f"/v1/cases/{cid}/state?version=2", "audit").json()["status"] == "assigned"
    as_of = (reported_at + timedelta(minutes=30)).isoformat()
    assert (
        api.get(f"/v1/cases/{cid}/state", "audit", params={"as_of": as_of}).json()["status"]
        == "reported"
    )
    assert api.get(f"/v1/cases/{cid}/state", "audit").status_code == 422
    assert api.get(f"/v1/cases/{cid}/state?version=1&as_of={as_of}", "audit").status_code == 422
    assert api.get(f"/v1/cases/{cid}/state?version=9", "audit").status_code == 404
    before = (reported_at - timedelta(days=1)).isoformat()
    assert api.get(f"/v1/cases/{cid}/state", "audit", params={"as_of": before}).status_code == 404
    naive = api.get(f"/v1/cases/{cid}/state", "audit", params={"as_of": "2026-09-28T10:00:00"})
    assert naive.status_code == 422
    assert api.get(f"/v1/cases/{cid}/history", "wang").status_code == 403


def test_reports_may_say_when_it_happened(api: Api):
    case = api.report({**DISPUTE, "occurred_at": "2026-09-28T08:00:00+08:00"})
    assert datetime.fromisoformat(case["occurred_at"]) == datetime(2026, 9, 28, 0, 0, tzinfo=UTC)
    later = api.post("/v1/cases", {**DISPUTE, "occurred_at": "2027-01-01T00:00:00+08:00"}, "wang")
    assert later.status_code == 422 and later.json()["field"] == "occurred_at"


def test_regions_as_the_caller_sees_them(api: Api):
    roots = api.get("/v1/regions", "zhou").json()
    assert [r["code"] for r in roots] == ["410928-001"]
    node = api.get("/v1/regions/410928-001", "zhou").json()
    assert {c["code"] for c in node["children"]} == {"410928-001-007", "410928-001-008"}
    assert {u["id"] for u in node["units"]} == {"ht-sfs", "ht-zzzx", "ht-xfb"}
    hidden = api.get("/v1/regions/410928-002", "zhou")
    missing = api.get("/v1/regions/410928-777", "zhou")
    assert hidden.status_code == missing.status_code == 404
    assert (
        api.get("/v1/regions/410928", "zhou").status_code == 404
    )  # ancestors are outside the subtree


def test_ops_endpoints_and_request_ids(api: Api):
    assert api.client.get("/healthz").json() == {"status": "ok"}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] is True
    response = api.client.get("/healthz", headers={"X-Request-Id": "trace-42"})
    assert response.headers["X-Request-Id"] == "trace-42"
    assert len(api.client.get("/healthz").headers["X-Request-Id"]) == 32
    assert api.get(f"/v1/cases/{uuid.uuid4()}", "wang").headers["X-Request-Id"]
    api.report()
    api.post("/v1/cases", {**DISPUTE, "severity": "x"}, "wang")
    text = api.client.get("/metrics").text
    assert 'fengqiao_http_requests_total{method="POST",route="/v1/cases",status="201"} 1.0' in text
    assert 'fengqiao_commands_total{command="report",outcome="ok"} 1.0' in text
    assert "fengqiao_http_request_duration_seconds_bucket" in text
    assert "fengqiao_clock_breaches_total" in text and "fengqiao_event_stream_head" in text


def test_openapi_describes_every_route_with_examples(api: Api):
    document = api.client.get("/openapi.json").json()
    paths = document["paths"]
    for action in (
        "assign",
        "accept",
        "send-back",
        "mediate",
        "order-rectification",
        "rectify",
        "reinspect",
        "reply",
        "return-visit",
        "escalate",
        "reclassify",
        "suspend",
        "resume",
        "extend",
        "whistle",
        "check-in",
        "comment",
        "supervise",
        "resolve",
        "close",
        "reopen",
    ):
        operation = paths[f"/v1/cases/{{case_id}}/{action}"]["post"]
        assert "412" in operation["responses"] and "404" in operation["responses"]
        assert operation["requestBody"]["content"]["application/json"]["examples"], action
    for path in (
        "/v1/cases",
        "/v1/cases/{case_id}",
        "/v1/cases/{case_id}/history",
        "/v1/cases/{case_id}/state",
        "/v1/sla/board",
        "/v1/regions",
        "/v1/regions/{code}",
        "/v1/regions/{code}/stats",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in paths, path
    assert set(
        paths["/v1/cases"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    ) == {"dispute", "hazard", "petition"}
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "Problem" in document["components"]["schemas"]
