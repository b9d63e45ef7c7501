"""Benchmark: search and the duplicate check at scale — search p95 ≤ 50 ms, the duplicate
check at intake ≤ 10 ms, at 1M cases, beside the plain case list in the same run.

The read models are filled directly, not through 1M commands (~6 events a case: hours):
the ``cases`` rows as ``bench_queries`` writes them (``FILL``: a county of 12 townships ×
20 villages × 3 grids over 2025, ~12% open; the regions in the projection's tree), each with
a title from a list of everyday matters (水费, 噪音, 楼道杂物 …; each in every township); then the search projection's rows for the same cases —
the title, the body (title, a second matter, a house number) and their bigrams, written by the
projection's own ``domain.search`` functions, a person for each case (300,000 persons,
some with several cases) and a point for every third. Then, 50 times each after a
warm-up:

* search of the county and of a township for a common two-character word (水费, in one
  case of 12), a three-character phrase (楼道杂物), two words, and a rare word (a house
  number: a handful of cases);
* a party's cases (``persons``), as a number search asks after its keyed-hash lookup;
* the duplicate check of a new report (``ReadModels.possible_duplicates``: the open cases
  of its village within 30 days, their titles compared, their persons and points) and the
  重复件 lookup (``ReadModels.earlier_cases``) — what a report adds to its command;
* baseline: the plain case list, first page, county and township.

    .venv/bin/fengqiao bench search --store postgres --size 1000000
    .venv/bin/fengqiao bench search --store sqlite --size 1000000
"""

from __future__ import annotations

import hashlib
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("FENGQIAO_LOG_LEVEL", "WARNING")

from api.bench.bench_queries import COUNTY, FILL, p95, timed  # noqa: E402
from api.bench.bench_write import drop  # noqa: E402
from api.bench.county import seed  # noqa: E402
from api.bench.stores import POSTGRES_URL  # noqa: E402
from domain.ladder import Rank  # noqa: E402
from domain.policy import Duplicates  # noqa: E402
from domain.search import Intake, bigrams, indexable  # noqa: E402
from engine.logs import configure_logging  # noqa: E402
from engine.service import Fengqiao  # noqa: E402
from engine.store import StoreConfig  # noqa: E402
from projections import default_projections  # noqa: E402
from projections.cases import CasesProjection  # noqa: E402
from projections.queries import ReadModels  # noqa: E402
from projections.runner import ProjectionRunner  # noqa: E402
from projections.search import rowid_of  # noqa: E402

MATTERS = (
    "村里水费又涨了",
    "广场舞噪音扰民",
    "邻居在楼道杂物堆放",
    "路灯坏了没人修",
    "下水道堵塞污水外溢",
    "工地拖欠农民工工资",
    "宅基地边界纠纷",
    "燃气管道老化漏气",
    "小区停车位被占用",
    "电动车楼道充电",
    "河道垃圾无人清理",
    "物业费收费不合理",
)
PERSONS = 300_000
BATCH = 20_000


