"""Benchmark: supervisor queries at scale — target p95 ≤ 20 ms each on PostgreSQL.

The read models are filled with ``--size`` synthetic case rows written straight into
the live ``cases`` table with one ``INSERT … SELECT generate_series`` (generating the
same number of cases through the engine takes ~6 events a case: hours at 1M). The
rows follow the projection's columns: a county of 12 townships × 20 villages × 3
grids, reported evenly over 2025, ~8% still open (some overdue, some due soon,
some breached), the rest resolved — mostly within their ceiling — and closed; a
third are petitions with the 三率 columns. The roll-ups (``cases_stats``,
``cases_board``) are then recomputed from those rows by
``CasesProjection.refill_rollups`` — the function the tests prove equal to what the
projection maintains event by event. Then, 50 times each (after one warm-up):

* the SLA board of a township and of the county (``ReadModels.sla_board``), and of
  township 001, where the synthetic overdue cases all are;
* the first page of the county's overdue list, and a later page by cursor;
* region stats for 2025 of a township and of the county (``ReadModels.region_stats``):
  the Beijing year, as ``GET /v1/regions/{code}/stats?from=2025-01-01&to=2025-12-31``
  asks, and the UTC year (whose sub-day edges are counted from the case rows).

Baseline beside them: one case by primary key (``get_case``).

    .venv/bin/fengqiao bench queries --store postgres --size 1000000
    .venv/bin/python api/bench/bench_queries.py --size 1000000 --schema bench_q_keep --explain
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("FENGQIAO_LOG_LEVEL", "WARNING")

from api.bench.bench_write import drop  # noqa: E402
from api.bench.county import seed  # noqa: E402
from api.bench.stores import POSTGRES_URL  # noqa: E402
from engine.logs import configure_logging  # noqa: E402
from engine.service import Fengqiao  # noqa: E402
from engine.sql import Tx  # noqa: E402
from engine.store import StoreConfig  # noqa: E402
from projections import default_projections  # noqa: E402
from projections.cases import CasesProjection  # noqa: E402
from projections.queries import BEIJING, ReadModels  # noqa: E402
from projections.runner import ProjectionRunner  # noqa: E402

COUNTY = "410928"
FILL = """
INSERT INTO {table} (case_id, kind, severity, status, region, origin_region, village, township,
    region_township, rank,
    assignee, unit, next_due_at, overdue, due_soon, breached, reported_at, resolved_at, resolved_rank,
    within_ceiling, dispatched_at, responded_in_time, visited_at, satisfaction, version, position)
