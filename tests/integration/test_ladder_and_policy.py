"""The region ladder import and the versioned policy (both stores for the engine parts)."""

from __future__ import annotations

import pytest

from domain.errors import DomainError
from domain.ladder import Rank, RegionTree, parse_region_file
from domain.policy import parse_policy
from tests.support import DEFAULT_POLICY, report

HEADER = "code,name,rank,profile\n"


def error_of(call):
    with pytest.raises(DomainError) as caught:
        call()
    return caught.value


def test_importing_the_same_file_twice_changes_nothing(app):
    from tests.support import COUNTY_CSV

    before = app.ladder().version
    assert app.import_regions(COUNTY_CSV, "admin") == 0
    assert app.ladder().version == before


def test_a_changed_row_is_recorded_as_a_change(app):
    assert app.import_regions(HEADER + "410928-002,徐镇,township,rural\n", "admin") == 1
    assert app.region("410928-002").name == "徐镇"
    types = [type(e).__name__ for e in app.events.get(app.ladder().id)]
    assert types[-1] == "RegionChanged"


@pytest.mark.parametrize(
    ("text", "row", "field"),
    [
        ("code,name\n", 1, "header"),
        (HEADER + "410928-001-009,新村,village,rural\n410928-001-009-01,,grid,rural\n", 3, "name"),
        (HEADER + "410928-001-009,新村,hamlet,rural\n", 2, "rank"),
        (HEADER + "410928-001-009,新村,village,suburban\n", 2, "profile"),
        (HEADER + "410928-777-001,孤村,village,rural\n", 2, "code"),  # parent unknown
        (HEADER + "410928-001-009,新村,county,rural\n", 2, "rank"),  # ranks above its parent
        (
            HEADER + "410928-001-009,新村,village,rural\n410928-001-009,新村,village,rural\n",
            3,
            "code",
        ),
        (HEADER + "410928 001,bad code,township,rural\n", 2, "code"),
        (HEADER + "410928-001-009,新村,village\n", 2, "row"),
    ],
)
def test_a_bad_row_rejects_the_whole_file_naming_the_row(app, text, row, field):
    good_first = (
        HEADER + "410928-001-010,好村,village,rural\n" + text.removeprefix(HEADER)
        if text.startswith(HEADER)
        else text
    )
    if text.startswith(HEADER):
        row += 1  # the good row comes first
    error = error_of(lambda: app.import_regions(good_first, "admin"))
    assert (error.code, error.details["row"], error.details["field"]) == ("validation", row, field)
    assert "410928-001-010" not in app.ladder().tree  # nothing of the file was imported


def test_the_tree_answers_ancestors_and_subtrees():
    from tests.support import COUNTY_CSV

    tree = RegionTree()
    for region in parse_region_file(COUNTY_CSV):
        tree.put(region)
    assert [r.code for r in tree.ancestors("410928-001-007-03")] == [
        "410928-001-007",
        "410928-001",
        "410928",
    ]
    assert tree.ancestor_at_rank("410928-001-007-03", Rank.TOWNSHIP).code == "410928-001"
    assert tree.next_rank_up("410928-001-007").code == "410928-001"
    assert tree.next_rank_up("410928") is None
    assert RegionTree.is_within("410928-001-007", "410928-001")
    assert not RegionTree.is_within("410928-0011", "410928-001")
    assert {r.code for r in tree.subtree("410928-009")} == {
        "410928-009",
        "410928-009-001",
        "410928-009-001-01",
    }


def test_loading_the_same_policy_twice_keeps_its_version(app):
    assert app.load_policy(DEFAULT_POLICY, "admin") == 1


def _policy_v2() -> str:
    return (
        DEFAULT_POLICY.replace('label = "2026 default', 'label = "v2 faster')
        .replace(
            'target_by_severity = { minor = "5wd", major = "15d", critical = "2h" }',
            'target_by_severity = { minor = "3wd", major = "10d", critical = "1h" }',
        )
        .replace('minor = "village"      # 小事不出村', 'minor = "grid"')
    )


def test_a_case_keeps_the_policy_it_was_reported_under(app):
    v1_case = report(app, "petition").case_id
    assert app.load_policy(_policy_v2(), "admin") == 2
    v2_case = report(app, "petition").case_id
    old, new = app.case(v1_case), app.case(v2_case)
    assert (old.policy_version, new.policy_version) == (1, 2)
    assert (old.ceiling, new.ceiling) == (1, 0)  # v2 lowered the rural minor ceiling
    reply = {c.name: c.target_by_severity for c in app.policy(old.policy_version).clocks}["reply"]
    assert reply["minor"] == "5wd"
    reply = {c.name: c.target_by_severity for c in app.policy(new.policy_version).clocks}["reply"]
    assert reply["minor"] == "3wd"
    # later events of the old case still carry the old version
    from tests.support import act

    act(app, v1_case, "comment", "wang", text="still v1")
    assert app.history(v1_case)[-1].event.policy_version == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda t: t.replace("[ceilings.urban]", "[ceilings.suburb]"), "ceilings"),
        (lambda t: t.replace('major = "township"     # 大事不出乡', 'major = "grid"'), "ceilings"),
        (lambda t: t.replace('target = "2h"', 'target = "2 fortnights"', 1), "clocks.0.target"),
        (lambda t: t.replace("warn = [0.5, 0.75]", "warn = [0.75, 0.5]"), "thresholds.warn"),
        (lambda t: t.replace('label = "', 'labl = "'), "label"),
        (lambda t: t + "\n[[clocks", "toml"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_field(app, change, field):
    error = error_of(lambda: app.load_policy(change(DEFAULT_POLICY), "admin"))
    assert error.code == "validation" and error.details["field"].startswith(field)
    assert app.policy_book().current_version == 1


def test_the_default_policy_holds_the_public_figures():
    policy = parse_policy(DEFAULT_POLICY)
    assert policy.ceilings_for("rural") == {"minor": 1, "major": 2, "critical": 3}
    assert policy.ceilings_for("urban") == {
        "minor": 0,
        "major": 1,
        "critical": 3,
    }  # 小事不出楼栋、大事不出社区
    clocks = {c.name: c for c in policy.clocks}
    assert clocks["reply"].target_by_category == {"utilities": "24h"}
    assert clocks["rank_handling"].target_by_rank == {
        "grid": "1wd",
        "village": "2wd",
        "township": "2wd",
        "county": "2wd",
    }
    assert clocks["mediation"].target == "30d" and clocks["signoff"].target == "10d"
    assert policy.thresholds.warn == [0.5, 0.75] and policy.thresholds.breach == 1.0
