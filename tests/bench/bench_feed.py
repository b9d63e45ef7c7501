"""Benchmark: how fast an integrator reads the event feed, page by page, over HTTP.

Fills the store with real case events (``bench_projections.generate``: ~6 events a
case, saved in bulk) until it holds ``--events``, serves the API with uvicorn on
127.0.0.1, and follows ``GET /v1/events?after=&limit=`` from position 0 to the head
with an httpx client (keep-alive), as an integrator would; then the same pages
straight from ``engine.feed.Feed`` (no HTTP) for comparison.

    .venv/bin/python tests/bench/bench_feed.py --url 'postgresql://postgres@127.0.0.1:5432/test?schema=bench_feed' --events 1000000
    .venv/bin/python tests/bench/bench_feed.py --url sqlite:////tmp/bench_feed.db --events 100000

An existing store with at least ``--events`` events is reused (``--fresh`` starts
over). Not part of the test run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from api.http.app import create_app  # noqa: E402
from engine.clock import SimulatedClock  # noqa: E402
from engine.feed import Feed  # noqa: E402
from engine.service import Fengqiao  # noqa: E402
from engine.store import StoreConfig  # noqa: E402
from tests.bench.bench_projections import generate  # noqa: E402
from tests.feed_support import LiveServer  # noqa: E402
from tests.support import seed  # noqa: E402


def drop(store: StoreConfig) -> None:
    if store.is_postgres:
        import psycopg

        with psycopg.connect(store.psycopg_url(), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{store.schema}" CASCADE')
    else:
        store.sqlite_path.unlink(missing_ok=True)


def follow_http(url: str, token: str, limit: int) -> tuple[int, float]:
    """Read the whole feed over HTTP; return (events, seconds). The server runs in this
    process, so the process's CPU time covers client and server."""
    after, events, began = 0, 0, time.monotonic()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
        while True:
            response = client.get("/v1/events", params={"after": after, "limit": limit})
            response.raise_for_status()
            page = response.json()
            if not page:
                return events, time.monotonic() - began
            events += len(page)
            after = int(response.headers["Fengqiao-Next-After"])
            rate = events / max(time.monotonic() - began, 1e-9)
            print(f"\rhttp: {events:,} events ({rate:,.0f}/s)", end="", flush=True)


def follow_engine(app: Fengqiao, limit: int) -> tuple[int, float]:
    """Read the whole feed through ``Feed.page`` (no HTTP); return (events, seconds)."""
    feed, after, events, began = Feed(app), 0, 0, time.monotonic()
    while True:
        page = feed.page(after, limit)
        if not page.events:
            return events, time.monotonic() - began
        events += len(page.events)
        after = page.next_after


def report(store: StoreConfig, path: str, events: int, seconds: float, cpu: float, limit: int, head: int) -> None:
    print(f"\nRESULT store={store.kind} path={path} events={events} seconds={seconds:.1f} "
          f"rate={events / seconds:,.0f} events/s cpu={cpu:.1f}s events_per_cpu_s={events / cpu:,.0f} "
          f"limit={limit} head={head} load={os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--limit", type=int, default=1000, help="page size (the API's maximum is 1000)")
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--skip-engine", action="store_true", help="only the HTTP run")
    args = parser.parse_args()
    store = StoreConfig(args.url)
    if args.fresh:
        drop(store)
    app = Fengqiao(store, clock=SimulatedClock(datetime(2026, 1, 5, tzinfo=UTC)))
    if app.head_position() == 0:
        seed(app)
    if app.head_position() < args.events:
        generate(app, args.events)
    http_app = create_app(app)
    users = http_app.state.services.users
    token = users.add("bench-integrator", "integrator", app.ladder().tree.roots()[0].code)
    head = app.head_position()
    try:
        with LiveServer(http_app) as url:
            cpu = time.process_time()
            events, seconds = follow_http(url, token, args.limit)
            report(store, "http", events, seconds, time.process_time() - cpu, args.limit, head)
        if not args.skip_engine:
            cpu = time.process_time()
            events, seconds = follow_engine(app, args.limit)
            report(store, "engine", events, seconds, time.process_time() - cpu, args.limit, head)
    finally:
        app.close()


if __name__ == "__main__":
    main()
