"""Benchmark: how fast an integrator reads the event feed, page by page, over HTTP.

Fills the store with real case events (``bench_projections.generate``: ~6 events a
case, saved in bulk) until it holds ``--events``, starts ``fengqiao serve --no-workers``
in its own process (uvicorn on 127.0.0.1), and follows ``GET /v1/events?after=&limit=``
from position 0 to the head with an httpx client (keep-alive, ``response.json()``) in
this process, as an integrator would. Each run prints the integrator's wall rate, the
server process's CPU per event (``/proc/<pid>/stat``: every thread of it) and the
client's, and the load average. The baseline, in the same invocation: the same server
with ``FENGQIAO_FEED_DIRECT=0`` (every event through eventsourcing's mapper and the
schema model: the feed before the direct path) over the first ``--baseline-events``.

    .venv/bin/python api/bench/bench_feed.py --url 'postgresql://postgres@127.0.0.1:5432/test?schema=bench_feed' --events 1000000
    .venv/bin/python api/bench/bench_feed.py --url sqlite:////tmp/bench_feed.db --events 100000

An existing store with at least ``--events`` events is reused (``--fresh`` starts over);
``--generate-only`` fills it and stops (do that outside the benchmark lock). ``--engine``
also times ``Feed.page`` in this process, both paths. Not part of the test run.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from api.bench.bench_projections import events_parser, generate  # noqa: E402
from api.bench.bench_write import drop  # noqa: E402
from api.bench.county import seed  # noqa: E402
from api.bench.server import Server  # noqa: E402
from engine.feed import DIRECT_VARIABLE, Feed  # noqa: E402
from engine.service import Fengqiao  # noqa: E402
from engine.store import StoreConfig  # noqa: E402
from engine.time_source import SimulatedClock  # noqa: E402
from engine.users import UserStore  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def follow_http(
    base: str, token: str, limit: int, stop_after: int | None = None
) -> tuple[int, float]:
    """Read the feed over HTTP from position 0 to the head (or ``stop_after`` events);
    return (events, seconds)."""
    after, events, began = 0, 0, time.monotonic()
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120
    ) as client:
        while stop_after is None or events < stop_after:
            response = client.get("/v1/events", params={"after": after, "limit": limit})
            response.raise_for_status()
            page = response.json()
            if not page:
                break
            events += len(page)
            after = int(response.headers["Fengqiao-Next-After"])
    return events, time.monotonic() - began


def run_http(
    store: StoreConfig, token: str, limit: int, *, direct: bool, stop_after: int | None
) -> dict:
    server = Server(store.url, workers=False, env={DIRECT_VARIABLE: "1" if direct else "0"})
    server.start(timeout=60)
    try:
        httpx.get(
            server.base + "/v1/events",
            params={"limit": 1},
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        ).raise_for_status()  # warm
        load = os.getloadavg()[0]
        server_cpu, client_cpu = process_cpu(server.pid), time.process_time()
        events, seconds = follow_http(server.base, token, limit, stop_after)
        server_cpu = process_cpu(server.pid) - server_cpu
        client_cpu = time.process_time() - client_cpu
    finally:
        server.stop()
    path = "http direct" if direct else "http reference (baseline)"
    return _row(path, events, seconds, (server_cpu, client_cpu), load)


def run_engine(app: Fengqiao, limit: int, *, direct: bool, stop_after: int | None) -> dict:
    feed, after, events = Feed(app, direct=direct), 0, 0
    load, cpu, began = os.getloadavg()[0], time.process_time(), time.monotonic()
    while stop_after is None or events < stop_after:
        page = feed.page(after, limit)
        if not page.events:
            break
        events += len(page.events)
        after = page.next_after
    seconds, cpu = time.monotonic() - began, time.process_time() - cpu
    return _row(
        "engine direct" if direct else "engine reference", events, seconds, (cpu, 0.0), load
    )


def _row(path: str, events: int, seconds: float, cpu: tuple[float, float], load: float) -> dict:
    """A run's figures: ``cpu`` is (server, client) seconds, ``load`` the 1-minute load
    average when it began (averaged with the one at its end)."""
    server_cpu, client_cpu = cpu
    return {
        "path": path,
        "events": events,
        "seconds": seconds,
        "rate": events / seconds,
        "server_us": server_cpu / events * 1e6,
        "client_us": client_cpu / events * 1e6,
        "load": (load + os.getloadavg()[0]) / 2,
    }


def show(store: StoreConfig, row: dict) -> None:
    print(
        f"RESULT store={store.kind} path={row['path']!r} events={row['events']} seconds={row['seconds']:.1f} "
        f"rate={row['rate']:,.0f} events/s server_cpu={row['server_us']:.1f} us/event "
        f"client_cpu={row['client_us']:.1f} us/event load={row['load']:.1f}",
        flush=True,
    )


def main() -> None:
    parser = events_parser(
        __doc__,
        (3, "HTTP runs of the direct path (median reported)"),
        (100_000, "events the baseline (reference path) server is timed over; 0 = none"),
    )
    parser.add_argument(
        "--limit", type=int, default=1000, help="page size (the API's maximum is 1000)"
    )
    parser.add_argument(
        "--engine", action="store_true", help="also time Feed.page in-process, both paths"
    )
    args = parser.parse_args()
    store = StoreConfig(args.url)
    if args.fresh:
        drop(store)
    app = Fengqiao(store, clock=SimulatedClock(datetime(2026, 1, 5, tzinfo=UTC)))
    try:
        if app.head_position() == 0:
            seed(app)
        if app.head_position() < args.events:
            generate(app, args.events)
        if args.generate_only:
            return
        token = UserStore(app).add(
            f"bench-integrator-{os.getpid()}", "integrator", app.ladder().tree.roots()[0].code
        )
        print(
            f"store={store.kind} head={app.head_position():,} limit={args.limit} nproc={os.cpu_count()}",
            flush=True,
        )
        rows = []
        for _ in range(args.runs):
            rows.append(run_http(store, token, args.limit, direct=True, stop_after=None))
            show(store, rows[-1])
        baseline = None
        if args.baseline_events:
            baseline = run_http(
                store, token, args.limit, direct=False, stop_after=args.baseline_events
            )
            show(store, baseline)
        if args.engine:
            for direct in (True, False):
                show(
                    store,
                    run_engine(
                        app, args.limit, direct=direct, stop_after=args.baseline_events or None
                    ),
                )
        if rows:
            median = {
                key: statistics.median(row[key] for row in rows)
                for key in ("rate", "server_us", "client_us", "load", "seconds")
            }
            ratio = f" = {median['rate'] / baseline['rate']:.1f}x the baseline" if baseline else ""
            print(
                f"MEDIAN store={store.kind} events={rows[0]['events']} runs={len(rows)} "
                f"rate={median['rate']:,.0f} events/s{ratio} wall={median['seconds']:.1f}s "
                f"server_cpu={median['server_us']:.1f} us/event client_cpu={median['client_us']:.1f} us/event "
                f"load={median['load']:.1f}",
                flush=True,
            )
    finally:
        app.close()


if __name__ == "__main__":
    main()
