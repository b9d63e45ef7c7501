"""The case cache when another process writes the same cases.

Each engine keeps the cases it last saved (``engine.case_cache``) and starts its next
command on one from that copy. Another process on the same store (a second
``fengqiao serve`` behind a proxy, a ``fengqiao worker`` issuing timer and routing
commands) may have written the case since, so the copy may be stale. These tests
take two engines on one store, make one engine's copy stale through the other, and
check that every command still ends as it would on the store's case: saved at the
next version on top of the other's changes, refused or allowed as the store's case
decides, answered as a repeat when the other already ran it, and held to the
caller's expected version.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from domain.errors import DomainError
from engine.service import Fengqiao
from tests.support import act, envelope, report


@pytest.fixture
def other(store, clock, app) -> Iterator[Fengqiao]:
    """A second engine on ``app``'s store (as a second process would be)."""
    engine = Fengqiao(store, clock=clock)
    yield engine
    engine.close()


def event_names(app: Fengqiao, case_id) -> list[str]:
    return [type(event).__name__ for event in app.events.get(case_id)]


def cached_version(app: Fengqiao, case_id) -> int | None:
    """The version of ``app``'s cached copy of the case (left in the cache), or None."""
    case = app.case_cache.take(case_id)
    if case is None:
        return None
    app.case_cache.put(case)
    return case.version


def comments(app: Fengqiao, case_id) -> list[str]:
    return [event.text for event in app.events.get(case_id) if type(event).__name__ == "Commented"]


def test_a_stale_copy_saves_on_top_of_the_other_process_changes(app, other):
    case_id = report(app).case_id
    act(app, case_id, "comment", "wang", text="一")
    act(app, case_id, "comment", "wang", text="一 again")
    act(other, case_id, "comment", "wang", text="二")
    act(other, case_id, "comment", "wang", text="三")
    assert cached_version(app, case_id) == 3 and other.case(case_id).version == 5

    result = act(app, case_id, "comment", "wang", text="四")

    assert result.version == 6 and not result.repeated
    assert other.case(case_id).version == 6
    assert comments(other, case_id) == ["一", "一 again", "二", "三", "四"]


def test_a_refusal_on_a_stale_copy_is_decided_again_on_the_store_case(app, other):
    case_id = report(app).case_id  # app caches it as reported, nobody assigned
    act(other, case_id, "assign", "li", assignee="zhao")
    assert cached_version(app, case_id) == 1

    accepted = act(
        app, case_id, "accept", "zhao"
    )  # the stale copy would refuse: not assigned to zhao

    assert accepted.version == 3
    assert event_names(other, case_id)[-2:] == ["Assigned", "Accepted"]


def test_a_stale_copy_that_allows_what_the_store_case_forbids_is_refused(app, other):
    case_id = report(app).case_id
    act(app, case_id, "assign", "li", assignee="zhao")  # app caches it assigned, not yet accepted
    act(other, case_id, "accept", "zhao")
    assert cached_version(app, case_id) == 2

    with pytest.raises(DomainError) as refused:
        act(
            app, case_id, "accept", "zhao"
        )  # allowed on the stale copy; the store's case is accepted

    assert refused.value.code != "version_conflict"  # the rule's own answer, not a lost race
    assert event_names(other, case_id).count("Accepted") == 1
    assert other.case(case_id).version == 3


def test_a_command_the_other_process_ran_is_answered_as_a_repeat(app, other):
    case_id = report(app).case_id
    act(app, case_id, "comment", "wang", text="cached")  # app caches version 2
    first = other.do(
        case_id, "comment", {"text": "once"}, envelope("wang", other, command_id="retry-1")
    )
    assert cached_version(app, case_id) == 2

    again = app.do(
        case_id, "comment", {"text": "once"}, envelope("wang", app, command_id="retry-1")
    )

    assert again.repeated and again.version == first.version == 3
    assert comments(other, case_id) == ["cached", "once"]


def test_the_expected_version_is_held_to_the_store_case_not_the_stale_copy(app, other):
    case_id = report(app).case_id
    act(app, case_id, "comment", "wang", text="a")  # app caches version 2
    act(other, case_id, "comment", "wang", text="b")  # the store is at version 3
    assert cached_version(app, case_id) == 2

    current = app.do(case_id, "comment", {"text": "c"}, envelope("wang", app, expected_version=3))
    assert current.version == 4  # the caller saw version 3 (through the other process): accepted

    act(other, case_id, "comment", "wang", text="d")  # version 5; app's copy is at 4
    assert cached_version(app, case_id) == 4
    with pytest.raises(DomainError) as conflict:
        app.do(case_id, "comment", {"text": "e"}, envelope("wang", app, expected_version=4))
    assert conflict.value.code == "version_conflict"
    assert other.case(case_id).version == 5
