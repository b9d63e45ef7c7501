"""Issue 19, scope items: idempotency keys, audit scope, time bounds, trusted proxies,
webhook targets and the dashboard session — each attack of the issue, on both stores."""

from __future__ import annotations

import time

import pytest

from api.cli.cases import cli_command_id
from domain.commands import ReportCase
from domain.errors import IdempotencyKeyInUse
from engine.idempotency import scoped_command_id
from tests.support import envelope
from tests.test_api_support import DISPUTE, GRID, XUZHEN_GRID, Api

OPEN311 = "/open311/v2/requests.json"


def open311_report(api: Api, who: str, region: str, key: str):
    body = {
        "service_code": "hazard.fire",
        "description": "楼道堆放杂物",
        "attribute": {"region": region, "hazard_level": "general"},
    }
    return api.client.post(OPEN311, json=body, headers=api.headers(who, Idempotency_Key=key))


@pytest.fixture
def xr(api: Api) -> str:
    """A reporter of 徐镇镇, the other township."""
    api.tokens["xr"] = api.http.state.services.users.add("xr", "reporter", XUZHEN_GRID, by="test")
    return "xr"


# -- item 3: idempotency keys are scoped to the principal on every path ------------------


def test_open311_same_key_from_two_users_is_two_requests(api: Api, xr):
    first = open311_report(api, "wang", GRID, "shared-key")
    second = open311_report(api, xr, XUZHEN_GRID, "shared-key")
    assert first.status_code == second.status_code == 201, (first.text, second.text)
    mine, theirs = first.json()[0]["service_request_id"], second.json()[0]["service_request_id"]
    assert mine != theirs
    assert api.engine.case(__import__("uuid").UUID(theirs)).region == XUZHEN_GRID
    assert (
        open311_report(api, xr, XUZHEN_GRID, "shared-key").json()[0]["service_request_id"] == theirs
    )


def test_an_open311_key_in_another_users_form_squats_nothing(api: Api, xr):
    squat = open311_report(api, xr, XUZHEN_GRID, "wang:report-7")
    assert squat.status_code == 201
    later = api.post("/v1/cases", DISPUTE, "wang", headers={"Idempotency-Key": "report-7"})
    assert later.status_code == 201, later.text
    assert "Idempotent-Replayed" not in later.headers
    assert later.json()["id"] != squat.json()[0]["service_request_id"]
    assert later.json()["region"] == GRID


def test_v1_and_open311_share_one_derivation(api: Api):
    v1 = api.post("/v1/cases", DISPUTE, "wang", headers={"Idempotency-Key": "both-ways"})
    again = open311_report(api, "wang", GRID, "both-ways")
    assert again.json()[0]["service_request_id"] == v1.json()["id"]
    history = api.get(f"/v1/cases/{v1.json()['id']}/history", "root").json()
    assert history[0]["command_id"] == scoped_command_id("wang", "both-ways")


def test_no_key_text_reaches_another_users_command_id():
    assert scoped_command_id("wang", "x:y") != scoped_command_id("wang:x", "y")
    assert scoped_command_id("a", '","b') != scoped_command_id('a","', "b")
    assert scoped_command_id("timer", "c:response:0:breach").startswith("key:")
    assert cli_command_id("cli:admin", "r-1") == scoped_command_id("cli:admin", "r-1")
    assert cli_command_id("cli:admin", None).startswith("cli-")


def test_a_retry_across_the_upgrade_finds_its_legacy_case(api: Api):
    body = ReportCase.model_validate(DISPUTE)
    before = api.engine.report(body, envelope("wang", api.engine, command_id="wang:in-flight"))
    retry = api.post("/v1/cases", DISPUTE, "wang", headers={"Idempotency-Key": "in-flight"})
    assert retry.status_code == 201 and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["id"] == str(before.case_id)
    comment = api.engine.do(
        before.case_id,
        "comment",
        {"text": "一"},
        envelope("wang", api.engine, command_id="wang:c-old"),
    )
    again = api.post(
        f"/v1/cases/{before.case_id}/comment",
        {"text": "一"},
        "wang",
        headers={"Idempotency-Key": "c-old"},
    )
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["version"] == comment.version


