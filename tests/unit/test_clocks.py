"""Clock rules, pure: cases built from domain commands, clocks evaluated from their events."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.actors import Actor
from domain.calendar import SHANGHAI, WorkingCalendar
from domain.cases import Dispute, ExtendableClock, Hazard, Petition, Stamp
from domain.clocks import (
    ClockStatus,
    Condition,
    _SpecIndex,
    calendar_for,
    clock_fold,
    clocks_under,
    evaluate_clocks,
    fold_states,
    matches_any,
    send_back_window_closes,
)
from domain.errors import DomainError, ValidationFailed
from domain.policy import ClockSpec, Policy, Thresholds, parse_policy

DEFAULT = parse_policy(
    (Path(__file__).resolve().parents[2] / "domain" / "default_policy.toml").read_text()
)
POLICY = Policy.model_validate({**DEFAULT.model_dump(), "version": 1})
CAL = WorkingCalendar()
CEILINGS = {"minor": 1, "major": 2, "critical": 3}
WORKER = Actor("wang", "reporter", None, "v-g", 0)
VILLAGE_HEAD = Actor("li", "supervisor", "wz-cwh", "v", 1)
_ids = itertools.count()


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


class Story:
    """A case driven through its commands at given moments, its events kept."""

    def __init__(
        self, cls, at: datetime, severity: str = "minor", category: str | None = None, **details
    ) -> None:
        category = (
            category or {Dispute: "neighbours", Hazard: "fire", Petition: "environment"}[cls]
        )  # utilities: 24 h
        self.case = cls.report(
            self.stamp(at),
            policy_version=1,
            category=category,
            severity=severity,
            region="v-g",
            rank=0,
            profile="rural",
            ceilings=CEILINGS,
            title="t",
            details=details,
        )
        self.events = list(self.case.collect_events())

    @staticmethod
    def stamp(at: datetime, actor: Actor = WORKER) -> Stamp:
        return Stamp(actor, f"c{next(_ids)}", at)

    def do(self, at: datetime, command: str, actor: Actor = WORKER, **fields) -> Story:
        if command in (
            "suspend",
            "extend",
        ):  # as the engine does: the clocks when the command is recorded
            clocks = clocks_under(POLICY, self.events, at)
            name = fields.get("clock", POLICY.resolve_clock(self.case.kind, self.case.severity))
            state = next((c for c in clocks if c.name == name), None)
            if command == "suspend":
                fields.setdefault("resolve_clock", state)
            else:
                fields["clock"] = ExtendableClock(name, state, fields.pop("max_days"))
        if command == "send_back":
            fields.setdefault(
                "window_closes_at", send_back_window_closes(POLICY, self.case.dispatched_at)
            )
        getattr(self.case, command)(self.stamp(at, actor), **fields)
        self.events.extend(self.case.collect_events())
        return self

    def clocks(self, now: datetime, policy: Policy = POLICY) -> dict[str, object]:
        return {c.name: c for c in clocks_under(policy, self.events, now)}


def assigned_petition(at: datetime, severity: str = "minor") -> Story:
    return Story(Petition, at, severity).do(
        at, "assign", assignee="wang", unit=None, region="v-g", rank=0
    )


# -- conditions -------------------------------------------------------------------


def test_conditions_match_type_and_fields():
    story = Story(Hazard, sh(2025, 3, 3, 10))
    reported = story.events[0]
    assert Condition.parse("Reported").matches(reported)
    assert Condition.parse("Reported[severity=minor]").matches(reported)
    assert not Condition.parse("Reported[severity=major]").matches(reported)
    assert not Condition.parse("Assigned").matches(reported)
    assert Condition.parse("X[passed=false, a=b]") == Condition(
        "X", (("passed", "false"), ("a", "b"))
    )


def test_any_of_several_conditions_on_one_or_other_event_types():
    reported = Story(Hazard, sh(2025, 3, 3, 10)).events[0]
    assert matches_any(
        ["Assigned", "Reported[severity=major]", "Reported[severity=minor]"], reported
    )
    assert not matches_any(["Assigned", "Reported[severity=major]"], reported)
    assert not matches_any([], reported)
    assert matches_any(("Closed", "Reported"), reported)


@pytest.mark.parametrize("bad", ["reported", "Reported[", "Reported[passed]", "Re ported"])
def test_a_bad_condition_is_refused_with_a_stable_code(bad):
    with pytest.raises(ValidationFailed) as refused:
        Condition.parse(bad)
    assert refused.value.code == "validation"
    text = (Path(__file__).resolve().parents[2] / "domain" / "default_policy.toml").read_text()
    with pytest.raises(ValidationFailed) as refused:
        parse_policy(text.replace('stop_on = ["Accepted"]', f'stop_on = ["{bad}"]', 1))
    assert refused.value.details["field"].startswith("clocks.0.stop_on")


# -- targets in working time, across National Day 2025 --------------------------------


def test_petition_reply_five_working_days_across_national_day():
    story = assigned_petition(sh(2025, 9, 26, 10))  # Friday
    reply = story.clocks(sh(2025, 9, 26, 11))["reply"]
    # Sun 28 (调休) 1, Mon 29 2, Tue 30 3, Oct 1-8 off, Thu 9 4, Fri 10 5
    assert reply.due_at == sh(2025, 10, 10, 10)
    assert dict(reply.crossings) == {
        0.5: sh(2025, 9, 29, 15),
        0.75: sh(2025, 9, 30, 16, 45),
        1.0: sh(2025, 10, 10, 10),
    }
    assert reply.state == ClockStatus.RUNNING
    assert send_back_window_closes(POLICY, sh(2025, 9, 26, 10)) == sh(
        2025, 9, 29, 10
    )  # 2 wd: Sun 28 调休, Mon 29
    assert story.clocks(sh(2025, 10, 10, 10))["reply"].state == ClockStatus.BREACHED


def test_a_category_target_governs_when_it_is_due_earlier():
    """Water, power, gas, heat: 24 h (DOMAIN.md §4), beside 5 wd (minor) or 15 d (major);
    an emergency (critical) about water stays 2 h: the earliest due time governs."""
    start = sh(2025, 9, 26, 10)
    for severity in ("minor", "major"):
        reply = Story(Petition, start, severity, category="utilities").clocks(sh(2025, 9, 26, 11))[
            "reply"
        ]
        assert (reply.due_at, reply.target) == (sh(2025, 9, 27, 10), "24h")
    critical = Story(Petition, start, "critical", category="utilities").clocks(sh(2025, 9, 26, 11))[
        "reply"
    ]
    assert (critical.due_at, critical.target) == (sh(2025, 9, 26, 12), "2h")
    assert Story(Petition, start).clocks(sh(2025, 9, 26, 11))["reply"].due_at == sh(
        2025, 10, 10, 10
    )  # 5 wd


def test_a_category_target_must_name_a_category_of_the_clocks_kinds():
    text = (Path(__file__).resolve().parents[2] / "domain" / "default_policy.toml").read_text()
    with pytest.raises(ValidationFailed) as refused:
        parse_policy(
            text.replace(
                'target_by_category = { utilities = "24h" }',
                'target_by_category = { water = "24h" }',
            )
        )
    reply = [clock.name for clock in parse_policy(text).clocks].index("reply")
    assert "water" in refused.value.message and refused.value.details["field"].startswith(
        f"clocks.{reply}"
    )


def test_calendar_targets_ignore_the_working_calendar():
    story = assigned_petition(sh(2025, 9, 30, 16), severity="major")  # 15 d
    assert story.clocks(sh(2025, 9, 30, 17))["reply"].due_at == sh(2025, 10, 15, 16)
    assert story.clocks(sh(2025, 9, 30, 17))["sign_for"].due_at == sh(2025, 9, 30, 18)


def test_stop_met_or_breached_and_cancel():
    story = assigned_petition(sh(2025, 9, 26, 10))
    story.do(sh(2025, 9, 26, 11, 59), "accept")
    clocks = story.clocks(sh(2025, 9, 27, 9))
    assert clocks["sign_for"].state == ClockStatus.MET
    assert clocks["sign_for"].stopped_at == sh(2025, 9, 26, 11, 59)
    late = assigned_petition(sh(2025, 9, 26, 10)).do(sh(2025, 9, 26, 12, 1), "accept")
    assert late.clocks(sh(2025, 9, 27))["sign_for"].state == ClockStatus.BREACHED
    assert not late.clocks(sh(2025, 9, 27))["sign_for"].open
    sent = assigned_petition(sh(2025, 9, 26, 10)).do(
        sh(2025, 9, 26, 11), "send_back", reason="not ours"
    )
    assert sent.clocks(sh(2025, 9, 27))["sign_for"].state == ClockStatus.CANCELLED


# -- pauses, extensions, restarts --------------------------------------------------------


def test_suspension_pushes_the_due_time_back_and_never_breaches_while_paused():
    story = assigned_petition(sh(2025, 9, 26, 10))
    story.do(sh(2025, 9, 29, 10), "suspend", actor=VILLAGE_HEAD, reason="waiting for the utility")
    paused = story.clocks(sh(2025, 10, 20))["reply"]
    assert paused.state == ClockStatus.PAUSED and paused.due_thresholds(sh(2025, 10, 20)) == []
    assert paused.next_threshold() is None
    story.do(sh(2025, 10, 13, 10), "resume", actor=VILLAGE_HEAD)  # Monday
    reply = story.clocks(sh(2025, 10, 13, 11))["reply"]
    # used before the pause: Fri 26 10:00-17:30, Sun 28, Mon 29 9:00-10:00 = 1 3/7 + ... working days
    assert reply.due_at == sh(2025, 10, 16, 10)
    assert reply.state == ClockStatus.RUNNING


def test_extension_in_working_days_and_to_a_moment():
    story = assigned_petition(sh(2025, 9, 26, 10))
    story.do(
        sh(2025, 9, 29, 10),
        "extend",
        actor=VILLAGE_HEAD,
        clock="reply",
        days=3,
        reason="complex",
        max_days=10,
    )
    reply = story.clocks(sh(2025, 9, 29, 11))["reply"]
    assert reply.due_at == sh(2025, 10, 14, 10)  # 5 + 3 working days: Sat 11 (调休), Mon 13, Tue 14
    assert reply.extensions == 1 and reply.leg == "1.1"
    assert [t for t, _ in reply.crossings] == [
        0.5,
        0.75,
        1.0,
    ]  # 3/8 used: both warnings still ahead
    # an extension to a moment, as events recorded before extensions were capped in days may hold
    story.case.trigger_event(
        Petition.Extended,
        timestamp=sh(2025, 9, 30, 10),
        actor=VILLAGE_HEAD,
        occurred_at=sh(2025, 9, 30, 10),
        command_id="old-extend",
        policy_version=1,
        clock="reply",
        days=None,
        due_at=sh(2025, 10, 20, 9),
        reason="more",
        approver="li",
    )
    story.events.extend(story.case.collect_events())
    assert story.clocks(sh(2025, 9, 30, 11))["reply"].due_at == sh(2025, 10, 20, 9)


def test_escalation_restarts_the_rank_clock_with_the_new_rank_target():
    story = Story(Dispute, sh(2025, 9, 26, 10)).do(
        sh(2025, 9, 26, 10), "assign", assignee="wang", unit=None, region="v-g", rank=0
    )
    grid = story.clocks(sh(2025, 9, 26, 11))["rank_handling"]
    assert (grid.due_at, grid.target, grid.cycle) == (sh(2025, 9, 28, 10), "1wd", 1)
    story.do(
        sh(2025, 9, 28, 10), "escalate", to_rank=1, to_region="v", unit="wz-tjh", reason="overdue"
    )
    village = story.clocks(sh(2025, 9, 28, 11))["rank_handling"]
    assert (village.due_at, village.target, village.cycle) == (sh(2025, 9, 30, 10), "2wd", 2)


def test_rectification_deadline_and_the_earlier_of_deadline_and_policy():
    def hazard(severity: str) -> Story:
        level, plan = (
            ("major", {"funds": "f", "people": "p", "interim_measures": "i"})
            if severity == "critical"
            else ("general", {})
        )
        return (
            Story(Hazard, sh(2025, 9, 26, 10), severity, hazard_level=level)
            .do(sh(2025, 9, 26, 10), "assign", assignee="wang", unit=None, region="v-g", rank=0)
            .do(sh(2025, 9, 26, 10, 5), "accept")
            .do(
                sh(2025, 9, 26, 11),
                "order_rectification",
                deadline=sh(2025, 10, 9, 17),
                measures="replace the extinguishers",
                plan=plan,
            )
        )

    assert hazard("minor").clocks(sh(2025, 9, 27))["rectification"].due_at == sh(2025, 10, 9, 17)
    critical = hazard("critical").clocks(sh(2025, 9, 27))["rectification"]
    assert critical.due_at == sh(2025, 9, 27, 11)  # policy: 1 d for a critical hazard
    story = hazard("minor").do(sh(2025, 10, 9, 9), "rectify", note="done")
    clocks = story.clocks(sh(2025, 10, 9, 10))
    assert clocks["rectification"].state == ClockStatus.MET
    assert clocks["signoff"].due_at == sh(
        2025, 10, 19, 17
    )  # 10 days from the deadline, not the rectification
    story.do(sh(2025, 10, 10, 9), "reinspect", passed=False, note="two still empty")
    clocks = story.clocks(sh(2025, 10, 10, 10))
    assert clocks["signoff"].state == ClockStatus.CANCELLED
    assert (clocks["rectification"].cycle, clocks["rectification"].state) == (
        2,
        ClockStatus.BREACHED,
    )


def test_mediation_agreement_starts_the_court_confirmation_window():
    story = (
        Story(Dispute, sh(2025, 9, 26, 10))
        .do(sh(2025, 9, 26, 10), "assign", assignee="wang", unit=None, region="v-g", rank=0)
        .do(sh(2025, 9, 26, 10, 30), "accept")
        .do(sh(2025, 9, 30, 15), "mediate", outcome="agreed", summary="s", agreement="a")
    )
    clocks = story.clocks(sh(2025, 10, 1))
    assert clocks["mediation"].due_at == sh(2025, 10, 26, 10, 30)
    assert clocks["court_confirmation"].due_at == sh(2025, 10, 30, 15)


def test_each_whistled_department_gets_its_own_check_in_clock():
    story = assigned_petition(sh(2025, 9, 26, 10))
    story.do(
        sh(2025, 9, 26, 10, 30), "whistle", departments=["城管局", "市场监管所"], reason="占道经营"
    )
    story.do(sh(2025, 9, 26, 15), "check_in", department="城管局")
    clocks = story.clocks(sh(2025, 9, 28, 11))
    assert clocks["check_in:城管局"].state == ClockStatus.MET
    assert clocks["check_in:市场监管所"].state == ClockStatus.BREACHED
    assert clocks["check_in:市场监管所"].due_at == sh(2025, 9, 28, 10, 30)


def test_a_dissatisfied_return_visit_restarts_the_reply_clock():
    story = assigned_petition(sh(2025, 9, 26, 10)).do(sh(2025, 9, 26, 11), "accept")
    story.do(sh(2025, 9, 29, 9), "reply", text="fixed").do(
        sh(2025, 9, 29, 10), "resolve", resolution="r"
    )
    clocks = story.clocks(sh(2025, 9, 29, 11))
    assert clocks["reply"].state == ClockStatus.MET
    assert clocks["return_visit"].due_at == sh(2025, 9, 30, 10)
    story.do(sh(2025, 9, 30, 9), "return_visit", satisfaction="dissatisfied")
    clocks = story.clocks(sh(2025, 9, 30, 10))
    assert clocks["return_visit"].state == ClockStatus.MET
    # redo from Tue 30 09:00: Tue 30, Thu 9, Fri 10, Sat 11 (调休), Mon 13 to its close
    assert (clocks["reply"].cycle, clocks["reply"].due_at) == (2, sh(2025, 10, 13, 17, 30))


def test_thresholds_come_from_the_policy():
    story = assigned_petition(sh(2025, 9, 26, 10))
    spec = next(c for c in POLICY.clocks if c.name == "sign_for")
    [state] = evaluate_clocks(
        story.events, [spec], CAL, sh(2025, 9, 26, 11), Thresholds(warn=[0.9])
    )
    assert [t for t, _ in state.crossings] == [0.9, 1.0]


def test_inline_calendar_overrides_in_the_policy():
    overrides = '[[holiday]]\ndate = 2025-09-29\nname = "local"\n'
    policy = POLICY.model_copy(
        update={"calendar": POLICY.calendar.model_copy(update={"overrides": overrides})}
    )
    assert not calendar_for(policy.calendar).is_working_day(datetime(2025, 9, 29).date())
    assert send_back_window_closes(policy, sh(2025, 9, 26, 10)) == sh(2025, 9, 30, 10)


# -- properties ----------------------------------------------------------------------------

moments = st.datetimes(min_value=datetime(2025, 1, 2), max_value=datetime(2026, 11, 30)).map(
    lambda d: d.replace(second=0, microsecond=0, tzinfo=SHANGHAI)
)
targets = st.sampled_from(["30m", "2h", "7d", "2wh", "1wd", "5wd"])


def spec_with(target: str) -> ClockSpec:
    return ClockSpec(
        name="c", kinds=["petition"], target=target, start_on=["Reported"], stop_on=["Resolved"]
    )


@settings(max_examples=60, deadline=None)
@given(
    start=moments,
    target=targets,
    pause_after=st.integers(0, 20_000),
    pause_for=st.integers(1, 40_000),
    probe=st.floats(0, 1),
)
def test_a_clock_never_breaches_during_a_pause(start, target, pause_after, pause_for, probe):
    story = Story(Petition, start)
    paused_at = start + timedelta(minutes=pause_after)
    resumed_at = paused_at + timedelta(minutes=pause_for)
    story.do(
        paused_at, "suspend", reason="approved", resolve_clock=None
    )  # the fold of a pause, whatever the policy
    now = paused_at + (resumed_at - paused_at) * probe
    [state] = evaluate_clocks(story.events, [spec_with(target)], CAL, now)
    assert state.state == ClockStatus.PAUSED and not state.overdue
    assert state.due_thresholds(now) == [] and state.next_threshold() is None
    story.do(resumed_at, "resume")
    [after] = evaluate_clocks(story.events, [spec_with(target)], CAL, resumed_at)
    [unpaused] = evaluate_clocks(story.events[:1], [spec_with(target)], CAL, resumed_at)
    assert after.due_at >= unpaused.due_at  # a pause only ever pushes the due time back


@settings(max_examples=60, deadline=None)
@given(start=moments, later=st.integers(0, 50_000), target=targets, extra=st.integers(1, 5))
def test_due_times_are_monotonic_in_start_and_target(start, later, target, extra):
    def due(at: datetime, spec: ClockSpec) -> datetime:
        return evaluate_clocks(Story(Petition, at).events, [spec], CAL, at)[0].due_at

    spec = spec_with(target)
    assert due(start, spec) <= due(start + timedelta(minutes=later), spec)
    amount, unit = (
        target[:-2] if target.endswith(("wh", "wd")) else target[:-1],
        target.lstrip("0123456789"),
    )
    assert due(start, spec) <= due(start, spec_with(f"{int(amount) + extra}{unit}"))


@settings(max_examples=40, deadline=None)
@given(
    start=moments,
    pause_after=st.integers(0, 5_000),
    short=st.integers(1, 5_000),
    longer=st.integers(0, 5_000),
)
def test_due_times_are_monotonic_in_pause_length(start, pause_after, short, longer):
    def due(pause_for: int) -> datetime:
        story = Story(Petition, start)
        paused_at = start + timedelta(minutes=pause_after)
        story.do(paused_at, "suspend", reason="approved", resolve_clock=None).do(
            paused_at + timedelta(minutes=pause_for), "resume"
        )
        return evaluate_clocks(
            story.events, [spec_with("5wd")], CAL, paused_at + timedelta(minutes=pause_for)
        )[0].due_at

    assert due(short) <= due(short + longer)


def test_a_calendar_file_is_loaded_inline_in_a_new_policy_version():
    text = (Path(__file__).resolve().parents[2] / "domain" / "default_policy.toml").read_text()
    text = text.replace(
        'name = "cn-statutory"  # China',
        """overrides = '''
name = "cn-2027"
[[holiday]]
from = 2027-01-01
to = 2027-01-03
name = "元旦"
[[workday]]
date = 2027-01-04
'''
name = "cn-statutory"  # China""",
    )
    policy = parse_policy(text)
    calendar = calendar_for(policy.calendar)
    assert not calendar.is_working_day(datetime(2027, 1, 1).date())
    assert calendar.add_working_days(sh(2026, 12, 31, 10), 1) == sh(2027, 1, 4, 10)
    with pytest.raises(ValidationFailed) as refused:  # refused when the policy is loaded
        parse_policy(text.replace("[[workday]]", "[[workdays]]"))
    assert (
        refused.value.details["field"] == "calendar.overrides"
        and "workdays" in refused.value.message
    )


