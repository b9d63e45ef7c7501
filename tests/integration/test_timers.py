"""The timer service on both stores: a scenario per kind through National Day 2025
(Oct 1–8 off; Sun 9/28 and Sat 10/11 working), the 四级七天 ladder, a restart."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from uuid import UUID

import pytest

from domain.calendar import SHANGHAI
from engine.case_clocks import clocks_of, recalculate
from engine.service import Fengqiao
from engine.time_source import SimulatedClock
from tests.support import DEFAULT_POLICY, act, report
from workflows.timer_index import TimerIndex
from workflows.timers import TimerService

TIMER_EVENTS = ("ClockWarned", "ClockBreached", "Supervised", "Escalated")


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(sh(2025, 9, 26, 10).astimezone(UTC))  # Friday before National Day 2025


@pytest.fixture
def timers(app):
    service = TimerService(app)
    yield service
    service.close()


def timeline(app, case_id) -> list[tuple]:
    """What the timers recorded: (event, clock, threshold or rank, when it happened, local)."""
    out = []
    for recorded in app.history(case_id):
        e = recorded.event
        if recorded.type in TIMER_EVENTS and e.actor.role == "system":
            detail = getattr(e, "threshold", None) if recorded.type == "ClockWarned" else None
            if recorded.type == "Escalated":
                detail = e.to_rank
            out.append(
                (
                    recorded.type,
                    getattr(e, "clock", None),
                    detail,
                    e.occurred_at.astimezone(SHANGHAI),
                )
            )
    return out


def due(app, case_id) -> dict[str, datetime]:
    return {c.name: c.due_at.astimezone(SHANGHAI) for c in clocks_of(app, case_id)}


def until(timers: TimerService, clock: SimulatedClock, moment: datetime) -> None:
    timers.run_until(clock, moment.astimezone(UTC))


# -- the 四级七天 ladder --------------------------------------------------------------------

LADDER = [  # reported and given to the grid worker on Friday 26 September, 10:00
    ("ClockWarned", "sign_for", 0.5, sh(2025, 9, 26, 11)),
    ("ClockWarned", "sign_for", 0.75, sh(2025, 9, 26, 11, 30)),
    ("ClockBreached", "sign_for", None, sh(2025, 9, 26, 12)),
    ("ClockWarned", "rank_handling", 0.5, sh(2025, 9, 26, 15)),  # 3.5 of 7 working hours
    ("ClockWarned", "rank_handling", 0.75, sh(2025, 9, 26, 16, 45)),
    ("ClockBreached", "rank_handling", None, sh(2025, 9, 28, 10)),  # grid: 1 wd, Sunday 28 is 调休
    ("Escalated", None, 1, sh(2025, 9, 28, 10)),  # → village
    ("ClockWarned", "sign_for", 0.5, sh(2025, 9, 28, 11)),
    ("ClockWarned", "sign_for", 0.75, sh(2025, 9, 28, 11, 30)),
    ("ClockBreached", "sign_for", None, sh(2025, 9, 28, 12)),
    ("ClockWarned", "rank_handling", 0.5, sh(2025, 9, 29, 10)),
    ("ClockWarned", "rank_handling", 0.75, sh(2025, 9, 29, 15)),
    ("ClockBreached", "rank_handling", None, sh(2025, 9, 30, 10)),  # village: 2 wd
    ("Supervised", "rank_handling", None, sh(2025, 9, 30, 10)),  # the ceiling: 督办, no escalation
]


def ladder_case(app):
    """A minor dispute given to the grid worker at 09:00 on Friday 26 September."""
    case_id = report(app, "dispute", "minor").case_id
    act(app, case_id, "assign", "li", assignee="wang")
    return case_id


def sorted_timeline(items):
    return sorted(items, key=lambda i: (i[3], i[0] != "ClockBreached"))


def test_four_ranks_seven_days_ladder_climbs_to_village_and_stops_there_with_a_supervision(
    app, clock, timers
):
    case_id = ladder_case(app)
    assert due(app, case_id)["rank_handling"] == sh(
        2025, 9, 28, 10
    )  # 1 wd: Fri 10:00 → Sun 28 (调休)
    until(timers, clock, sh(2025, 10, 20))
    assert sorted_timeline(timeline(app, case_id)) == sorted_timeline(LADDER)
    case = app.case(case_id)
    assert (case.rank, case.region, case.unit) == (
        1,
        "410928-001-007",
        "wz-tjh",
    )  # village, its ceiling
    assert case.escalations == 1 and case.supervisions == 1
    supervised = [r.event for r in app.history(case_id) if r.type == "Supervised"][0]
    assert "village" in supervised.note and "(li)" in supervised.note  # the ceiling's supervisor
    view = app.case_view(case_id)
    assert view["overdue"] is True
    assert {c["name"]: c["state"] for c in view["clocks"]} == {
        "sign_for": "breached",
        "rank_handling": "breached",
    }
    assert timers.tick() == []  # nothing more, however often it ticks


# -- a scenario per kind ---------------------------------------------------------------------


def test_dispute_scenario_through_national_day(app, clock, timers):
    case_id = report(app, "dispute", "minor").case_id
    act(app, case_id, "assign", "li", assignee="zhao")  # the village mediator, Fri 10:00
    until(timers, clock, sh(2025, 9, 26, 10, 45))
    act(app, case_id, "accept", "zhao")
    assert due(app, case_id) == {
        "sign_for": sh(2025, 9, 26, 12),
        "mediation": sh(2025, 10, 26, 10, 45),  # 30 calendar days
        "rank_handling": sh(2025, 9, 29, 10),  # village: 2 wd, Sun 28 (调休) and Mon 29
    }
    until(timers, clock, sh(2025, 9, 29, 11))
    act(app, case_id, "mediate", "zhao", outcome="agreed", summary="调解成功", agreement="协议书")
    until(timers, clock, sh(2025, 9, 29, 12))
    act(app, case_id, "resolve", "zhao", resolution="已化解")
    assert due(app, case_id)["court_confirmation"] == sh(2025, 10, 29, 11)
    until(timers, clock, sh(2025, 11, 5))
    assert sorted_timeline(timeline(app, case_id)) == sorted_timeline(
        [
            ("ClockWarned", "rank_handling", 0.5, sh(2025, 9, 28, 10)),
            ("ClockWarned", "rank_handling", 0.75, sh(2025, 9, 28, 15)),
            ("ClockBreached", "rank_handling", None, sh(2025, 9, 29, 10)),
            ("Supervised", "rank_handling", None, sh(2025, 9, 29, 10)),  # village is the ceiling
            ("ClockWarned", "court_confirmation", 0.5, sh(2025, 10, 14, 11)),
            ("ClockWarned", "court_confirmation", 0.75, sh(2025, 10, 21, 23)),
            ("ClockBreached", "court_confirmation", None, sh(2025, 10, 29, 11)),
        ]
    )
    states = {c.name: str(c.state) for c in clocks_of(app, case_id)}
    assert states == {
        "sign_for": "met",
        "mediation": "met",
        "court_confirmation": "breached",
        "rank_handling": "breached",
    }


def test_hazard_scenario_through_national_day(app, clock, timers):
    case_id = report(app, "hazard", "minor").case_id
    act(app, case_id, "assign", "li", unit="wz-cwh")
    act(app, case_id, "accept", "li")
    act(
        app,
        case_id,
        "order-rectification",
        "li",
        deadline=sh(2025, 10, 9, 17).isoformat(),
        measures="更换灭火器",
    )
    assert due(app, case_id)["rectification"] == sh(2025, 10, 9, 17)
    until(timers, clock, sh(2025, 10, 11, 10))  # Saturday 调休
    act(app, case_id, "rectify", "li", note="已整改")
    assert due(app, case_id)["signoff"] == sh(
        2025, 10, 19, 17
    )  # 10 days from the deadline (Thu 9 Oct 17:00)
    until(timers, clock, sh(2025, 10, 13, 9, 30))
    act(app, case_id, "reinspect", "li", passed=True, note="复查合格")
    act(app, case_id, "resolve", "li", resolution="销号")
    until(timers, clock, sh(2025, 10, 31))
    assert sorted_timeline(timeline(app, case_id)) == sorted_timeline(
        [  # notice Fri 26 10:00
            (
                "ClockWarned",
                "rectification",
                0.5,
                sh(2025, 10, 3, 1, 30),
            ),  # calendar time, holiday or not
            ("ClockWarned", "rectification", 0.75, sh(2025, 10, 6, 9, 15)),
            ("ClockBreached", "rectification", None, sh(2025, 10, 9, 17)),
            ("Supervised", "rectification", None, sh(2025, 10, 9, 17)),  # 督办函
        ]
    )
    states = {c.name: str(c.state) for c in clocks_of(app, case_id)}
    assert states == {"sign_for": "met", "rectification": "breached", "signoff": "met"}


def test_petition_scenario_with_a_suspension_across_national_day(app, clock, timers):
    case_id = report(app, "petition", "minor").case_id  # Fri 26 10:00: reply within 5 wd
    assert due(app, case_id)["reply"] == sh(
        2025, 10, 10, 10
    )  # Sun 28 (调休), Mon, Tue, Thu 9, Fri 10
    act(app, case_id, "assign", "li", unit="wz-cwh")
    until(timers, clock, sh(2025, 9, 26, 10, 30))
    act(app, case_id, "accept", "li")
    until(timers, clock, sh(2025, 9, 29, 10))
    act(app, case_id, "suspend", "li", reason="等待供水公司检修")  # 2 of 5 wd used
    until(timers, clock, sh(2025, 10, 11, 10))  # nothing fires while suspended
    act(app, case_id, "resume", "li")  # Saturday 11 (调休)
    assert due(app, case_id)["reply"] == sh(2025, 10, 15, 10)  # 3 wd left: Sat 11, Mon 13, Tue 14
    until(timers, clock, sh(2025, 10, 14, 10))
    act(app, case_id, "reply", "li", text="已恢复供水")
    until(timers, clock, sh(2025, 10, 14, 10, 30))
    act(app, case_id, "resolve", "li", resolution="已办结")
    assert due(app, case_id)["return_visit"] == sh(2025, 10, 15, 10, 30)  # the day after
    until(timers, clock, sh(2025, 10, 15, 9))
    act(app, case_id, "return-visit", "li", satisfaction="satisfied")
    act(app, case_id, "close", "li")
    until(timers, clock, sh(2025, 11, 30))
    assert sorted_timeline(timeline(app, case_id)) == sorted_timeline(
        [
            ("ClockWarned", "reply", 0.5, sh(2025, 10, 11, 15)),
            ("ClockWarned", "reply", 0.75, sh(2025, 10, 13, 16, 45)),
            ("ClockWarned", "return_visit", 0.5, sh(2025, 10, 14, 22, 30)),
            ("ClockWarned", "return_visit", 0.75, sh(2025, 10, 15, 4, 30)),
        ]
    )
    states = {c.name: str(c.state) for c in clocks_of(app, case_id)}
    assert states == {"sign_for": "met", "reply": "met", "return_visit": "met"}


def test_a_utilities_petition_is_owed_a_reply_within_24_hours(app, clock, timers):
    water = report(app, "petition", "minor", category="utilities").case_id  # Fri 26 10:00
    assert due(app, water)["reply"] == sh(2025, 9, 27, 10)  # 24 h, not 5 working days
    emergency = report(app, "petition", "critical", category="utilities").case_id
    assert due(app, emergency)["reply"] == sh(2025, 9, 26, 12)  # an emergency stays 2 h
    until(timers, clock, sh(2025, 9, 27, 10))
    assert ("ClockBreached", "reply", None, sh(2025, 9, 27, 10)) in timeline(app, water)


def test_whistled_departments_each_have_a_check_in_clock(app, clock, timers):
    case_id = report(app, "petition", "minor").case_id
    act(app, case_id, "whistle", "li", departments=["城管局", "市场监管所"], reason="占道经营")
    until(timers, clock, sh(2025, 9, 26, 14))
    act(app, case_id, "check-in", "li", department="城管局")
    until(timers, clock, sh(2025, 9, 29))
    view = app.case_view(case_id)
    assert view["whistled"]["市场监管所"] is None and view["whistled"]["城管局"] is not None
    states = {c["name"]: c["state"] for c in view["clocks"] if c["name"].startswith("check_in")}
    assert states == {"check_in:城管局": "met", "check_in:市场监管所": "breached"}
    assert sorted_timeline(timeline(app, case_id)) == sorted_timeline(
        [
            ("ClockWarned", "check_in:市场监管所", 0.5, sh(2025, 9, 26, 15)),
            ("ClockWarned", "check_in:市场监管所", 0.75, sh(2025, 9, 26, 16, 45)),
            (
                "ClockBreached",
                "check_in:市场监管所",
                None,
                sh(2025, 9, 28, 10),
            ),  # 1 wd: Sunday 调休
            ("Supervised", "check_in:市场监管所", None, sh(2025, 9, 28, 10)),
        ]
    )


# -- durability ---------------------------------------------------------------------------------


def test_restart_misses_nothing_and_repeats_nothing(app, store, clock, timers):
    ladder = ladder_case(app)
    petition = report(app, "petition", "minor").case_id
    act(app, petition, "assign", "li", unit="wz-cwh")
    until(timers, clock, sh(2025, 9, 26, 13))  # mid-run …
    first = timers.tick()
    assert first == []
    timers.close()  # … the timer service stops, the engine restarts
    app.close()
    clock.set(sh(2025, 9, 29, 12).astimezone(UTC))  # and is down for three days
    restarted = Fengqiao(store, clock=clock)
    again = TimerService(restarted)
    try:
        fired = again.tick()  # one tick catches up, late, at the true crossing instants
        assert fired and not any(f.repeated for f in fired)
        for case_id in (ladder, petition):  # a crash after commands, before the index caught up:
            assert all(
                f.repeated for f in again.fire(case_id, clock.now())
            )  # ids make repeats harmless
        again.run_until(clock, sh(2025, 10, 20).astimezone(UTC))
        assert sorted_timeline(timeline(restarted, ladder)) == sorted_timeline(LADDER)
        for case_id in (ladder, petition):
            recorded = Counter(
                (r.type, r.event.command_id)
                for r in restarted.history(case_id)
                if r.type in TIMER_EVENTS
            )
            assert all(n == 1 for n in recorded.values())
            for state in clocks_of(restarted, case_id):
                assert state.due_thresholds(clock.now()) == [], f"{state.name} missed a threshold"
    finally:
        again.close()
        restarted.close()


def test_the_index_holds_only_open_running_clocks_and_rebuilds_equal(app, clock, timers):
    case_id = report(app, "petition", "minor").case_id
    act(app, case_id, "assign", "li", unit="wz-cwh")
    timers.runner.run_once()
    rows = timers.db.query("SELECT clock, threshold, due_at FROM timer_index ORDER BY clock")
    assert [(r["clock"], r["threshold"]) for r in rows] == [("reply", 0.5), ("sign_for", 0.5)]
    act(app, case_id, "suspend", "li", reason="approved")
    timers.runner.run_once()
    assert (
        timers.db.query("SELECT clock FROM timer_index") == []
    )  # every clock paused: nothing to find
    act(app, case_id, "resume", "li")
    timers.runner.run_once()
    before = timers.db.query("SELECT * FROM timer_index ORDER BY case_id, clock")
    timers.runner.rebuild(TimerIndex.name)
    assert timers.db.query("SELECT * FROM timer_index ORDER BY case_id, clock") == before


def test_recalculation_under_another_policy_version_writes_nothing(app, clock):
    case_id = report(app, "petition", "minor").case_id
    faster = DEFAULT_POLICY.replace('minor = "5wd", major = "15d"', 'minor = "3wd", major = "15d"')
    version = app.load_policy(faster, "admin")
    assert version == 2
    head = app.head_position()
    own = {c.name: c.due_at for c in clocks_of(app, case_id)}
    other = {c.name: c.due_at for c in recalculate(app, case_id, version)}
    assert own["reply"].astimezone(SHANGHAI) == sh(2025, 10, 10, 10)
    assert other["reply"].astimezone(SHANGHAI) == sh(2025, 9, 30, 10)  # Sun 28 (调休), Mon, Tue
    assert app.head_position() == head and app.case(case_id).policy_version == 1


def test_the_timers_command_line(app, store):
    from tests.e2e.test_cli import cli, out

    case_id = str(ladder_case(app))
    clocks = out(cli(store, "timers", "clocks", case_id, "--at", "2025-09-26T11:00:00+08:00"))
    assert {c["name"]: c["due_at"] for c in clocks} == {
        "sign_for": "2025-09-26T12:00:00+08:00",
        "rank_handling": "2025-09-28T10:00:00+08:00",
    }
    assert [(r["clock"], r["threshold"]) for r in out(cli(store, "timers", "due"))] == [
        ("sign_for", 0.5),
        ("rank_handling", 0.5),
    ]
    fired = out(cli(store, "timers", "tick"))  # on the real clock, weeks later: everything is due
    assert [(f["clock"], f["action"]) for f in fired][-2:] == [
        ("rank_handling", "breach-clock"),
        ("rank_handling", "supervise"),
    ]
    assert sorted_timeline(timeline(app, UUID(case_id))) == sorted_timeline(LADDER)
    refused = cli(store, "timers", "clocks", case_id, "--at", "2025-09-26T11:00:00", ok=False)
    assert json.loads(refused.stderr.strip().splitlines()[-1])["error"]["code"] == "validation"


def test_the_timers_worker_ticks_until_stopped(app, clock):
    import threading
    import time

    from workflows.worker import run_timers

    case_id = ladder_case(app)
    clock.set(sh(2025, 9, 26, 11, 40).astimezone(UTC))  # sign-for: 50% and 75% are due
    stop = threading.Event()
    worker = threading.Thread(target=run_timers, args=(app, stop), kwargs={"poll": 0.05})
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while len(timeline(app, case_id)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(10)
    assert not worker.is_alive()
    assert timeline(app, case_id) == LADDER[:2]


def test_a_send_back_is_refused_once_its_window_has_passed(app, clock, timers):
    from tests.integration.test_cases import refused

    case_id = report(app, "petition", "minor").case_id
    act(app, case_id, "assign", "li", unit="wz-cwh")
    until(timers, clock, sh(2025, 9, 29, 10))  # 2 wd: Sun 28 (调休), Mon 29 10:00
    assert (
        refused(app, case_id, "send-back", "li", reason="不属于本单位职责") == "invalid_transition"
    )
    act(app, case_id, "assign", "li", unit="wz-tjh")  # a new dispatch opens a new window
    act(app, case_id, "send-back", "zhao", reason="不是纠纷，应由村委会办理")
    assert app.case(case_id).status == "reported"
