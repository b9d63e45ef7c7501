"""The pull feed: CloudEvents pages from any position, filters, masking, schemas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import event_schemas
from engine.feed import Feed, FeedFilter
from tests.feed_support import PARTY, case_positions, make_api, parse_cloud_event, workload
from tests.support import act, report


@pytest.fixture
def api(app):
    client = make_api(app)
    yield client
    client.close()


def read_all(api, user="integrator", **params):
    """Follow the feed page by page, as an integrator would; return every event."""
    after, events = 0, []
    while True:
        response = api.get("/v1/events", user, params={"after": after, **params})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/cloudevents-batch+json")
        page = response.json()
        events += [parse_cloud_event(e) for e in page]
        next_after = int(response.headers["Fengqiao-Next-After"])
        assert f"after={next_after}" in response.headers["Link"]
        if not page:
            return events
        after = next_after


def test_the_feed_pages_every_case_event_in_position_order(app, api):
    workload(app)
    events = read_all(api, limit=3)
    positions = [e.get_attributes()["position"] for e in events]
    assert positions == case_positions(app)
    assert len(positions) == 9
    kinds = {e.get_attributes()["type"].split(".")[2] for e in events}
    assert kinds == {
        "dispute",
        "hazard",
        "petition",
    }  # the ladder's and policy's events stay inside


def test_ids_are_stable_across_re_reads_and_from_any_position(app, api):
    workload(app)
    first = read_all(api, limit=4)
    second = read_all(api, limit=1000)
    assert [e.get_attributes()["id"] for e in first] == [e.get_attributes()["id"] for e in second]
    middle = first[5].get_attributes()["position"]
    rest = api.get("/v1/events", params={"after": middle}).json()
    assert [e["position"] for e in rest] == [e.get_attributes()["position"] for e in first[6:]]


def test_attributes_follow_the_case(app, api):
    dispute = workload(app)[0]
    events = [e for e in read_all(api) if e.get_attributes()["subject"] == str(dispute.case_id)]
    types = [e.get_attributes()["type"] for e in events]
    assert types == [
        "cn.fengqiao.dispute.reported.v3",
        "cn.fengqiao.dispute.assigned.v1",
        "cn.fengqiao.dispute.accepted.v2",
        "cn.fengqiao.dispute.escalated.v1",
        "cn.fengqiao.dispute.commented.v2",
    ]
    sources = [e.get_attributes()["source"].rsplit("/", 1)[1] for e in events]
    assert sources == [
        "410928-001-007-03",
        "410928-001-007",
        "410928-001-007",
        "410928-001",
        "410928-001",
    ]
    escalated = events[3].get_data()
    assert escalated["from_region"] == "410928-001-007" and escalated["to_region"] == "410928-001"
    assert escalated["actor"]["id"] == "zhao" and escalated["version"] == 4


def test_integrators_see_parties_masked_and_admins_in_full(app, api):
    report(app, "dispute", "minor", parties=[PARTY])
    masked = api.get("/v1/events").json()[0]["data"]["parties"][0]
    person = masked.pop("person")
    assert masked == {
        "name": "张*",
        "role": "applicant",
        "phone": "138****5678",
        "id_number": "410928********127X",
    }
    full = api.get("/v1/events", "admin").json()[0]["data"]["parties"][0]
    assert full == {**PARTY, "person": person}  # the same pseudonymous person id for both


def test_filter_by_types(app, api):
    workload(app)
    wanted = "cn.fengqiao.dispute.commented.v2,cn.fengqiao.hazard.commented.v2"
    events = read_all(api, types=wanted)
    assert [e.get_attributes()["type"] for e in events] == wanted.split(",")


def test_filter_by_region_subtree_follows_cases_escalated_out_of_it(app, api):
    dispute, hazard, petition = workload(app)
    subjects = {e.get_attributes()["subject"] for e in read_all(api, region="410928-002")}
    assert subjects == {str(hazard.case_id)}
    # the village integrator sees its own case, even after it went up to the township
    village = read_all(api, "village")
    assert {e.get_attributes()["subject"] for e in village} == {str(dispute.case_id)}
    assert len(village) == 5


def test_bad_requests_are_problems(app, api):
    assert api.get("/v1/events", params={"limit": 1001}).status_code == 422
    unknown = api.get("/v1/events", params={"types": "cn.fengqiao.dispute.nothing.v1"})
    assert unknown.status_code == 422
    assert unknown.headers["content-type"].startswith("application/problem+json")
    outside = api.get("/v1/events", "village", params={"region": "410928-002"})
    assert outside.status_code == 404
    assert api.get("/v1/events", "reporter").status_code == 403
    assert api.client.get("/v1/events").status_code == 401


def test_default_limit_is_100(app):
    first = report(app, "dispute", "minor")
    for n in range(105):
        act(app, first.case_id, "comment", "wang", text=f"note {n}")
    page = Feed(app).page(0)
    assert len(page.events) == 100
    assert page.next_after == page.events[-1]["position"]


def test_a_region_filtered_page_moves_on_even_when_nothing_matches(app):
    for _ in range(5):
        report(app, "dispute", "minor")
    page = Feed(app).page(0, 1, FeedFilter.of(region="410928-009"))
    assert page.events == [] and page.next_after == app.head_position()


def test_every_type_has_a_schema_that_its_data_satisfies(app, api):
    workload(app)
    catalogue = api.client.get("/v1/schemas").json()["types"]
    assert len(catalogue) == len(event_schemas.event_types())
    for event in read_all(api):
        event_type = event.get_attributes()["type"]
        response = api.client.get(f"/v1/schemas/{event_type}")
        assert response.status_code == 200
        schema = response.json()
        assert schema["title"] == event_type
        assert set(schema["required"]) <= set(event.get_data())
        assert set(event.get_data()) <= set(schema["properties"])
    assert api.client.get("/v1/schemas/cn.fengqiao.dispute.nothing.v1").status_code == 404


def test_schemas_are_written_to_files(tmp_path):
    written = event_schemas.write_schemas(tmp_path)
    assert len(written) == len(event_schemas.event_types())
    escalated = json.loads((tmp_path / "cn.fengqiao.dispute.escalated.v1.json").read_text())
    assert {"from_region", "to_region", "reason", "case_id", "actor"} <= set(
        escalated["properties"]
    )


def test_docs_events_match_the_code(tmp_path, monkeypatch):
    """docs/events/ is what ``python -m engine.event_schemas docs/events`` writes today."""
    monkeypatch.setenv("FENGQIAO_PUBLIC_URL", "https://fengqiao.example")
    event_schemas.write_schemas(tmp_path)
    docs = Path(__file__).resolve().parents[2] / "docs" / "events"
    assert sorted(p.name for p in docs.glob("*.json")) == sorted(
        p.name for p in tmp_path.glob("*.json")
    )
    for generated in tmp_path.glob("*.json"):
        assert (docs / generated.name).read_text() == generated.read_text(), generated.name


def test_after_crypto_shredding_the_feed_shows_erased_fields(app, api):
    from engine.privacy import ERASED, erase

    report(app, "dispute", "minor", parties=[PARTY])
    person = api.get("/v1/events", "admin").json()[0]["data"]["parties"][0]["person"]
    erase(app, person, by="auditor")
    for user in ("integrator", "admin"):
        party = api.get("/v1/events", user).json()[0]["data"]["parties"][0]
        assert (party["name"], party["phone"], party["id_number"]) == (ERASED, ERASED, ERASED), user


def test_positions_beyond_any_database_integer_are_refused(app, api):
    assert api.get("/v1/events", params={"after": 2**70}).status_code == 422
    assert api.get("/v1/events/stream", headers={"Last-Event-ID": str(2**70)}).status_code == 422
    assert api.get("/v1/events", params={"after": 2**62}).json() == []