SELECT md5(n::text || %(salt)s),
       CASE WHEN n % 3 = 0 THEN 'petition' WHEN n % 3 = 1 THEN 'dispute' ELSE 'hazard' END,
       CASE WHEN n % 50 = 0 THEN 'major' ELSE 'minor' END,
       CASE WHEN n % 12 = 0 THEN 'assigned' WHEN n % 25 = 0 THEN 'accepted'
            WHEN n % 2 = 0 THEN 'closed' ELSE 'resolved' END,
       g.grid, g.grid, g.village, g.township, g.township, 0,
       'worker-' || (n % 700), 'unit-' || (n % 240),
       to_char(timestamp '2025-01-01' + (n % 365) * interval '1 day' + interval '7 days', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
       CASE WHEN n % 12 = 0 AND n % 5 = 0 THEN 1 ELSE 0 END,
       CASE WHEN n % 12 = 0 AND n % 7 = 0 THEN 1 ELSE 0 END,
       CASE WHEN n % 12 = 0 AND n % 5 = 0 THEN '["sign_for"]' ELSE '[]' END,
       to_char(timestamp '2025-01-01' + (n % 365) * interval '1 day' + (n % 86400) * interval '1 second',
               'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
       CASE WHEN n % 12 = 0 OR n % 25 = 0 THEN NULL ELSE
            to_char(timestamp '2025-01-03' + (n % 365) * interval '1 day', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') END,
       CASE WHEN n % 12 = 0 OR n % 25 = 0 THEN NULL WHEN n % 9 = 0 THEN 2 ELSE 1 END,
       CASE WHEN n % 12 = 0 OR n % 25 = 0 THEN NULL WHEN n % 40 = 0 THEN 0 ELSE 1 END,
       CASE WHEN n % 3 = 0 THEN to_char(timestamp '2025-01-01', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') END,
       CASE WHEN n % 3 = 0 THEN 1 END,
       CASE WHEN n % 3 = 0 AND n % 2 = 0 THEN to_char(timestamp '2025-02-01', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') END,
       CASE WHEN n % 3 = 0 AND n % 2 = 0 THEN 'satisfied' END,
       5, n
FROM generate_series(1, %(size)s) AS n
CROSS JOIN LATERAL (
    SELECT '{county}-' || lpad((1 + n % 12)::text, 3, '0') AS township,
           '{county}-' || lpad((1 + n % 12)::text, 3, '0') || '-' || lpad((1 + (n / 12) % 20)::text, 3, '0') AS village,
           '{county}-' || lpad((1 + n % 12)::text, 3, '0') || '-' || lpad((1 + (n / 12) % 20)::text, 3, '0')
               || '-' || lpad((1 + (n / 240) % 3)::text, 2, '0') AS grid
) AS g
"""


def timed(call, repeat: int = 50) -> list[float]:
    """Milliseconds of each of `repeat` calls, after one untimed warm-up call."""
    call()
    out = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        out.append((time.perf_counter() - began) * 1000)
    return out


def p95(values: list[float]) -> float:
    return sorted(values)[int(0.95 * (len(values) - 1))]


def p95_row(
    name: str,
    ms: list[float],
    digits: int,
    baseline: tuple[float, str],
    target: float,
    **more: Any,
) -> dict[str, Any]:
    """A figure of timings in ms: the p95, with the median and the baseline (value, name)."""
    figure, median = round(p95(ms), digits), round(statistics.median(ms), digits)
    return {
        "name": name,
        "figure": figure,
        "unit": "ms p95",
        "median": median,
        "baseline": baseline[0],
        "baseline_name": baseline[1],
        "target": target,
        **more,
    }


def fill(runner: ProjectionRunner, size: int) -> str:
    """Add ``size`` synthetic rows to the live cases table (PostgreSQL), recompute the
    roll-ups from the case rows (``CasesProjection.refill_rollups``, the function the
    tests prove equal to the incrementally maintained roll-ups) and ANALYZE; the table."""
    generation = runner.db.query("SELECT generation FROM projection_tracking WHERE name = 'cases'")[
        0
    ]["generation"]
    table = f"cases__g{generation}"
    with runner.db.transaction() as tx:
        tx.execute(
            FILL.format(table=table, county=COUNTY)
            .replace("%(salt)s", "?")
            .replace("%(size)s", "?"),
            [uuid.uuid4().hex, size],
        )
    projection = copy.copy(runner.projections["cases"])
    projection.generation = generation
    with runner.db.transaction() as tx:
        cast(CasesProjection, projection).refill_rollups(tx, runner.db.is_postgres)
    with runner.db.transaction() as tx:
        for name in ("cases", "cases_stats", "cases_board"):
            tx.execute(f"ANALYZE {name}__g{generation}")
    return table


def statements(runner: ProjectionRunner, call) -> list[tuple[str, Any]]:
    """The SQL statements (and parameters) one call sends."""
    seen: list[tuple[str, Any]] = []
    original = Tx.query

    def record(self, sql, params=()):
        seen.append((sql, params))
        return original(self, sql, params)

    with mock.patch.object(Tx, "query", record):
        call()
    return seen


def explain(runner: ProjectionRunner, queries: dict[str, Any]) -> None:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of every statement each query sends (after the runs: warm)."""
    for name, call in queries.items():
        for sql, params in statements(runner, call):
            plan = runner.db.query(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
            print(
                f"\n== {name}\n{sql}\n" + "\n".join(next(iter(r.values())) for r in plan),
                flush=True,
            )


def run(
    store: str = "postgres",
    size: int | None = None,
    schema: str | None = None,
    show_plans: bool = False,
) -> list[dict]:
    """Fill a fresh schema (dropped after), or reuse ``schema`` if it already holds the
    rows (kept), and time each query 50 times after a warm-up."""
    if store != "postgres":
        raise SystemExit("bench_queries fills PostgreSQL only (the target is PostgreSQL's)")
    size = size or 100_000
    configure_logging()
    config = StoreConfig(f"{POSTGRES_URL}?schema={schema or f'bench_q_{uuid.uuid4().hex[:8]}'}")
    app = Fengqiao(config)
    if app.head_position() == 0:
        seed(app)
    runner = ProjectionRunner(app, default_projections())
    filled = None
    try:
        runner.ensure()
        runner.rebuild_stale()
        runner.run_once()
        if runner.db.query("SELECT COUNT(*) AS n FROM cases")[0]["n"] < size:
            began = time.perf_counter()
            fill(runner, size)
            filled = round(time.perf_counter() - began)
        models = ReadModels(runner.db)
        township = f"{COUNTY}-003"
        year = (
            datetime(2025, 1, 1, tzinfo=BEIJING),
            datetime(2026, 1, 1, tzinfo=BEIJING),
        )  # ?from=2025-01-01&to=2025-12-31
        utc_year = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
        first, cursor = models.list_cases(region=COUNTY, overdue=True, limit=50)
        some_id = first[0].get("case_id") if first else None
        queries = {
            "SLA board, township": lambda: models.sla_board(township),
            "SLA board, township with the overdue": lambda: models.sla_board(f"{COUNTY}-001"),
            "SLA board, county": lambda: models.sla_board(COUNTY),
            "overdue list, county, page 1": lambda: models.list_cases(
                region=COUNTY, overdue=True, limit=50
            ),
            "overdue list, county, page 2": lambda: models.list_cases(
                region=COUNTY, overdue=True, limit=50, cursor=cursor
            ),
            "region stats 2025, township": lambda: models.region_stats(township, *year),
            "region stats 2025, county": lambda: models.region_stats(COUNTY, *year),
            "region stats 2025 UTC, county": lambda: models.region_stats(COUNTY, *utc_year),
        }
        figures = {name: timed(call) for name, call in queries.items()}
        baseline = statistics.median(timed(lambda: models.get_case(some_id or "x")))
        if show_plans:
            explain(runner, queries)
    finally:
        runner.close()
        app.close()
        if schema is None:
            drop(config)
    by_key = (round(baseline, 2), "case by key, median ms")
    return [
        p95_row(f"queries {name} ({size:,} cases)", ms, 1, by_key, 20, fill_seconds=filled)
        for name, ms in figures.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument(
        "--schema", help="keep the data in this schema and reuse it on the next run"
    )
    parser.add_argument(
        "--explain", action="store_true", help="print EXPLAIN (ANALYZE, BUFFERS) of each query"
    )
    args = parser.parse_args()
    for row in run("postgres", args.size, args.schema, args.explain):
        print(row, flush=True)


if __name__ == "__main__":
    main()
