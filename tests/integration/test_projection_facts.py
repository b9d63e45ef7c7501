"""The cases projection reads facts, never re-derives rules (issue 17 items 1 and 3, issue 18).

* Micro-grids (微网格, a grid under a grid): a case counts under the village and the
  township its region has *by rank* in the region tree (``RegionTree.ancestor_at``),
  never under the region two code segments up; incrementally, over any period and
  after a rebuild alike; ``GET /v1/regions/{code}/compliance`` serves the table.
* One rule for "on time" (``domain.clocks.on_time``): the clock view, the SLA board and
  三率 (``responded_in_time``) agree for any order of occurred and recorded times; a
  recorded breach stays; ``occurred_at`` is bounded (the report, 2000-01-01,
  ``max_backdate``).
* A dispute that ends referred (``Resolved.referred``) counts apart, never as resolved.

Every test runs on SQLite and PostgreSQL (the ``app`` fixture).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.cases import Stamp
from domain.clocks import ClockStatus
from domain.errors import DomainError, ValidationFailed
from domain.ladder import parent_code
from engine.case_clocks import clocks_of
from projections.cases import CasesProjection
from projections.queries import ReadModels
from projections.runner import ProjectionRunner
from tests.integration.test_projections_properties import ACTIONS, LIKELY, PEOPLE
from tests.integration.test_projections_rollups import reference_ranking
from tests.support import COUNTY_CSV, act, actor, envelope, report
from tests.test_api_support import Api

MICRO = "410928-001-007-03-01"  # 王庄村第三网格 微网格一
MICRO_CSV = f"""code,name,rank,profile
{MICRO},微网格一,grid,rural
{MICRO}-02,微网格一之二,grid,rural
"""
MEDIATE = {"outcome": "agreed", "summary": "调解", "agreement": "协议"}


def projected(app) -> ProjectionRunner:
    runner = ProjectionRunner(app, [CasesProjection()])
    runner.run_once()
    return runner


def answers(models: ReadModels, periods: list[tuple[Any, Any]]) -> list[Any]:
    return [
        models.compliance(region, start, end, level=level)
        for region, level in (
            ("410928", "township"),
            ("410928", "village"),
            ("410928-001", "village"),
        )
        for start, end in periods
    ]


# -- 1. micro-grids ------------------------------------------------------------------------


def test_a_micro_grid_case_counts_under_its_village_and_township(app):
    app.import_regions(MICRO_CSV, "admin")
    for region in (MICRO, f"{MICRO}-02"):
        case = report(app, "dispute", "minor", region=region).case_id
        act(app, case, "assign", "li", assignee="zhao")
        act(app, case, "accept", "zhao")
        act(app, case, "mediate", "zhao", **MEDIATE)
        act(app, case, "resolve", "zhao", resolution="村调委会化解")
    runner = projected(app)
    try:
        models = ReadModels(runner.db)
        rows = [models.get_case(r["case_id"]) for r in models.list_cases(region="410928")[0]]
        assert {(r["village"], r["township"]) for r in rows} == {("410928-001-007", "410928-001")}
        villages = models.compliance("410928-001", level="village")
        assert [(v["region"], v["resolved"], v["resolved_within_ceiling"]) for v in villages] == [
            ("410928-001-007", 2, 2)
        ]
        assert [t["region"] for t in models.compliance("410928", level="township")] == [
            "410928-001"
        ]
        incremental = answers(models, [(None, None)])
        runner.rebuild("cases")
        assert answers(ReadModels(runner.db), [(None, None)]) == incremental
    finally:
        runner.close()


def test_compliance_per_child_region_over_http(api: Api):
    api.engine.import_regions(MICRO_CSV, "admin")
    case = api.report(
        {
            "kind": "dispute",
            "category": "neighbours",
            "severity": "minor",
            "region": MICRO,
            "title": "微网格纠纷",
        }
    )["id"]
    api.act(case, "assign", {"assignee": "zhao"}, "li")
    api.act(case, "accept", None, "zhao")
    api.act(case, "mediate", MEDIATE, "zhao")
    api.act(case, "resolve", {"resolution": "化解"}, "zhao")
    api.http.state.services.runner.run_once()
    township = api.get("/v1/regions/410928-001/compliance", "zhou")
    assert township.status_code == 200, township.text
    body = township.json()
    assert body["level"] == "village" and [r["region"] for r in body["rows"]] == ["410928-001-007"]
    assert body["rows"][0]["resolved_within_ceiling"] == 1 and body["rows"][0]["referred"] == 0
    county = api.get("/v1/regions/410928/compliance?from=2026-09-01&to=2026-09-30", "wu").json()
    assert county["level"] == "township" and [r["region"] for r in county["rows"]] == ["410928-001"]
    assert api.get("/v1/regions/410928-001-007/compliance", "zhou").json()["field"] == "level"
    assert api.get("/v1/regions/410928-001/compliance?level=township", "zhou").status_code == 422
    assert api.get("/v1/regions/410928-001/compliance", "wang").status_code == 403


_trees = count(1)
plans = st.lists(
    st.tuples(
        st.sampled_from(["region", "report", "act", "act", "act"]), st.integers(0, 2**32 - 1)
    ),
    min_size=8,
    max_size=30,
)


def _by_rank(ranks: dict[str, int], code: str, rank: int) -> str | None:
    """The test's own walk: up the parents until one has ``rank``."""
    current: str | None = code
    while current is not None:
        if ranks.get(current) == rank:
            return current
        current = parent_code(current)
    return None


