"""Benchmark: finding due clock thresholds in the timer index, at scale.

Fills ``timer_index`` with ``--rows`` open clocks (due times spread over a year),
then times the timer service's lookup (``due_cases``: thresholds due by now,
earliest first, one batch) and ``next_due``, and the cost of firing a batch of
real due cases end to end.

    .venv/bin/python api/bench/bench_timers.py --url 'postgresql://postgres@127.0.0.1:5432/test?schema=bench_timers' --rows 1000000
    .venv/bin/python api/bench/bench_timers.py --url sqlite:////tmp/bench_timers.db --rows 1000000

Not part of the test run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from api.bench.county import act, report, seed  # noqa: E402
from engine.service import Fengqiao  # noqa: E402
from engine.store import StoreConfig  # noqa: E402
from engine.time_source import SimulatedClock  # noqa: E402
from workflows.timer_index import TABLE, as_key, due_cases, next_due  # noqa: E402
from workflows.timers import TimerService  # noqa: E402

START = datetime(2025, 9, 26, 2, tzinfo=UTC)
CLOCKS = ["sign_for", "reply", "rank_handling", "mediation", "rectification"]


def fill(timers: TimerService, rows: int, chunk: int = 20_000) -> float:
    timers.runner.ensure()
    physical = f"{TABLE}__g{timers.runner._tracking(TABLE)[0]}"
    rng = random.Random(7)
    began = time.perf_counter()
    done = 0
    while done < rows:
        batch = []
        for _ in range(min(chunk, rows - done)):
            due = START + timedelta(seconds=rng.randrange(365 * 86400))
            batch.append(
                (
                    str(uuid.uuid4()),
                    rng.choice(CLOCKS),
                    "1.0",
                    rng.choice([0.5, 0.75, 1.0]),
                    as_key(due),
                )
            )
        with timers.db.transaction() as tx:
            tx.executemany(
                f"INSERT INTO {physical} (case_id, clock, leg, threshold, due_at) VALUES (?, ?, ?, ?, ?)",
                batch,
            )
        done += len(batch)
    return time.perf_counter() - began


def timed(call, repeat: int = 30) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--fire", type=int, default=200, help="real cases to fire end to end")
    args = parser.parse_args()
    clock = SimulatedClock(START)
    app = seed(Fengqiao(StoreConfig(args.url), clock=clock))
    timers = TimerService(app)
    seconds = fill(timers, args.rows)
    print(f"filled {args.rows:,} index rows in {seconds:.1f} s")
    for label, now in (
        ("1 hour in", START + timedelta(hours=1)),
        ("1 week in", START + timedelta(days=7)),
    ):
        due_now = timers.db.query(
            f"SELECT COUNT(*) AS n FROM {TABLE} WHERE due_at <= ?", (as_key(now),)
        )[0]["n"]
        median, p95 = timed(lambda now=now: due_cases(timers.db, now, timers.batch))
        print(
            f"due_cases (batch {timers.batch}) {label}: {due_now:,} due; median {median:.2f} ms, p95 {p95:.2f} ms"
        )
    median, p95 = timed(lambda: next_due(timers.db))
    print(f"next_due: median {median:.2f} ms, p95 {p95:.2f} ms")
    with timers.db.transaction() as tx:  # leave only real cases for the end-to-end part
        tx.execute(f"DELETE FROM {TABLE}__g{timers.runner._tracking(TABLE)[0]}")
    for _ in range(args.fire):
        case_id = report(app, "dispute", "minor").case_id
        act(app, case_id, "assign", "li", assignee="wang")
    clock.set(START + timedelta(days=30))
    began = time.perf_counter()
    fired = timers.tick()
    seconds = time.perf_counter() - began
    print(
        f"tick over {args.fire} overdue cases: {len(fired)} commands in {seconds:.2f} s "
        f"({len(fired) / seconds:.0f} commands/s)"
    )
    timers.close()
    app.close()


if __name__ == "__main__":
    main()