def test_a_keyed_command_replays_no_case_for_its_legacy_lookup(api: Api, monkeypatch):
    """The legacy-key lookup reads the case the scope check just read (issue 20): a keyed
    command on a cached case replays nothing from the store's snapshot and events."""
    case_id = api.report(DISPUTE, who="wang")["id"]
    api.post(f"/v1/cases/{case_id}/comment", {"text": "一"}, "wang")  # the case is now cached
    replays = []
    replay = api.engine.case
    monkeypatch.setattr(api.engine, "case", lambda *a, **kw: replays.append(a) or replay(*a, **kw))
    again = api.post(
        f"/v1/cases/{case_id}/comment", {"text": "二"}, "wang", headers={"Idempotency-Key": "k-2"}
    )
    assert again.status_code == 200 and replays == []
    repeat = api.post(
        f"/v1/cases/{case_id}/comment", {"text": "二"}, "wang", headers={"Idempotency-Key": "k-2"}
    )
    assert repeat.headers["Idempotent-Replayed"] == "true"
    assert repeat.json()["version"] == again.json()["version"]


def test_a_legacy_id_squatted_by_someone_else_is_neither_returned_nor_revealed(api: Api):
    body = ReportCase.model_validate(DISPUTE)
    squatted = api.engine.report(body, envelope("chen", api.engine, command_id="wang:legacy-squat"))
    mine = api.post("/v1/cases", DISPUTE, "wang", headers={"Idempotency-Key": "legacy-squat"})
    assert mine.status_code == 201 and "Idempotent-Replayed" not in mine.headers
    assert mine.json()["id"] != str(squatted.case_id)


def test_an_engine_report_under_another_actors_command_id_is_refused(app):
    body = ReportCase.model_validate(DISPUTE)
    app.report(body, envelope("wang", app, command_id="same-id"))
    with pytest.raises(IdempotencyKeyInUse) as refused:
        app.report(body, envelope("chen", app, command_id="same-id"))
    assert "wang" not in refused.value.message and "case" not in refused.value.details


# -- item 6: every audit route is scoped like the cases -----------------------------------


@pytest.fixture
def signing_key(tmp_path, monkeypatch):
    monkeypatch.setenv("FENGQIAO_SIGNING_KEY", str(tmp_path / "signing-key.pem"))


def test_verify_of_a_case_outside_the_region_is_404_like_a_missing_one(api: Api, signing_key):
    other = api.report({**DISPUTE, "region": XUZHEN_GRID}, who="xu")["id"]
    missing = str(__import__("uuid").uuid4())
    out = api.get(f"/v1/audit/verify?case={other}", who="audit")
    gone = api.get(f"/v1/audit/verify?case={missing}", who="audit")
    assert out.status_code == gone.status_code == 404
    assert out.text.replace(other, "<id>") == gone.text.replace(missing, "<id>")
    assert api.get(f"/v1/audit/verify?case={other}", who="boss").status_code == 200


def test_a_log_finding_in_another_region_names_no_case(api: Api, signing_key):
    from tests.audit_support import RawStore

    other = api.report({**DISPUTE, "region": XUZHEN_GRID}, who="xu")["id"]
    api.tokens["county-audit"] = api.http.state.services.users.add(
        "county-audit", "auditor", "410928", by="test"
    )
    raw = RawStore(api.engine)
    try:
        position = api.engine.positions_of(__import__("uuid").UUID(other))[1]
        raw.sql(f"UPDATE {raw.events} SET state = ? WHERE {raw.pos} = ?", (b"{}", position))
    finally:
        raw.close()
    township = api.get("/v1/audit/verify", who="audit")
    assert township.status_code == 409
    finding = township.json()["finding"]
    assert (finding["problem"], finding["position"], finding["details"]) == (
        "altered",
        position,
        {},
    )
    assert other not in township.text and other.replace("-", "") not in township.text
    county = api.get("/v1/audit/verify", who="county-audit").json()["finding"]
    assert county["details"]["case"].replace("-", "") == other.replace("-", "")