def _grow(app, ranks: dict[str, int], r: random.Random, tree: int) -> None:
    """A micro-grid under a grid or micro-grid, or a new village with a grid."""
    if r.random() < 0.7:
        parent = r.choice(sorted(c for c, rank in ranks.items() if rank == 0))
        code, rank = f"{parent}-m{tree}x{r.randint(0, 99)}", "grid"
    else:
        parent = r.choice(["410928-001", "410928-002"])
        code, rank = f"{parent}-v{tree}x{r.randint(0, 99)}", "village"
    if code in ranks:
        return
    app.import_regions(f"code,name,rank,profile\n{code},区域{code},{rank},rural\n", "admin")
    ranks[code] = 0 if rank == "grid" else 1


def _act(app, cases: list, r: random.Random) -> None:
    case = app.case(r.choice(cases))
    name = r.choice(sorted(ACTIONS) if r.random() < 0.2 else LIKELY[str(case.status)])
    by = case.assignee if case.assignee and r.random() < 0.8 else r.choice(PEOPLE)
    act(app, case.id, name, by, **ACTIONS[name](r))


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=plans, seed=st.integers(0, 10_000))
def test_compliance_by_rank_over_random_trees_equals_incremental_periods_and_rebuild(
    app, clock, plan, seed
):
    ranks = {
        line.split(",")[0]: {"grid": 0, "village": 1, "township": 2, "county": 3}[
            line.split(",")[2]
        ]
        for line in COUNTY_CSV.strip().splitlines()[1:]
    }
    ranks |= {code: int(region.rank) for code, region in app.ladder().tree.regions.items()}
    tree, cases, start = next(_trees), [], clock.now()
    for step, step_seed in plan:
        r = random.Random(step_seed)
        clock.advance(timedelta(minutes=r.randint(1, 900)))
        try:
            if step == "region":
                _grow(app, ranks, r, tree)
            elif step == "report" or not cases:
                region = r.choice(
                    sorted(
                        c for c, rank in ranks.items() if rank <= 1 and c.startswith("410928-00")
                    )
                )
                cases.append(
                    report(app, r.choice(["dispute", "petition"]), "minor", region=region).case_id
                )
            else:
                _act(app, cases, r)
        except DomainError:
            pass
    r = random.Random(seed)
    span = (clock.now() - start).total_seconds()
    periods = [(None, None)] + [
        (a, b)
        for a, b in (
            sorted(start + timedelta(seconds=r.uniform(-3600, span + 3600)) for _ in range(2))
            for _ in range(3)
        )
    ]
    runner = ProjectionRunner(app, [CasesProjection()])
    try:
        for _ in range(200):
            if not runner.run_once(batch_size=r.randint(1, 7)):
                break
        models = ReadModels(runner.db)
        for row in runner.db.query("SELECT origin_region, village, township FROM cases"):
            assert row["village"] == _by_rank(ranks, row["origin_region"], 1), row
            assert row["township"] == _by_rank(ranks, row["origin_region"], 2), row
        incremental = answers(models, periods)
        for (region, level), (low, high) in zip(
            [
                (g, lv)
                for g, lv in (
                    ("410928", "township"),
                    ("410928", "village"),
                    ("410928-001", "village"),
                )
                for _ in periods
            ],
            periods * 3,
            strict=True,
        ):
            assert models.compliance(region, low, high, level=level) == reference_ranking(
                runner.db, region, low, high, level
            ), (region, level, low, high)
        runner.rebuild("cases")
        assert answers(ReadModels(runner.db), periods) == incremental
    finally:
        runner.close()


