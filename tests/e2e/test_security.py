"""No one let in: tokens stored only as hashes and compared in constant time, expiry,
revocation, brute force met with 429, and integrators' outputs (every feed page, SSE,
webhook bodies, Open311, the case file) carry no unmasked phone or ID number.

The role × region × endpoint matrix is tests/test_api_matrix.py; SSRF refusals of
webhook targets are tests/test_webhooks.py::test_private_and_odd_targets_are_refused.
"""

from __future__ import annotations

import hmac
import json
import re
import time
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient

from api.http.app import create_app
from api.http.services import FailedLogins, Settings
from engine.users import UserStore
from tests.e2e.test_webhooks import Receiver, sender, subscribe
from tests.feed_support import LiveServer, make_api
from tests.support import act, report
from tests.test_reliability_support import cli

PHONE = "13812345678"
ID_NUMBER = "410928199001011234"
PARTIES = [
    {"name": "张三", "role": "applicant", "phone": PHONE, "id_number": ID_NUMBER},
    {
        "name": "李四",
        "role": "respondent",
        "phone": "15900001111",
        "id_number": "41092819851231002X",
    },
]
UNMASKED = [
    re.compile(r"(?<![0-9A-Za-z])1[3-9]\d{9}(?![0-9A-Za-z])"),  # a mainland mobile number
    re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])"),
]  # a resident ID number


def unmasked(text: str) -> list[str]:
    return [m.group(0) for pattern in UNMASKED for m in pattern.finditer(text)]


# -- tokens ---------------------------------------------------------------------------------------


def test_only_token_hashes_are_stored_and_compared_in_constant_time(app, monkeypatch):
    users = UserStore(app)
    tokens = [
        users.add(name, role, region, by="test")
        for name, role, region in [
            ("t1", "admin", "410928"),
            ("t2", "integrator", "410928-001"),
            ("t3", "auditor", "410928"),
        ]
    ]
    rows = users.db.query(f"SELECT * FROM {users.table}")
    stored = json.dumps([[str(c) for c in row] for row in rows])
    for token in tokens:
        assert token not in stored and token[3:] not in stored  # not even without its prefix
    if not app.store.is_postgres:  # not in the file at all (pages, WAL)
        for path in app.store.sqlite_path.parent.glob(app.store.sqlite_path.name + "*"):
            assert tokens[0].encode() not in path.read_bytes()
    compared = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: compared.append((a, b)) or real(a, b))
    assert users.authenticate(tokens[0]).name == "t1"
    assert users.authenticate(tokens[0][:-1] + "x") is None
    assert compared, "the token's hash was not compared with hmac.compare_digest"
    assert users.authenticate("x" * 10_000) is None  # long junk is refused before hashing


def test_tokens_expire(app, clock):
    users = UserStore(app)
    token = users.add("temp", "auditor", "410928", by="test", expires_in=timedelta(hours=1))
    assert users.get("temp").expires_at is not None
    clock.advance(timedelta(minutes=59))
    assert users.authenticate(token).name == "temp"
    clock.advance(timedelta(minutes=1))
    assert users.authenticate(token) is None
    with pytest.raises(Exception) as refused:
        users.add("temp", "auditor", "410928", by="test", expires_in=timedelta(0))
    assert refused.value.details["field"] == "expires_in"
    lasting = users.add(
        "temp", "auditor", "410928", by="test"
    )  # re-issued without an expiry: none is kept
    assert users.get("temp").expires_at is None and users.authenticate(lasting).name == "temp"
    assert users.authenticate(token) is None and [u.name for u in users.list()].count("temp") == 1


def test_users_add_expires_in_and_revoke_from_the_shell(store):
    from engine.service import Fengqiao
    from tests.support import seed

    seed(Fengqiao(store)).close()
    token = cli(
        store.url,
        "users",
        "add",
        "--name",
        "night",
        "--role",
        "auditor",
        "--region",
        "410928",
        "--expires-in",
        "12h",
    ).strip()
    assert token.startswith("fq_")
    listed = json.loads(cli(store.url, "users", "list"))
    night = next(u for u in listed if u["name"] == "night")
    assert night["expires_at"] and night["revoked_at"] is None and token not in json.dumps(listed)
    assert (
        "expires_in"
        in cli(
            store.url,
            "users",
            "add",
            "--name",
            "x",
            "--role",
            "auditor",
            "--region",
            "410928",
            "--expires-in",
            "3wd",
            check=False,
        )
        + "expires_in"
    )
    revoked = json.loads(cli(store.url, "users", "revoke", "night"))
    assert revoked["revoked_at"]


def test_http_settings_come_from_the_environment():
    assert Settings.from_environment({}) == Settings()
    read = Settings.from_environment(
        {
            "FENGQIAO_AUTH_FAILURES_ALLOWED": "50",
            "FENGQIAO_AUTH_FAILURE_WINDOW": "300",
            "FENGQIAO_REQUEST_DEADLINE_SECONDS": "0",
            "FENGQIAO_UNRELATED": "x",
        }
    )
    assert (
        read.auth_failures_allowed,
        read.auth_failure_window,
        read.request_deadline_seconds,
    ) == (50, 300.0, 0.0)
    assert read.max_body_bytes == Settings().max_body_bytes
    for variable, value, says in [
        ("FENGQIAO_AUTH_FAILURES_ALLOWED", "2.5", "is not int"),
        ("FENGQIAO_MAX_BODY_BYTES", "1MiB", "is not int"),
        ("FENGQIAO_AUTH_FAILURE_WINDOW", "-1", "must be a finite number >= 0"),
        ("FENGQIAO_MAX_WAIT_SECONDS", "nan", "must be a finite number >= 0"),
        ("FENGQIAO_REQUEST_DEADLINE_SECONDS", "inf", "must be a finite number >= 0"),
    ]:
        with pytest.raises(ValueError, match=f"^{variable}='{value}' {says}"):
            Settings.from_environment({variable: value})


