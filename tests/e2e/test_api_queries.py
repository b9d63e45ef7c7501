"""Projection-backed routes: case lists, the SLA board, region statistics, read-your-writes."""

from __future__ import annotations

import threading
import time

from anyio.to_thread import current_default_thread_limiter
from fastapi.testclient import TestClient

from api.bench.county import USERS
from api.http.app import create_app
from api.http.services import Settings
from tests.test_api_support import DISPUTE, HAZARD, PETITION, XUZHEN_GRID, Api


def project(api: Api) -> None:
    api.http.state.services.runner.run_once()


def test_lists_filter_page_and_stay_in_region(api: Api):
    ids = [api.report(body)["id"] for body in (DISPUTE, HAZARD, PETITION, DISPUTE)]
    api.report({**DISPUTE, "region": XUZHEN_GRID}, who="boss")
    api.act(ids[0], "assign", {"assignee": "zhao"}, "li")
    project(api)
    page = api.get("/v1/cases", "zhou").json()
    assert {row["case_id"] for row in page["items"]} == set(ids) and page["next_cursor"] is None
    assert len(api.get("/v1/cases", "boss").json()["items"]) == 5
    assert [r["case_id"] for r in api.get("/v1/cases?kind=hazard", "zhou").json()["items"]] == [
        ids[1]
    ]
    assert [r["case_id"] for r in api.get("/v1/cases?assignee=zhao", "zhou").json()["items"]] == [
        ids[0]
    ]
    assert [
        r["case_id"]
        for r in api.get("/v1/cases?status=assigned&rank=village", "zhou").json()["items"]
    ] == [ids[0]]
    first = api.get("/v1/cases?limit=3", "zhou").json()
    rest = api.get("/v1/cases", "zhou", params={"limit": 3, "cursor": first["next_cursor"]}).json()
    assert len(first["items"]) == 3 and len(rest["items"]) == 1 and rest["next_cursor"] is None
    assert {r["case_id"] for r in first["items"] + rest["items"]} == set(ids)
    bad = api.get("/v1/cases?cursor=nonsense", "zhou")
    assert bad.status_code == 422 and bad.json()["field"] == "cursor"
    assert api.get("/v1/cases?rank=planet", "zhou").status_code == 422
    assert api.get("/v1/cases?limit=0", "zhou").status_code == 422


def test_board_and_stats(api: Api):
    case_id = api.report(DISPUTE)["id"]
    api.act(case_id, "assign", {"assignee": "zhao"}, "li")
    api.act(case_id, "accept", None, "zhao")
    api.act(case_id, "mediate", {"outcome": "agreed", "summary": "好", "agreement": "协议"}, "zhao")
    api.act(case_id, "resolve", {"resolution": "化解"}, "zhao")
    project(api)
    board = api.get("/v1/sla/board", "zhou").json()
    assert board["region"] == "410928-001" and board["open"] == 0
    stats = api.get("/v1/regions/410928-001/stats", "zhou").json()
    assert (stats["received"], stats["resolved"], stats["resolved_within_ceiling"]) == (1, 1, 1)
    assert stats["resolved_at_rank"]["village"] == 1 and stats["within_ceiling_rate"] == 1.0
    for key in ("reclassified_up", "response_rate", "resolution_rate", "satisfaction_rate"):
        assert key in stats
    dated = api.get("/v1/regions/410928-001/stats?from=2026-09-01&to=2026-09-30", "zhou").json()
    assert dated["received"] == 1 and dated["to"].startswith("2026-10-01T00:00:00+08:00")
    empty = api.get("/v1/regions/410928-001/stats?from=2026-01-01&to=2026-01-31", "zhou").json()
    assert empty["received"] == 0
    assert (
        api.get("/v1/regions/410928-001/stats?from=2026-10-01&to=2026-09-01", "zhou").status_code
        == 422
    )
    assert (
        api.get("/v1/regions/410928-001/stats?from=2026-10-01T00:00:00", "zhou").status_code == 422
    )


def test_min_position_waits_for_the_projections(api: Api):
    svc = api.http.state.services
    created = api.report()
    stop = threading.Event()
    worker = threading.Thread(target=svc.runner.run_forever, args=(stop,), kwargs={"poll": 0.05})
    worker.start()
    try:
        rows = api.get(f"/v1/cases?min_position={created['position']}", "zhou").json()["items"]
        assert [r["case_id"] for r in rows] == [created["id"]]
    finally:
        stop.set()
        worker.join()


def test_min_position_gives_up_after_the_wait(api: Api):
    api.http.state.services.settings = Settings(max_wait_seconds=0.1)
    created = api.report()
    response = api.get(f"/v1/cases?min_position={created['position']}", "zhou")
    assert response.status_code == 200 and response.json()["items"] == []


def test_requests_work_one_at_a_time_and_a_read_your_writes_wait_lends_its_turn(app):
    """FENGQIAO_REQUEST_THREADS=1: one request's blocking part at a time (api.http.threads),
    yet a ``?min_position=`` wait on projections that do not move holds up no other request."""
    http = create_app(app, settings=Settings(request_threads=1, max_wait_seconds=3.0))
    users = http.state.services.users
    tokens = {
        name: users.add(name, role, region, unit, by="test") for name, role, region, unit in USERS
    }
    with TestClient(http) as client:
        api = Api(http, client, app, tokens)

        def working_at_once() -> int:
            return client.portal.call(lambda: current_default_thread_limiter().total_tokens)

        assert working_at_once() == 1
        created = api.report()
        waited: dict[str, float] = {}

        def wait() -> None:
            began = time.monotonic()
            response = api.get(f"/v1/cases?min_position={created['position']}", "zhou")
            assert response.status_code == 200 and response.json()["items"] == []
            waited["seconds"] = time.monotonic() - began

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.5)  # the waiter is inside its wait (projections are not run here)
        began = time.monotonic()
        assert api.get(f"/v1/cases/{created['id']}", "zhou").status_code == 200
        meanwhile = time.monotonic() - began
        assert waiter.is_alive() and meanwhile < 1.5, meanwhile  # was ~2.5 s: behind the wait
        waiter.join()
        assert waited["seconds"] >= 2.9 and working_at_once() == 1  # its turn given back


def test_readyz_follows_the_projection_lag(api: Api):
    svc = api.http.state.services
    svc.settings = Settings(ready_max_lag=0)
    api.report()
    behind = api.client.get("/readyz")
    assert behind.status_code == 503 and behind.json()["projection_lag"] > 0
    project(api)
    ready = api.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["projection_lag"] == 0
    assert "fengqiao_projection_lag_events 0.0" in api.client.get("/metrics").text


def test_the_board_is_sent_as_the_read_models_give_it(api: Api) -> None:
    """The SLA board's body is the read models' board as it is (JSON types already, written
    by orjson without ``jsonable_encoder``), with an overdue case and its oldest."""
    from datetime import timedelta

    from fastapi.encoders import jsonable_encoder

    from tests.test_api_support import tick_timers

    case_id = api.report(DISPUTE)["id"]
    api.act(case_id, "assign", {"assignee": "zhao"}, "li")
    api.engine.clock.advance(timedelta(days=30))  # type: ignore[attr-defined]
    tick_timers(api.engine)
    project(api)
    answer = api.get("/v1/sla/board", "zhou")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    board = answer.json()
    assert board["overdue"] == 1 and board["oldest_overdue"]["case_id"] == case_id
    models = api.http.state.services.read_models
    assert board == jsonable_encoder(models.sla_board("410928-001"))