# -- 2. one rule for "on time" ---------------------------------------------------------------

BEIJING_0900 = datetime(
    2026, 9, 28, 1, 0, tzinfo=UTC
)  # the clock fixture's start: 09:00 in Beijing


def _sign_for(app, case_id) -> ClockStatus:
    return next(s.state for s in clocks_of(app, case_id) if s.name == "sign_for")


def _dispatched_petition(app, clock):
    case = report(app, "petition", "minor").case_id
    act(app, case, "assign", "li", assignee="zhao")  # 09:00: sign_for due 11:00 (2h)
    return case


def _accept_offline(app, clock, case, occurred: datetime, synced: datetime) -> None:
    clock.advance(synced - clock.now())
    app.do(case, "accept", {}, envelope("zhao", app, occurred_at=occurred))


def _facts(app, case) -> tuple[ClockStatus, bool, int]:
    runner = projected(app)
    try:
        models = ReadModels(runner.db)
        row = models.get_case(case)
        responded = models.region_stats("410928-001-007-03")["petitions"]["responded"]
        return _sign_for(app, case), row["responded_in_time"], responded
    finally:
        runner.close()


def _breach(app, clock, case, clock_name: str, due: datetime) -> None:
    aggregate = app.case(case)
    stamp = Stamp(
        actor=actor("wu", app), command_id=f"timer-{case}-{clock_name}", recorded_at=clock.now()
    )
    aggregate.breach_clock(stamp, clock=clock_name, due_at=due)
    app.save(aggregate)


def test_an_offline_sign_for_synced_within_the_grace_is_on_time_on_the_clock_and_in_the_rates(
    app, clock
):
    case = _dispatched_petition(app, clock)
    clock.advance(timedelta(hours=2, minutes=10))  # 11:10: someone comments, after the due time
    act(app, case, "comment", "li", text="催办")
    _accept_offline(
        app,
        clock,
        case,
        BEIJING_0900 + timedelta(hours=1, minutes=40),  # signed for at 10:40
        BEIJING_0900 + timedelta(hours=3, minutes=30),
    )  # synced at 12:30
    assert _facts(app, case) == (ClockStatus.MET, True, 1)


def test_a_sign_for_synced_after_the_grace_is_late_everywhere(app, clock):
    case = _dispatched_petition(app, clock)
    _accept_offline(
        app,
        clock,
        case,
        BEIJING_0900 + timedelta(hours=1, minutes=40),
        BEIJING_0900 + timedelta(hours=6, minutes=1),
    )  # 4h01 after the 11:00 due time
    assert _facts(app, case) == (ClockStatus.BREACHED, False, 0)


def test_a_back_dated_act_does_not_undo_a_recorded_breach(app, clock):
    case = _dispatched_petition(app, clock)
    due = BEIJING_0900 + timedelta(hours=2)
    clock.advance(due - clock.now())
    _breach(app, clock, case, "sign_for", due)  # the timer records the breach at 11:00
    _accept_offline(app, clock, case, due - timedelta(minutes=10), due + timedelta(minutes=30))
    assert _facts(app, case) == (ClockStatus.BREACHED, False, 0)


def test_a_resolve_back_dated_before_a_recorded_breach_leaves_the_clock_breached(app, clock):
    case = report(app, "petition", "critical").case_id  # reply: 2h from the report (09:00 → 11:00)
    act(app, case, "assign", "li", assignee="zhao")
    act(app, case, "accept", "zhao")
    act(app, case, "reply", "zhao", text="已处理")
    due = BEIJING_0900 + timedelta(hours=2)
    clock.advance(due - clock.now())
    _breach(app, clock, case, "reply", due)
    clock.advance(timedelta(minutes=30))
    app.do(
        case,
        "resolve",
        {"resolution": "办结"},
        envelope("zhao", app, occurred_at=due - timedelta(minutes=10)),
    )
    reply = next(s for s in clocks_of(app, case) if s.name == "reply")
    assert reply.state == ClockStatus.BREACHED


