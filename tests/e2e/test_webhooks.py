"""Webhooks: a real receiver on 127.0.0.1 verifies every delivery with the stock
``standardwebhooks`` SDK and parses it with the CloudEvents SDK."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http_event
from standardwebhooks import Webhook

from engine.subscriptions import DEAD, DELIVERED, DISABLED, PENDING, SubscriptionStore
from tests.feed_support import make_api, parse_cloud_event, workload
from tests.support import act
from workflows.webhooks import RetryPolicy, WebhookSender

FAST = RetryPolicy(max_attempts=20, base_seconds=0.01, cap_seconds=0.05)


class Receiver:
    """An HTTP receiver that verifies signatures, fails on demand and deduplicates."""

    def __init__(self) -> None:
        self.secret: str | None = None
        self.fail_first = 0
        self.answer: tuple[int, dict[str, str]] | None = None  # a fixed answer, if set
        self.requests = 0
        self.verified: list[
            tuple[str, int]
        ] = []  # (webhook-id, position) of every verified request
        self.unique: dict[str, int] = {}  # webhook-id → position, first arrival only
        self.bad_signatures = 0
        self.failures: list[str] = []  # why each bad signature failed
        self.cut_off = (
            0  # requests whose sender died mid-body (a killed worker): not delivered, not bad
        )
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["content-length"]))
                if len(body) < int(self.headers["content-length"]):
                    with receiver.lock:
                        receiver.cut_off += 1
                    return  # the connection closed mid-body: no request was made
                status, headers = receiver.handle(dict(self.headers), body)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        with self.lock:
            self.requests += 1
            if self.answer is not None:
                return self.answer
            if self.requests <= self.fail_first:
                return 503, {}
            try:
                Webhook(self.secret).verify(body, headers)
            except Exception as error:  # noqa: BLE001 - any verification failure is a 400
                self.bad_signatures += 1
                self.failures.append(repr(error))
                return 400, {}
            event = from_http_event(HTTPMessage(headers=headers, body=body))  # the CloudEvents SDK
            parse_cloud_event(body.decode())
            webhook_id = {k.lower(): v for k, v in headers.items()}["webhook-id"]
            assert webhook_id == event.get_id()
            position = event.get_attributes()["position"]
            self.verified.append((webhook_id, position))
            self.unique.setdefault(webhook_id, position)
            return 204, {}

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def private_targets(monkeypatch):
    """Receivers on 127.0.0.1: set before the engine and the app read their settings."""
    monkeypatch.setenv("FENGQIAO_WEBHOOK_ALLOW_PRIVATE", "1")


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


@pytest.fixture
def api(app):
    client = make_api(app)
    yield client
    client.close()


def subscribe(api, receiver: Receiver, **body: Any) -> dict[str, Any]:
    response = api.post("/v1/subscriptions", json={"url": receiver.url, "from_position": 1, **body})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["secret"].startswith("whsec_")
    receiver.secret = created["secret"]
    return created


def sender(app, **options: Any) -> tuple[WebhookSender, SubscriptionStore]:
    store = SubscriptionStore.for_store(app.store)
    return WebhookSender(app, store, **{"retry": FAST, **options}), store


def run_until(done, *senders: WebhookSender, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "deliveries did not finish in time"
        for s in senders:
            s.run_once()
        time.sleep(0.01)


class Crash(Exception):
    pass


def test_every_event_arrives_verified_in_order_across_failures_and_a_restart(app, api, receiver):
    workload(app)
    created = subscribe(api, receiver)
    receiver.fail_first = 4
    expected = [e["id"] for e in api.get("/v1/events", params={"limit": 1000}).json()]

    # the first sender crashes right after a receiver accepted a message, before recording it
    first, first_store = sender(app, window=4, burst=2)
    record = first_store.record_attempt
    calls = {"delivered": 0}

    def crashing_record(delivery, **kwargs):
        if kwargs["status"] == DELIVERED:
            calls["delivered"] += 1
            if calls["delivered"] == 4:
                raise Crash("the sender died")
        return record(delivery, **kwargs)

    first_store.record_attempt = crashing_record
    with pytest.raises(Crash):
        run_until(lambda: False, first)
    first.close()
    first_store.close()
    assert 0 < len(receiver.unique) < len(expected)

    # more events while no sender runs; a new sender picks up from the stored state
    case_id = api.get("/v1/events").json()[0]["subject"]
    act(app, __import__("uuid").UUID(case_id), "comment", "zhou", text="while the sender was down")
    expected = [e["id"] for e in api.get("/v1/events", params={"limit": 1000}).json()]
    second, second_store = sender(app, window=4, burst=2)
    try:
        run_until(lambda: len(receiver.unique) == len(expected), second)
    finally:
        second.close()
        second_store.close()

    assert receiver.bad_signatures == 0
    assert list(receiver.unique) == expected  # exactly once after dedup, in position order
    positions = [position for _, position in receiver.verified]
    assert positions == sorted(positions)  # never out of order, even with the repeat
    assert len(receiver.verified) == len(expected) + 1  # the crash caused one repeat, deduplicated
    deliveries = api.get(
        f"/v1/subscriptions/{created['id']}/deliveries", params={"limit": 1000}
    ).json()
    assert {d["status"] for d in deliveries["deliveries"]} == {DELIVERED}
    assert deliveries["deliveries"][0]["attempts"] > 1  # the receiver failed the first attempts


def test_410_gone_disables_and_resume_enables(app, api, receiver):
    workload(app)
    created = subscribe(api, receiver)
    receiver.answer = (410, {})
    s, store = sender(app)
    try:
        s.run_once()
        assert api.get(f"/v1/subscriptions/{created['id']}").json()["state"] == DISABLED
        s.run_once()
        assert receiver.requests == 1  # a disabled subscription gets nothing more
        receiver.answer = None
        assert api.post(f"/v1/subscriptions/{created['id']}/resume").json()["state"] == "active"
        run_until(lambda: len(receiver.unique) == 9, s)
    finally:
        s.close()
        store.close()


def test_dead_letters_after_the_last_retry_and_the_next_event_goes(app, api, receiver):
    workload(app)
    created = subscribe(api, receiver)
    s, store = sender(app, retry=RetryPolicy(max_attempts=3, base_seconds=0.0, cap_seconds=0.0))
    try:
        receiver.answer = (500, {})
        run_until(lambda: bool(store.deliveries(created["id"], status=DEAD)), s)
        receiver.answer = None
        run_until(lambda: len(receiver.unique) == 8, s)
    finally:
        s.close()
        store.close()
    dead = api.get(
        f"/v1/subscriptions/{created['id']}/deliveries", params={"status": "dead"}
    ).json()
    assert [(d["position"], d["attempts"], d["last_status"]) for d in dead["deliveries"]] == [
        (dead["deliveries"][0]["position"], 3, 500)
    ]


def test_retry_after_is_honoured(app, api, receiver):
    workload(app)
    created = subscribe(api, receiver)
    receiver.answer = (429, {"Retry-After": "120"})
    s, store = sender(app)
    try:
        before = time.time()
        s.run_once()
        s.run_once()
        assert receiver.requests == 1  # the second round waits
        pending = store.deliveries(created["id"], status=PENDING)[0]
        assert before + 119 <= pending.next_attempt_at <= time.time() + 121
    finally:
        s.close()
        store.close()


def test_replay_delivers_again_with_the_same_webhook_ids(app, api, receiver):
    workload(app)
    created = subscribe(api, receiver)
    s, store = sender(app)
    try:
        run_until(lambda: len(receiver.unique) == 9, s)
        positions = list(receiver.unique.values())
        replay = api.post(
            f"/v1/subscriptions/{created['id']}/replay", json={"from_position": positions[6]}
        )
        assert replay.status_code == 202
        run_until(lambda: len(receiver.verified) == 12, s)
    finally:
        s.close()
        store.close()
    assert [p for _, p in receiver.verified[9:]] == positions[6:]
    assert len(receiver.unique) == 9


def test_subscriptions_crud_and_ownership(app, api, receiver):
    created = subscribe(
        api, receiver, types=["cn.fengqiao.dispute.escalated.v1"], region="410928-001"
    )
    path = f"/v1/subscriptions/{created['id']}"
    assert api.get(path).json()["types"] == ["cn.fengqiao.dispute.escalated.v1"]
    assert "secret" not in api.get(path).json()
    assert [s["id"] for s in api.get("/v1/subscriptions").json()["subscriptions"]] == [
        created["id"]
    ]
    assert api.get(path, "village").status_code == 404  # another integrator's
    assert api.post(f"{path}/pause").json()["state"] == "paused"
    assert api.post(f"{path}/resume").json()["state"] == "active"
    assert api.client.delete(path, headers=api.headers()).status_code == 204
    assert api.get(path).status_code == 404
    bad_type = api.post(
        "/v1/subscriptions", json={"url": receiver.url, "types": ["cn.fengqiao.x.y.v1"]}
    )
    assert bad_type.status_code == 422
    outside = api.post(
        "/v1/subscriptions", "village", json={"url": receiver.url, "region": "410928-002"}
    )
    assert outside.status_code == 404


def test_filtered_subscription_gets_only_its_events(app, api, receiver):
    subscribe(
        api, receiver, types=["cn.fengqiao.dispute.escalated.v1", "cn.fengqiao.hazard.reported.v3"]
    )
    workload(app)
    s, store = sender(app)
    try:
        run_until(lambda: len(receiver.unique) == 2, s)
    finally:
        s.close()
        store.close()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://10.1.2.3/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest",
        "ftp://example.org/x",
        "not a url",
    ],
)
def test_private_and_odd_targets_are_refused(app, api, url, monkeypatch):
    svc = api.client.app.state.services  # as served without FENGQIAO_WEBHOOK_ALLOW_PRIVATE
    monkeypatch.setattr(
        svc, "settings", svc.settings.model_copy(update={"webhook_allow_private": False})
    )
    response = api.post("/v1/subscriptions", json={"url": url})
    assert response.status_code == 422, response.text
    assert response.json()["type"] == "/problems/validation"


def test_the_receiver_in_the_docs_works(app, api, receiver, tmp_path):
    """The 20-line receiver of docs/integrators.md, run as written (on a free port)."""
    import re
    import socket
    import subprocess
    import sys
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[2] / "docs" / "integrators.md").read_text()
    code = re.search(r"```python\n(.*?)```", docs, re.S).group(1)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = tmp_path / "receiver.py"
    script.write_text(code.replace('("0.0.0.0", 8080)', f'("127.0.0.1", {port})'))
    receiver.url = f"http://127.0.0.1:{port}/"
    created = subscribe(api, receiver)
    workload(app)
    process = subprocess.Popen(
        [sys.executable, "-u", str(script)],
        stdout=subprocess.PIPE,
        text=True,
        env={"FENGQIAO_WEBHOOK_SECRET": created["secret"], "PATH": "/usr/bin:/bin"},
    )
    try:
        s, store = sender(app)
        try:
            run_until(lambda: len(store.deliveries(created["id"], status=DELIVERED)) == 9, s)
        finally:
            s.close()
            store.close()
        s2, store2 = sender(app)  # replay: the receiver drops the repeats by webhook-id
        try:
            api.post(f"/v1/subscriptions/{created['id']}/replay", json={"from_position": 1})
            s2.run_once()  # queues the nine again and sends them
            run_until(lambda: len(store2.deliveries(created["id"], status=DELIVERED)) == 9, s2)
        finally:
            s2.close()
            store2.close()
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    printed = [line.split() for line in output.splitlines() if line.strip()]
    assert len(printed) == 9
    assert [int(p[0]) for p in printed] == sorted(int(p[0]) for p in printed)
    assert {p[1] for p in printed} >= {
        "cn.fengqiao.dispute.reported.v3",
        "cn.fengqiao.hazard.reported.v3",
    }


def test_positions_beyond_any_database_integer_are_refused(app, api, receiver):
    huge = 2**70
    assert (
        api.post("/v1/subscriptions", json={"url": receiver.url, "from_position": huge}).status_code
        == 422
    )
    created = subscribe(api, receiver)
    path = f"/v1/subscriptions/{created['id']}"
    assert api.post(f"{path}/replay", json={"from_position": huge}).status_code == 422
    assert api.get(f"{path}/deliveries", params={"after": huge}).status_code == 422
