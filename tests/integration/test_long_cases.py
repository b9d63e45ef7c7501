"""Cases with long histories (issue 20): read from a snapshot and a resumed clock fold.

A case is snapshotted every ``SNAPSHOT_INTERVAL`` versions while short, then at most every
tenth of its length (``engine.service.snapshot_due``; ``domain.snapshots``), and
the case view now (and a command's answer) starts from the engine's cached case and
cached clock fold (``engine.case_clocks.current_clocks``). Each must answer exactly
what replaying every event answers, on both stores, for every kind, also when another
process wrote the case since.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from eventsourcing.application import ProcessingEvent
from eventsourcing.persistence import RecordConflictError

from domain.cases import Status
from domain.clocks import SIGN_FOR, clock_fold, clocks_under, fold_states
from domain.kinds import Kind, Severity
from domain.snapshots import decode_state, encode_state
from engine.audit.recorders import insert_snapshot
from engine.service import SNAPSHOT_INTERVAL, Fengqiao, snapshot_due
from engine.views import case_fields, replayed
from tests.integration.test_stateful import assert_snapshots_restore, state_of, typed
from tests.support import act, report, seed

STEPS = {  # a few actions each kind takes, with the clock moving between them
    "dispute": [
        ("assign", "li", {"assignee": "zhao"}),
        ("accept", "zhao", {}),
        ("suspend", "li", {"reason": "当事人要求"}),
        ("resume", "li", {}),
        ("mediate", "zhao", {"outcome": "adjourned", "summary": "协商中"}),
    ],
    "hazard": [
        ("assign", "li", {"assignee": "zhao"}),
        ("accept", "zhao", {}),
        ("whistle", "li", {"departments": ["派出所"], "reason": "涉及多户"}),
        ("check-in", "li", {"department": "派出所"}),
    ],
    "petition": [
        ("assign", "li", {"assignee": "zhao"}),
        ("accept", "zhao", {}),
        ("extend", "li", {"days": 3, "reason": "涉及多户"}),
        ("reply", "zhao", {"text": "已处理"}),
    ],
}


@pytest.fixture
def other(store, clock, app) -> Iterator[Fengqiao]:
    """A second engine on ``app``'s store (as a second process would be)."""
    engine = Fengqiao(store, clock=clock)
    yield engine
    engine.close()


def replayed_view(app: Fengqiao, case_id, now) -> dict:
    """The case view computed the old way: every event replayed and folded."""
    case, events = replayed(app, case_id)
    return case_fields(
        case, clocks_under(app.policy(case.policy_version), events, now, app.statutory())
    )


def comment(app: Fengqiao, case_id, times: int) -> None:
    for i in range(times):
        act(app, case_id, "comment", "wang", text=f"进展 {i}")


def test_a_long_case_is_restored_from_its_last_snapshot(app, store, clock) -> None:
    case_id = report(app).case_id
    comment(app, case_id, 2 * SNAPSHOT_INTERVAL + 5)
    assert [s.originator_version for s in app.snapshots.get(case_id)] == [
        SNAPSHOT_INTERVAL,
        2 * SNAPSHOT_INTERVAL,
    ]
    assert_snapshots_restore(app, case_id)
    fresh = Fengqiao(store, clock=clock)  # nothing cached: the snapshot and the events after it
    try:
        assert typed(state_of(fresh.case(case_id))) == typed(state_of(replayed(app, case_id)[0]))
        assert fresh.case_view(case_id) == replayed_view(app, case_id, clock.now())
    finally:
        fresh.close()