def test_a_clock_started_by_a_back_dated_act_starts_when_it_happened(app, clock):
    case = report(app, "petition", "minor").case_id
    clock.advance(timedelta(minutes=30))
    act(app, case, "comment", "li", text="已知悉")  # 09:30, recorded before the offline dispatch
    clock.advance(timedelta(minutes=20))
    occurred = BEIJING_0900 + timedelta(minutes=20)  # dispatched at 09:20, synced at 09:50
    app.do(case, "assign", {"assignee": "zhao"}, envelope("li", app, occurred_at=occurred))
    sign_for = next(s for s in clocks_of(app, case) if s.name == "sign_for")
    assert sign_for.started_at == occurred and sign_for.due_at == occurred + timedelta(hours=2)
    runner = projected(app)
    try:
        row = ReadModels(runner.db).get_case(case)
        assert row["dispatched_at"].startswith("2026-09-28T01:20") and row[
            "sign_for_due_at"
        ].startswith("2026-09-28T03:20")
    finally:
        runner.close()


@pytest.mark.parametrize(
    "occurred, why",
    [
        (BEIJING_0900 - timedelta(days=30), "more than 7 days, 0:00:00 before it is recorded"),
        (BEIJING_0900 - timedelta(minutes=1), "earlier than the case's report"),
    ],
)
def test_an_act_before_the_report_or_too_far_back_is_refused(app, clock, occurred, why):
    case = report(app, "dispute", "minor").case_id
    with pytest.raises(ValidationFailed) as refused:
        app.do(case, "comment", {"text": "补录"}, envelope("li", app, occurred_at=occurred))
    assert refused.value.details["field"] == "occurred_at" and why in refused.value.message


@pytest.mark.parametrize(
    "occurred", [datetime(1999, 12, 31, tzinfo=UTC), BEIJING_0900 - timedelta(days=8)]
)
def test_a_report_before_2000_or_beyond_max_backdate_is_refused(app, clock, occurred):
    from domain.commands import ReportCase

    body = ReportCase(
        kind="dispute",
        category="neighbours",
        severity="minor",
        region="410928-001-007-03",
        title="补录",
    )
    stamped = envelope("wang", app).model_copy(
        update={"occurred_at": occurred}
    )  # past the HTTP/CLI bounds:
    with pytest.raises(
        ValidationFailed
    ) as refused:  # the domain's own rule (Stamp.when) refuses it too
        app.report(body, stamped)
    assert refused.value.details["field"] == "occurred_at"


def test_an_occurred_at_a_month_back_is_a_422_naming_the_field(api: Api):
    case = api.report()["id"]
    late = (api.engine.clock.now() - timedelta(days=30)).isoformat()
    refused = api.post(f"/v1/cases/{case}/comment", {"text": "补录", "occurred_at": late}, "li")
    assert refused.status_code == 422 and refused.json()["field"] == "occurred_at"


