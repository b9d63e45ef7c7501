"""Benchmark: one batch of the PostgreSQL recorder alone (events + hash chain).

What a group-commit batch costs without the command code around it: batches of
1, 8 and 50 events (300-byte states, 3,000 cases that already have history)
through ``ChainedPostgresRecorder.insert_events`` on one thread; per batch: wall
time, this process's CPU and the writing connection's PostgreSQL backend CPU
(read from ``/proc``: the server must run on this host).

    .venv/bin/python api/bench/bench_insert.py [--repeat 300]

Run it from two checkouts to compare recorders (``--root`` is the checkout whose
engine is imported).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path
from typing import cast


def backend_cpu(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[2]))
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    sys.path.insert(0, args.root)
    os.environ.setdefault("FENGQIAO_LOG_LEVEL", "WARNING")
    import psycopg
    from eventsourcing.persistence import StoredEvent

    from engine.audit.recorders import ChainedPostgresRecorder
    from engine.service import Fengqiao
    from engine.store import StoreConfig

    url = os.environ.get("FENGQIAO_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    store = StoreConfig(f"{url}?schema=bench_insert_{uuid.uuid4().hex[:8]}")
    engine = Fengqiao(store)
    recorder = engine.recorder
    cases = [uuid.uuid4() for _ in range(3000)]
    versions = dict.fromkeys(cases, 0)
    state = os.urandom(300)

    def batch(size: int, k: int) -> list[StoredEvent]:
        events = []
        for i in range(size):
            case = cases[(k * size + i) % len(cases)]
            versions[case] += 1
            events.append(
                StoredEvent(case, versions[case], "domain.cases:Dispute.Commented", state)
            )
        return events

    try:
        for k in range(5):  # history: every case has events and chain rows already
            recorder.insert_events(batch(600, k))
        print(f"root {args.root}, load average {os.getloadavg()[0]:.1f}")
        for size in (1, 8, 50):
            recorder.insert_events(batch(size, 0))  # the writing connection is now open
            pid = cast(ChainedPostgresRecorder, recorder)._held.info.backend_pid  # noqa: SLF001 - a benchmark's look inside
            repeat = args.repeat if size < 50 else args.repeat // 3
            pg, wall, cpu = backend_cpu(pid), time.perf_counter(), time.process_time()
            for k in range(repeat):
                recorder.insert_events(batch(size, k))
            wall, cpu, pg = (
                time.perf_counter() - wall,
                time.process_time() - cpu,
                backend_cpu(pid) - pg,
            )
            print(
                f"batch of {size:2}: {wall / repeat * 1e3:.2f} ms wall; CPU per event: client "
                f"{cpu / repeat / size * 1e6:.0f} µs, PostgreSQL {pg / repeat / size * 1e6:.0f} µs"
            )
    finally:
        engine.close()
        with psycopg.connect(store.psycopg_url(), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{store.schema}" CASCADE')


if __name__ == "__main__":
    main()
