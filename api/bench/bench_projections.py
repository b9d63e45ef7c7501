"""Benchmark: how fast the read models rebuild from zero.

Generates cases through the domain (each case a real aggregate: reported,
assigned, signed for, mediated or replied, resolved, closed; ~6 events), saves
them through the application service's recorder in bulk, then times
``ProjectionRunner.rebuild`` of every default projection.

    .venv/bin/python api/bench/bench_projections.py --url 'postgresql://postgres@127.0.0.1:5432/test?schema=bench' --events 1000000
    .venv/bin/python api/bench/bench_projections.py --url sqlite:////tmp/bench.db --events 200000

An existing store with at least ``--events`` events is reused (``--fresh`` drops a
PostgreSQL schema / SQLite file first). Not part of the test run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from api.bench.county import actor, seed  # noqa: E402
from domain.cases import Dispute, Petition, Stamp  # noqa: E402
from engine.service import Fengqiao  # noqa: E402
from engine.store import StoreConfig  # noqa: E402
from engine.time_source import SimulatedClock  # noqa: E402
from projections import default_projections  # noqa: E402
from projections.runner import ProjectionRunner  # noqa: E402

APPLICATION_NAME = f"bench_projections_{os.getpid()}"
GRIDS = ["410928-001-007-03", "410928-001-008-01", "410928-002-001-01"]


def generate(app: Fengqiao, events: int, chunk: int = 400) -> None:
    """Cases until the log holds ``events`` events, saved ``chunk`` cases per transaction."""
    policy = app.policy()
    tree = app.ladder().tree
    wang = actor("wang", app)
    start, n, written = datetime(2026, 1, 5, 1, tzinfo=UTC), 0, app.head_position()
    run = uuid.uuid4().hex[:8]  # command ids (and so case ids) unique across runs on one store
    began = time.monotonic()
    while written < events:
        cases = []
        for _ in range(chunk):
            n += 1
            at = start + timedelta(minutes=n)

            def stamp(step: int, at: datetime = at, n: int = n) -> Stamp:
                return Stamp(
                    actor=wang,
                    command_id=f"bench-{run}-{n}-{step}",
                    recorded_at=at + timedelta(minutes=step),
                )

            region = tree.get(GRIDS[n % len(GRIDS)])
            kind = Petition if n % 3 == 0 else Dispute
            case = kind.report(
                stamp(0),
                policy_version=policy.version,
                category="utilities" if kind is Petition else "neighbours",
                severity="minor",
                region=region.code,
                rank=int(region.rank),
                profile=str(region.profile),
                ceilings=policy.ceilings_for(region.profile),
                title=f"bench case {n}",
            )
            case.assign(
                stamp(1), assignee="wang", unit=None, region=region.code, rank=int(region.rank)
            )
            case.accept(stamp(2))
            if kind is Petition:
                cast(Petition, case).reply(stamp(3), text="已处理")
            else:
                cast(Dispute, case).mediate(
                    stamp(3), outcome="agreed", summary="调解", agreement="协议"
                )
            case.resolve(stamp(4), resolution="化解")
            if kind is Dispute:
                case.close(stamp(5))
            cases.append(case)
        app.save(*cases)
        written = app.head_position()
        rate = written / max(time.monotonic() - began, 1e-9)
        print(f"\rgenerated {written:,} events ({rate:,.0f}/s)", end="", flush=True)
    print()


def events_parser(
    doc: str, runs: tuple[int, str], baseline: tuple[int, str]
) -> argparse.ArgumentParser:
    """The arguments of a benchmark over a store filled with generated events (this one and
    the feed's): ``runs`` and ``baseline`` are each a default and its help."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--runs", type=int, default=runs[0], help=runs[1])
    parser.add_argument("--baseline-events", type=int, default=baseline[0], help=baseline[1])
    parser.add_argument("--generate-only", action="store_true", help="fill the store only")
    return parser


def main() -> None:
    parser = events_parser(
        __doc__,
        (1, "rebuild this many times"),
        (200_000, "events read and decoded by the library alone, for the baseline"),
    )
    parser.add_argument("--batch-size", type=int, default=5000)
    args = parser.parse_args()
    os.environ["PGAPPNAME"] = (
        APPLICATION_NAME  # libpq: names every connection, to find our backends
    )
    store = StoreConfig(args.url)
    if args.fresh:
        if store.is_postgres:
            import psycopg

            with psycopg.connect(store.psycopg_url(), autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{store.schema}" CASCADE')
        else:
            store.sqlite_path.unlink(missing_ok=True)
    app = Fengqiao(store, clock=SimulatedClock(datetime(2026, 1, 5, tzinfo=UTC)))
    if app.head_position() == 0:
        seed(app)
    if app.head_position() < args.events:
        generate(app, args.events)
    if args.generate_only:
        app.close()
        return
    runner = ProjectionRunner(app, default_projections())
    head = app.head_position()
    try:
        base_rate, base_cpu = (
            baseline(app, min(head, args.baseline_events)) if args.baseline_events else (0.0, 0.0)
        )
        print(
            f"BASELINE library read+decode (select_notifications + mapper.to_domain_event), "
            f"{min(head, args.baseline_events):,} events: {base_rate:,.0f} events/s, {base_cpu:.1f} µs CPU/event"
        )
        for run in range(args.runs):
            for name in runner.projections:
                print(f"uptime: {Path('/proc/loadavg').read_text().strip()}")
                began, cpu, backends = time.monotonic(), time.process_time(), backend_cpu(store)

                def progress(
                    position: int, head: int, began: float = began, name: str = name
                ) -> None:
                    rate = position / max(time.monotonic() - began, 1e-9)
                    print(
                        f"\r{name}: {position:,}/{head:,} ({rate:,.0f} events/s)",
                        end="",
                        flush=True,
                    )

                events = runner.rebuild(name, progress=progress, batch_size=args.batch_size)
                elapsed, cpu = time.monotonic() - began, time.process_time() - cpu
                after = backend_cpu(store)
                pg = sum(t - backends.get(pid, 0.0) for pid, t in after.items())
                print(
                    f"\nRESULT run={run + 1} store={store.kind} projection={name} events={events} "
                    f"seconds={elapsed:.1f} rate={events / elapsed:,.0f} events/s cpu_seconds={cpu:.1f} "
                    f"cpu_us_per_event={cpu / events * 1e6:.1f} pg_cpu_us_per_event={pg / events * 1e6:.1f} "
                    f"baseline_rate={base_rate:,.0f} ratio={events / elapsed / max(base_rate, 1e-9):.2f} "
                    f"batch={args.batch_size} head={head} load_average={os.getloadavg()[0]:.1f}"
                )
    finally:
        runner.close()
        app.close()


def baseline(app: Fengqiao, events: int, batch: int = 5000) -> tuple[float, float]:
    """The library's own read and decode of the first ``events`` events: (events/s, µs CPU each)."""
    began, cpu, position = time.monotonic(), time.process_time(), 0
    while position < events:
        notifications = app.recorder.select_notifications(
            position + 1, min(batch, events - position)
        )
        if not notifications:
            break
        for notification in notifications:
            app.mapper.to_domain_event(notification)
        position = notifications[-1].id
    elapsed, cpu = time.monotonic() - began, time.process_time() - cpu
    return position / elapsed, cpu / max(position, 1) * 1e6


def backend_cpu(store: StoreConfig) -> dict[int, float]:
    """CPU seconds so far of this process's PostgreSQL backends (found by the
    application name set in ``main``; the server runs on this host; {} for SQLite)."""
    if not store.is_postgres:
        return {}
    import psycopg

    with psycopg.connect(store.psycopg_url(), autocommit=True) as conn:
        pids = [
            r[0]
            for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s "
                "AND pid <> pg_backend_pid()",
                (APPLICATION_NAME,),
            )
        ]
    ticks, seconds = os.sysconf("SC_CLK_TCK"), {}
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds[pid] = (int(stat[11]) + int(stat[12])) / ticks
    return seconds


if __name__ == "__main__":
    main()