timings = st.tuples(
    st.integers(-110, 180),  # the sign-for happened this many minutes after the 11:00 due time
    st.integers(0, 420),  # and was recorded this many minutes after it happened
    st.one_of(
        st.none(), st.integers(0, 300)
    ),  # the timer records the breach this late (None: never)
    st.booleans(),  # someone comments just after the due time (the fold's clamp)
    st.one_of(
        st.none(), st.tuples(st.integers(5, 100), st.integers(1, 90))
    ),  # 挂起: from, for (minutes)
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(timing=timings)
def test_clock_view_board_and_rates_agree_for_any_occurred_and_recorded_order(app, clock, timing):
    """The clock view, the SLA board (overdue, breached by clock), 三率 (responded) and
    compliance agree on one case's sign-for, for any order of occurred and recorded times,
    with or without a suspension (挂起) before it (it moves the due time everywhere)."""
    after_due, recorded_after, timer_lag, comment, pause = timing
    start = clock.now()
    case = report(app, "petition", "minor").case_id
    act(app, case, "assign", "li", assignee="zhao")
    due = start + timedelta(hours=2)
    occurred = due + timedelta(minutes=after_due)
    recorded = max(occurred + timedelta(minutes=recorded_after), start + timedelta(minutes=1))
    acts: list[tuple[datetime, str]] = [(recorded, "accept")]
    if timer_lag is not None and due + timedelta(minutes=timer_lag) < recorded:
        acts.append((due + timedelta(minutes=timer_lag), "breach"))
    if comment and due + timedelta(minutes=1) < recorded:
        acts.append((due + timedelta(minutes=1), "comment"))
    if pause is not None and start + timedelta(minutes=sum(pause)) < min(recorded, occurred):
        acts += [
            (start + timedelta(minutes=pause[0]), "suspend"),
            (start + timedelta(minutes=sum(pause)), "resume"),
        ]
    breach_first = any(what == "breach" for _, what in acts)
    for at, what in sorted(acts):
        clock.advance(at - clock.now())
        if what == "breach":
            _breach(app, clock, case, "sign_for", due)
        elif what == "comment":
            act(app, case, "comment", "li", text="催办")
        elif what in ("suspend", "resume"):
            act(app, case, what, "li", **({"reason": "当事人外出"} if what == "suspend" else {}))
        else:
            app.do(case, "accept", {}, envelope("zhao", app, occurred_at=occurred))
    states = clocks_of(app, case)
    sign_for = next(s for s in states if s.name == "sign_for")
    paused = sum(pause) - pause[0] if any(w == "suspend" for _, w in acts) else 0
    assert sign_for.due_at == due + timedelta(minutes=paused)  # a suspension moves the due time
    expected = (
        not breach_first
        and occurred <= sign_for.due_at
        and recorded <= sign_for.due_at + timedelta(hours=4)
    )
    runner = projected(app)
    try:
        models = ReadModels(runner.db)
        row = models.get_case(case)
        board = models.sla_board("410928-001")
        assert sign_for.state == (ClockStatus.MET if expected else ClockStatus.BREACHED)
        assert row["responded_in_time"] is expected
        assert datetime.fromisoformat(row["sign_for_due_at"]) == sign_for.due_at
        assert (
            "sign_for" in row["breached"]
        ) is breach_first  # what the board counts: a recorded breach
        assert board["breached_by_clock"].get("sign_for", 0) == int(breach_first)
        assert board["overdue"] == int(any(s.overdue for s in states)) == int(row["overdue"])
        period = (start - timedelta(minutes=1), start + timedelta(minutes=1))  # this case alone
        rates = models.region_stats("410928-001-007-03", *period)
        assert (rates["petitions"]["dispatched"], rates["petitions"]["responded"]) == (
            1,
            int(expected),
        )  # 三率
        [village] = models.compliance("410928-001", *period, level="village")
        assert (village["received"], village["resolved"], village["referred"]) == (1, 0, 0)
    finally:
        runner.close()
    _finish(app, case)  # the next example's board counts its own case alone
    clock.advance(timedelta(days=1))


def _finish(app, case) -> None:
    """Resolve and close the case, so the next example's SLA board counts its own case alone."""
    act(app, case, "reply", "zhao", text="已处理")
    act(app, case, "resolve", "zhao", resolution="办结")
    act(app, case, "return-visit", "li", satisfaction="satisfied", note="满意")
    act(app, case, "close", "li")


# -- 3. referred disputes ----------------------------------------------------------------------


class ReferringCases(CasesProjection):
    """The cases projection, reading the listed cases' ``Resolved`` as ended referred (the
    field ``Case.Resolved.referred`` the dispute rules record)."""

    def __init__(self, referred: set[str]) -> None:
        super().__init__()
        self.referred = referred

    def apply_batch(self, tx, events) -> None:
        for _, event in events:
            if type(event).__name__ == "Resolved" and str(event.originator_id) in self.referred:
                event.__dict__["referred"] = True
        super().apply_batch(tx, events)


def test_a_referred_dispute_counts_apart_never_as_resolved_within_the_ceiling(app):
    cases = []
    for outcome in ("agreed", "failed"):
        case = report(app, "dispute", "minor").case_id
        act(app, case, "assign", "li", assignee="zhao")
        act(app, case, "accept", "zhao")
        act(app, case, "mediate", "zhao", **{**MEDIATE, "outcome": outcome})
        act(
            app,
            case,
            "resolve",
            "zhao",
            resolution="化解" if outcome == "agreed" else "告知仲裁、行政、诉讼途径",
        )
        cases.append(str(case))
    runner = ProjectionRunner(app, [ReferringCases({cases[1]})])
    try:
        runner.run_once(batch_size=3)
        models = ReadModels(runner.db)
        stats = models.region_stats("410928-001")
        assert (stats["resolved"], stats["resolved_within_ceiling"], stats["referred"]) == (1, 1, 1)
        assert stats["resolved_at_rank"]["village"] == 1 and stats["within_ceiling_rate"] == 1.0
        [village] = models.compliance("410928-001", level="village")
        assert (village["resolved"], village["resolved_within_ceiling"], village["referred"]) == (
            1,
            1,
            1,
        )
        day = models.region_stats(
            "410928-001", BEIJING_0900 - timedelta(hours=1), BEIJING_0900 + timedelta(hours=1)
        )
        assert (day["resolved"], day["referred"]) == (
            1,
            1,
        )  # sub-day edges: counted from the rows alike
        incremental = answers(models, [(None, None)])
        runner.rebuild("cases")
        assert answers(ReadModels(runner.db), [(None, None)]) == incremental
    finally:
        runner.close()


# -- 4. one condition parser -------------------------------------------------------------------

PICKUP_CLOCK = """
[[clocks]]
name = "unit_pickup"
title = "单位接单 a unit picks the case up"
kinds = ["dispute"]
target = "1h"
start_on = ["Reported"]
stop_on = ["Assigned[assignee=]"]  # dispatched to a unit, nobody named: a missing field is the empty text
"""


def test_the_projection_and_the_clock_engine_read_a_condition_on_a_missing_value_alike(app, clock):
    from tests.support import DEFAULT_POLICY

    app.load_policy(DEFAULT_POLICY + PICKUP_CLOCK, "admin")
    case = report(app, "dispute", "minor").case_id
    clock.advance(timedelta(minutes=50))
    aggregate = app.case(case)
    stamp = Stamp(
        actor=actor("wu", app), command_id=f"timer-{case}-pickup", recorded_at=clock.now()
    )
    aggregate.warn_clock(
        stamp, clock="unit_pickup", threshold=0.75, due_at=BEIJING_0900 + timedelta(hours=1)
    )
    app.save(aggregate)
    act(app, case, "assign", "li", unit="wz-tjh")
    pickup = next(s for s in clocks_of(app, case) if s.name == "unit_pickup")
    assert pickup.state == ClockStatus.MET
    runner = projected(app)
    try:
        row = ReadModels(runner.db).get_case(case)
        assert "unit_pickup" not in row["clocks"] and row["due_soon"] is False
    finally:
        runner.close()


def test_policy_times_are_calendar_durations_with_defaults():
    from domain.policy import parse_policy
    from tests.support import DEFAULT_POLICY

    policy = parse_policy(DEFAULT_POLICY)
    assert (policy.sync_grace_delta, policy.max_backdate_delta) == (
        timedelta(hours=4),
        timedelta(days=7),
    )
    assert parse_policy(
        DEFAULT_POLICY.replace('sync_grace = "4h"', 'sync_grace = "30m"')
    ).sync_grace_delta == timedelta(minutes=30)
    with pytest.raises(ValidationFailed) as refused:
        parse_policy(DEFAULT_POLICY.replace('max_backdate = "7d"', 'max_backdate = "2wd"'))
    assert refused.value.details["field"] == "max_backdate"
    with pytest.raises(ValidationFailed):
        parse_policy(
            DEFAULT_POLICY.replace('stop_on = ["Accepted"]', 'stop_on = ["Accepted[=x]"]', 1)
        )


def test_ancestor_at_goes_by_rank_not_by_code_segments():
    from domain.ladder import Rank, RegionTree, parse_region_file

    tree = RegionTree()
    for region in parse_region_file(COUNTY_CSV) + parse_region_file(
        MICRO_CSV, known=_tree_of(COUNTY_CSV)
    ):
        tree.put(region)
    micro = f"{MICRO}-02"
    assert tree.ancestor_at(micro, Rank.VILLAGE).code == "410928-001-007"
    assert tree.ancestor_at(micro, Rank.TOWNSHIP).code == "410928-001"
    assert tree.ancestor_at(micro, Rank.GRID).code == micro  # the region itself counts
    assert tree.ancestor_at("410928-001", Rank.VILLAGE) is None  # nothing of that rank above it
    assert (
        tree.ancestor_at("410928-404-001", Rank.TOWNSHIP) is None
    )  # not in the tree, nor its parent


def _tree_of(csv: str):
    from domain.ladder import RegionTree, parse_region_file

    tree = RegionTree()
    for region in parse_region_file(csv):
        tree.put(region)
    return tree
