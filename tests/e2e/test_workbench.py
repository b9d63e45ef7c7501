"""The grid worker's workbench (/ui/work) over HTTP, on both stores: a handler of a grid
signs in like a dashboard user, sees the cases assigned to them most urgent first, and the
outbox's endpoints run the API's command path (permissions, scope, Idempotency-Key,
If-Match, occurred_at), answering problem+json. The browser and offline test is
tests/e2e/test_workbench_browser.py."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest

from domain.ladder import Person
from tests.support import png
from tests.test_api_support import DISPUTE, GRID, ORIGIN, Api, ui_sign_in

WORKER = "gw"


@pytest.fixture
def worker(api: Api) -> Api:
    """A grid worker (a handler of 王庄村第三网格, no unit), signed in to /ui."""
    api.engine.add_person(Person(WORKER, "handler", GRID, None), "test")
    api.tokens[WORKER] = api.http.state.services.users.add(WORKER, "handler", GRID, None, by="t")
    ui_sign_in(api, WORKER)
    return api


def post(api: Api, path: str, body: object, key: str | None = None, **headers: str):
    named = {k.replace("_", "-"): v for k, v in headers.items()}
    extra = {**ORIGIN, **named, **({"Idempotency-Key": key} if key else {})}
    return api.client.post(path, json=body, headers=extra)


def test_the_queue_report_and_sign_for_through_the_workbench(worker: Api):
    api = worker
    first = api.report()["id"]
    second = api.report({**DISPUTE, "title": "宅基地边界纠纷"})["id"]
    for case_id in (first, second):
        api.act(case_id, "assign", {"assignee": WORKER}, who="li")
    api.engine.clock.advance(timedelta(hours=5))
    api.http.state.services.runner.run_once()  # the projection worker's step

    queue = api.client.get("/ui/work")
    assert queue.status_code == 200
    assert "connect-src 'self'" in queue.headers["content-security-policy"]
    assert queue.text.count("/ui/work/cases/") == 2 and "宅基地边界纠纷" in queue.text
    page = api.client.get(f"/ui/work/cases/{first}")
    assert 'data-command="accept"' in page.text and 'data-version="2"' in page.text
    assert api.client.get("/ui/work/report").status_code == 200
    sw = api.client.get("/ui/work/sw.js")
    assert sw.headers["service-worker-allowed"] == "/ui/work"
    assert api.client.get("/ui/work/manifest.webmanifest").json()["start_url"] == "/ui/work"

    made = (api.engine.clock.now() - timedelta(hours=3)).isoformat()  # made offline
    photo = api.client.post(
        "/ui/work/evidence", content=png(shade=3), headers={**ORIGIN, "Content-Type": "image/png"}
    )
    assert photo.status_code == 201, photo.text
    body = {**DISPUTE, "title": "村口积水", "occurred_at": made}
    body["attachments"] = [photo.json()["sha256"]]
    reported = post(api, "/ui/work/report", body, key="k-report")
    assert reported.status_code == 201, reported.text
    offered = reported.json()["possible_duplicates"]  # the API's answer: the same parties
    assert {d["case_id"] for d in offered} == {first, second}
    again = post(api, "/ui/work/report", body, key="k-report")  # the outbox sent it twice
    assert again.json()["id"] == reported.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    history = api.engine.history(UUID(reported.json()["id"]))
    assert len(history) == 1 and history[0].event.actor.id == WORKER
    assert history[0].event.occurred_at.isoformat() == made
    assert history[0].event.attachments == [photo.json()]

    signed = post(
        api, f"/ui/work/cases/{first}/accept", {"occurred_at": made}, "k-a", If_Match='"2"'
    )
    assert signed.status_code == 200, signed.text
    assert api.engine.history(UUID(first))[-1].event.occurred_at.isoformat() == made

    # a form the case moved past: the shown version is stale, or the case was reassigned
    stale = post(api, f"/ui/work/cases/{first}/accept", {}, "k-b", If_Match='"2"')
    assert stale.status_code == 412 and stale.json()["type"] == "/problems/version-conflict"
    api.act(second, "assign", {"assignee": "zhao"}, who="li")
    moved = post(api, f"/ui/work/cases/{second}/accept", {}, "k-c", If_Match='"2"')
    assert moved.status_code == 403 and moved.headers["content-type"] == "application/problem+json"


def test_workbench_refusals_are_problems(worker: Api):
    api = worker
    case_id = api.report()["id"]
    no_origin = api.client.post("/ui/work/report", json=DISPUTE)
    assert no_origin.status_code == 403
    bad = post(api, f"/ui/work/cases/{case_id}/mediate", {"outcome": "maybe"}, "k1")
    assert bad.status_code == 422 and bad.json()["type"] == "/problems/validation"
    unknown = post(api, f"/ui/work/cases/{case_id}/explode", {}, "k2")
    assert unknown.status_code == 404
    refused = api.client.post(
        "/ui/work/evidence", content=b"MZ\x90\x00", headers={**ORIGIN, "Content-Type": "image/png"}
    )
    assert refused.status_code == 415
    api.client.cookies.clear()
    assert post(api, "/ui/work/report", DISPUTE, "k3").status_code == 401
    signed_in = api.client.post(
        "/ui/login", data={"token": api.tokens[WORKER]}, headers=ORIGIN, follow_redirects=False
    )
    assert signed_in.headers["location"] == "/ui/work"  # not the boards a handler may not read
    assert "Max-Age=43200" in signed_in.headers["set-cookie"]  # kept for the session's 12 h
    api.client.cookies.clear()
    assert (
        api.client.get("/ui/work", follow_redirects=False)
        .headers["location"]
        .startswith("/ui/login?next=%2Fui%2Fwork")
    )


def test_the_dashboard_case_page_shows_evidence_thumbnails(worker: Api):
    api = worker
    photo = api.client.post(
        "/ui/work/evidence", content=png(shade=5), headers={**ORIGIN, "Content-Type": "image/png"}
    ).json()["sha256"]
    case_id = post(api, "/ui/work/report", {**DISPUTE, "attachments": [photo]}, "k-r").json()["id"]
    ui_sign_in(api, "zhou")  # the township supervisor, on the dashboard
    page = api.client.get(f"/ui/cases/{case_id}")
    assert page.status_code == 200
    assert f'src="/ui/work/cases/{case_id}/evidence/{photo}"' in page.text
    assert api.client.get(f"/ui/work/cases/{case_id}/evidence/{photo}").content == png(shade=5)
    ui_sign_in(api, "xu")  # another township's supervisor: the file is not theirs to see
    assert api.client.get(f"/ui/work/cases/{case_id}/evidence/{photo}").status_code == 404