# -- the fold's shortcuts ------------------------------------------------------------


class _AnyName:
    """Every event type: a spec index that skips no spec."""

    def __contains__(self, name: object) -> bool:
        return True


def clocks_asking_every_spec(policy: Policy, events: list, now: datetime) -> list:
    """:func:`clocks_under` without the fold's shortcuts: every spec asked on every event,
    whether it applies to the case and its targets worked out again each time."""
    fold = clock_fold(policy)
    fold.index = _SpecIndex((_AnyName(),) * len(fold.specs), fold.index.fields, fold.specs)
    for event in events:
        if event.timestamp <= now:
            fold.index._applying.clear()
            fold.index._bounds.clear()
            fold.applying = None
            fold.apply(event)
    return fold_states(fold, now)


SEVERE_ONLY = (
    Policy.model_validate(  # a clock of some severities: one reclassifying starts or stops
        {
            **POLICY.model_dump(),
            "clocks": [
                *POLICY.model_dump()["clocks"],
                {
                    "name": "severe",
                    "kinds": ["petition", "dispute", "hazard"],
                    "severities": ["major", "critical"],
                    "target": "2wh",
                    "start_on": ["Assigned", "Reclassified"],
                    "stop_on": ["Accepted", "CheckedIn"],
                },
            ],
        }
    )
)
ANY_STEP = [
    ("accept", {}),
    ("whistle", {"departments": ["城管局", "市场监管所"], "reason": "联合处置"}),
    ("check_in", {"department": "城管局"}),
    ("check_in", {"department": "市场监管所"}),
    ("reply", {"text": "fixed"}),
    ("resolve", {"resolution": "r"}),
    ("return_visit", {"satisfaction": "dissatisfied"}),
    ("return_visit", {"satisfaction": "satisfied"}),
    ("escalate", {"to_rank": 1, "to_region": "v", "unit": "wz-tjh", "reason": "overdue"}),
    ("suspend", {"reason": "approved"}),
    ("resume", {}),
    ("send_back", {"reason": "not ours"}),
    *[("reclassify", {"severity": severity, "reason": "r"}) for severity in CEILINGS],
]


