"""A GeoReport v2 client written from the spec (wiki.open311.org/GeoReport_v2), not from
Fengqiao: XML (the spec's default) and JSON for every method, and every error case, on
both stores. Then the region geometry behind ``lat``/``long``: import and point lookup."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from api.demo.geometry import centre, feature_collection, nested_grid
from api.http.app import create_app
from engine.settings import Settings
from tests.support import report

BASE = "/open311/v2"
GRID = "410928-001-007-03"
# GET requests: the spec's fields of a service request, in its order
REQUEST_FIELDS = [
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
]
SERVICE_FIELDS = [
    "service_code",
    "service_name",
    "description",
    "metadata",
    "type",
    "keywords",
    "group",
]


class GeoReport:
    """What a spec-reading client does: ``.xml`` or ``.json`` on every path, ``api_key``
    as a parameter, forms for POST; XML parsed as the spec's documents."""

    def __init__(self, client: TestClient, api_key: str | None, fmt: str) -> None:
        self.client, self.api_key, self.fmt = client, api_key, fmt

    def url(self, path: str) -> str:
        return f"{BASE}/{path}.{self.fmt}"

    def parse(self, response) -> Any:
        if self.fmt == "json":
            assert response.headers["content-type"].startswith("application/json")
            return response.json()
        assert response.headers["content-type"].startswith("text/xml")
        assert response.text.startswith('<?xml version="1.0" encoding="utf-8"?>')
        return ET.fromstring(response.content)

    def get(self, path: str, key: bool = True, **params: Any):
        if key and self.api_key:
            params["api_key"] = self.api_key
        return self.client.get(self.url(path), params=params)

    def post(self, **form: Any):
        return self.client.post(self.url("requests"), data={"api_key": self.api_key, **form})


def items(client: GeoReport, document: Any, item: str) -> list[dict[str, Any]]:
    """A list answer as dicts (XML: the root's ``item`` children, text or None)."""
    if client.fmt == "json":
        return document
    assert all(child.tag == item for child in document)
    return [{field.tag: field.text for field in child} for child in document]


def error_of(client: GeoReport, response, status: int) -> str:
    """The spec's error answer: ``code`` is the status; returns the description."""
    assert response.status_code == status, response.text
    document = client.parse(response)
    if client.fmt == "json":
        [error] = document
        assert set(error) == {"code", "description"} and error["code"] == status
        return error["description"]
    assert document.tag == "errors"
    [error] = list(document)
    assert error.tag == "error" and error.findtext("code") == str(status)
    return error.findtext("description")


@contextmanager
def serving(app, settings: Settings) -> Iterator[TestClient]:
    """The API over ``app``; its projection runner closed after (connections are scarce)."""
    application = create_app(app, settings=settings)
    try:
        with TestClient(application) as client:
            yield client
    finally:
        if application.state.services.runner is not None:
            application.state.services.runner.close()


@pytest.fixture
def http(app):
    app.import_geometry(nested_grid(app.ladder().tree, "410928"))
    with serving(app, Settings()) as client:
        users = client.app.state.services.users
        client.keys = {
            "platform": users.add("platform-12345", "reporter", "410928"),  # type: ignore[attr-defined]
            "feed": users.add("feed-county", "integrator", "410928"),
            "village": users.add("feed-village", "reporter", "410928-001-007"),
        }
        yield client


@pytest.fixture(params=["xml", "json"])
def fmt(request) -> str:
    return request.param


def geo(http, fmt, user: str | None = "platform") -> GeoReport:
    return GeoReport(http, http.keys[user] if user else None, fmt)


def test_discovery_lists_both_formats(http, fmt):
    client = geo(http, fmt)
    document = client.parse(client.get("discovery", key=False))
    if fmt == "json":
        [endpoint] = document["endpoints"]
        assert endpoint["formats"] == ["text/xml", "application/json"]
        assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    else:
        assert document.tag == "discovery"
        assert [f.text for f in document.find("endpoints/endpoint/formats")] == [
            "text/xml",
            "application/json",
        ]


def test_services_and_a_definition(http, fmt):
    client = geo(http, fmt)
    services = items(client, client.parse(client.get("services", key=False)), "service")
    assert services and all(list(s)[: len(SERVICE_FIELDS)] == SERVICE_FIELDS for s in services)
    assert {"hazard.gas", "petition.utilities"} <= {s["service_code"] for s in services}
    definition = client.parse(client.get("services/hazard.gas", key=False))
    if fmt == "json":
        codes = [a["code"] for a in definition["attributes"]]
        assert definition["service_code"] == "hazard.gas"
    else:
        assert definition.tag == "service_definition"
        codes = [a.findtext("code") for a in definition.find("attributes")]
        assert definition.find("attributes/attribute/values") is not None
    assert codes == ["region", "severity", "title", "hazard_level"]


