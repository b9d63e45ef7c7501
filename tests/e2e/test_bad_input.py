"""Bad input never crashes anything and never half-applies: every command body, the
policy file and the region file are fuzzed, and the HTTP edge cases (deep JSON,
invalid UTF-8, huge limits, negative positions, forged cursors) answer bounded
problem+json refusals. tests/test_api.py::test_every_problem_type covers the basic
refusals (wrong content type, too large, malformed JSON); this file adds the rest.
"""

from __future__ import annotations

import json
import os
import re
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.commands import ACTIONS
from domain.errors import DomainError
from domain.ladder import parse_region_file
from domain.policy import parse_policy
from tests.support import COUNTY_CSV, DEFAULT_POLICY, envelope, report
from tests.test_api_support import DISPUTE, Api

FUZZ = settings(
    max_examples=int(os.environ.get("FENGQIAO_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(
        [
            "zhao",
            "410928-001",
            "county",
            "village",
            "2026-09-28T09:00:00+08:00",
            "major",
            "ht-sfs",
            "",
        ]
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=8,
)


def body_for(action: str) -> st.SearchStrategy[dict]:
    """Bodies near the action's own fields: its field names with any JSON values, plus strays."""
    fields = list(ACTIONS[action].model_fields)
    keys = st.sampled_from(fields) if fields else st.text(max_size=8)
    return st.dictionaries(keys | st.text(max_size=8), json_values, max_size=4)


def problem_names_a_field(error: DomainError) -> None:
    if error.code == "validation":
        assert error.details.get("field"), (error.message, error.details)
    assert error.message


# -- every command body ----------------------------------------------------------------------------


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_every_command_body_is_fuzzed_without_a_crash_or_a_partial_write(app, action):
    case_id = report(app, "dispute", "major").case_id
    before = app.case(case_id).version

    @FUZZ
    @given(body=body_for(action))
    def attempt(body):
        head = app.head_position()
        try:
            result = app.do(case_id, action, body, envelope("wu", app))
        except DomainError as error:  # a clear refusal, never another exception
            problem_names_a_field(error)
            assert app.head_position() in (head, head + 1)  # at most the ceiling-refusal log entry
            assert app.case(case_id).version == current[0]
            return
        assert result.version > current[0]
        current[0] = result.version

    current = [before]
    attempt()


@FUZZ
@given(
    body=st.dictionaries(
        st.sampled_from(
            [
                "kind",
                "category",
                "severity",
                "region",
                "title",
                "parties",
                "description",
                "channel",
                "location",
            ]
        )
        | st.text(max_size=8),
        json_values,
        max_size=6,
    )
)
def test_report_bodies_are_fuzzed_without_a_crash(app, body):
    from domain.commands import ReportCase

    try:
        parsed = ReportCase.model_validate({**DISPUTE, **body})
    except Exception as error:  # pydantic's ValidationError names the field itself
        assert "validation error" in str(error).lower(), error
        return
    try:
        app.report(parsed, envelope("wu", app))
    except DomainError as error:
        problem_names_a_field(error)


# -- the policy and region files --------------------------------------------------------------------

POLICY_LINES = DEFAULT_POLICY.splitlines()
VALUE_LINE = re.compile(r"^(\s*[\w.\"-]+\s*=\s*)(.+)$")


@st.composite
def broken_policy(draw) -> str:
    """The default policy with a few lines deleted, retyped or garbled."""
    lines = list(POLICY_LINES)
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, len(lines) - 1))
        match = VALUE_LINE.match(lines[index])
        how = draw(st.sampled_from(["delete", "value", "garble"]))
        if how == "delete":
            del lines[index]
        elif how == "value" and match:
            value = draw(
                st.sampled_from(
                    [
                        '"-3d"',
                        "-1",
                        "0",
                        '"never"',
                        "[]",
                        "{}",
                        '"999999999d"',
                        "true",
                        '"1h"',
                        '"P1D"',
                        "1e309",
                    ]
                )
            )
            lines[index] = match.group(1) + value
        else:
            lines[index] = lines[index][: draw(st.integers(0, len(lines[index])))] + draw(
                st.text(max_size=5)
            )
    return "\n".join(lines)


