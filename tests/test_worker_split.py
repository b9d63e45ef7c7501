"""Two workers of each kind on one store, each with its own engine and connections,
running at the same time: projections are applied exactly once (equal to a rebuild),
timer thresholds fire once (no command recorded twice). See docs/scaling.md."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

from engine.service import Fengqiao
from projections import default_projections
from projections.runner import ProjectionRunner
from tests.support import act, report
from tests.test_projections_properties import snapshot
from workflows.timers import TimerService


def _both(work) -> None:
    failures: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            failures.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures


def test_two_projection_workers_apply_each_event_once(app, store, clock, monkeypatch):
    monkeypatch.setenv("FENGQIAO_POOL_SIZE", "2")
    monkeypatch.setenv("FENGQIAO_POOL_OVERFLOW", "2")
    for i in range(40):
        case_id = report(app, ["dispute", "petition"][i % 2]).case_id
        act(app, case_id, "assign", "li", assignee="zhao")
        act(app, case_id, "comment", "zhao", text=str(i))
    head = app.head_position()
    engines = [Fengqiao(store, clock=clock) for _ in range(2)]
    runners = [ProjectionRunner(engine, default_projections()) for engine in engines]
    runners[0].ensure()
    try:
        def work(i: int) -> None:
            while runners[i].position("cases") < head:
                runners[i].run_once(batch_size=5)

        _both(work)
        incremental = snapshot(runners[0].db)
        runners[0].rebuild("cases")
        assert snapshot(runners[0].db) == incremental
        assert len(incremental["cases"]) == 40
    finally:
        for runner in runners:
            runner.close()
        for engine in engines:
            engine.close()


def test_two_timer_workers_fire_each_threshold_once(app, store, clock, monkeypatch):
    monkeypatch.setenv("FENGQIAO_POOL_SIZE", "2")
    monkeypatch.setenv("FENGQIAO_POOL_OVERFLOW", "2")
    cases = []
    for _ in range(12):
        case_id = report(app, "dispute", "minor").case_id
        act(app, case_id, "assign", "li", assignee="zhao")
        cases.append(case_id)
    clock.advance(timedelta(days=20))
    engines = [Fengqiao(store, clock=clock) for _ in range(2)]
    timers = [TimerService(engine) for engine in engines]
    try:
        fired: list[list] = [[], []]
        _both(lambda i: fired[i].extend(timers[i].tick()))
        assert sum(not f.repeated for f in fired[0] + fired[1]) > 0
        timer_events = 0
        for case_id in cases:
            recorded = Counter((type(e.event).__name__, e.event.command_id) for e in app.history(case_id))
            assert all(n == 1 for n in recorded.values()), recorded
            timer_events += sum(n for (_, command), n in recorded.items() if command.startswith("timer:"))
        assert timer_events > 0
    finally:
        for timer in timers:
            timer.close()
        for engine in engines:
            engine.close()
