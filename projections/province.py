"""The province roll-up: several county stores followed into one province database.

A province runs one store per county (``docs/scaling.md``). The roll-up follows each
county's notification log — the log the public feed pages through — and keeps the
county's read models in the province database, one namespace per county:

* PostgreSQL: the province URL names a schema (``?schema=province``); county ``410928``
  is kept in the schema ``province_410928`` of the same database;
* SQLite: ``province.db`` holds the registry, ``province.410928.db`` the county.

Each county is an ordinary :class:`projections.runner.ProjectionRunner`: the county's
engine reads and decodes its events, the default projections (``cases`` and whatever
it maintains) fold them, and each batch's rows and the county's position commit in one
transaction in that county's namespace (its own ``projection_tracking``). So each event
is applied exactly once, a crash resumes where the last commit left it, a county is
rebuilt from zero beside its live tables and swapped in (``runner.rebuild``), and a
province figure is — by construction — the sum of the counties' own read models.

The registry ``province_counties`` (county id → store URL) is re-read on every round,
so a county added while the roll-up runs is picked up from its position 0.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse
from zoneinfo import ZoneInfo

import structlog

from domain.errors import ValidationFailed
from engine.service import Fengqiao
from engine.settings import DEFAULTS, Settings
from engine.sql import Database
from engine.store import StoreConfig
from projections.base import Projection
from projections.cases import CasesProjection, iso
from projections.runner import Progress, ProjectionRunner

log = structlog.get_logger("fengqiao.province")

REGISTRY_DDL = (
    "CREATE TABLE IF NOT EXISTS province_counties (county TEXT PRIMARY KEY, store_url TEXT NOT NULL, "
    "added_at TEXT NOT NULL)"
)
COUNTY_ID = re.compile(r"[a-z0-9_]{1,40}")  # names a schema or a file
ZONE = ZoneInfo("Asia/Shanghai")  # Beijing months, as the roll-ups' (projections.cases.DAY_OFFSET)
MONTH = re.compile(r"(\d{4})-(\d{2})")
MAX_MONTHS = 120
# The follower only reads the county's log: no DDL, few connections.
FOLLOWER_ENV = {"CREATE_TABLE": "n", "POSTGRES_POOL_SIZE": "1", "POSTGRES_MAX_OVERFLOW": "2"}


def county_url(province_url: str, county: str) -> str:
    """Where the province keeps one county's read models."""
    store = StoreConfig(province_url)
    if store.is_postgres:
        parsed = urlparse(province_url)
        query = parse_qs(parsed.query)
        query["schema"] = [f"{store.schema}_{county}"]
        return parsed._replace(query=urlencode(query, doseq=True)).geturl()
    path = store.sqlite_path
    return f"sqlite:///{path.with_name(f'{path.stem}.{county}{path.suffix}')}"


def check_county(county: str) -> str:
    if not isinstance(county, str) or not COUNTY_ID.fullmatch(county):
        raise ValidationFailed(
            "a county id is 1-40 of a-z, 0-9 and _ (e.g. its code, 410928)", field="county"
        )
    return county