# -- item 7: bounded time travel and periods; the work stops at the deadline --------------


@pytest.mark.parametrize(
    "as_of", ["9999-12-31T00:00:00Z", "1999-12-31T23:59:59Z", "2026-09-28T02:00:00Z"]
)
def test_as_of_outside_2000_to_now_is_a_422_naming_it(api: Api, as_of):
    cid = api.report(DISPUTE, who="wang")["id"]
    started = time.monotonic()
    refused = api.get(f"/v1/cases/{cid}/state", "audit", params={"as_of": as_of})
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["field"] == "as_of"
    assert time.monotonic() - started < 5
    fine = api.get(f"/v1/cases/{cid}/state", "audit", params={"as_of": "2026-09-28T01:04:00Z"})
    assert fine.status_code == 200, fine.text


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"to": "9999-12-31"}, "to"),
        ({"from": "0001-01-01"}, "from"),
        ({"from": "9999-12-31T23:59:59-14:00"}, "from"),
        ({"from": "2001-01-01", "to": "2026-09-30"}, "to"),
        ({"from": "2026-09-30", "to": "2026-09-01"}, "from"),
    ],
)
def test_stats_periods_out_of_bounds_are_a_422_naming_the_parameter(api: Api, query, field):
    refused = api.get("/v1/regions/410928-001/stats", "zhou", params=query)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["field"] == field
    assert (
        api.get(
            "/v1/regions/410928-001/stats",
            "zhou",
            params={"from": "2020-01-01", "to": "2026-09-30"},
        ).status_code
        == 200
    )


def test_the_work_behind_a_late_read_stops_at_its_deadline(app):
    from fastapi.testclient import TestClient

    from api.http.app import create_app
    from api.http.services import Settings
    from tests.support import act, report

    case_id = report(app, "dispute").case_id
    for n in range(7):
        act(app, case_id, "comment", "wang", text=f"走访 {n}")
    http = create_app(app, settings=Settings(request_deadline_seconds=0.5))
    token = http.state.services.users.add("audit", "auditor", "410928", by="test")
    read, seen = app.events.get, []

    def slow_get(*args, **kwargs):  # slow for the time travel's own read (the one without bounds)
        for event in read(*args, **kwargs):
            if not kwargs:
                time.sleep(0.25)
                seen.append(event)
            yield event

    app.events.get = slow_get
    try:
        with TestClient(http, raise_server_exceptions=False) as client:
            late = client.get(
                f"/v1/cases/{case_id}/state",
                params={"as_of": "2026-09-28T01:04:00Z"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert late.status_code == 503 and late.json()["code"] == "deadline"
            time.sleep(2.5)  # the 8 events would take 2 s to read
            assert len(seen) <= 4, len(seen)
    finally:
        app.events.get = read


# -- item 9: X-Forwarded-For only from FENGQIAO_TRUSTED_PROXIES ---------------------------


def test_trusted_proxies_come_from_the_environment():
    from api.http.services import Settings, trusted_networks

    assert Settings.from_environment({}).trusted_proxies == ""
    read = Settings.from_environment({"FENGQIAO_TRUSTED_PROXIES": " 10.0.0.0/8, 192.168.1.7 "})
    assert [str(n) for n in trusted_networks(read.trusted_proxies)] == [
        "10.0.0.0/8",
        "192.168.1.7/32",
    ]
    with pytest.raises(ValueError, match="^FENGQIAO_TRUSTED_PROXIES"):
        Settings.from_environment({"FENGQIAO_TRUSTED_PROXIES": "10.0.0.0/8,proxy.local"})


def test_client_address_believes_forwarded_for_only_from_a_trusted_proxy():
    from starlette.requests import Request

    from api.http.services import client_address, trusted_networks

    def request(peer: str, *forwarded: str) -> Request:
        return Request(
            {
                "type": "http",
                "client": (peer, 1234),
                "headers": [(b"x-forwarded-for", f.encode()) for f in forwarded],
            }
        )

    none, proxies = trusted_networks(""), trusted_networks("127.0.0.1,10.0.0.0/8")
    assert client_address(request("127.0.0.1", "203.0.113.9"), none) == "127.0.0.1"
    assert client_address(request("198.51.100.1", "203.0.113.9"), proxies) == "198.51.100.1"
    assert client_address(request("127.0.0.1", "203.0.113.9"), proxies) == "203.0.113.9"
    # a client cannot push its own hop to the left of the one the proxy appended
    assert (
        client_address(request("127.0.0.1", "1.1.1.1, 203.0.113.9, 10.1.2.3"), proxies)
        == "203.0.113.9"
    )


@pytest.mark.parametrize("trusted", ["", "127.0.0.1"])
def test_the_bad_token_limit_is_not_dodged_with_forwarded_for(app, trusted):
    import httpx
    import uvicorn

    from api.cli.serve import server_options
    from api.http.app import create_app
    from api.http.services import Settings

    settings = Settings(auth_failures_allowed=3, trusted_proxies=trusted)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(app, settings=settings),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
            **server_options(settings),
        )
    )
    thread = __import__("threading").Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.02)
        url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/v1/regions"
        statuses = [
            httpx.get(
                url,
                headers={"Authorization": "Bearer fq_wrong", "X-Forwarded-For": f"203.0.113.{n}"},
            ).status_code
            for n in range(6)
        ]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    if trusted:  # each forwarded client is counted on its own
        assert statuses == [401] * 6
    else:
        assert statuses == [401] * 3 + [429] * 3


