"""Hostile and careless input (issue 19, items 1, 2 and 13): nothing accepted may wedge
the engine or leak a number to an integrator, and a projection that does stop is loud.

* Every field is bounded at the command boundary: times from 2000-01-01 (and at most ten
  years ahead), no NUL or other control character (one-line fields: no line break
  either), lengths capped; such input is a 422 naming the field.
* A projection that fails on an event records the position and the error; ``/readyz``,
  ``/metrics`` and ``fengqiao projections status`` show it; ``fengqiao projections skip``
  lets it pass over that one event, with a reason that is kept.
* No output an integrator reads holds a run of 7 or more digits of a phone or ID number
  typed into free text, whatever the form (country codes, prefixes, separators, full-width).
* A body the JSON parser cannot read is ``/problems/malformed-body``, a documented type.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from api.cli import app as cli
from domain.commands import ACTIONS, Envelope, ReportCase
from domain.permissions import SEPARATORS
from engine.casefile import case_file
from engine.feed import Feed
from engine.logs import configure_logging
from projections import default_projections
from projections.runner import ProjectionFailed, ProjectionRunner
from tests.e2e.test_bad_input import post_raw, refused
from tests.support import act, actor, report
from tests.test_api_support import DISPUTE, GRID, HAITONG, PETITION, Api

EXAMPLES = int(os.environ.get("FENGQIAO_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
)


def project(api: Api) -> None:
    """Run the server's projections once (the tests run no worker)."""
    api.http.state.services.runner.run_once()


def listed(api: Api, who: str = "root") -> list[str]:
    response = api.get("/v1/cases", who, params={"region": HAITONG, "limit": 500})
    assert response.status_code == 200, response.text
    return [row["case_id"] for row in response.json()["items"]]


# -- item 1: the two findings, reproduced ---------------------------------------------------


def test_a_year_one_occurred_at_is_refused_and_the_read_models_keep_flowing(api: Api):
    response = api.post(
        "/v1/cases", {**DISPUTE, "occurred_at": "0001-01-01T00:00:00+14:00"}, "wang"
    )
    refused(response, 422, field="occurred_at")
    case_id = api.report()["id"]
    project(api)  # before the fix: OverflowError on the first event, every time
    assert case_id in listed(api)


def test_a_nul_in_a_title_is_refused_and_the_read_models_keep_flowing(api: Api):
    refused(api.post("/v1/cases", {**DISPUTE, "title": "a\u0000b"}, "wang"), 422, field="title")
    case_id = api.report()["id"]
    project(api)  # before the fix, on PostgreSQL: "PostgreSQL text fields cannot contain NUL"
    assert case_id in listed(api)


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"title": "line\nbreak"}, "title"),
        ({"title": "bell\u0007"}, "title"),
        ({"title": "sep\u2028arator"}, "title"),
        ({"category": "neigh\u0000bours"}, "category"),
        ({"description": "nul \u0000 inside"}, "description"),
        ({"description": "escape \u001b[31m red"}, "description"),
        ({"description": "c1 \u0085 next line"}, "description"),
        ({"description": "x" * 20_001}, "description"),
        ({"title": "x" * 501}, "title"),
        ({"parties": [{"name": "张\u0000三"}]}, "parties.0.name"),
        ({"parties": [{"name": "张三"}] * 51}, "parties"),
        ({"occurred_at": "1999-12-31T23:59:59+00:00"}, "occurred_at"),
        ({"occurred_at": "9999-12-31T23:59:59-14:00"}, "occurred_at"),
        (
            {"kind": "hazard", "category": "fire", "rectify_by": "9999-12-31T00:00:00+08:00"},
            "rectify_by",
        ),
        (
            {"kind": "hazard", "category": "fire", "rectify_by": "2040-01-01T00:00:00+08:00"},
            "rectify_by",
        ),
    ],
)
def test_every_report_field_is_bounded(api: Api, patch: dict[str, Any], field: str):
    refused(api.post("/v1/cases", {**DISPUTE, **patch}, "wang"), 422, field=field)