def title_of(n: int) -> str:
    """Case ``n``'s title: every matter in every township (``n % 12`` is its township)."""
    return MATTERS[(n + n // 12) % len(MATTERS)]


def body_of(n: int) -> str:
    return indexable(title_of(n), MATTERS[(n // 7) % len(MATTERS)], f"门牌{n % 100_000}号")


def texts(n: int) -> tuple[str, str]:
    """Case ``n``'s title and body as the index holds them."""
    return title_of(n), body_of(n)


def case_id_of(n: int, salt: str) -> str:
    """The id ``FILL`` gives case ``n`` (``md5(n::text || salt)``)."""
    return hashlib.md5(f"{n}{salt}".encode()).hexdigest()


def fill_cases_sqlite(runner: ProjectionRunner, size: int, salt: str) -> None:
    """``FILL``'s rows for SQLite, generated here (SQLite has no ``generate_series``
    of this kind): the columns the list, the search and the duplicate check read."""
    table = f"cases__g{runner.projections['cases'].generation}"
    begin = datetime(2025, 1, 1, tzinfo=UTC)
    for start in range(1, size + 1, BATCH):
        rows = []
        for n in range(start, min(size, start + BATCH - 1) + 1):
            township = f"{COUNTY}-{1 + n % 12:03d}"
            village = f"{township}-{1 + (n // 12) % 20:03d}"
            grid = f"{village}-{1 + (n // 240) % 3:02d}"
            status = "assigned" if n % 12 == 0 else "accepted" if n % 25 == 0 else "closed"
            kind = ("petition", "dispute", "hazard")[n % 3]
            at = begin + timedelta(days=n % 365, seconds=n % 86400)
            reported = at.isoformat(timespec="microseconds")
            row = (case_id_of(n, salt), kind, "other", "minor", status, grid, grid, village)
            rows.append((*row, township, 0, reported, 5, n, title_of(n), township))
        with runner.db.transaction(bulk=True) as tx:
            tx.executemany(
                f"INSERT INTO {table} (case_id, kind, category, severity, status, region, "
                "origin_region, village, township, rank, reported_at, version, position, title, "
                "region_township) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )


def fill_cases_postgres(runner: ProjectionRunner, size: int, salt: str) -> None:
    table = f"cases__g{runner.projections['cases'].generation}"
    titles = "ARRAY[" + ", ".join(f"'{m}'" for m in MATTERS) + "]"
    sql = (
        FILL.format(table=table, county=COUNTY)
        .replace("version, position)", "version, position, title, category)")
        .replace(
            "5, n\nFROM", f"5, n, ({titles})[1 + (n + n / 12) % {len(MATTERS)}], 'other'\nFROM"
        )
        .replace("%(salt)s", "?")
        .replace("%(size)s", "?")
    )
    with runner.db.transaction() as tx:
        tx.execute(sql, [salt, size])


def fill_search(runner: ProjectionRunner, size: int, salt: str) -> None:
    """The search projection's rows for the filled cases, as its own functions write them."""
    projection = runner.projections["search"]
    text, grams = projection.t("search_text"), projection.t("search_grams")
    parties, points = projection.t("search_parties"), projection.t("search_points")
    postgres = runner.db.is_postgres
    for start in range(1, size + 1, BATCH):
        numbers = range(start, min(size, start + BATCH - 1) + 1)
        ids = {n: case_id_of(n, salt) for n in numbers}
        with runner.db.transaction(bulk=True) as tx:
            if postgres:
                tx.executemany(
                    f"INSERT INTO {text} (case_id, title, body, title_grams, grams) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [
                        (ids[n], title_of(n), body_of(n), bigrams(title_of(n)), bigrams(body_of(n)))
                        for n in numbers
                    ],
                )
            else:
                tx.executemany(
                    f"INSERT INTO {text} (rowid, case_id, title, body) VALUES (?, ?, ?, ?)",
                    [(rowid_of(ids[n]), ids[n], title_of(n), body_of(n)) for n in numbers],
                )
                tx.executemany(
                    f"INSERT INTO {grams} (rowid, case_id, title_grams, grams) VALUES (?, ?, ?, ?)",
                    [
                        (rowid_of(ids[n]), ids[n], *(" ".join(bigrams(t)) for t in texts(n)))
                        for n in numbers
                    ],
                )
            tx.executemany(
                f"INSERT INTO {parties} (person, case_id) VALUES (?, ?)",
                [(f"p-{n % PERSONS:020d}", ids[n]) for n in numbers],
            )
            tx.executemany(
                f"INSERT INTO {points} (case_id, lat, long) VALUES (?, ?, ?)",
                [
                    (ids[n], 35.7 + (n % 997) * 1e-5, 115.0 + (n % 991) * 1e-5)
                    for n in numbers
                    if n % 3 == 2
                ],
            )


def fill_regions(runner: ProjectionRunner) -> None:
    """``FILL``'s townships, villages and grids in the projection's region tree (what the
    ladder's events would have put there), so that a township's list knows it is one."""
    table = runner.projections["cases"].t("cases_regions")
    rows = []
    for t in range(1, 13):
        township = f"{COUNTY}-{t:03d}"
        rows.append((township, f"乡镇{t}", int(Rank.TOWNSHIP), "rural"))
        for v in range(1, 21):
            village = f"{township}-{v:03d}"
            rows.append((village, f"村{t}-{v}", int(Rank.VILLAGE), "rural"))
            rows += [(f"{village}-{g:02d}", f"网格{g}", int(Rank.GRID), "rural") for g in (1, 2, 3)]
    with runner.db.transaction() as tx:
        tx.executemany(
            f"INSERT INTO {table} (code, name, rank, profile) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (code) DO NOTHING",
            rows,
        )


def prepare(runner: ProjectionRunner, size: int) -> float:
    """Fill and analyse; seconds taken."""
    began = time.perf_counter()
    salt = uuid.uuid4().hex
    fill_regions(runner)
    if runner.db.is_postgres:
        fill_cases_postgres(runner, size, salt)
    else:
        fill_cases_sqlite(runner, size, salt)
    fill_search(runner, size, salt)
    cases = runner.projections["cases"]
    with runner.db.transaction() as tx:
        assert isinstance(cases, CasesProjection)
        if runner.db.is_postgres:
            for name in ("cases", "search_text", "search_parties", "search_points"):
                phys = (cases if name == "cases" else runner.projections["search"]).t(name)
                tx.execute(f"ANALYZE {phys}")
        else:
            tx.execute("ANALYZE")
    return time.perf_counter() - began


def queries(models: ReadModels) -> tuple[dict[str, Any], dict[str, Any]]:
    """The timed calls: search and the duplicate check; the baselines."""
    township = f"{COUNTY}-003"
    busy = f"{COUNTY}-001-005"  # township 001: every synthetic case there is open (~4% elsewhere)
    village = f"{COUNTY}-004-005"
    new = Intake(
        case_id="new",
        kind="hazard",
        category="other",
        title="邻居在楼道杂物堆放",
        reported_at=datetime(2025, 6, 15, tzinfo=UTC),
        point=(35.7, 115.0),
        persons=frozenset({"p-00000000000000000123"}),
    )
    rule = Duplicates()
    timed_calls = {
        "search 水费 (2 chars), county": lambda: models.list_cases(region=COUNTY, q="水费"),
        "search 水费 (2 chars), township": lambda: models.list_cases(region=township, q="水费"),
        "search 楼道杂物 (4 chars), county": lambda: models.list_cases(region=COUNTY, q="楼道杂物"),
        "search 噪音 扰民, county": lambda: models.list_cases(region=COUNTY, q="噪音 扰民"),
        "search 门牌4242号 (rare), county": lambda: models.list_cases(
            region=COUNTY, q="门牌4242号"
        ),
        "party's cases, county": lambda: models.list_cases(
            region=COUNTY, persons=["p-00000000000000000123"]
        ),
        "duplicate check at intake (village)": lambda: models.possible_duplicates(
            new, village, None, rule
        ),
        "duplicate check at intake (all-open village)": lambda: models.possible_duplicates(
            new, busy, None, rule
        ),
        "重复件 lookup at intake": lambda: models.earlier_cases(new.persons),
    }
    baselines = {
        "plain list, county": lambda: models.list_cases(region=COUNTY),
        "plain list, township": lambda: models.list_cases(region=township),
    }
    return timed_calls, baselines


def run(store: str = "postgres", size: int | None = None) -> list[dict]:
    """Fill a fresh store (dropped after) with ``size`` cases and time each query."""
    size = size or 100_000
    configure_logging()
    if store == "postgres":
        config = StoreConfig(f"{POSTGRES_URL}?schema=bench_s_{uuid.uuid4().hex[:8]}")
    else:
        config = StoreConfig(f"sqlite:////tmp/fengqiao_bench_search_{uuid.uuid4().hex[:6]}.db")
    app = seed(Fengqiao(config))
    runner = ProjectionRunner(app, default_projections())
    try:
        runner.ensure()
        runner.run_once()
        filled = prepare(runner, size)
        models = ReadModels(runner.db)
        calls, baselines = queries(models)
        figures = {name: timed(call) for name, call in calls.items()}
        base = {name: statistics.median(timed(call)) for name, call in baselines.items()}
        hits = {
            name: len(call()[0]) if name.startswith(("search", "party")) else None
            for name, call in calls.items()
        }
    finally:
        runner.close()
        app.close()
        drop(config)
    baseline = base["plain list, county"]
    return [
        {
            "name": f"search {name} ({size:,} cases, {store})",
            "figure": round(p95(ms), 1),
            "unit": "ms p95",
            "median": round(statistics.median(ms), 1),
            "baseline": round(baseline, 2),
            "baseline_name": "plain list (county, first page), median ms",
            "baseline_township": round(base["plain list, township"], 2),
            "ratio": round(statistics.median(ms) / baseline, 1) if baseline else None,
            "page": hits[name],
            "target": 10 if "intake" in name else 50,
            "fill_seconds": round(filled),
        }
        for name, ms in figures.items()
    ]


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", nargs="?", default="postgres", choices=("sqlite", "postgres"))
    parser.add_argument("--size", type=int, default=100_000)
    args = parser.parse_args()
    for row in run(args.store, args.size):
        print(row, flush=True)


if __name__ == "__main__":
    main()