# -- item 11: SSRF leftovers: IPv6 forms of private addresses, DNS rebinding --------------


@pytest.mark.parametrize(
    "url",
    [
        "http://[64:ff9b::7f00:1]/hook",
        "http://[2002:7f00:1::]/hook",
        "http://[fec0::1]/hook",
        "http://[::127.0.0.1]/hook",
        "http://[::ffff:10.0.0.1]/hook",
        "http://[64:ff9b:1::1]/hook",
        "http://[64:ff9b::a00:1]/hook",
        "http://[2002:c0a8:101::1]/hook",
    ],
)
def test_ipv6_forms_of_private_addresses_are_refused(api: Api, url, monkeypatch):
    monkeypatch.delenv("FENGQIAO_WEBHOOK_ALLOW_PRIVATE", raising=False)
    response = api.post("/v1/subscriptions", {"url": url}, "feed")
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("the webhook target is not allowed")
    assert "address" not in response.json()


def test_public_ipv4_behind_nat64_or_6to4_stays_allowed():
    from ipaddress import ip_address

    from engine.subscriptions import public_address

    assert public_address(ip_address("64:ff9b::808:808")) and public_address(
        ip_address("2002:808:808::1")
    )
    assert public_address(ip_address("2606:4700:4700::1111")) and public_address(
        ip_address("8.8.8.8")
    )


def test_a_refusal_never_names_the_resolved_address(api: Api, monkeypatch):
    monkeypatch.delenv("FENGQIAO_WEBHOOK_ALLOW_PRIVATE", raising=False)
    response = api.post("/v1/subscriptions", {"url": "http://localhost:9/hook"}, "feed")
    assert response.status_code == 422
    assert "127.0.0.1" not in response.text and "::1" not in response.text


