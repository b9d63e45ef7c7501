"""Open311 GeoReport v2 over petitions and hazards, through the real ASGI app."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.cases import CATEGORIES
from domain.kinds import Kind
from tests.feed_support import make_api
from tests.support import act, report

BASE = "/open311/v2"


@pytest.fixture
def api(app):
    client = make_api(app)
    client.tokens["platform"] = client.client.app.state.services.users.add(
        "platform-12345", "reporter", "410928"
    )
    yield client
    client.close()


def post_request(api, user="platform", **form):
    return api.client.post(f"{BASE}/requests.json", data={"api_key": api.tokens[user], **form})


def test_discovery_and_services(api):
    discovery = api.client.get(f"{BASE}/discovery.json").json()
    assert discovery["endpoints"][0]["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert discovery["endpoints"][0]["url"].endswith("/open311/v2")
    services = api.client.get(f"{BASE}/services.json").json()
    codes = {s["service_code"] for s in services}
    assert codes == {f"{k}.{c}" for k in (Kind.PETITION, Kind.HAZARD) for c in CATEGORIES[k]}
    assert all(s["metadata"] is True and s["type"] == "realtime" for s in services)
    hazard = api.client.get(f"{BASE}/services/hazard.gas.json").json()
    assert [a["code"] for a in hazard["attributes"]] == [
        "region",
        "severity",
        "title",
        "hazard_level",
    ]
    assert hazard["attributes"][0]["required"] is False  # address_id or lat/long place it too
    assert api.client.get(f"{BASE}/services/dispute.land.json").status_code == 404


def test_post_creates_a_petition_through_the_command_path(app, api):
    response = post_request(
        api,
        service_code="petition.utilities",
        description="小区停水三天",
        first_name="三",
        last_name="张",
        phone="13812345678",
        **{"attribute[region]": "410928-001-007-03"},
    )
    assert response.status_code == 201, response.text
    request_id = response.json()[0]["service_request_id"]
    case = app.case(__import__("uuid").UUID(request_id))
    assert (case.kind, case.category, case.channel, case.title) == (
        "petition",
        "utilities",
        "platform",
        "小区停水三天",
    )
    assert case.reporter.id == "platform-12345"
    got = api.client.get(
        f"{BASE}/requests/{request_id}.json",
        headers={"Authorization": f"Bearer {api.tokens['platform']}"},
    ).json()[0]
    assert got["status"] == "open" and got["service_code"] == "petition.utilities"
    assert got["requested_datetime"].startswith("2026-09-28T01:00:00")
    assert got["expected_datetime"] is not None  # the 办结 reply clock's due time
    assert got["address_id"] == "410928-001-007-03"


def test_post_with_json_and_idempotency_key_reports_once(app, api):
    body = {
        "service_code": "hazard.fire",
        "description": "楼道堆放杂物",
        "attribute": {"region": "410928-009-001-01", "hazard_level": "general"},
    }
    headers = {**api.headers("platform"), "Idempotency-Key": "open311-fire-1"}
    first = api.client.post(f"{BASE}/requests.json", json=body, headers=headers)
    second = api.client.post(f"{BASE}/requests.json", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()


def test_post_refusals(api):  # the spec's statuses (tests/test_georeport_spec.py has every case)
    assert (
        post_request(
            api, service_code="petition.nothing", **{"attribute[region]": "410928"}
        ).status_code
        == 400
    )
    missing_region = post_request(api, service_code="petition.utilities", description="x")
    assert missing_region.status_code == 400
    assert (
        post_request(
            api, "integrator", service_code="petition.utilities", **{"attribute[region]": "410928"}
        ).status_code
        == 403
    )
    assert (
        api.client.post(
            f"{BASE}/requests.json", data={"service_code": "petition.utilities"}
        ).status_code
        == 403
    )
    outside = post_request(
        api,
        "reporter",
        service_code="petition.utilities",
        description="x",
        **{"attribute[region]": "410928-002"},
    )
    assert outside.status_code == 400


def test_status_notes_agency_and_closure(app, api, clock):
    petition = report(app, "petition", "minor", region="410928-001-007-03")
    act(app, petition.case_id, "assign", "li", unit="wz-cwh")
    act(app, petition.case_id, "accept", "li")
    got = api.get(f"{BASE}/requests/{petition.case_id}.json", "platform").json()[0]
    assert got["agency_responsible"] == "王庄村委会"
    assert got["status_notes"].startswith("已签收")
    act(app, petition.case_id, "reply", "li", text="已修复")
    clock.advance(timedelta(hours=2))
    act(app, petition.case_id, "resolve", "li", resolution="供水已恢复")
    closed = api.get(f"{BASE}/requests/{petition.case_id}.json", "platform").json()[0]
    assert closed["status"] == "closed" and closed["status_notes"] == "供水已恢复"
    assert closed["expected_datetime"] is None
    assert closed["updated_datetime"] > closed["requested_datetime"]


def test_requests_list_filters(app, api, clock):
    old = report(app, "hazard", "minor", region="410928-002-001-01")
    clock.advance(timedelta(days=100))
    gas = report(app, "hazard", "minor", category="gas", region="410928-002-001-01")
    water = report(app, "petition", "minor", region="410928-001-007-03")
    dispute = report(app, "dispute", "minor")

    def ids(**params):
        response = api.get(f"{BASE}/requests.json", "platform", params=params)
        assert response.status_code == 200, response.text
        return [r["service_request_id"] for r in response.json()]

    assert ids() == [
        str(water.case_id),
        str(gas.case_id),
    ]  # the last 90 days, newest first; no disputes
    assert ids(service_code="hazard.gas") == [str(gas.case_id)]
    assert ids(start_date="2026-09-01T00:00:00Z", end_date="2026-10-01T00:00:00+08:00") == [
        str(old.case_id)
    ]
    assert ids(status="closed") == []
    assert ids(service_request_id=f"{old.case_id},{dispute.case_id},nonsense") == [str(old.case_id)]
    village = api.get(f"{BASE}/requests.json", "reporter").json()
    assert [r["service_request_id"] for r in village] == [
        str(water.case_id)
    ]  # scoped to the caller
    assert api.get(f"{BASE}/requests/{dispute.case_id}.json", "platform").status_code == 404
    assert (
        api.get(f"{BASE}/requests.json", "platform", params={"status": "maybe"}).status_code == 400
    )
    assert (
        api.get(f"{BASE}/requests.json", "platform", params={"start_date": "yesterday"}).status_code
        == 400
    )
