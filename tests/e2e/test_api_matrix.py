"""Every role, in and out of its region, against every endpoint.

Out of region, nothing succeeds and nothing reveals existence: the answer is the
same (status and body, ids aside) as for a case or region that does not exist.
In region, a role without the right gets 403 and a role with it is never refused
for scope (a domain rule, such as who may reclassify upwards, may still refuse).
"""

from __future__ import annotations

import json
import uuid

import pytest

from api.http.openapi_docs import ACTION_EXAMPLES
from domain.permissions import PUBLIC_ACTIONS, READ, READ_BOARD, READ_HISTORY, REPORT, may
from tests.test_api_support import DISPUTE, GRID, PETITION, XUZHEN, XUZHEN_GRID, Api, ui_sign_in

PLAYERS = {  # one user of each role, all inside 海通乡 (so 徐镇镇 is out of region for them)
    "reporter": "wang",
    "handler": "zhao",
    "supervisor": "zhou",
    "auditor": "audit",
    "integrator": "feed",
    "admin": "root",
}
MISSING_REGION = "410928-999"

CASE_READS = [
    ("read", READ, "GET", "/v1/cases/{id}"),
    ("history", READ_HISTORY, "GET", "/v1/cases/{id}/history"),
    ("state", READ_HISTORY, "GET", "/v1/cases/{id}/state?version=1"),
]


def call(api: Api, who: str, method: str, path: str, body=None):
    if method == "GET":
        return api.get(path, who)
    return api.post(path, body, who)


def normalised(response, *secrets: str) -> tuple[int, str]:
    text = json.dumps(response.json(), sort_keys=True, ensure_ascii=False)
    for secret in secrets:
        text = text.replace(secret, "<hidden>")
    return response.status_code, text


def same_as_missing(out, missing, *ids: str) -> None:
    assert not 200 <= out.status_code < 300, out.text
    assert normalised(out, *ids) == normalised(missing, *ids), (out.text, missing.text)


def in_region_case(api: Api) -> str:
    """A case in 王庄村第三网格, assigned to the handler zhao."""
    case_id = api.report(DISPUTE, who="root")["id"]
    api.act(case_id, "assign", {"assignee": "zhao"}, "root")
    return case_id


@pytest.fixture
def out_case(api: Api) -> str:
    """A case in 徐镇镇, outside every player's region."""
    return api.report({**DISPUTE, "region": XUZHEN_GRID}, who="boss")["id"]


@pytest.mark.parametrize("role", sorted(PLAYERS))
def test_case_endpoints(api: Api, out_case: str, role: str):
    who = PLAYERS[role]
    missing = str(uuid.uuid4())
    shared_in = in_region_case(api)
    for _name, right, method, template in CASE_READS:
        out = call(api, who, method, template.format(id=out_case))
        same_as_missing(out, call(api, who, method, template.format(id=missing)), out_case, missing)
        inside = call(api, who, method, template.format(id=shared_in))
        assert inside.status_code == (200 if may(role, right) else 403), (
            role,
            template,
            inside.text,
        )
    for action in sorted(PUBLIC_ACTIONS):
        path = "/v1/cases/{id}/" + action
        body = ACTION_EXAMPLES[action] or None
        out = call(api, who, "POST", path.format(id=out_case), body)
        same_as_missing(
            out, call(api, who, "POST", path.format(id=missing), body), out_case, missing
        )
        inside = call(api, who, "POST", path.format(id=in_region_case(api)), body)
        if not may(role, action):
            assert inside.status_code == 403, (role, action, inside.text)
            assert inside.json()["role"] == role
        else:
            assert inside.status_code not in (401, 404), (role, action, inside.text)
            if inside.status_code == 403:  # a domain rule, not the role table
                assert "ceiling" in inside.json(), (role, action, inside.text)
    assert api.get(f"/v1/cases/{out_case}", "boss").status_code == 200  # it does exist
    assert api.get(f"/v1/cases/{out_case}", "boss").json()["version"] == 1  # and nothing changed it


@pytest.mark.parametrize("role", sorted(PLAYERS))
def test_region_endpoints(api: Api, role: str):
    who = PLAYERS[role]
    own = api.http.state.services.users.get(who).region
    endpoints = [
        (None, "GET", "/v1/regions/{code}", None),
        (READ_BOARD, "GET", "/v1/regions/{code}/stats", None),
        (READ_BOARD, "GET", "/v1/sla/board?region={code}", None),
        (READ, "GET", "/v1/cases?region={code}", None),
    ]
    for right, method, template, body in endpoints:
        out = call(api, who, method, template.format(code=XUZHEN), body)
        missing = call(api, who, method, template.format(code=MISSING_REGION), body)
        if right is None or may(role, right):
            same_as_missing(out, missing, XUZHEN, MISSING_REGION)
        else:
            assert out.status_code == missing.status_code == 403
        inside = call(api, who, method, template.format(code=own), body)
        expected = 200 if right is None or may(role, right) else 403
        assert inside.status_code == expected, (role, template, inside.text)
    out = api.post("/v1/cases", {**DISPUTE, "region": XUZHEN_GRID}, who)
    missing = api.post("/v1/cases", {**DISPUTE, "region": MISSING_REGION}, who)
    if may(role, REPORT):
        same_as_missing(out, missing, XUZHEN_GRID, MISSING_REGION)
    else:
        assert out.status_code == missing.status_code == 403
    inside = api.post("/v1/cases", {**DISPUTE, "region": GRID}, who)
    assert inside.status_code == (201 if may(role, REPORT) else 403), inside.text
    assert [r["code"] for r in api.get("/v1/regions", who).json()] == [own]