def fake_dns(monkeypatch, answers: list[str]):
    """``hook.test`` resolves to each of ``answers`` in turn (the last one from then on)."""
    import socket

    import engine.subscriptions as subscriptions

    real, asked = socket.getaddrinfo, []

    def getaddrinfo(host, port, *args, **kwargs):
        if host != "hook.test":
            return real(host, port, *args, **kwargs)
        address = answers[min(len(asked), len(answers) - 1)]
        asked.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(subscriptions.socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.fixture
def private_targets(monkeypatch):
    """Receivers on 127.0.0.1: set before the engine and the app read their settings."""
    monkeypatch.setenv("FENGQIAO_WEBHOOK_ALLOW_PRIVATE", "1")


@pytest.mark.usefixtures("private_targets")  # before ``app``: the sender reads app.settings
def test_the_sender_connects_to_the_address_it_checked(app, monkeypatch):
    from tests.e2e.test_webhooks import Receiver, run_until, sender
    from tests.feed_support import make_api, workload

    asked = fake_dns(monkeypatch, ["127.0.0.1"])
    hosts: list[str] = []
    with Receiver() as receiver:
        handle = receiver.handle
        receiver.handle = lambda headers, body: (
            hosts.append(headers["Host"]),
            handle(headers, body),
        )[1]
        port = receiver.server.server_address[1]
        api = make_api(app)
        try:
            created = api.post(
                "/v1/subscriptions",
                json={"url": f"http://hook.test:{port}/hook", "from_position": 1},
            )
            assert created.status_code == 201, created.text
            receiver.secret = created.json()["secret"]
            workload(app)
            s, store = sender(app)
            try:
                run_until(lambda: len(receiver.unique) >= 3, s)
            finally:
                s.close()
                store.close()
        finally:
            api.close()
    # hook.test exists in no DNS: every connection went to the address the attempt checked
    assert receiver.bad_signatures == 0 and set(hosts) == {f"hook.test:{port}"}
    assert len(asked) >= 2  # the subscription's check, then each attempt's own


def test_a_target_rebound_to_loopback_after_its_check_is_never_contacted(app, monkeypatch):
    from engine.subscriptions import PENDING
    from engine.users import UserStore
    from tests.e2e.test_webhooks import Receiver, sender
    from tests.feed_support import workload

    monkeypatch.delenv("FENGQIAO_WEBHOOK_ALLOW_PRIVATE", raising=False)
    with Receiver() as receiver:
        port = receiver.server.server_address[1]
        fake_dns(
            monkeypatch, ["93.184.216.34", "127.0.0.1"]
        )  # public when subscribed; loopback when delivered
        s, store = sender(app)
        UserStore(app).add(
            "feed-county", "integrator", "410928"
        )  # a subscription delivers while its owner may
        try:
            created = store.create(
                owner="feed-county",
                url=f"http://hook.test:{port}/hook",
                types=[],
                region="410928",
                start=0,
            )
            workload(app)
            s.run_once()
            [delivery, *_] = store.deliveries(created.id)
        finally:
            s.close()
            store.close()
    assert receiver.requests == 0
    assert delivery.status == PENDING and "not allowed" in delivery.last_error
    assert "127.0.0.1" not in delivery.last_error


# -- item 12: the dashboard session, cross-site forms, protective headers, /docs, /readyz, /metrics


def board(api: Api, session: str | None = None):
    if session is not None:
        api.client.cookies.set("fengqiao_ui", session, path="/ui")
    return api.client.get("/ui/board", follow_redirects=False)


def test_the_cookie_is_a_session_whose_hash_alone_is_stored(api: Api):
    from engine.sessions import TABLE, session_hash
    from engine.sql import StoreDb
    from tests.test_api_support import ui_sign_in

    session = ui_sign_in(api, "zhou")
    assert session.startswith("fqs_") and api.tokens["zhou"] not in session
    assert board(api).status_code == 200
    db = StoreDb(api.engine.recorder)
    rows = [dict(r) for r in db.query(f"SELECT * FROM {db.table(TABLE)}")]
    assert [r["id_hash"] for r in rows] == [session_hash(session)]
    assert session not in repr(rows) and api.tokens["zhou"] not in repr(rows)


def test_sign_out_ends_the_session_at_once(api: Api):
    from tests.test_api_support import ORIGIN, ui_sign_in

    session = ui_sign_in(api, "zhou")
    assert api.client.post("/ui/logout", headers=ORIGIN, follow_redirects=False).status_code == 303
    replayed = board(api, session)  # the old cookie, sent again (a stolen copy)
    assert replayed.status_code == 303 and replayed.headers["location"].startswith("/ui/login")
    assert api.get("/v1/regions", "zhou").status_code == 200  # the API token itself is not revoked


def test_revoking_or_reissuing_the_token_ends_its_sessions(api: Api):
    from tests.test_api_support import ui_sign_in

    users = api.http.state.services.users
    session = ui_sign_in(api, "zhou")
    users.revoke("zhou")
    assert board(api, session).status_code == 303
    api.tokens["zhou"] = users.add("zhou", "supervisor", "410928-001", "ht-zzzx", by="test")
    assert board(api, session).status_code == 303  # re-issued: the old token's session stays ended
    assert board(api, ui_sign_in(api, "zhou")).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Referer": "https://evil.example/x"},
        {},
        {"Origin": "null"},
        {"Origin": "http://testserver.evil.example"},
        {"Origin": "http://testserver:8080"},
    ],
)
def test_cross_site_posts_to_login_and_logout_are_refused(api: Api, headers):
    from tests.test_api_support import ui_sign_in

    forged = api.client.post(
        "/ui/login", data={"token": api.tokens["zhou"]}, headers=headers, follow_redirects=False
    )
    assert forged.status_code == 403 and "set-cookie" not in forged.headers
    session = ui_sign_in(api, "zhou")
    out = api.client.post("/ui/logout", headers=headers, follow_redirects=False)
    assert out.status_code == 403
    assert (
        board(api, session).status_code == 200
    )  # still signed in: the forged sign-out did nothing


