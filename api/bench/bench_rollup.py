"""Benchmark: a simulated province roll-up over several county stores.

N county stores (PostgreSQL schemas ``bench_rollup_<events>_c0``… or SQLite files), each filled
once with ``bench_projections.generate``'s cases (real aggregates, ~6 events a case),
are followed from position zero into a fresh province database
(``projections/province.py``: one ``ProjectionRunner`` per county, ``threads`` counties
at a time). Each run measures:

* **catch-up**: events/s over all counties (wall) and the roll-up process's CPU per
  event (``time.process_time``: every thread of this process, not PostgreSQL's);
* **province stats**: ``ProvinceRollup.stats`` for a year (12 months × N counties),
  p50/p95 over ``--queries`` calls;
* **baseline, same run**: county 0's own ``cases`` projection rebuilt in its own store
  over the same events (the single-store figure of ``bench_projections``), and that
  county's own ``ReadModels.region_stats`` for the year.

    .venv/bin/python api/bench/bench_rollup.py --store postgres --events 250000 --prepare   # once, no lock
    flock /tmp/fengqiao-bench.lock .venv/bin/python api/bench/bench_rollup.py --store postgres --events 250000

``--events`` counts events per county. Not part of the test run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from api.bench.bench_projections import generate  # noqa: E402
from api.bench.bench_timers import timed  # noqa: E402
from api.bench.county import seed  # noqa: E402
from engine.service import Fengqiao  # noqa: E402
from engine.store import StoreConfig  # noqa: E402
from engine.time_source import SimulatedClock  # noqa: E402
from projections import default_projections  # noqa: E402
from projections.province import ProvinceRollup, county_url  # noqa: E402
from projections.queries import ReadModels  # noqa: E402
from projections.runner import ProjectionRunner  # noqa: E402

POSTGRES_URL = os.environ.get(
    "FENGQIAO_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
YEAR = ("2026-01", "2026-12")


def url(store: str, events: int, name: str) -> str:
    """One store per size, kept between runs."""
    if store == "postgres":
        return f"{POSTGRES_URL}?schema=bench_rollup_{events}_{name}"
    return f"sqlite:////tmp/fengqiao_bench_rollup_{events}_{name}.db"


def prepare(store: str, counties: int, events: int) -> list[str]:
    """Fill each county store up to ``events`` events (kept between runs)."""
    urls = []
    for i in range(counties):
        app = Fengqiao(
            StoreConfig(url(store, events, f"c{i}")),
            clock=SimulatedClock(datetime(2026, 1, 5, tzinfo=UTC)),
        )
        try:
            if app.head_position() == 0:
                seed(app)
            if app.head_position() < events:
                print(f"county c{i}: ", end="")
                generate(app, events)
            urls.append(app.store.url)
        finally:
            app.close()
    return urls


def drop_province(store: str, events: int, counties: int) -> str:
    province = url(store, events, "province")
    if store == "postgres":
        import psycopg

        schema = StoreConfig(province).schema
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            for name in [schema, *(f"{schema}_c{i}" for i in range(counties))]:
                conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    else:
        for target in [province, *(county_url(province, f"c{i}") for i in range(counties))]:
            StoreConfig(target).sqlite_path.unlink(missing_ok=True)
    return province


def run(
    store: str, events: int, urls: list[str], batch_size: int, threads: int, queries: int
) -> dict:
    load_before = os.getloadavg()[0]
    # baseline: county 0's own projection rebuilt in its own store
    app = Fengqiao(StoreConfig(urls[0]), env={"CREATE_TABLE": "n"})
    own = ProjectionRunner(app, default_projections())
    try:
        began, cpu = time.monotonic(), time.process_time()
        base_events = own.rebuild("cases", batch_size=batch_size)
        base_wall, base_cpu = time.monotonic() - began, time.process_time() - cpu
        models = ReadModels(own.db)
        base_p50, base_p95 = timed(
            lambda: models.region_stats(
                "410928", datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
            ),
            queries,
        )
    finally:
        own.close()
        app.close()
    # the roll-up from zero
    province = drop_province(store, events, len(urls))
    rollup = ProvinceRollup(province)
    try:
        for i, county in enumerate(urls):
            rollup.add(f"c{i}", county)
        began, cpu = time.monotonic(), time.process_time()
        applied = rollup.run_once(batch_size=batch_size, threads=threads)
        wall, used = time.monotonic() - began, time.process_time() - cpu
        caught_up = sum(applied.values())
        assert all(s["lag"] == 0 for s in rollup.statuses()), rollup.statuses()
        figures = rollup.stats(*YEAR)
        p50, p95 = timed(lambda: rollup.stats(*YEAR), queries)
    finally:
        rollup.close()
    return {
        "events": caught_up,
        "wall": wall,
        "rate": caught_up / wall,
        "cpu_us": used / caught_up * 1e6,
        "base_events": base_events,
        "base_wall": base_wall,
        "base_rate": base_events / base_wall,
        "base_cpu_us": base_cpu / base_events * 1e6,
        "stats_p50": p50,
        "stats_p95": p95,
        "base_stats_p50": base_p50,
        "base_stats_p95": base_p95,
        "received": figures["total"]["received"],
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--counties", type=int, default=4)
    parser.add_argument("--events", type=int, default=250_000, help="events per county")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=4, help="counties caught up at once")
    parser.add_argument("--queries", type=int, default=100, help="stats calls timed per run")
    parser.add_argument(
        "--prepare", action="store_true", help="fill the county stores, measure nothing"
    )
    args = parser.parse_args()
    urls = prepare(args.store, args.counties, args.events)
    if args.prepare:
        return
    results = []
    for n in range(args.runs):
        print(f"uptime: {Path('/proc/loadavg').read_text().strip()}", flush=True)
        r = run(args.store, args.events, urls, args.batch_size, args.threads, args.queries)
        results.append(r)
        print(
            f"RESULT run={n + 1} store={args.store} counties={args.counties} events={r['events']} "
            f"catch_up_seconds={r['wall']:.1f} rate={r['rate']:,.0f} events/s cpu_us_per_event={r['cpu_us']:.1f} "
            f"| baseline one county rebuild events={r['base_events']} seconds={r['base_wall']:.1f} "
            f"rate={r['base_rate']:,.0f} events/s cpu_us_per_event={r['base_cpu_us']:.1f} "
            f"| province stats ({args.counties} counties x 12 months) p50={r['stats_p50']:.1f} ms "
            f"p95={r['stats_p95']:.1f} ms; one county's own region_stats p50={r['base_stats_p50']:.1f} ms "
            f"p95={r['base_stats_p95']:.1f} ms | received={r['received']} "
            f"load_average={r['load_before']:.1f}->{r['load_after']:.1f}",
            flush=True,
        )
    print(f"uptime: {Path('/proc/loadavg').read_text().strip()}")
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print(
        f"MEDIAN of {len(results)}: catch-up {med['rate']:,.0f} events/s ({med['cpu_us']:.1f} µs CPU/event), "
        f"baseline one-county rebuild {med['base_rate']:,.0f} events/s ({med['base_cpu_us']:.1f} µs CPU/event), "
        f"ratio {med['rate'] / med['base_rate']:.2f}x wall, {med['cpu_us'] / med['base_cpu_us']:.2f}x CPU/event; "
        f"stats p95 {med['stats_p95']:.1f} ms (one county's own {med['base_stats_p95']:.1f} ms)"
    )


if __name__ == "__main__":
    main()