def test_multi_line_text_keeps_line_feeds_and_tabs(api: Api):
    case = api.report({**DISPUTE, "description": "第一行\n\t第二行"})
    api.act(case["id"], "comment", {"text": "one\ntwo\tthree"})
    history = api.get(f"/v1/cases/{case['id']}/history").json()
    assert history[0]["data"]["description"] == "第一行\n\t第二行"
    assert history[-1]["data"]["text"] == "one\ntwo\tthree"


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("comment", {"text": "nul\u0000"}, "text"),
        ("comment", {"text": "ok", "attachments": ["a\nb"]}, "attachments.0"),
        ("send-back", {"reason": "\u0000"}, "reason"),
        ("whistle", {"departments": ["ht-sfs\u0000"], "reason": "r"}, "departments.0"),
        (
            "extend",
            {"reason": "r", "days": 10_000},
            "days",
        ),  # extend takes days now (at most 366), not a due time
        ("extend", {"reason": "r", "days": 0}, "days"),
        ("extend", {"reason": "r\u0000", "days": 1}, "reason"),
        ("comment", {"text": "ok", "occurred_at": "0001-01-01T00:00:00+14:00"}, "occurred_at"),
    ],
)
def test_every_action_field_is_bounded(api: Api, action: str, body: dict[str, Any], field: str):
    case_id = api.report()["id"]
    refused(api.post(f"/v1/cases/{case_id}/{action}", body), 422, field=field)
    assert api.get(f"/v1/cases/{case_id}").json()["version"] == 1


def test_a_rectification_deadline_more_than_ten_years_ahead_is_refused(app):
    from domain.errors import ValidationFailed

    case_id = report(app, "hazard").case_id
    act(app, case_id, "assign", "li", assignee="zhao")
    act(app, case_id, "accept", "zhao")
    far = (app.clock.now() + timedelta(days=3660)).isoformat()
    with pytest.raises(ValidationFailed) as refusal:
        act(app, case_id, "order-rectification", "zhao", deadline=far, measures="清理")
    assert refusal.value.details["field"] == "deadline"
    act(
        app,
        case_id,
        "order-rectification",
        "zhao",
        deadline=(app.clock.now() + timedelta(days=30)).isoformat(),
        measures="清理",
    )


def open311_refused(response, field: str | tuple[str, ...]) -> None:
    """GeoReport v2's own error (issue 21): 400 ``[{code, description}]``, naming the field."""
    assert response.status_code == 400, response.text
    [error] = response.json()
    assert error["code"] == 400 and error["description"].startswith(field), error


def test_open311_dates_and_text_are_bounded(api: Api):
    open311_refused(
        api.get(
            "/open311/v2/requests.json", "feed", params={"start_date": "0001-01-01T00:00:00+14:00"}
        ),
        "start_date",
    )
    open311_refused(
        api.get(
            "/open311/v2/requests.json", "feed", params={"end_date": "0001-01-01T00:00:00+14:00"}
        ),
        "end_date",
    )
    response = api.client.post(
        "/open311/v2/requests.json",
        headers=api.headers("wang"),
        data={
            "service_code": "petition.utilities",
            "description": "停水\u0000三天",
            "attribute[region]": GRID,
        },
    )
    open311_refused(response, ("title", "description"))  # the title is the description's first line


def test_the_cli_refuses_a_year_one_time_clearly(app, monkeypatch):
    monkeypatch.setenv("FENGQIAO_DATABASE_URL", app.store.url)
    configure_logging()
    result = CliRunner().invoke(
        cli,
        [
            "case",
            "report",
            "--kind",
            "dispute",
            "--category",
            "neighbours",
            "--severity",
            "minor",
            "--region",
            GRID,
            "--title",
            "t\u0000",
            "--as",
            "wang",
        ],
    )
    assert result.exit_code == 2, result.output
    assert "title" in result.output


# -- item 1: a projection stopped on an event is loud, and can be told to skip it ------------------


def stored_hostile_event(app, monkeypatch, kind: str = "year-one") -> int:
    """Record what the boundary now refuses, the way an old release let it in: a report
    whose occurred_at is year 1 in a far-east zone, or whose title holds a NUL (the
    stamp's own time checks are set aside for it). Returns its position."""
    from datetime import datetime, timezone

    from domain.cases import Stamp

    body = ReportCase(**{k: v for k, v in DISPUTE.items() if k != "parties"})
    occurred = None
    if kind == "nul":
        body = body.model_copy(update={"title": "a\u0000b"})
    else:
        occurred = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))
    envelope = Envelope.model_construct(
        actor=actor("wang", app),
        command_id=f"old-release-{kind}",
        expected_version=None,
        occurred_at=occurred,
    )
    with monkeypatch.context() as patch:
        patch.setattr(Stamp, "when", lambda self: self.occurred_at or self.recorded_at)
        return app.report(body, envelope).position


