"""The calendar is a fact, not a policy (issue 17): statutory years imported into the
calendar book reach every open clock, whatever its policy version, on both stores.

The 2027 file used here is a test fixture with made-up dates, not the State Council's
notice (tests/fixtures/calendar-2027-test.toml)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from domain.calendar import (
    CALENDAR_BOOK_ID,
    SHANGHAI,
    Statutory,
    WorkingCalendar,
    parse_statutory_year,
)
from domain.errors import ValidationFailed
from engine.case_clocks import clocks_of
from engine.time_source import SimulatedClock
from tests.e2e.test_cli import cli_in_process as cli
from tests.e2e.test_cli import out
from tests.support import COUNTY_CSV, DEFAULT_POLICY, report
from tests.test_api_support import GRID, PETITION, Api
from workflows.timer_index import from_key
from workflows.timers import TimerService

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "calendar-2027-test.toml"
FIXTURE_TEXT = FIXTURE.read_text(encoding="utf-8")


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(
        sh(2026, 12, 31, 10).astimezone(UTC)
    )  # Thursday, the day before 元旦 2027


def reply_due(app, case_id) -> datetime:
    return next(c.due_at for c in clocks_of(app, case_id) if c.name == "reply").astimezone(SHANGHAI)


def petition(app):
    return report(app, "petition", "minor", category="environment").case_id  # reply: 5 working days


# -- the domain ------------------------------------------------------------------------


def test_a_year_without_data_counts_new_year_as_a_working_day_until_imported():
    start = sh(2026, 12, 31, 10)
    assert WorkingCalendar().add_working_days(start, 5) == sh(
        2027, 1, 7, 10
    )  # Jan 1 counted: no 2027 data
    statutory = Statutory((parse_statutory_year(FIXTURE_TEXT),))
    assert WorkingCalendar(statutory=statutory).add_working_days(start, 5) == sh(2027, 1, 8, 10)
    assert not Statutory().covers(2027) and statutory.covers(2027) and statutory.covers(2026)
    assert WorkingCalendar(statutory=statutory).is_working_day(
        datetime(2027, 2, 13).date()
    )  # 调休 Saturday
    assert not WorkingCalendar(statutory=statutory).is_working_day(
        datetime(2027, 3, 6).date()
    )  # plain Saturday


@pytest.mark.parametrize(
    "text, field",
    [
        (FIXTURE_TEXT.replace("year = 2027\n", ""), "year"),
        (FIXTURE_TEXT + '\n[hours]\nwindows = [["09:00", "17:00"]]\n', "hours"),
        (FIXTURE_TEXT.replace("2027-02-13", "2027-07-03"), None),  # in the year: fine
        (FIXTURE_TEXT.replace("2027-02-13", "2028-07-03"), "outside 2027"),
    ],
)
def test_a_statutory_year_file_names_its_year_and_holds_only_that_year(text, field):
    if field is None:
        assert parse_statutory_year(text).year == 2027
        return
    with pytest.raises(ValueError, match=field):
        parse_statutory_year(text)


# -- the engine, both stores ---------------------------------------------------------------


def test_an_import_moves_every_open_clock_whatever_its_policy_version(app):
    old = petition(app)
    app.load_policy(DEFAULT_POLICY.replace('label = "', 'label = "v2 '), "admin")
    new = petition(app)
    assert (app.case(old).policy_version, app.case(new).policy_version) == (1, 2)
    assert (
        reply_due(app, old) == reply_due(app, new) == sh(2027, 1, 7, 10)
    )  # 元旦 counted as working

    assert app.import_calendar(FIXTURE_TEXT, "zhou", source="cn-2027.toml") == {
        "year": 2027,
        "changed": True,
        "version": 2,
    }
    assert reply_due(app, old) == reply_due(app, new) == sh(2027, 1, 8, 10)

    imported = [
        e for e in app.events.get(CALENDAR_BOOK_ID) if type(e).__name__ == "CalendarImported"
    ]
    assert len(imported) == 1
    assert (imported[0].year, imported[0].actor_id, imported[0].source) == (
        2027,
        "zhou",
        "cn-2027.toml",
    )
    assert "2027-01-01" in imported[0].holidays and imported[0].workdays == ["2027-02-13"]
    assert (
        app.import_calendar(FIXTURE_TEXT, "zhou")["changed"] is False
    )  # the same file again: nothing
    assert len(list(app.events.get(CALENDAR_BOOK_ID))) == 2


def test_a_policys_inline_overrides_stay_on_top_of_the_imported_year(app):
    overrides = '[calendar]\nname = "cn-statutory"\noverrides = """\\n[[holiday]]\\ndate = 2027-01-04\\n"""\n'
    app.load_policy(
        DEFAULT_POLICY.replace('[calendar]\nname = "cn-statutory"', overrides.strip()), "admin"
    )
    case_id = petition(app)
    app.import_calendar(FIXTURE_TEXT, "zhou")
    assert reply_due(app, case_id) == sh(
        2027, 1, 11, 10
    )  # Jan 1-3 (statutory) and Jan 4 (policy) off


def test_a_bad_file_is_refused_naming_the_field(app):
    with pytest.raises(ValidationFailed) as refused:
        app.import_calendar(FIXTURE_TEXT.replace("year = 2027\n", ""), "zhou")
    assert refused.value.details["field"] == "calendar" and "year" in refused.value.message
    assert list(app.events.get(CALENDAR_BOOK_ID)) == []


def test_the_timer_index_is_recomputed_on_import(app, clock):
    timers = TimerService(app)
    try:
        case_id = petition(app)
        before = rows(timers, case_id)
        assert before["reply"]["missing_year"] == 2027
        assert from_key(before["reply"]["due_at"]).astimezone(SHANGHAI) == sh(
            2027, 1, 4, 15
        )  # warn at 50%
        app.import_calendar(FIXTURE_TEXT, "zhou")
        timers.runner.run_once()
        after = rows(timers, case_id)
        assert after["reply"]["missing_year"] is None
        assert from_key(after["reply"]["due_at"]).astimezone(SHANGHAI) == sh(2027, 1, 5, 15)
        everything = "SELECT case_id, clock, leg, threshold, due_at, missing_year FROM timer_index ORDER BY 1, 2"
        incremental = timers.db.query(everything)
        timers.runner.rebuild("timer_index")
        assert timers.db.query(everything) == incremental  # a rebuild equals the incremental index
        clock.set(sh(2027, 1, 4, 16).astimezone(UTC))  # past the old 50% mark, before the new one
        assert [f for f in timers.tick() if f.clock == "reply"] == []
    finally:
        timers.close()


def rows(timers: TimerService, case_id) -> dict[str, dict]:
    timers.runner.run_once()
    found = timers.db.query(
        "SELECT clock, due_at, missing_year FROM timer_index WHERE case_id = ?", (str(case_id),)
    )
    return {row["clock"]: row for row in found}


# -- HTTP and CLI ---------------------------------------------------------------------------


def test_get_calendar_and_the_readyz_warning(app, request: pytest.FixtureRequest):
    http: Api = request.getfixturevalue("api")
    years = {row["year"]: row for row in http.get("/v1/calendar", "wang").json()["years"]}
    assert years[2026]["source"] == "chinesecalendar 1.11.0" and 2027 not in years
    assert http.client.get("/v1/calendar").status_code == 401

    http.report({**PETITION, "category": "environment", "region": GRID})
    timers = TimerService(http.engine)
    try:
        timers.runner.run_once()
        warning = http.client.get("/readyz").json()["calendar"]
        assert (
            warning["years"] == [2027]
            and warning["clocks"] == 1
            and "calendar import" in warning["warning"]
        )
        http.engine.import_calendar(FIXTURE_TEXT, "root", source="cn-2027.toml")
        assert (
            http.client.get("/readyz").json()["calendar"] == "ok"
        )  # covered now, even before re-indexing
        timers.runner.run_once()
        assert http.client.get("/readyz").json()["calendar"] == "ok"
    finally:
        timers.close()
    years = {row["year"]: row for row in http.get("/v1/calendar", "wang").json()["years"]}
    assert (years[2027]["source"], years[2027]["imported_by"], years[2027]["holidays"]) == (
        "import",
        "root",
        10,
    )
    assert years[2027]["imported_at"] and years[2027]["replaces"] is None


def test_calendar_import_and_show_from_the_shell(store, tmp_path):
    cli(store, "init")
    shown = out(cli(store, "calendar", "show"))["years"]
    assert [r["year"] for r in shown] == list(range(2004, 2027))
    imported = out(cli(store, "calendar", "import", str(FIXTURE)))
    assert (imported["year"], imported["changed"]) == (2027, True)
    assert out(cli(store, "calendar", "import", str(FIXTURE)))["changed"] is False
    last = out(cli(store, "calendar", "show"))["years"][-1]
    assert (last["year"], last["source"], last["imported_by"]) == (2027, "import", "cli:admin")
    regions = tmp_path / "regions.csv"
    regions.write_text(COUNTY_CSV, encoding="utf-8")
    cli(store, "regions", "import", str(regions))
    cli(store, "people", "add", "wang", "--role", "reporter", "--region", "410928-001-007-03")
    forbidden = cli(store, "calendar", "import", str(FIXTURE), "--as", "wang", ok=False)
    assert json.loads(forbidden.stderr.strip().splitlines()[-1])["error"]["code"] == "forbidden"
    bad = tmp_path / "bad.toml"
    bad.write_text(FIXTURE_TEXT.replace("year = 2027\n", ""), encoding="utf-8")
    refused = cli(store, "calendar", "import", str(bad), ok=False)
    assert refused.returncode == 2
    assert json.loads(refused.stderr.strip().splitlines()[-1])["error"]["field"] == "calendar"
