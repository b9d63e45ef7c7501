"""Audit benchmarks (outside the default test run).

1. Insert overhead of the hash chain: single-event transactions through
   eventsourcing's plain application recorder vs the chained one.
2. Verification speed: load N events (default 1,000,000) through the chained
   recorder in batches, then time ``verify_log`` (events/s) and one ``verify_case``.

    .venv/bin/python -m api.bench.bench_audit --store postgres --events 1000000
    .venv/bin/python -m api.bench.bench_audit --store sqlite --events 200000

PostgreSQL: ``FENGQIAO_TEST_POSTGRES_URL`` (default postgresql://postgres@127.0.0.1:5432/test);
a fresh schema is made and dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import cast

from eventsourcing.persistence import InfrastructureFactory, StoredEvent
from eventsourcing.utils import Environment

from api.bench.county import ZHANG_SAN, act, report, seed
from api.bench.stores import bench_store, drop_schema
from engine.audit.verify import verify_case, verify_log
from engine.service import Fengqiao
from engine.store import StoreConfig
from engine.time_source import SimulatedClock


def sample_events(app: Fengqiao) -> list[tuple[str, bytes]]:
    """Topics and state bytes of a real case's events, as templates."""
    from datetime import timedelta

    case_id = report(app, parties=[ZHANG_SAN]).case_id
    act(app, case_id, "comment", "wang", text="已上门了解情况，双方同意调解")
    act(app, case_id, "assign", "li", assignee="zhao")
    act(app, case_id, "accept", "zhao")
    cast(SimulatedClock, app.clock).advance(timedelta(hours=1))  # the engine is built on one below
    agreed = {"outcome": "agreed", "summary": "协商一致", "agreement": "赔偿 500 元"}
    act(app, case_id, "mediate", "zhao", **agreed)
    act(app, case_id, "resolve", "zhao", resolution="调解成功")
    return [(e.topic, bytes(e.state)) for e in app.recorder.select_events(case_id)]


def plain_env(store: StoreConfig) -> dict[str, str]:
    env = store.eventsourcing_env()
    env.pop("APPLICATION_RECORDER_TOPIC", None)
    return env


def insert_rate(store: StoreConfig, templates, count: int, chained: bool) -> tuple[float, float]:
    """Single-event transactions per second, and the client's CPU µs per event."""
    env = store.eventsourcing_env() if chained else plain_env(store)
    store.prepare()
    factory = InfrastructureFactory.construct(Environment("fengqiao", env))
    recorder = factory.application_recorder()
    cases = [uuid.uuid4() for _ in range(count // len(templates) + 1)]
    started, cpu = time.perf_counter(), time.process_time()
    n = 0
    for case_id in cases:
        for version, (topic, state) in enumerate(templates, start=1):
            if n == count:
                break
            recorder.insert_events([StoredEvent(case_id, version, topic, state)])
            n += 1
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    factory.close()
    return n / elapsed, cpu / n * 1e6


def load(app: Fengqiao, templates, count: int, batch: int) -> tuple[float, uuid.UUID]:
    started = time.perf_counter()
    pending: list[StoredEvent] = []
    written, last_case = 0, None
    while written < count:
        case_id = uuid.uuid4()
        for version, (topic, state) in enumerate(templates, start=1):
            pending.append(StoredEvent(case_id, version, topic, state))
        last_case = case_id
        written += len(templates)
        if len(pending) >= batch:
            app.recorder.insert_events(pending)
            pending = []
    if pending:
        app.recorder.insert_events(pending)
    assert last_case is not None  # count >= 1
    return written / (time.perf_counter() - started), last_case


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1200, help="events per insert while loading")
    parser.add_argument(
        "--insert-sample", type=int, default=3000, help="single-event transactions per insert run"
    )
    args = parser.parse_args()
    os.environ.setdefault(
        "FENGQIAO_SIGNING_KEY", str(Path(tempfile.gettempdir()) / "bench-signing-key.pem")
    )
    results: dict[str, object] = {
        "store": args.store,
        "events": args.events,
        "load_avg": os.getloadavg()[0],
    }
    with tempfile.TemporaryDirectory() as folder:
        stores = []
        try:
            main_store = bench_store(args.store, Path(folder), "verify")
            stores.append(main_store)
            from datetime import UTC, datetime

            app = seed(
                Fengqiao(main_store, clock=SimulatedClock(datetime(2026, 9, 28, 1, 0, tzinfo=UTC)))
            )
            templates = sample_events(app)
            results["event_bytes_avg"] = round(sum(len(s) for _, s in templates) / len(templates))

            for chained in (False, True):
                store = bench_store(args.store, Path(folder), "chained" if chained else "plain")
                stores.append(store)
                rate, cpu_us = insert_rate(store, templates, args.insert_sample, chained)
                label = "chained" if chained else "plain"
                results[f"insert_events_per_s_{label}"] = round(rate)
                results[f"insert_client_cpu_us_per_event_{label}"] = round(cpu_us)
                print(
                    json.dumps(
                        {
                            "insert": label,
                            "events_per_s": round(rate),
                            "client_cpu_us": round(cpu_us),
                        }
                    ),
                    flush=True,
                )
            if args.events == 0:
                app.close()
                print(json.dumps(results), flush=True)
                return

            rate, last_case = load(app, templates, args.events, args.batch)
            results["load_events_per_s"] = round(rate)
            print(json.dumps({"loaded": args.events, "events_per_s": round(rate)}), flush=True)

            cpu = time.process_time()
            result = verify_log(app)
            cpu = time.process_time() - cpu
            assert result.ok, result.finding
            results["verify_cpu_seconds"] = round(cpu, 2)
            results.update(
                verify_entries=result.entries,
                verify_seconds=round(result.seconds, 2),
                verify_events_per_s=round(result.events_per_second),
            )
            print(
                json.dumps(
                    {
                        "verify": result.entries,
                        "seconds": round(result.seconds, 2),
                        "cpu": round(cpu, 2),
                        "events_per_s": round(result.events_per_second),
                    }
                ),
                flush=True,
            )
            one = verify_case(app, last_case)
            assert one.ok
            results["verify_case_ms"] = round(one.seconds * 1000, 2)
            app.close()
        finally:
            for store in stores:
                drop_schema(store)
    print(json.dumps(results, ensure_ascii=False))


if __name__ == "__main__":
    main()
