"""Benchmark: what the PostgreSQL batch's ``NOTIFY`` costs on the write path (issue 21).

Each batch the PostgreSQL recorder writes sends ``NOTIFY "<schema>_stored_events"`` (in
the batch's one round trip; delivered at ``COMMIT``) so that the library's
``subscribe()`` wakes at once. A notifying transaction also takes PostgreSQL's
cluster-wide notify-queue lock at commit. Here the same write workload as ``fengqiao
bench write`` (cases through a realistic life, 18 commands each) runs with and without
the ``NOTIFY``, in rounds that alternate the two (with, without, with, without, …) so
that a change in the host's load falls on both; the figure is the ratio of the medians,
with NOTIFY / without (1.0 = free).

    .venv/bin/fengqiao bench notify --store postgres --size 5   # seconds per measurement
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from api.bench.bench_write import drop, engine_rate
from api.bench.stores import bench_store
from engine.service import Fengqiao

WRITERS = (1, 16)
ROUNDS = 3  # each round: one measurement with and one without


def without_notify(engine: Fengqiao) -> None:
    """The engine's batches from now on send no ``NOTIFY`` (a benchmark's look inside the
    recorder: its batch text is built once, ``ChainedPostgresRecorder._insert_head``)."""
    recorder: Any = engine.recorder
    channel = '"' + recorder.channel_name.replace('"', '""') + '"'
    head = recorder._insert_head  # noqa: SLF001 - a benchmark's look inside
    assert f"NOTIFY {channel}; " in head, "the batch no longer sends its NOTIFY here"
    recorder._insert_head = head.replace(f"NOTIFY {channel}; ", "")  # noqa: SLF001


def run(store: str = "postgres", size: int | None = None, seconds: float = 5.0) -> list[dict]:
    """Rows: events/s with NOTIFY (the figure) beside without (the baseline), per writers."""
    seconds = float(size) if size else seconds
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for writers in WRITERS:
            rates: dict[bool, list[float]] = {True: [], False: []}
            for n in range(ROUNDS * 2):
                notify = n % 2 == 0
                one = bench_store(store, Path(folder), f"n{writers}_{n}", prefix="bench_n")
                try:
                    tune = None if notify else without_notify
                    rates[notify].append(
                        engine_rate(one, writers, seconds, tune=tune)["events_per_s"]
                    )
                finally:
                    drop(one)
            with_notify, without = (statistics.median(rates[k]) for k in (True, False))
            rows.append(
                {
                    "name": f"write {store} {writers} writer{'s' if writers > 1 else ''}, NOTIFY",
                    "figure": round(with_notify),
                    "unit": "events/s",
                    "baseline": round(without),
                    "baseline_name": "same, without NOTIFY",
                    "ratio": round(with_notify / without, 3),
                    "runs_with": [round(r) for r in rates[True]],
                    "runs_without": [round(r) for r in rates[False]],
                    "target": None,
                }
            )
    return rows