def test_a_stopped_projection_is_loud_and_an_operator_skip_lets_the_rest_flow(
    api: Api, monkeypatch
):
    app, runner = api.engine, api.http.state.services.runner
    before = api.report()["id"]
    bad = stored_hostile_event(app, monkeypatch, "year-one")
    after = api.report()["id"]
    with pytest.raises(ProjectionFailed, match=f"cases at {bad}"):
        runner.run_once()
    assert before in listed(api) and after not in listed(api)

    ready = api.client.get("/readyz")
    assert ready.status_code == 503, ready.text
    [failure] = [f for f in ready.json()["projection_failures"] if f["projection"] == "cases"]
    assert failure["position"] == bad and "OverflowError" in failure["error"]
    metrics = api.client.get("/metrics").text
    assert re.search(
        rf'fengqiao_projection_stopped_position{{error="OverflowError[^"]*",projection="cases"}} '
        rf"{bad}\.0",
        metrics,
    ), metrics

    monkeypatch.setenv("FENGQIAO_DATABASE_URL", app.store.url)
    configure_logging()
    cli_runner = CliRunner()
    status = json.loads(cli_runner.invoke(cli, ["projections", "status", "--json"]).stdout)
    cases = next(s for s in status if s["name"] == "cases")
    assert cases["stopped"]["position"] == bad and "OverflowError" in cases["stopped"]["error"]
    table = cli_runner.invoke(cli, ["projections", "status"]).output
    assert f"STOPPED at {bad}" in table

    refused_skip = cli_runner.invoke(
        cli, ["projections", "skip", str(bad + 1), "--reason", "x", "--by", "ops"]
    )
    assert refused_skip.exit_code == 2  # nothing is stopped there
    monkeypatch.setenv("FENGQIAO_ACTOR", "ops")  # who decided, read from the settings
    skipped = cli_runner.invoke(
        cli, ["projections", "skip", str(bad), "--reason", "issue 19: year-one time"]
    )
    assert skipped.exit_code == 0, skipped.output
    # stdout alone: the skip is also logged, to stderr (which the runner's output mixes in)
    assert json.loads(skipped.stdout)["projections"] == [
        f.name for f in runner.failures() if f.position == bad
    ]

    runner.run_once()
    assert after in listed(api)
    assert api.client.get("/readyz").status_code == 200
    assert "fengqiao_projection_stopped_position{" not in api.client.get("/metrics").text
    status = json.loads(cli_runner.invoke(cli, ["projections", "status", "--json"]).stdout)
    cases = next(s for s in status if s["name"] == "cases")
    assert cases["stopped"] is None
    assert cases["skips"] == [
        {
            "position": bad,
            "reason": "issue 19: year-one time",
            "by": "ops",
            "at": cases["skips"][0]["at"],
        }
    ]
    runner.rebuild("cases")  # the skip is kept: a rebuild passes over the event too
    assert after in listed(api)


def test_a_nul_stored_by_an_old_release_stops_only_where_the_database_refuses_it(
    api: Api, monkeypatch
):
    app, runner = api.engine, api.http.state.services.runner
    bad = stored_hostile_event(app, monkeypatch, "nul")
    after = api.report()["id"]
    if not app.store.is_postgres:
        runner.run_once()  # SQLite keeps a NUL in text
        assert after in listed(api)
        return
    with pytest.raises(ProjectionFailed):
        runner.run_once()
    assert {f.position for f in runner.failures()} == {bad}
    runner.skip(bad, "issue 19: NUL in a title", "ops")
    runner.run_once()
    assert after in listed(api)


def test_a_failing_projection_does_not_hold_the_others_back(app):
    from tests.integration.test_projections_mechanism import EventCounts, counts

    for _ in range(3):
        report(app)
    head = app.head_position()
    runner = ProjectionRunner(app, [EventCounts(fail_at=2), *default_projections()])
    try:
        with pytest.raises(ProjectionFailed):
            runner.run_once(batch_size=1)
        positions = {s.name: s.position for s in runner.statuses()}
        assert positions.pop("event_counts") == 1  # the event before it applied
        assert set(positions.values()) == {head}
        assert sum(counts(runner.db).values()) == 1
    finally:
        runner.close()