def test_a_sign_in_through_a_proxy_ending_tls_is_same_origin(api: Api):
    for headers in (
        {"Origin": "https://testserver"},
        {"Referer": "http://testserver/ui/login?next=/ui/board"},
    ):
        signed = api.client.post(
            "/ui/login", data={"token": api.tokens["zhou"]}, headers=headers, follow_redirects=False
        )
        assert signed.status_code == 303, (headers, signed.text)


def test_answers_carrying_personal_data_are_not_stored_or_sniffed(api: Api):
    from tests.test_api_support import ui_sign_in

    cid = api.report(DISPUTE, who="wang")["id"]
    answers = [
        api.get(f"/v1/cases/{cid}", "root"),
        api.get(f"/v1/cases/{cid}/history", "root"),
        api.get("/v1/cases", "root"),
        api.get(f"/open311/v2/requests/{cid}.json", "root"),
        api.get(f"/v1/cases/{cid}/file", "root"),
        api.get("/v1/cases/nonsense", "root"),
    ]
    ui_sign_in(api, "root")
    answers.append(api.client.get(f"/ui/cases/{cid}"))
    for answer in answers:
        assert answer.headers["cache-control"] == "no-store", (answer.url, answer.headers)
        assert answer.headers["x-content-type-options"] == "nosniff", answer.url


def test_docs_are_served_from_local_assets(api: Api):
    import re

    docs = api.client.get("/docs")
    assert docs.status_code == 200
    linked = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)', docs.text)
    assert linked and all(link.startswith("/docs/assets/") for link in linked), linked
    assert "cdn" not in docs.text.lower() and "https://" not in docs.text
    for link in linked:
        asset = api.client.get(link)
        assert asset.status_code == 200 and len(asset.content) > 100, link
    assert api.client.get("/docs/assets/index.html").status_code == 404
    assert api.client.get("/redoc").status_code == 404


def test_readyz_writes_nothing(api: Api):
    from engine.sql import StoreDb

    db = StoreDb(api.engine.recorder)
    before = api.engine.head_position()
    for _ in range(3):
        assert api.client.get("/readyz").status_code == 200
    assert api.engine.head_position() == before
    tables = (
        {
            r["name"]
            for r in db.query(
                "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = ?",
                (db.schema,),
            )
        }
        if db.is_postgres
        else {r["name"] for r in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    )
    assert "fengqiao_ready_probe" not in tables and "fengqiao_api_users" in tables


def test_metrics_can_require_a_token(app):
    from fastapi.testclient import TestClient

    from api.http.app import create_app
    from api.http.services import Settings

    assert Settings.from_environment({"FENGQIAO_METRICS_TOKEN": "s3cret"}).metrics_token == "s3cret"
    with TestClient(create_app(app, settings=Settings(metrics_token="s3cret"))) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert (
            client.get("/metrics", headers={"Authorization": "Basic czNjcmV0"}).status_code == 401
        )
        shown = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert shown.status_code == 200 and "fengqiao" in shown.text
    with TestClient(create_app(app)) as client:
        assert client.get("/metrics").status_code == 200  # no token set: open, as before
