"""并案 and 重复件 (issue 24), both stores: a linked duplicate's clocks stop and it is
counted once; a second petition by the same party on a closed matter is a repeat."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.errors import NotPermitted, ValidationFailed
from projections.cases import CasesProjection
from tests.integration import test_projections_read_models as read_models
from tests.integration.test_projections_rollups import rows_of
from tests.support import act, report

GRID = "410928-001-007-03"


def assert_refill_equal(runner) -> None:
    """The roll-ups kept batch by batch equal those recomputed from the case rows."""
    db, incremental = runner.db, rows_of(runner.db)
    projection = CasesProjection()
    projection.generation = runner.projections["cases"].generation
    with db.transaction() as tx:
        projection.refill_rollups(tx, db.is_postgres)
    assert rows_of(db) == incremental


runner, models = read_models.runner, read_models.models  # the same fixtures
PARTY = {"name": "张桂英", "role": "petitioner", "phone": "13812345678"}


def open_clocks(app, case_id) -> list[str]:
    clocks = app.case_view(case_id)["clocks"]
    return [c["name"] for c in clocks if c["state"] in ("running", "paused")]


def test_a_linked_duplicate_stops_its_clocks_and_is_counted_once(app, runner, models):
    primary = report(app, "petition", title="停水三天").case_id
    duplicate = report(app, "petition", title="停水三天了").case_id
    act(app, duplicate, "assign", "li", assignee="zhao")
    assert open_clocks(app, duplicate)  # reply and sign-for run
    act(app, duplicate, "link-duplicate", "li", primary=str(primary), reason="同一处停水")
    assert open_clocks(app, duplicate) == []
    assert open_clocks(app, primary)  # the primary carries on
    assert app.case_view(duplicate)["duplicate_of"] == str(primary)
    assert app.case_view(primary)["duplicates"] == [str(duplicate)]
    assert [e.type for e in app.history(primary)][-1] == "DuplicateAttached"
    assert [e.type for e in app.history(duplicate)][-1] == "LinkedAsDuplicate"
    runner.run_once()
    stats = models.region_stats(GRID)
    assert (stats["received"], stats["duplicates"], stats["petitions"]["received"]) == (1, 1, 1)
    assert models.sla_board(GRID)["open"] == 1
    row = models.get_case(duplicate)
    assert row["duplicate_of"] == str(primary) and not row["overdue"]
    assert_refill_equal(runner)
    act(app, duplicate, "unlink-duplicate", "li", reason="核实后不是同一处")
    assert "reply" in open_clocks(app, duplicate)  # started afresh
    assert app.case_view(primary)["duplicates"] == []
    runner.run_once()
    stats = models.region_stats(GRID)
    assert (stats["received"], stats["duplicates"]) == (2, 0)


def test_linking_is_checked(app):
    primary = report(app, "petition").case_id
    duplicate = report(app, "petition").case_id
    with pytest.raises(ValidationFailed):
        act(app, duplicate, "link-duplicate", "li", primary=str(duplicate), reason="x")
    with pytest.raises(ValidationFailed):
        act(
            app,
            duplicate,
            "link-duplicate",
            "li",
            primary="00000000-0000-0000-0000-000000000000",
            reason="x",
        )
    elsewhere = report(app, "petition", region="410928-002-001-01").case_id
    with pytest.raises(NotPermitted):  # the village supervisor's region does not hold it
        act(app, duplicate, "link-duplicate", "li", primary=str(elsewhere), reason="x")
    act(app, duplicate, "link-duplicate", "li", primary=str(primary), reason="同一事项")
    with pytest.raises(ValidationFailed):  # no chains: a duplicate is no primary
        act(
            app,
            report(app, "petition").case_id,
            "link-duplicate",
            "li",
            primary=str(duplicate),
            reason="x",
        )


def closed_petition(app, **extra):
    case_id = report(app, "petition", parties=[PARTY], **extra).case_id
    act(app, case_id, "assign", "li", assignee="zhao")
    act(app, case_id, "accept", "zhao")
    act(app, case_id, "reply", "zhao", text="已维修")
    act(app, case_id, "resolve", "zhao", resolution="已恢复供水")
    act(app, case_id, "return-visit", "zhao", satisfaction="satisfied")
    act(app, case_id, "close", "li")
    return case_id


def test_a_second_petition_by_the_same_party_is_a_repeat(app, runner, models, clock):
    runner.ensure()
    app.earlier_cases = models.earlier_cases
    first = closed_petition(app, title="停水")
    runner.run_once()
    clock.advance(timedelta(days=3))
    again = {**PARTY, "phone": "+86 138 1234 5678"}
    second = report(app, "petition", parties=[again], title="又停水了").case_id
    other_category = report(app, "petition", category="traffic", parties=[PARTY]).case_id
    stranger = report(app, "petition", title="停水").case_id
    assert app.case_view(second)["repeat_of"] == [str(first)]
    assert app.case_view(other_category)["repeat_of"] == []
    assert app.case_view(stranger)["repeat_of"] == []
    assert [e.event.repeat_of for e in app.history(second)][:1] == [[str(first)]]  # on the event
    runner.run_once()
    assert models.get_case(second)["repeat"] is True
    stats = models.region_stats(GRID)
    assert (stats["repeats"], stats["petitions"]["received"]) == (1, 4)
    assert stats["repeat_rate"] == 0.25
    assert_refill_equal(runner)