# -- item 2: no run of a number's digits reaches an integrator --------------------------------------

FULL_WIDTH = str.maketrans("0123456789Xx", "０１２３４５６７８９Ｘｘ")
SPLITTERS = [
    " ",
    "-",
    ".",
    "\u200b",
    "\u200c",
    "\u200d",
    "\u2060",
    "\ufeff",
    "－",
    "　",
    "/",
    "·",
    "\u00a0",
]


@st.composite
def personal_numbers(draw) -> tuple[str, str]:
    """(the number as typed into text, its digits): mobiles with and without country codes
    and prefixes, 18- and 15-digit ID numbers, landlines; split, full-width, glued to letters."""
    digits = st.text("0123456789", min_size=1, max_size=1)
    kind = draw(st.sampled_from(["mobile", "id18", "id15", "landline"]))
    if kind == "mobile":
        number = "1" + draw(st.sampled_from("3456789")) + "".join(draw(digits) for _ in range(9))
        prefix = draw(
            st.sampled_from(["", "+86", "86", "0086", "Tel", "tel:", "手机", "电话：", "+86 "])
        )
    elif kind == "landline":
        area = "0" + "".join(draw(digits) for _ in range(draw(st.sampled_from([2, 3]))))
        number = area + "".join(draw(digits) for _ in range(draw(st.sampled_from([7, 8]))))
        prefix = draw(st.sampled_from(["", "座机", "Tel"]))
    else:
        body = "".join(draw(digits) for _ in range(17 if kind == "id18" else 15))
        number = body + (draw(st.sampled_from(["X", "x", "0", "7"])) if kind == "id18" else "")
        prefix = draw(st.sampled_from(["", "ID", "身份证", "身份证号:"]))
    split = draw(st.sampled_from(["none", "some", "every"]))
    typed = number[0]
    for ch in number[1:]:
        if split == "every" or (split == "some" and draw(st.booleans())):
            typed += draw(st.sampled_from(SPLITTERS))
        typed += ch
    if draw(st.booleans()):
        typed = typed.translate(FULL_WIDTH)
    suffix = draw(st.sampled_from(["", "abc", "号", "先生", "，请回电", " "]))
    return prefix + typed + suffix, "".join(ch for ch in number if ch.isdigit())


SEPARATOR = re.compile(f"[{SEPARATORS}]")


def digit_runs(text: str) -> list[str]:
    """Runs of digits once separators are removed and digits read as ASCII."""
    plain = "".join(
        str(unicodedata.digit(ch)) if ch.isdigit() else ch for ch in SEPARATOR.sub("", text)
    )
    return re.findall(r"\d+", plain)


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in strings(v)]
    return []


RUN = 7  # a leak is 7 or more consecutive digits of the number


TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+(?:Z|[+-]\d\d:\d\d)")


def assert_no_run(where: str, output: Any, digits: str) -> None:
    windows = {digits[i : i + RUN] for i in range(len(digits) - RUN + 1)}
    for text in strings(output):
        if TIMESTAMP.fullmatch(text):
            continue  # the engine's own times (their zeros are no one's number)
        for run in digit_runs(text):
            leaked = [w for w in windows if w in run]
            assert not leaked, (where, digits, text)


def integrator_outputs(api: Api, case_id: str, position: int) -> dict[str, Any]:
    """Every output an integrator reads about the case."""
    outputs: dict[str, Any] = {}
    for path in (
        f"/v1/cases/{case_id}",
        f"/v1/cases/{case_id}/history",
        f"/v1/cases/{case_id}/state?version=2",
        f"/v1/events?after={position - 1}",
        f"/open311/v2/requests/{case_id}.json",
    ):
        response = api.get(path, "feed")
        assert response.status_code == 200, (path, response.text)
        outputs[path] = response.json()
    response = api.get("/v1/cases", "feed", params={"region": HAITONG, "limit": 500})
    assert response.status_code == 200, response.text
    outputs["/v1/cases"] = [row for row in response.json()["items"] if case_id in json.dumps(row)]
    assert outputs["/v1/cases"], "the case is not in the list"
    html = api.get(f"/v1/cases/{case_id}/file", "feed")
    assert html.status_code == 200, html.text
    outputs["/v1/cases/{id}/file"] = html.text
    feed = Feed(api.engine)  # the SSE stream and the webhook sender read these pages
    outputs["feed.page"] = feed.page(position - 1, 10).events
    from uuid import UUID

    outputs["case file"] = case_file(api.engine, UUID(case_id), "integrator")
    return outputs


