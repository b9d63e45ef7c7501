"""Gap safety: a fast follower reading pages while many writers commit never misses
an event. Each writer is its own ``Fengqiao`` (its own connections) on the same store.

On PostgreSQL, positions come from a sequence; without care a reader could see
position n+1 committed while n is still in flight, move past n, and miss it when
it commits. eventsourcing's recorder takes an EXCLUSIVE table lock in every
inserting transaction, so positions become visible in commit order; this test
holds the feed to that."""

from __future__ import annotations

import threading

from engine.feed import Feed
from engine.service import Fengqiao
from tests.feed_support import case_positions
from tests.support import act, report

WRITERS = 4
CASES_PER_WRITER = 8
COMMENTS_PER_CASE = 3


ROUNDS = CASES_PER_WRITER * (1 + COMMENTS_PER_CASE)  # one command per writer a round


def write(app: Fengqiao, rounds: threading.Barrier, failures: list[BaseException]) -> None:
    """Each command, then wait for the other writers: every round's commands run concurrently,
    and the feed must interleave the writers' cases however fast the host schedules one thread."""
    try:
        for _ in range(CASES_PER_WRITER):
            case = report(app, "dispute", "minor")
            rounds.wait(timeout=60)
            for n in range(COMMENTS_PER_CASE):
                act(app, case.case_id, "comment", "wang", text=f"note {n}")
                rounds.wait(timeout=60)
    except BaseException as error:  # noqa: BLE001 - reported by the test
        failures.append(error)
        rounds.abort()
    finally:
        app.close()


def test_a_fast_follower_never_misses_an_event_while_writers_commit(app, store, clock, monkeypatch):
    monkeypatch.setenv(
        "FENGQIAO_POOL_SIZE", "2"
    )  # five engines; PostgreSQL's connections are shared
    monkeypatch.setenv("FENGQIAO_POOL_OVERFLOW", "2")
    failures: list[BaseException] = []
    writer_apps = [
        Fengqiao(store, clock=clock) for _ in range(WRITERS)
    ]  # made one by one: DDL races
    rounds = threading.Barrier(WRITERS)
    writers = [threading.Thread(target=write, args=(w, rounds, failures)) for w in writer_apps]
    done = threading.Event()
    seen: list[int] = []
    follower_app = Fengqiao(store, clock=clock)
    feed = Feed(follower_app)

    def follow() -> None:
        after = 0
        while True:
            finished = done.is_set()  # read before the page: a page after the end sees everything
            page = feed.page(after, 7)
            seen.extend(page.positions)
            after = page.next_after
            if finished and not page.events:
                return

    follower = threading.Thread(target=follow)
    follower.start()
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    done.set()
    follower.join(timeout=60)
    follower_app.close()

    assert not failures, failures
    expected = case_positions(app)
    assert len(expected) == WRITERS * CASES_PER_WRITER * (1 + COMMENTS_PER_CASE)
    assert seen == expected  # every event, once, in position order
    subjects = [e["subject"] for e in Feed(app).page(0, 1000).events]
    switches = sum(1 for a, b in zip(subjects, subjects[1:], strict=False) if a != b)
    assert (
        switches >= (WRITERS - 1) * ROUNDS
    )  # the writers really did interleave: each round, four cases
