"""Idempotency by command id and optimistic concurrency (both stores)."""

from __future__ import annotations

import threading

import pytest

from domain.commands import ReportCase
from domain.errors import DomainError
from engine.service import Fengqiao
from tests.support import envelope, report


def test_the_same_report_twice_makes_one_case(app):
    body = ReportCase(
        kind="dispute",
        category="neighbours",
        severity="minor",
        region="410928-001-007-03",
        title="噪音",
    )
    first = app.report(body, envelope("wang", app, command_id="report-1"))
    again = app.report(body, envelope("wang", app, command_id="report-1"))
    assert again.case_id == first.case_id and again.version == first.version == 1
    assert again.position == first.position and again.repeated and not first.repeated
    assert len(list(app.case_ids())) == 1


def test_the_same_command_twice_writes_one_event(app):
    case_id = report(app).case_id
    first = app.do(case_id, "comment", {"text": "走访"}, envelope("wang", app, command_id="c-1"))
    again = app.do(case_id, "comment", {"text": "走访"}, envelope("wang", app, command_id="c-1"))
    assert (again.version, again.position, again.repeated) == (first.version, first.position, True)
    assert [h.type for h in app.history(case_id)] == ["Reported", "Commented"]


def test_a_repeat_answers_the_first_result_even_after_later_commands(app):
    case_id = report(app).case_id
    first = app.do(case_id, "comment", {"text": "a"}, envelope("wang", app, command_id="c-1"))
    app.do(case_id, "comment", {"text": "b"}, envelope("wang", app, command_id="c-2"))
    again = app.do(
        case_id,
        "comment",
        {"text": "a"},
        envelope("wang", app, command_id="c-1", expected_version=1),
    )
    assert again.version == first.version == 2 and again.repeated


def test_a_stale_expected_version_is_refused(app):
    case_id = report(app).case_id
    app.do(case_id, "comment", {"text": "a"}, envelope("wang", app))
    with pytest.raises(DomainError) as caught:
        app.do(case_id, "comment", {"text": "b"}, envelope("wang", app, expected_version=1))
    assert caught.value.code == "version_conflict" and caught.value.details == {
        "expected": 1,
        "actual": 2,
    }


def _race(app: Fengqiao, store, clock, bodies: list[dict], expected_version: int | None) -> list:
    """Run one command per writer, each writer its own engine, all released at once."""
    engines = [Fengqiao(store, clock=clock) for _ in bodies]
    barrier = threading.Barrier(len(bodies))
    outcomes: list = [None] * len(bodies)
    case_id = bodies[0]["case_id"]

    def write(i: int) -> None:
        engine = engines[i]
        env = envelope("wang", engine, expected_version=expected_version)
        barrier.wait()
        try:
            outcomes[i] = engine.do(case_id, "comment", {"text": bodies[i]["text"]}, env)
        except DomainError as error:
            outcomes[i] = error.code

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for engine in engines:
        engine.close()
    return outcomes


def test_two_writers_with_the_same_expected_version_exactly_one_wins(app, store, clock):
    case_id = report(app).case_id
    for _ in range(5):  # several rounds: the race must never let both through
        version = app.case(case_id).version
        outcomes = _race(
            app, store, clock, [{"case_id": case_id, "text": t} for t in "ab"], version
        )
        winners = [o for o in outcomes if not isinstance(o, str)]
        assert len(winners) == 1 and [o for o in outcomes if isinstance(o, str)] == [
            "version_conflict"
        ]
        assert app.case(case_id).version == version + 1


def test_unconditional_writers_retry_and_all_land(app, store, clock):
    case_id = report(app).case_id
    outcomes = _race(
        app, store, clock, [{"case_id": case_id, "text": str(i)} for i in range(6)], None
    )
    assert all(not isinstance(o, str) for o in outcomes)
    assert sorted(o.version for o in outcomes) == list(range(2, 8))
    assert app.case(case_id).version == 7


def test_a_write_of_unknown_outcome_is_retried_once_and_lands_once(app, monkeypatch):
    """A save that fails on the way (e.g. an aborted pipeline) is retried once; the
    command id keeps it to one event whether or not the first attempt landed."""
    from eventsourcing.persistence import OperationalError

    case_id = report(app).case_id
    real_save = type(app).save
    calls = {"n": 0}

    def flaky_save(self, *objs, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            real_save(self, *objs, **kwargs)  # it landed, but the caller hears of a failure
            raise OperationalError("pipeline aborted")
        return real_save(self, *objs, **kwargs)

    monkeypatch.setattr(type(app), "save", flaky_save)
    result = app.do(case_id, "comment", {"text": "走访"}, envelope("wang", app, command_id="once"))
    assert result.repeated and result.version == 2
    assert [h.type for h in app.history(case_id)] == ["Reported", "Commented"]

    calls["n"] = 0

    def failing_save(self, *objs, **kwargs):
        raise OperationalError("database unavailable")

    monkeypatch.setattr(type(app), "save", failing_save)
    with pytest.raises(OperationalError):
        app.do(case_id, "comment", {"text": "x"}, envelope("wang", app))
    assert app.case(case_id).version == 2


def test_a_twin_that_loses_the_write_answers_as_the_repeat(app, store, clock):
    """A double click sent twice at once: the same command id and expected version from two
    writers. The one that loses the write (its copy of the case was read before the other's
    event) reads the case again and answers as the repeat, not as a version conflict."""
    case_id = report(app).case_id
    app.case_view(case_id)  # the case cached in ``app`` at version 1
    other = Fengqiao(store, clock=clock)
    try:
        twin = dict(command_id="ui-form-1", expected_version=1)
        first = other.do(case_id, "supervise", {"note": "督办"}, envelope("zhou", other, **twin))
    finally:
        other.close()
    again = app.do(case_id, "supervise", {"note": "督办"}, envelope("zhou", app, **twin))
    assert (again.version, again.repeated) == (first.version, True)
    assert [h.type for h in app.history(case_id)] == ["Reported", "Supervised"]
    with pytest.raises(DomainError) as caught:  # another command from the stale page still fails
        app.do(case_id, "comment", {"text": "x"}, envelope("zhou", app, expected_version=1))
    assert caught.value.code == "version_conflict"