def test_post_by_address_id_then_get_it_back(http, fmt):
    client = geo(http, fmt)
    created = client.post(
        service_code="petition.utilities",
        description="小区停水三天",
        address_id=GRID,
        address_string="王庄村三组",
        media_url="https://example.org/photo.jpg",
    )
    assert created.status_code == 201, created.text
    [answer] = items(client, client.parse(created), "request")
    assert set(answer) == {"service_request_id", "service_notice", "account_id"}
    request_id = answer["service_request_id"]
    UUID(request_id)
    [got] = items(client, client.parse(client.get(f"requests/{request_id}")), "request")
    assert list(got) == REQUEST_FIELDS
    assert (got["address_id"], got["address"], got["media_url"]) == (
        GRID,
        "王庄村三组",
        "https://example.org/photo.jpg",
    )
    assert got["status"] == "open" and got["service_code"] == "petition.utilities"


def test_a_point_finds_its_grid_and_is_echoed(http, fmt, app):
    client = geo(http, fmt)
    lat, long = centre(nested_grid(app.ladder().tree, "410928"), GRID)
    created = client.post(
        service_code="hazard.fire", description="楼道堆放杂物", lat=str(lat), long=str(long)
    )
    assert created.status_code == 201, created.text
    request_id = items(client, client.parse(created), "request")[0]["service_request_id"]
    assert app.case(UUID(request_id)).region == GRID  # the smallest region holding the point
    [got] = items(
        client, client.parse(client.get("requests", service_request_id=request_id)), "request"
    )
    assert float(got["lat"]) == pytest.approx(lat) and float(got["long"]) == pytest.approx(long)
    assert got["address_id"] == GRID


def test_json_body_with_attributes(http):
    body = {
        "api_key": http.keys["platform"],
        "service_code": "hazard.gas",
        "description": "燃气味",
        "attribute": {"region": GRID, "severity": "major", "hazard_level": "major"},
    }
    created = http.post(f"{BASE}/requests.json", json=body)
    assert created.status_code == 201, created.text
    assert created.headers["location"].endswith(".json")


def test_requests_list_filters(http, fmt, app):
    case_id = report(app, "petition", "minor", region=GRID).case_id
    client = geo(http, fmt)
    listed = items(
        client,
        client.parse(
            client.get(
                "requests", status="open", service_code=f"petition.{app.case(case_id).category}"
            )
        ),
        "request",
    )
    assert listed and all(list(r) == REQUEST_FIELDS and r["status"] == "open" for r in listed)
    assert client.get("requests", jurisdiction_id="demo").status_code == 200  # the deployment


@pytest.mark.parametrize(
    "case",
    [
        "bad api_key",
        "no api_key on POST",
        "no report right",
        "unknown service_code on POST",
        "unknown service definition",
        "unknown request id",
        "malformed request id",
        "other jurisdiction",
        "point outside every region",
        "no location",
        "address_string alone",
        "bad status filter",
        "bad date",
        "region outside the caller",
        "bad lat",
        "anonymous GET requests",
    ],
)
def test_every_error_is_the_spec_s(http, fmt, case):
    client, anonymous = geo(http, fmt), geo(http, fmt, None)
    village = geo(http, fmt, "village")
    form = {"service_code": "petition.utilities", "description": "x", "address_id": GRID}
    expected = {
        "bad api_key": (lambda: GeoReport(http, "fq_nonsense", fmt).get("requests"), 403),
        "no api_key on POST": (lambda: http.post(client.url("requests"), data=form), 403),
        "no report right": (lambda: geo(http, fmt, "feed").post(**form), 403),
        "unknown service_code on POST": (
            lambda: client.post(**{**form, "service_code": "petition.nothing"}),
            400,
        ),
        "unknown service definition": (lambda: client.get("services/dispute.land", key=False), 404),
        "unknown request id": (
            lambda: client.get("requests/00000000-0000-4000-8000-000000000000"),
            404,
        ),
        "malformed request id": (lambda: client.get("requests/nonsense"), 404),
        "other jurisdiction": (
            lambda: client.get("services", key=False, jurisdiction_id="elsewhere"),
            404,
        ),
        "point outside every region": (
            lambda: client.post(
                service_code="petition.utilities", description="x", lat="31.23", long="121.47"
            ),
            400,
        ),
        "no location": (
            lambda: client.post(service_code="petition.utilities", description="x"),
            400,
        ),
        "address_string alone": (
            lambda: client.post(service_code="petition.utilities", address_string="王庄"),
            400,
        ),
        "bad status filter": (lambda: client.get("requests", status="maybe"), 400),
        "bad date": (lambda: client.get("requests", start_date="yesterday"), 400),
        "region outside the caller": (
            lambda: village.post(**{**form, "address_id": "410928-002-001-01"}),
            400,
        ),
        "bad lat": (
            lambda: client.post(service_code="petition.utilities", lat="north", long="113.7"),
            400,
        ),
        "anonymous GET requests": (lambda: anonymous.get("requests"), 403),
    }[case]
    response = expected[0]()
    assert error_of(client, response, expected[1])
    assert "problem" not in response.headers["content-type"]