def test_a_brute_force_of_bad_tokens_is_rate_limited(app):
    http = create_app(app)
    svc = http.state.services
    now = [
        1000.0
    ]  # the window is counted on this clock, not the wall's: a slow host cannot end it early
    svc.failed_logins = FailedLogins(allowed=5, window=60.0, clock=lambda: now[0])
    good = svc.users.add("root", "admin", "410928", by="test")
    try:
        with TestClient(http, raise_server_exceptions=False) as client:
            assert (
                client.get("/v1/regions", headers={"Authorization": f"Bearer {good}"}).status_code
                == 200
            )
            statuses = [
                client.get(
                    "/v1/regions", headers={"Authorization": f"Bearer fq_guess{i}"}
                ).status_code
                for i in range(12)
            ]
            assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}, statuses
            now[0] += 20
            limited = client.get("/v1/regions", headers={"Authorization": "Bearer fq_guess"})
            assert limited.headers["content-type"] == "application/problem+json"
            assert limited.json()["type"] == "/problems/too-many-failures"
            assert (
                limited.headers["Retry-After"] == "40"
            )  # the first failure leaves the window in 40 s
            assert (
                client.get("/v1/regions", headers={"Authorization": f"Bearer {good}"}).status_code
                == 429
            )
            open311 = client.get("/open311/v2/requests.json", params={"api_key": "fq_guess"})
            assert open311.status_code == 429  # the same counter guards Open311's api_key
            now[0] += 41
            assert (
                client.get("/v1/regions", headers={"Authorization": f"Bearer {good}"}).status_code
                == 200
            )
    finally:
        if svc.runner is not None:
            svc.runner.close()


# -- integrator outputs ---------------------------------------------------------------------------


def cases_with_parties(app) -> list:
    results = []
    for kind in ("dispute", "petition", "hazard"):
        extra = (
            {"description": f"当事人电话 {PHONE}，身份证 {ID_NUMBER}"} if kind == "hazard" else {}
        )
        result = report(app, kind, "major", parties=PARTIES, **extra)
        act(app, result.case_id, "assign", "li", assignee="zhao")
        act(app, result.case_id, "comment", "zhao", text="已联系当事人")
        results.append(result)
    return results


def test_every_feed_page_open311_and_case_file_for_integrators_has_no_unmasked_number(app):
    cases = cases_with_parties(app)
    api = make_api(app)
    try:
        headers = {"Authorization": f"Bearer {api.tokens['integrator']}"}
        admin = {"Authorization": f"Bearer {api.tokens['admin']}"}
        seen, after, pages = 0, 0, 0
        while True:
            page = api.client.get(
                "/v1/events", params={"after": after, "limit": 2}, headers=headers
            )
            assert page.status_code == 200, page.text
            assert unmasked(page.text) == [], page.text
            events = page.json()
            pages += 1
            if not events:
                break
            seen += len(events)
            after = int(page.headers["Fengqiao-Next-After"])
        assert seen >= 9 and pages >= 5
        full = api.client.get("/v1/events", params={"limit": 100}, headers=admin).text
        assert (
            PHONE in full or ID_NUMBER in full
        )  # the admin sees them: the scan would catch a leak
        for case in cases:
            for path in (f"/v1/cases/{case.case_id}/file",):
                response = api.client.get(path, headers=headers)
                if response.status_code == 200:
                    assert unmasked(response.text) == [], path
        for path in ("/open311/v2/requests.json", "/open311/v2/requests.json?status=open"):
            response = api.client.get(path, headers=headers)
            assert response.status_code == 200, response.text
            assert unmasked(response.text) == []
    finally:
        api.close()


@pytest.fixture
def fast_heartbeat_and_private_webhooks(monkeypatch):
    """Set before the engine and the app are built: they read their settings then."""
    monkeypatch.setenv("FENGQIAO_SSE_HEARTBEAT", "0.2")
    monkeypatch.setenv("FENGQIAO_WEBHOOK_ALLOW_PRIVATE", "1")


def test_sse_and_webhook_bodies_have_no_unmasked_number(fast_heartbeat_and_private_webhooks, app):
    cases_with_parties(app)
    head = app.head_position()
    api = make_api(app)
    try:
        with LiveServer(api.client.app) as url:
            headers = {"Authorization": f"Bearer {api.tokens['integrator']}"}
            text, deadline = [], time.monotonic() + 20
            with httpx.stream(
                "GET", f"{url}/v1/events/stream", headers=headers, timeout=10
            ) as response:
                assert response.status_code == 200
                for line in response.iter_lines():
                    text.append(line)
                    if (
                        line.startswith("id: ")
                        and int(line[4:]) >= head - 3
                        or time.monotonic() > deadline
                    ):
                        break
            streamed = "\n".join(text)
            assert "data: " in streamed and unmasked(streamed) == []
        with Receiver() as receiver:
            bodies: list[bytes] = []
            original = receiver.handle
            receiver.handle = lambda h, b: (bodies.append(b), original(h, b))[1]
            subscribe(api, receiver)
            webhooks, store = sender(app)
            try:
                deadline = time.monotonic() + 20
                while len(receiver.unique) < 9 and time.monotonic() < deadline:
                    webhooks.run_once()
                    time.sleep(0.01)
            finally:
                webhooks.close()
                store.close()
            assert len(receiver.unique) >= 9
            assert all(unmasked(b.decode()) == [] for b in bodies)
    finally:
        api.close()