@FUZZ
@given(number=personal_numbers(), words=st.text("张三李四请回电话问题abc ", max_size=8))
def test_no_output_an_integrator_reads_holds_a_run_of_a_typed_number(api: Api, number, words):
    typed, digits = number
    text = f"{words}{typed}{words}"
    reported = api.post(
        "/v1/cases",
        {**PETITION, "title": text[:500], "description": f"描述 {text}\n第二行"},
        "wang",
    )
    assert reported.status_code == 201, reported.text
    case = reported.json()
    api.act(case["id"], "comment", {"text": f"回电 {text}"}, "wang")
    project(api)
    for where, output in integrator_outputs(api, case["id"], case["position"]).items():
        assert_no_run(where, output, digits)
    full = api.get(f"/v1/cases/{case['id']}/history", "root").json()  # admins see it as typed
    assert typed in json.dumps(full, ensure_ascii=False)


@pytest.fixture
def private_targets(monkeypatch):
    """Receivers on 127.0.0.1: set before the engine and the app read their settings."""
    monkeypatch.setenv("FENGQIAO_WEBHOOK_ALLOW_PRIVATE", "1")


@pytest.mark.usefixtures("private_targets")  # before ``app``: the sender reads app.settings
def test_webhook_deliveries_are_masked(app):
    from tests.e2e.test_webhooks import Receiver, sender, subscribe
    from tests.feed_support import make_api

    client = make_api(app)
    bodies: list[bytes] = []
    try:
        with Receiver() as receiver:
            original = receiver.handle

            def keep(headers, body):
                bodies.append(body)
                return original(headers, body)

            receiver.handle = keep
            subscribe(client, receiver)
            case_id = report(app, "petition", description="电话 +86 138-2222-3333").case_id
            act(
                app,
                case_id,
                "comment",
                "wang",
                text="身份证 4109 2819 8001 0112 8X，座机0393-1234567",
            )
            webhooks, _ = sender(app)
            for _ in range(50):
                webhooks.run_once()
                if len(bodies) >= app.head_position():
                    break
    finally:
        client.close()
    delivered = b"".join(bodies).decode()
    assert "138-2222-3333" not in delivered and "****" in delivered
    for digits in ("13822223333", "41092819800101128X", "03931234567"):
        assert_no_run(
            "webhook", json.loads("[" + ",".join(b.decode() for b in bodies) + "]"), digits
        )


# -- a hypothesis run over every command body with hostile values -----------------------------------

HOSTILE_TIMES = [
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "1999-12-31T23:59:59Z",
    "2000-01-01T00:00:00Z",
    "2026-09-28T09:00:00",
    "2126-01-01T00:00:00Z",
]
hostile_strings = st.one_of(
    st.sampled_from(
        [
            "a\u0000b",
            "\u0007",
            "x" * 30_000,
            "line\nbreak",
            "\r\n",
            "\ud800",
            "\u2028",
            "\u0085",
            "+8613822223333",
            "ID41092819800101128X",
            "0393-1234567",
            "zhao",
            "ht-sfs",
            "",
        ]
    ),
    st.text(max_size=20),
    personal_numbers().map(lambda n: n[0]),
)
hostile_values = st.one_of(
    hostile_strings,
    st.sampled_from(HOSTILE_TIMES),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.none(),
    st.lists(hostile_strings, max_size=60),
)


def post_json(api: Api, path: str, body: Any, who: str):
    """``body`` as ASCII JSON (a lone surrogate travels as ``\\ud800``, as a client may send it)."""
    return post_raw(api, path, json.dumps(body).encode(), who)


def hostile_body(model: type) -> st.SearchStrategy[dict[str, Any]]:
    fields = [*model.model_fields, "occurred_at"]
    return st.dictionaries(st.sampled_from(fields), hostile_values, max_size=len(fields))