def months(first: str, last: str) -> list[tuple[str, str, str]]:
    """``(label, start, end)`` for each calendar month (province time) from ``first`` to
    ``last`` (``YYYY-MM``, inclusive); ``start``/``end`` are stored-time bounds (ISO UTC)."""
    bounds = []
    for field, value in (("from", first), ("to", last)):
        match = MONTH.fullmatch(value or "")
        if not match or not 1 <= int(match[2]) <= 12:
            raise ValidationFailed(f"{field} must be a month, YYYY-MM", field=field)
        bounds.append(int(match[1]) * 12 + int(match[2]) - 1)
    if not 0 <= bounds[1] - bounds[0] < MAX_MONTHS:
        raise ValidationFailed(
            f"from must not be after to, and at most {MAX_MONTHS} months apart", field="to"
        )

    def start(index: int) -> str:
        return iso(datetime(index // 12, index % 12 + 1, 1, tzinfo=ZONE).astimezone(UTC))

    return [
        (f"{i // 12:04d}-{i % 12 + 1:02d}", start(i), start(i + 1))
        for i in range(bounds[0], bounds[1] + 1)
    ]


def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


class ProvinceRollup:
    """Follows the registered county stores into the province database: each county's
    cases projection (the roll-ups read it; search stays with each county's own server)."""

    def __init__(
        self,
        url: str,
        projections: Callable[[], Sequence[Projection]] = lambda: [CasesProjection()],
        settings: Settings = DEFAULTS,
    ) -> None:
        self.url, self.settings = url, settings
        self.db = Database(url, settings.projections_pool_size)
        self.projections = projections
        self._runners: dict[str, ProjectionRunner] = {}
        self._lock = threading.Lock()
        self._ready = False

    # -- the registry ------------------------------------------------------------

    def ensure(self) -> None:
        if not self._ready:
            with self.db.transaction() as tx:
                tx.serialize("fengqiao.province.ensure")
                tx.execute(REGISTRY_DDL)
            self._ready = True

    def add(self, county: str, store_url: str) -> bool:
        """Register a county's store; True if it was new. A county keeps its store."""
        check_county(county)
        if not store_url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValidationFailed(
                "the store is a sqlite:/// or postgresql:// URL", field="store_url"
            )
        self.ensure()
        with self.db.transaction() as tx:
            known = tx.query(
                f"SELECT store_url FROM province_counties WHERE county = ?{self.db.for_update}",
                (county,),
            )
            if known:
                if known[0]["store_url"] != store_url:
                    raise ValidationFailed(
                        f"county {county} follows another store already", field="store_url"
                    )
                return False
            tx.execute(
                "INSERT INTO province_counties (county, store_url, added_at) VALUES (?, ?, ?)",
                (county, store_url, datetime.now(UTC).isoformat()),
            )
        log.info("county added", county=county)
        return True

    def counties(self) -> dict[str, str]:
        """County id → store URL, in id order."""
        self.ensure()
        rows = self.db.query("SELECT county, store_url FROM province_counties ORDER BY county")
        return {row["county"]: row["store_url"] for row in rows}

    def runner(self, county: str) -> ProjectionRunner:
        """The county's runner: its engine reads the county's log, its database is the
        county's namespace in the province database."""
        with self._lock:
            runner = self._runners.get(county)
            if runner is None:
                store_url = self.counties().get(county)
                if store_url is None:
                    raise ValidationFailed(f"unknown county {county}", field="county")
                app = Fengqiao(StoreConfig(store_url), env=FOLLOWER_ENV, settings=self.settings)
                runner = ProjectionRunner(
                    app,
                    list(self.projections()),
                    db=Database(county_url(self.url, county), self.settings.projections_pool_size),
                )
                self._runners[county] = runner
            return runner

    # -- following ---------------------------------------------------------------

    def run_once(self, batch_size: int = 1000, threads: int = 4) -> dict[str, int]:
        """Catch every registered county up to its head (``threads`` counties at a time);
        the events each applied. A county that fails is logged and left for the next round."""
        counties = list(self.counties())
        applied: dict[str, int] = {}

        def catch_up(county: str) -> None:
            try:
                applied[county] = self.runner(county).run_once(batch_size)
            except Exception:  # noqa: BLE001 - one county down delays only its own rows
                log.exception("county batch failed; retrying next round", county=county)
                applied[county] = 0

        with ThreadPoolExecutor(
            max(1, min(threads, len(counties))), thread_name_prefix="province"
        ) as pool:
            list(pool.map(catch_up, counties))
        return applied

    def follow(self, stop: threading.Event, poll: float = 1.0, batch_size: int = 1000) -> None:
        """Until ``stop`` is set: one thread per county (``ProjectionRunner.run_forever``:
        stale projections rebuilt, then caught up, then polled), counties registered
        meanwhile picked up every ``poll`` seconds."""
        threads: dict[str, threading.Thread] = {}
        while not stop.is_set():
            try:
                counties = self.counties()
            except Exception:  # noqa: BLE001 - the province database may be restarting
                log.exception("reading the county registry failed")
                counties = {}
            for county in counties:
                if county not in threads:

                    def run(county: str = county) -> None:
                        while not stop.is_set():
                            try:
                                self.runner(county).run_forever(stop, poll, batch_size)
                            except Exception:  # noqa: BLE001 - e.g. the county's store is unreachable
                                log.exception("county follower failed; retrying", county=county)
                                stop.wait(poll)

                    threads[county] = threading.Thread(
                        target=run, name=f"province-{county}", daemon=True
                    )
                    threads[county].start()
                    log.info("following county", county=county)
            stop.wait(poll)
        for thread in threads.values():
            thread.join()

    def rebuild(
        self,
        county: str | None = None,
        progress: Callable[[str, str], Progress | None] | None = None,
        batch_size: int = 5000,
    ) -> int:
        """Rebuild one county's read models (or every county's) from position zero,
        beside the live tables; the events read."""
        events = 0
        for name in [check_county(county)] if county else list(self.counties()):
            runner = self.runner(name)
            for projection in runner.projections:
                events += runner.rebuild(
                    projection,
                    progress=progress(name, projection) if progress else None,
                    batch_size=batch_size,
                )
        return events

    def statuses(self) -> list[dict[str, Any]]:
        """Per county and projection: position, the county's head, lag."""
        return [
            {
                "county": county,
                "projection": s.name,
                "generation": s.generation,
                "position": s.position,
                "head": s.head,
                "lag": s.lag,
                "stale": s.stale,
            }
            for county in self.counties()
            for s in self.runner(county).statuses()
        ]

    # -- the province's figures --------------------------------------------------

    def stats(self, first: str, last: str) -> dict[str, Any]:
        """Per county and month (Beijing time): cases received (by report time),
        resolved (by resolution time), resolved within the ceiling of the severity
        reported, and the 小事不出村 rate (within / resolved); per month for the
        province; and the period's totals. Read from each county's monthly roll-up
        (``cases_stats``, grain ``m``, the rows of the ladder's root — the county — whose
        subtree is every case of the store: one row per month)."""
        labels = [label for label, _, _ in months(first, last)]
        rows: list[dict[str, Any]] = []
        for county in self.counties():
            counts = {
                label: {
                    "county": county,
                    "month": label,
                    "received": 0,
                    "resolved": 0,
                    "resolved_within_ceiling": 0,
                }
                for label in labels
            }
            for row in self.runner(
                county
            ).db.query(
                "SELECT bucket AS month, SUM(received) AS received, SUM(resolved) AS resolved, "
                "SUM(within_ceiling) AS resolved_within_ceiling FROM cases_stats "  # the ladder's root rows:
                "WHERE grain = 'm' AND region NOT LIKE ? AND bucket >= ? AND bucket <= ? "  # the whole county
                "GROUP BY bucket",
                ("%-%", labels[0], labels[-1]),
            ):
                counts[row["month"]].update(
                    {k: int(v or 0) for k, v in row.items() if k != "month"}
                )
            rows += counts.values()
        province = {
            label: {"month": label, "received": 0, "resolved": 0, "resolved_within_ceiling": 0}
            for label in labels
        }
        for row in rows:
            for key in ("received", "resolved", "resolved_within_ceiling"):
                province[row["month"]][key] += row[key]
        total = {
            key: sum(row[key] for row in rows)
            for key in ("received", "resolved", "resolved_within_ceiling")
        }
        for row in [*rows, *province.values(), total]:
            row["within_ceiling_rate"] = _rate(row["resolved_within_ceiling"], row["resolved"])
        return {
            "from": first,
            "to": last,
            "counties": rows,
            "province": list(province.values()),
            "total": total,
        }

    # -- closing -----------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            runners, self._runners = list(self._runners.values()), {}
        for runner in runners:
            runner.db.close()
            runner.app.close()
        self.db.close()


@contextmanager
def province(url: str, settings: Settings = DEFAULTS) -> Iterator[ProvinceRollup]:
    rollup = ProvinceRollup(url, settings=settings)
    try:
        yield rollup
    finally:
        rollup.close()