def test_an_unknown_format_is_404(http):
    response = http.get(f"{BASE}/services.yaml")
    assert response.status_code == 404 and response.headers["content-type"].startswith("text/xml")


def test_a_public_deployment_answers_anonymous_reads_without_personal_fields(app):
    with serving(app, Settings(open311_public=True)) as http:
        key = http.app.state.services.users.add("platform-12345", "reporter", "410928")
        created = http.post(
            f"{BASE}/requests.json",
            data={
                "api_key": key,
                "service_code": "petition.utilities",
                "description": "张三 13812345678 家门口停水",
                "address_id": GRID,
                "address_string": "王庄村三组 张三家",
                "lat": "40.3",
                "long": "113.7",
                "media_url": "https://example.org/face.jpg",
                "first_name": "三",
                "last_name": "张",
            },
        )
        assert created.status_code == 201, created.text
        request_id = created.json()[0]["service_request_id"]
        for fmt in ("json", "xml"):
            client = GeoReport(http, None, fmt)
            [shown] = items(client, client.parse(client.get(f"requests/{request_id}")), "request")
            assert list(shown) == REQUEST_FIELDS
            assert (shown["description"], shown["media_url"], shown["lat"], shown["long"]) == (
                None,
            ) * 4
            assert shown["address"] == "王庄村第三网格"  # the region, not the address given
            listed = items(client, client.parse(client.get("requests")), "request")
            assert [r["service_request_id"] for r in listed] == [request_id]
            assert "张" not in json.dumps(listed, ensure_ascii=False) and "138" not in json.dumps(
                listed
            )


def test_open311_declares_its_request_bodies_and_formats(http):
    document = http.get("/openapi.json").json()
    post = document["paths"]["/open311/v2/requests.{fmt}"]["post"]
    content = post["requestBody"]["content"]
    assert {"application/x-www-form-urlencoded", "application/json"} <= set(content)
    assert "service_code" in content["application/x-www-form-urlencoded"]["schema"]["properties"]
    assert {"application/json", "text/xml"} <= set(post["responses"]["201"]["content"])
    assert set(post["responses"]["400"]["content"]) == {"application/json", "text/xml"}


# -- v1 and the geometry ------------------------------------------------------------------


def test_v1_reports_from_a_point_and_refuses_one_outside_every_region(http, app):
    token = {"Authorization": f"Bearer {http.keys['platform']}"}
    lat, long = centre(nested_grid(app.ladder().tree, "410928"), "410928-009-001-01")
    body = {
        "kind": "hazard",
        "category": "fire",
        "severity": "minor",
        "title": "灭火器过期",
        "lat": lat,
        "long": long,
    }
    created = http.post("/v1/cases", json=body, headers=token)
    assert created.status_code == 201, created.text
    assert created.json()["region"] == "410928-009-001-01"
    outside = http.post("/v1/cases", json={**body, "lat": 31.23, "long": 121.47}, headers=token)
    assert outside.status_code == 422 and outside.json()["code"] == "point_outside_regions"
    neither = http.post(
        "/v1/cases", json={k: v for k, v in body.items() if k not in ("lat", "long")}, headers=token
    )
    assert neither.status_code == 422 and neither.json()["field"] == "region"


def test_geometry_import_refuses_unknown_regions_and_bad_features(app):
    from domain.errors import NotFound, ValidationFailed
    from engine.geometry import parse_geojson

    with pytest.raises(NotFound):
        app.import_geometry(
            parse_geojson(
                feature_collection({"999999": nested_grid(app.ladder().tree, "410928")["410928"]})
            )
        )
    with pytest.raises(ValidationFailed):
        parse_geojson(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"code": GRID},
                        "geometry": {"type": "Point", "coordinates": [1, 2]},
                    }
                ],
            }
        )
    with pytest.raises(ValidationFailed):
        parse_geojson(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {},
                        "geometry": {"type": "Polygon", "coordinates": []},
                    }
                ],
            }
        )