@FUZZ
@given(
    report_body=hostile_body(ReportCase), action=st.sampled_from(sorted(ACTIONS)), data=st.data()
)
def test_hostile_command_bodies_never_answer_500_nor_wedge_a_projection(
    api: Api, report_body, action, data
):
    reported = post_json(api, "/v1/cases", {**DISPUTE, **report_body}, "wang")
    assert reported.status_code in (201, 403, 404, 409, 422), reported.text
    case_id = api.report({**(PETITION if action in ("reply", "return-visit") else DISPUTE)})["id"]
    body = data.draw(hostile_body(ACTIONS[action]))
    response = post_json(api, f"/v1/cases/{case_id}/{action}", body, "root")
    assert response.status_code < 500, response.text
    project(api)  # raises if a projection stopped on what was accepted
    assert case_id in listed(api)
    assert api.client.get("/readyz").status_code == 200


# -- item 13 ---------------------------------------------------------------------------------------


def test_an_unreadable_body_has_a_documented_problem_type(api: Api):
    from pathlib import Path

    documented = Path(__file__).resolve().parents[2].joinpath("docs", "api.md").read_text()
    path = "/v1/cases"
    for raw in (
        b"[" * 100_000 + b"]" * 100_000,
        b'{"title": "\xff\xfe"}',
        b'{"a": ' + b"9" * 5000 + b"}",
    ):
        problem = refused(post_raw(api, path, raw, "wang"), 400)
        assert problem["type"] == "/problems/malformed-body", problem
        assert f"`{problem['type']}`" in documented


def test_an_open311_title_cut_from_the_description_never_keeps_half_a_number(api: Api):
    description = (
        "停水" * 24 + "停 电话 13812345678 请回电"
    )  # the 60-character cut keeps 7 of its digits
    response = api.client.post(
        "/open311/v2/requests.json",
        headers=api.headers("wang"),
        data={
            "service_code": "petition.utilities",
            "description": description,
            "attribute[region]": GRID,
        },
    )
    assert response.status_code == 201, response.text
    request_id = response.json()[0]["service_request_id"]
    project(api)
    for path in (
        f"/v1/cases/{request_id}",
        "/v1/cases?region=" + HAITONG,
        f"/open311/v2/requests/{request_id}.json",
    ):
        assert_no_run(path, api.get(path, "feed").json(), "13812345678")
    assert api.get(f"/v1/cases/{request_id}", "root").json()["title"].endswith("电话")


FORMS = [
    "+8613822223333",
    "8613844445555",
    "Tel13866667777",
    "13899990000abc",
    "ID41092819800101128X",
    "身份证410928800101123",
    "138\u200b2345\u200b6789",
    "１３９－１２３４－５６７８",
    "0393-1234567",
]


def test_the_sse_stream_is_masked(app, monkeypatch):
    from tests.e2e.test_feed_sse import read_events
    from tests.feed_support import LiveServer, make_api

    client = make_api(app)
    try:
        with LiveServer(client.client.app) as url:
            reported = report(app, "petition", description=" / ".join(FORMS))
            act(app, reported.case_id, "comment", "wang", text="\n".join(FORMS))
            events = read_events(url, client.headers(), 2, after=reported.position - 1)
    finally:
        client.close()
    data = [event.get_data() for event in events]
    assert any("****" in json.dumps(d, ensure_ascii=False) for d in data)
    for form in FORMS:
        digits = "".join(str(unicodedata.digit(ch)) for ch in form if ch.isdigit())
        assert_no_run("SSE", data, digits)


@settings(max_examples=max(EXAMPLES * 20, 200), deadline=None, database=None)
@given(
    numbers=st.lists(personal_numbers(), min_size=1, max_size=4),
    joints=st.lists(
        st.sampled_from([" ", " / ", "、", "\n", "，", "-", "和", " or "]), min_size=4, max_size=4
    ),
)
def test_numbers_run_together_are_each_masked(numbers, joints):
    from domain.permissions import mask_numbers

    text = "".join(typed + joint for (typed, _), joint in zip(numbers, joints, strict=False))
    for _, digits in numbers:
        assert_no_run("mask_numbers", mask_numbers(text), digits)