@FUZZ
@given(text=broken_policy())
def test_policy_files_are_fuzzed_into_clear_errors_or_a_whole_policy(app, text):
    version = app.policy().version
    try:
        parse_policy(text)
    except DomainError as error:
        problem_names_a_field(error)
    try:
        loaded = app.load_policy(text, "admin")
    except DomainError as error:
        problem_names_a_field(error)
        assert app.policy().version == version  # nothing loaded
    else:
        assert (
            loaded in (version, version + 1) and app.policy().version == loaded
        )  # whole, or unchanged


@st.composite
def broken_region_file(draw) -> str:
    """A new township's file with a few cells changed, rows duplicated or dropped."""
    rows = [
        ["code", "name", "rank", "profile"],
        ["410928-003", "新乡镇", "township", "rural"],
        ["410928-003-001", "新村", "village", "rural"],
        ["410928-003-001-01", "新村第一网格", "grid", "rural"],
        ["410928-003-002", "二村", "village", "urban"],
    ]
    for _ in range(draw(st.integers(1, 3))):
        row = draw(st.integers(0, len(rows) - 1))
        how = draw(st.sampled_from(["cell", "duplicate", "drop", "extra"]))
        if how == "cell":
            column = draw(st.integers(0, 3))
            rows[row][column] = draw(
                st.sampled_from(
                    [
                        "",
                        "410928-999-001",
                        "city",
                        "suburban",
                        "410928",
                        "x" * 300,
                        "410928-003-001-01-01-01",
                    ]
                )
                | st.text(max_size=6)
            )
        elif how == "duplicate":
            rows.append(list(rows[row]))
        elif how == "drop" and len(rows) > 1:
            del rows[row]
        else:
            rows[row].append(draw(st.text(max_size=4)))
    return (
        "\n".join(",".join(f'"{c}"' if "," in c or '"' in c else c for c in r) for r in rows) + "\n"
    )


@FUZZ
@given(text=broken_region_file())
def test_region_files_are_fuzzed_into_clear_errors_and_never_a_partial_import(app, text):
    before = (
        sorted(r.code for r in app.ladder().regions.values())
        if hasattr(app.ladder(), "regions")
        else None
    )
    version = app.ladder().version
    try:
        parse_region_file(text, None)
    except DomainError as error:
        problem_names_a_field(error)
    try:
        app.import_regions(text, "admin")
    except DomainError as error:
        problem_names_a_field(error)
        assert app.ladder().version == version  # not one row of a bad file was imported
        if before is not None:
            assert sorted(r.code for r in app.ladder().regions.values()) == before


def test_the_seed_files_themselves_parse():
    assert len(parse_region_file(COUNTY_CSV)) == 12
    assert parse_policy(DEFAULT_POLICY)


# -- HTTP edge cases --------------------------------------------------------------------------------

MAX_PROBLEM_BYTES = 8 * 1024  # a refusal is bounded, whatever was sent


def refused(response, status: int, *, field: str | None = None) -> dict:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"] == "application/problem+json", response.headers
    assert len(response.content) <= MAX_PROBLEM_BYTES, len(response.content)
    body = response.json()
    assert body["status"] == status and body["type"].startswith("/problems/") and body["detail"]
    if field is not None:
        assert body.get("field") == field, body
    return body


def post_raw(
    api: Api, path: str, content: bytes, who: str = "root", content_type: str = "application/json"
):
    return api.client.post(
        path, content=content, headers={**api.headers(who), "Content-Type": content_type}
    )


