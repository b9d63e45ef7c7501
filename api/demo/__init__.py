"""The demo county and a season of its traffic (``fengqiao demo``).

:func:`build_demo` loads a county shaped on 阳高县 through the engine's set-up
commands, then runs a season of disputes, hazards and petitions through the
real command path on a simulated clock, and counts what the store holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from api.demo.census import Census, take_census
from api.demo.county import County, CountyShape, generate_county, load_county
from api.demo.simulator import TIMER_PERIOD, RunStats, Season, Simulation
from engine.service import Fengqiao
from engine.time_source import SimulatedClock
from workflows.timers import TimerService

DEFAULT_POLICY = Path(__file__).resolve().parents[2] / "domain" / "default_policy.toml"
SETUP_LEAD = timedelta(days=1)  # the county is loaded a day before the season starts


@dataclass
class Demo:
    county: County
    season: Season
    run: RunStats
    census: Census


def demo_clock(season: Season) -> SimulatedClock:
    """A simulated clock standing just before the season, ready for :func:`build_demo`."""
    return SimulatedClock(season.start - SETUP_LEAD)


def build_demo(
    app: Fengqiao,
    clock: SimulatedClock,
    season: Season,
    *,
    seed: int = 1,
    scale: float = 1.0,
    shape: CountyShape | None = None,
    timer_period: timedelta | None = TIMER_PERIOD,
    on_progress: Callable[[datetime, RunStats], None] | None = None,
) -> Demo:
    """Load the county for ``seed`` and run the season's traffic through ``app``.

    ``app`` must run on ``clock`` (e.g. ``demo_clock(season)``); the clock ends at
    the season's end. The timer service ticks every ``timer_period`` of simulated
    time (None: no timers).
    """
    if scale <= 0:
        raise ValueError("scale must be positive")
    county = generate_county(seed, shape)
    load_county(app, county, DEFAULT_POLICY.read_text(encoding="utf-8"))
    timers = TimerService(app) if timer_period else None
    try:
        run = Simulation(
            app,
            clock,
            county,
            season,
            seed=seed,
            scale=scale,
            timers=timers,
            timer_period=timer_period or TIMER_PERIOD,
            on_progress=on_progress,
        ).run()
    finally:
        if timers is not None:
            timers.close()
    return Demo(county, season, run, take_census(app, clock.now()))


def relax_sqlite_durability(app: Fengqiao) -> bool:
    """For the throwaway demo store only: ``PRAGMA synchronous=NORMAL`` on the
    engine's SQLite connection. In WAL mode a commit then no longer waits for the
    disk (about half of a demo command's time); the store stays consistent after
    a crash of the process, though a power cut may lose the last commits. The
    read models' database already works this way (``engine.sql``). Returns
    whether it applied (not on PostgreSQL)."""
    datastore = getattr(app.recorder, "datastore", None)
    if app.store.is_postgres or datastore is None:
        return False
    with datastore.get_connection(commit=False) as connection:
        connection.cursor().execute("PRAGMA synchronous=NORMAL")
    return True


__all__ = [
    "Census",
    "County",
    "CountyShape",
    "Demo",
    "RunStats",
    "Season",
    "build_demo",
    "demo_clock",
    "generate_county",
    "load_county",
    "relax_sqlite_durability",
    "take_census",
]