def test_a_handler_works_only_cases_of_their_unit(api: Api):
    case_id = api.report({**DISPUTE, "severity": "major"}, who="root")["id"]
    api.act(case_id, "assign", {"unit": "ht-sfs"}, "root")  # 海通乡司法所: sun's unit, not zhao's
    refused = api.post(f"/v1/cases/{case_id}/accept", None, "zhao")
    assert refused.status_code == 403 and refused.json()["type"] == "/problems/forbidden"
    assert api.act(case_id, "accept", None, "sun")["status"] == "accepted"
    assert api.act(case_id, "comment", {"text": "zhao may comment"}, "zhao")["version"] == 4


# -- the integrator, audit, Open311 and dashboard endpoints -----------------------------------------

AUDIT_ROLES = ("auditor", "admin")


@pytest.fixture
def private_webhooks(monkeypatch) -> None:
    """Set before the engine and the app are built: they read their settings then."""
    monkeypatch.setenv("FENGQIAO_WEBHOOK_ALLOW_PRIVATE", "1")


@pytest.mark.parametrize("role", sorted(PLAYERS))
def test_feed_subscriptions_audit_open311_and_dashboard(
    private_webhooks, api: Api, out_case: str, role: str
):
    """The same rule on every other endpoint: out of region is indistinguishable from missing,
    in region succeeds exactly when the role carries the right."""
    from domain.permissions import READ_FEED

    who = PLAYERS[role]
    own = api.http.state.services.users.get(who).region
    missing = str(uuid.uuid4())
    inside = in_region_case(api)
    out_petition = api.report({**PETITION, "region": XUZHEN_GRID}, who="boss")[
        "id"
    ]  # Open311 shows no disputes
    petition = api.report(PETITION, who="root")["id"]
    case_reads = [
        (READ_HISTORY, "/v1/cases/{id}/file", out_case, inside),
        (READ, "/open311/v2/requests/{id}.json", out_petition, petition),
    ]
    for right, template, out_id, in_id in case_reads:
        out = api.get(template.format(id=out_id), who)
        same_as_missing(out, api.get(template.format(id=missing), who), out_id, missing)
        allowed = api.get(template.format(id=in_id), who)
        assert (allowed.status_code == 200) == may(role, right), (
            role,
            template,
            allowed.status_code,
        )
    region_reads = ["/v1/events?region={code}", "/v1/events/stream?region={code}"]
    for template in region_reads:
        out = api.get(template.format(code=XUZHEN), who)
        missing_region = api.get(template.format(code=MISSING_REGION), who)
        if may(role, READ_FEED):
            same_as_missing(out, missing_region, XUZHEN, MISSING_REGION)
        else:
            assert out.status_code == missing_region.status_code == 403
    feed_page = api.get(f"/v1/events?region={own}", who)
    assert (feed_page.status_code == 200) == may(role, READ_FEED), feed_page.text
    if not may(role, READ_FEED):
        assert api.get(f"/v1/events/stream?region={own}", who).status_code == 403
    hook = {"url": "http://127.0.0.1:9/hook"}
    out = api.post("/v1/subscriptions", {**hook, "region": XUZHEN}, who)
    missing_region = api.post("/v1/subscriptions", {**hook, "region": MISSING_REGION}, who)
    created = api.post("/v1/subscriptions", {**hook, "region": own}, who)
    if may(role, READ_FEED):
        same_as_missing(out, missing_region, XUZHEN, MISSING_REGION)
        assert created.status_code == 201, created.text
        assert api.get("/v1/subscriptions", who).status_code == 200
    else:
        assert out.status_code == missing_region.status_code == created.status_code == 403
        assert api.get("/v1/subscriptions", who).status_code == 403
    for method, path, ok in [
        ("GET", "/v1/audit/verify", 200),
        ("GET", "/v1/audit/checkpoints/latest", (200, 404)),
        ("POST", "/v1/audit/checkpoints", 201),
    ]:
        response = call(api, who, method, path)
        allowed = role == "admin" if method == "POST" else role in AUDIT_ROLES
        if allowed:
            assert response.status_code in (ok if isinstance(ok, tuple) else (ok,)), (
                role,
                path,
                response.text,
            )
        else:
            assert response.status_code == 403, (role, path, response.text)
    ui_sign_in(api, who)
    try:
        board = api.client.get("/ui/board", follow_redirects=False)
        assert (board.status_code == 200) == may(role, READ_BOARD), (role, board.status_code)
        out = api.client.get(f"/ui/cases/{out_case}", follow_redirects=False)
        gone = api.client.get(f"/ui/cases/{missing}", follow_redirects=False)
        assert not 200 <= out.status_code < 300 and out.status_code == gone.status_code
        assert out.text.replace(out_case, "<id>") == gone.text.replace(missing, "<id>")
    finally:
        api.client.cookies.clear()
    assert api.get(f"/v1/cases/{out_case}", "boss").json()["version"] == 1  # nothing changed it