def test_deep_json_invalid_utf8_and_odd_bodies_are_refused_clearly(api: Api):
    cid = api.report()["id"]
    path = f"/v1/cases/{cid}/comment"
    for depth in (1_000, 100_000):  # too deep for the parser: 400, still a problem
        assert refused(post_raw(api, path, b"[" * depth + b"]" * depth), 400)["detail"]
        refused(
            post_raw(api, path, b'{"text": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"), 400
        )
    refused(
        post_raw(api, path, b'{"text": "\xff\xfe bad"}'), 400
    )  # not UTF-8: the parser refuses it
    refused(post_raw(api, "/v1/cases", json.dumps({**DISPUTE, "title": "\ud800"}).encode()), 422)
    refused(post_raw(api, path, b""), 422, field="body")
    refused(post_raw(api, path, b"null"), 422)
    refused(post_raw(api, path, b'{"text": 1e999}'), 422)
    refused(
        post_raw(api, path, b'{"text": "x", "text": ' + b"9" * 5000 + b"}"), 400
    )  # over Python's int digits
    refused(post_raw(api, path, b"<xml/>", content_type="application/xml"), 415)
    refused(post_raw(api, path, b"text=x", content_type="application/x-www-form-urlencoded"), 415)
    refused(
        post_raw(api, path, b'{"text": "x"}', content_type="multipart/form-data; boundary=x"), 415
    )
    too_long = api.client.post(
        path,
        content=b'{"text": "x"}',
        headers={
            **api.headers("root"),
            "Content-Type": "application/json",
            "Content-Length": "99999999999",
        },
    )
    assert too_long.status_code in (400, 413), too_long.text  # the transport may refuse it first
    assert api.get(f"/v1/cases/{cid}", "root").json()["version"] == 1  # none of it was recorded


@pytest.mark.parametrize(
    "path, field",
    [
        ("/v1/cases?limit=1000000000000000000000", "limit"),
        ("/v1/cases?limit=0", "limit"),
        ("/v1/cases?limit=-5", "limit"),
        ("/v1/events?limit=99999999", "limit"),
        ("/v1/events?after=-1", "after"),
        ("/v1/events?after=99999999999999999999999999", "after"),
        ("/v1/events?after=abc", "after"),
        ("/v1/cases/{id}/state?version=-1", "version"),
        ("/v1/cases/{id}/state?version=999999999999999999999", "version"),
        ("/v1/cases?min_position=-1", "min_position"),
        ("/v1/cases?cursor=" + "A" * 501, "cursor"),
    ],
)
def test_huge_limits_negative_positions_and_long_cursors_are_refused(api: Api, path, field):
    cid = api.report()["id"]
    who = "feed" if path.startswith("/v1/events") else "root"
    response = api.get(path.format(id=cid), who)
    refused(response, 422, field=field)


@pytest.mark.parametrize(
    "cursor",
    [
        "forged",
        "eyJhIjoxfQ",
        "eyJhIjoxfQ==",
        "%00",
        "0" * 400,
        "bnVsbA",
        "W10",
        "eyJwb3NpdGlvbiI6LTF9",
        "' OR 1=1 --",
    ],
)
def test_forged_cursors_are_refused_clearly(api: Api, cursor):
    for _ in range(3):
        api.report()
    response = api.client.get(
        "/v1/cases", params={"limit": 1, "cursor": cursor}, headers=api.headers("root")
    )
    refused(response, 422, field="cursor")


def test_forged_last_event_ids_and_huge_headers_are_refused(api: Api):
    for value in ("abc", "-3", "1e9", "9" * 40):
        response = api.client.get(
            "/v1/events/stream", headers={**api.headers("feed"), "Last-Event-ID": value}
        )
        refused(response, 422)
    cid = api.report()["id"]
    bad_key = api.post(
        f"/v1/cases/{cid}/comment", {"text": "x"}, "root", headers={"Idempotency-Key": "k" * 500}
    )
    refused(bad_key, 422)
    bad_match = api.post(
        f"/v1/cases/{cid}/comment", {"text": "x"}, "root", headers={"If-Match": '"-1"'}
    )
    refused(bad_match, 422)
    assert api.get(f"/v1/cases/{cid}", "root").json()["version"] == 1


# schemathesis over every route (audit and the case file too): tests/e2e/test_api_schema.py


def test_unknown_ids_everywhere_are_404_problems(api: Api):
    missing = uuid.uuid4()
    for path in (
        f"/v1/cases/{missing}",
        f"/v1/cases/{missing}/history",
        f"/v1/cases/{missing}/file",
        f"/v1/subscriptions/{missing}",
    ):
        refused(api.get(path, "boss"), 404)
