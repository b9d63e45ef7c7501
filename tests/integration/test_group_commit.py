"""Group commit (engine.group_commit): threads sharing one engine have their events
written together, yet each command keeps its own result, position and conflicts."""

from __future__ import annotations

import threading

from domain.errors import DomainError
from engine.audit.verify import verify_log
from engine.group_commit import GroupCommit
from tests.support import act, envelope, report


def _together(count: int, work) -> list:
    barrier = threading.Barrier(count)
    outcomes: list = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = work(i)
        except DomainError as error:
            outcomes[i] = error.code

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_concurrent_commands_on_many_cases_each_get_their_own_positions(app):
    cases = [report(app).case_id for _ in range(12)]
    groups_before = app.group_commit.groups
    results = _together(
        12, lambda i: [act(app, cases[i], "comment", "wang", text=f"{i}-{n}") for n in range(4)]
    )
    written = [r for rs in results for r in rs]
    assert len({r.position for r in written}) == len(written)
    for case_id, rs in zip(cases, results, strict=True):
        assert [r.version for r in rs] == [2, 3, 4, 5]
        history = app.history(case_id)
        assert [e.position for e in history][1:] == [r.position for r in rs]
        assert [e.event.text for e in history[1:]] == [
            f"{cases.index(case_id)}-{n}" for n in range(4)
        ]
    assert app.group_commit.groups - groups_before <= len(written)
    assert verify_log(app).ok


def test_racing_commands_on_one_case_conflict_as_without_grouping(app):
    case_id = report(app).case_id
    for _ in range(3):
        version = app.case(case_id).version
        outcomes = _together(
            6,
            lambda i, v=version: app.do(
                case_id, "comment", {"text": str(i)}, envelope("wang", app, expected_version=v)
            ),
        )
        assert sum(not isinstance(o, str) for o in outcomes) == 1
        assert sorted(o for o in outcomes if isinstance(o, str)) == ["version_conflict"] * 5
        assert app.case(case_id).version == version + 1
    outcomes = _together(6, lambda i: act(app, case_id, "comment", "wang", text=str(i)))
    assert sorted(o.version for o in outcomes) == list(range(5, 11))
    assert verify_log(app).ok


def test_a_failed_group_falls_back_to_each_member_alone():
    calls: list[list[str]] = []
    release = threading.Event()

    def insert(events):
        calls.append(list(events))
        if len(calls) == 1:
            release.wait(5)  # hold the first (solo) insert so the others queue up
        if "bad" in events:
            raise ValueError("conflict")
        return [len(calls) * 100 + n for n in range(len(events))]

    group = GroupCommit(insert)
    outcomes: dict[str, object] = {}

    def member(name: str) -> None:
        try:
            outcomes[name] = group.insert([name])
        except ValueError as error:
            outcomes[name] = str(error)

    first = threading.Thread(target=member, args=("first",))
    first.start()
    while not calls:
        pass
    others = [threading.Thread(target=member, args=(n,)) for n in ("a", "bad", "b")]
    for thread in others:
        thread.start()
    while len(group._queue) < 3:  # noqa: SLF001 - the test waits for the queue to fill
        pass
    release.set()
    for thread in [first, *others]:
        thread.join()
    assert outcomes["first"] == [100]
    assert outcomes["bad"] == "conflict"
    assert sorted(calls[1]) == ["a", "b", "bad"]  # tried together, then alone
    assert sorted(map(tuple, calls[2:])) == [("a",), ("b",), ("bad",)]
    assert isinstance(outcomes["a"], list) and isinstance(outcomes["b"], list)


def test_the_leader_wakes_only_a_groups_first_member_and_each_wakes_the_next(monkeypatch):
    from engine import group_commit

    calls: list[list[str]] = []
    release = threading.Event()
    wakers: list[str] = []
    wake = group_commit._Member.wake  # noqa: SLF001 - counted below

    def counted(member) -> None:
        wakers.append(threading.current_thread().name)
        wake(member)

    monkeypatch.setattr(group_commit._Member, "wake", counted)  # noqa: SLF001

    def insert(events):
        calls.append(list(events))
        if len(calls) == 1:
            release.wait(5)  # hold the first (solo) insert so the others queue up
        return [len(calls) * 100 + n for n in range(len(events))]

    group = GroupCommit(insert)
    outcomes: dict[str, object] = {}

    def member(name: str) -> None:
        outcomes[name] = group.insert([name])

    first = threading.Thread(target=member, args=("first",), name="first")
    first.start()
    while not calls:
        pass
    names = [f"m{n}" for n in range(6)]
    others = [threading.Thread(target=member, args=(n,), name=n) for n in names]
    for thread in others:
        thread.start()
    while len(group._queue) < len(names):  # noqa: SLF001 - the test waits for the queue to fill
        pass
    release.set()
    for thread in [first, *others]:
        thread.join()
    assert sorted(calls[1]) == sorted(names)  # one group of six
    assert {outcomes[n][0] for n in names} == {200 + n for n in range(6)}  # type: ignore[index]
    assert wakers.count("first") == 1  # the leader woke the group's first member only
    assert len(wakers) == len(names)  # and each of the six was woken exactly once


def test_a_batch_that_conflicts_is_a_record_conflict_and_the_writer_goes_on(app):
    """The recorder's batch write (PostgreSQL: one simple query on the writing connection,
    its positions read from the result's text): a batch whose event is already stored is
    the library's conflict and leaves nothing written; the next batch, several events of
    one case, gets consecutive positions in order (after any the failed one used up)."""
    from uuid import uuid4

    from eventsourcing.persistence import RecordConflictError, StoredEvent

    case_id = report(app).case_id
    [stored] = app.recorder.select_events(case_id, limit=1)
    head = app.head_position()
    fresh = uuid4()
    twice = StoredEvent(fresh, 1, stored.topic, stored.state)
    try:
        app.recorder.insert_events([twice, stored])
    except RecordConflictError:
        pass
    else:
        raise AssertionError("a stored event written again is a conflict")
    assert app.head_position() == head and app.recorder.select_events(fresh) == []
    positions = app.recorder.insert_events(
        [StoredEvent(fresh, v, stored.topic, stored.state) for v in (1, 2, 3)]
    )
    first = positions[0]  # PostgreSQL's sequence may have moved past the failed batch's
    assert first > head and list(positions) == [first, first + 1, first + 2]
    assert act(app, case_id, "comment", "wang", text="after").position == first + 3
    assert verify_log(app).ok