def test_snapshots_are_spaced_by_a_tenth_of_a_long_case() -> None:
    due = [v for v in range(1, 12_001) if snapshot_due(v, 10)]
    assert due[:3] == [10, 20, 30] and due[98:102] == [990, 1000, 1100, 1200]
    assert due[-4:] == [9900, 10000, 11000, 12000]
    assert all(b - a <= max(10, a // 10) for a, b in zip(due, due[1:], strict=False))


def test_a_long_case_is_snapshotted_less_often_and_restores_the_same(
    store, clock, monkeypatch
) -> None:
    """The engine follows ``snapshot_due`` (here with an interval of 2, so the spacing grows
    at 200 versions): snapshots at 2, 4, … 198, 200, then 220; the case restored from the
    last one and the 5 events after it is the replayed case."""
    monkeypatch.setattr(
        Fengqiao, "snapshotting_intervals", dict.fromkeys(Fengqiao.snapshotting_intervals, 2)
    )
    app = seed(Fengqiao(store, clock=clock))
    try:
        case_id = report(app).case_id
        comment(app, case_id, 224)
        assert [s.originator_version for s in app.snapshots.get(case_id)] == [
            *range(2, 201, 2),
            220,
        ]
        fresh = Fengqiao(store, clock=clock)
        try:
            assert typed(state_of(fresh.case(case_id))) == typed(
                state_of(replayed(app, case_id)[0])
            )
        finally:
            fresh.close()
    finally:
        app.close()


@pytest.mark.parametrize("kind", [str(k) for k in Kind])
def test_the_view_now_is_the_replayed_view_for_every_kind(app, clock, other, kind) -> None:
    case_id = report(app, kind, "major").case_id
    assert app.case_view(case_id) == replayed_view(app, case_id, clock.now())
    for name, by, body in STEPS[kind]:
        clock.advance(timedelta(hours=7))
        result = act(app, case_id, name, by, **body)
        assert app.case_view(case_id) == replayed_view(app, case_id, clock.now())
        # a command's answer: the case at the version it wrote, its clocks at the moment given
        assert app.case_view(case_id, result.version, now=clock.now()) == replayed_view(
            app, case_id, clock.now()
        )
        later = clock.now() + timedelta(days=4)
        assert app.case_view(case_id, now=later) == replayed_view(app, case_id, later)
        assert other.case_view(case_id) == replayed_view(app, case_id, clock.now())
    assert_snapshots_restore(app, case_id)


def test_the_view_sees_what_another_process_wrote(app, clock, other) -> None:
    case_id = report(app).case_id
    comment(app, case_id, 3)
    assert app.case_view(case_id)["version"] == 4  # the case and its clock fold cached here
    clock.advance(timedelta(hours=2))
    act(other, case_id, "assign", "li", assignee="zhao")
    act(other, case_id, "accept", "zhao")
    shown = app.case_view(case_id)
    assert (shown["version"], shown["status"], shown["assignee"]) == (6, Status.ACCEPTED, "zhao")
    assert shown == replayed_view(app, case_id, clock.now())
    assert app.current_case(case_id).version == 6


def test_a_moment_before_the_last_event_is_folded_afresh(app, clock) -> None:
    case_id = report(app).case_id
    before = clock.now()
    clock.advance(timedelta(hours=3))
    act(app, case_id, "assign", "li", assignee="zhao")
    app.case_view(case_id)  # a fold cached after version 2
    assert app.case_view(case_id, now=before) == replayed_view(
        app, case_id, before
    )  # sees version 1's clocks
    assert app.case_view(case_id) == replayed_view(app, case_id, clock.now())


def test_a_clock_fold_resumed_after_any_version_gives_the_clocks_of_every_event(app, clock) -> None:
    case_id = report(app, "petition").case_id
    for name, by, body in STEPS["petition"]:
        clock.advance(timedelta(hours=5))
        act(app, case_id, name, by, **body)
    events = list(app.events.get(case_id))
    policy, now = app.policy(), clock.now() + timedelta(days=1)
    whole = clocks_under(policy, events, now, app.statutory())
    assert whole
    for cut in range(len(events) + 1):
        fold = clock_fold(policy, app.statutory())
        for event in events[:cut]:
            fold.apply(event)
        assert fold.version == cut
        fold_states(fold, now)  # reading a fold leaves it as it was
        for event in events[cut:]:
            fold.apply(event)
        assert fold_states(fold, now) == whole


def test_snapshot_state_keeps_the_types_json_would_lose() -> None:
    state = {
        "status": Status.ACCEPTED,
        "ceilings": {Severity.MINOR: 1},
        "breached": {"reply"},
        "pair": (1, "a"),
        "nested": [{"x": frozenset({2})}],
        "plain": {"a": [1, None, True]},
        "commands": {"c1": 2, "c2": 3, "c3": None},  # all plain: copied as it is
        "mixed": {"a": 1, "b": Severity.MINOR, "c": True},  # one enum: tagged
    }
    restored = decode_state(json.loads(json.dumps(encode_state(state))))
    assert typed(restored) == typed(state)


def test_a_snapshot_stored_twice_is_a_conflict_and_the_command_stands(app) -> None:
    """The snapshot is written with one single-row insert (``insert_snapshot``); one already
    stored (another process took it) is the library's conflict, which the save logs and
    never makes the command's failure."""
    case_id = report(app).case_id
    comment(app, case_id, SNAPSHOT_INTERVAL - 1)
    [snapshot] = app.snapshots.get(case_id)
    with pytest.raises(RecordConflictError):
        insert_snapshot(app.snapshots.recorder, app.mapper.to_stored_event(snapshot))
    taken_again = ProcessingEvent()
    taken_again.aggregates[case_id] = app.case(case_id)
    taken_again.events.extend(app.events.get(case_id, gt=SNAPSHOT_INTERVAL - 1))
    app._snapshot(taken_again)  # logged, not raised
    assert [s.originator_version for s in app.snapshots.get(case_id)] == [SNAPSHOT_INTERVAL]


def test_a_command_that_needs_clocks_resumes_the_cached_fold(app, clock, monkeypatch) -> None:
    """签收 (and every action on a clock) is given the case's clocks at its recorded time: from
    the case's cached clock fold and the events after it, not every event read and folded
    again (a 1,000-event case read 1,000 events for each); the same clocks and event."""
    case_id = report(app).case_id
    comment(app, case_id, 2 * SNAPSHOT_INTERVAL)
    act(app, case_id, "assign", "li", assignee="zhao")
    app.case_view(case_id)  # the fold cached at the case's version
    clock.advance(timedelta(hours=5))
    reads: list[tuple[object, object]] = []
    get = app.events.get

    def counted(originator_id, *args, **kwargs):  # type: ignore[no-untyped-def]
        reads.append((kwargs.get("gt"), kwargs.get("lte")))
        return get(originator_id, *args, **kwargs)

    monkeypatch.setattr(app.events, "get", counted)
    act(app, case_id, "accept", "zhao")
    assert all(gt is not None for gt, _ in reads), reads  # nothing read from the first event
    monkeypatch.undo()
    accepted = list(app.events.get(case_id))[-1]
    fresh = Fengqiao(app.store, clock=clock)  # nothing cached: every event folded
    try:
        assert fresh.case_view(case_id) == app.case_view(case_id)
        assert fresh.case_view(case_id) == replayed_view(app, case_id, clock.now())
    finally:
        fresh.close()
    before = list(app.events.get(case_id))[:-1]
    clocks = clocks_under(app.policy(), before, accepted.timestamp, app.statutory())
    sign_for = next(c for c in clocks if c.clock == SIGN_FOR and c.open)
    in_time = sign_for.met_if_stopped(
        accepted.occurred_at, accepted.timestamp, app.policy().sync_grace_delta
    )
    assert (accepted.sign_for_due_at, accepted.responded_in_time) == (sign_for.due_at, in_time)


def test_a_command_that_needs_clocks_keeps_no_fold_it_had_to_build(app, clock) -> None:
    """Without a fold kept (no view read the case here), a command on a clock folds the
    events once and keeps nothing: a kept fold costs every later command on the case a
    fold of its new events (the write path's writers never read views)."""
    case_id = report(app).case_id
    act(app, case_id, "assign", "li", assignee="zhao")
    clock.advance(timedelta(hours=1))
    act(app, case_id, "accept", "zhao")
    assert case_id not in app.clock_folds
    assert app.case_view(case_id) == replayed_view(app, case_id, clock.now())