@settings(max_examples=200, deadline=None)
@given(
    policy=st.sampled_from([POLICY, SEVERE_ONLY]),
    kind=st.sampled_from([Petition, Dispute, Hazard]),
    severity=st.sampled_from(["minor", "major", "critical"]),
    steps=st.lists(
        st.tuples(st.integers(0, len(ANY_STEP) - 1), st.integers(0, 3 * 24 * 60)), max_size=12
    ),
    probe=st.integers(0, 30 * 24 * 60),
)
def test_the_fold_gives_the_clocks_of_asking_every_spec_on_every_event(
    policy, kind, severity, steps, probe
):
    """The fold asks only the specs whose conditions name an event's type (or Extended),
    and whether a spec applies only when the kind or severity changes: the same clocks."""
    at = sh(2025, 9, 26, 10)
    story = Story(kind, at, severity).do(
        at, "assign", assignee="wang", unit=None, region="v-g", rank=0
    )
    for step, minutes in steps:
        at += timedelta(minutes=minutes)
        command, fields = ANY_STEP[step]
        if not hasattr(story.case, command) or (
            command == "send_back" and story.case.dispatched_at is None
        ):
            continue
        try:
            story.do(at, command, VILLAGE_HEAD if step % 2 else WORKER, **dict(fields))
        except DomainError:
            story.case.collect_events()  # nothing is recorded of a refused command
    for now in (at, at + timedelta(minutes=probe)):
        assert clocks_under(policy, story.events, now) == clocks_asking_every_spec(
            policy, story.events, now
        )