def test_the_smallest_region_wins_and_an_edge_counts(app):
    from engine.geometry import GeometryIndex

    shapes = nested_grid(app.ladder().tree, "410928")
    index = GeometryIndex.of(
        shapes, {code: int(r.rank) for code, r in app.ladder().tree.regions.items()}
    )
    for code in (
        "410928-001-007-03",
        "410928-001-008-01",
        "410928-002-001-01",
        "410928-009-001-01",
    ):
        lat, long = centre(shapes, code)
        assert index.locate(long, lat) == code
    west, south, _, _ = shapes["410928"].bounds
    assert index.locate(west, south) is not None  # the county's corner: on an edge is inside


def test_gcj02_converts_to_wgs84():
    from engine.geometry import gcj02_to_wgs84, wgs84_to_gcj02

    lon, lat = 113.75, 40.36  # 阳高县
    shifted = wgs84_to_gcj02(lon, lat)
    assert (
        0.003 < abs(shifted[0] - lon) < 0.01 and 0.0005 < abs(shifted[1] - lat) < 0.01
    )  # a few hundred m
    back = gcj02_to_wgs84(*shifted)
    assert back == pytest.approx((lon, lat), abs=1e-7)
    assert gcj02_to_wgs84(-0.12, 51.5) == (-0.12, 51.5)  # outside China: no offset


def test_a_gcj02_file_lands_where_its_wgs84_twin_does(app, tmp_path):
    from engine.geometry import load_geojson, wgs84_to_gcj02

    shapes = nested_grid(app.ladder().tree, "410928")
    document = feature_collection(shapes)
    for feature in document["features"]:
        feature["geometry"]["coordinates"] = [
            [list(wgs84_to_gcj02(*p)) for p in ring] for ring in feature["geometry"]["coordinates"]
        ]
    app.import_geometry(load_geojson(json.dumps(document), crs="gcj02"))
    lat, long = centre(shapes, GRID)
    assert app.locate(lat, long) == GRID


def test_regions_import_geojson_from_the_shell(store, tmp_path):
    from domain.ladder import RegionTree, parse_region_file
    from tests.e2e.test_cli import cli, out
    from tests.support import COUNTY_CSV

    regions, shapes_file = tmp_path / "regions.csv", tmp_path / "grids.geojson"
    regions.write_text(COUNTY_CSV, encoding="utf-8")
    cli(store, "init")
    cli(store, "regions", "import", str(regions))
    tree = RegionTree()
    for region in parse_region_file(COUNTY_CSV):
        tree.put(region)
    shapes = nested_grid(tree, "410928")
    shapes_file.write_text(json.dumps(feature_collection(shapes)), encoding="utf-8")
    assert out(cli(store, "regions", "import", str(shapes_file)))["geometry"] == 12
    refused = cli(store, "regions", "import", str(shapes_file), "--crs", "bd09", ok=False)
    assert refused.returncode != 0
    lat, long = centre(shapes, "410928-009-001-01")
    placed = out(
        cli(
            store,
            "case",
            "report",
            "--kind",
            "hazard",
            "--category",
            "fire",
            "--title",
            "灭火器过期",
            "--lat",
            str(lat),
            "--long",
            str(long),
        )
    )
    assert placed["case"]["region"] == "410928-009-001-01"
    outside = cli(
        store,
        "case",
        "report",
        "--kind",
        "hazard",
        "--category",
        "fire",
        "--title",
        "x",
        "--lat",
        "31.23",
        "--long",
        "121.47",
        ok=False,
    )
    assert (
        json.loads(outside.stderr.strip().splitlines()[-1])["error"]["code"]
        == "point_outside_regions"
    )


def test_address_id_stays_the_place_once_a_higher_rank_handles_it(http, app):
    from tests.support import act

    case_id = report(app, "petition", "minor", region=GRID).case_id
    act(
        app, case_id, "assign", "li", unit="wz-cwh"
    )  # the village committee: the case's region moves up
    assert app.case(case_id).region != GRID
    [got] = GeoReport(http, http.keys["platform"], "json").get(f"requests/{case_id}").json()
    assert got["address_id"] == GRID and got["address"] == "王庄村第三网格"
