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

from engine.clock import SimulatedClock
from engine.demo.census import Census, take_census
from engine.demo.county import County, CountyShape, generate_county, load_county
from engine.demo.simulator import RunStats, Season, Simulation
from engine.service import Fengqiao

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


def build_demo(app: Fengqiao, clock: SimulatedClock, season: Season, *, seed: int = 1, scale: float = 1.0,
               shape: CountyShape | None = None,
               on_progress: Callable[[datetime, RunStats], None] | None = None) -> Demo:
    """Load the county for ``seed`` and run the season's traffic through ``app``.

    ``app`` must run on ``clock`` (e.g. ``demo_clock(season)``); the clock ends at
    the season's end.
    """
    if scale <= 0:
        raise ValueError("scale must be positive")
    county = generate_county(seed, shape)
    load_county(app, county, DEFAULT_POLICY.read_text(encoding="utf-8"))
    run = Simulation(app, clock, county, season, seed=seed, scale=scale, on_progress=on_progress).run()
    return Demo(county, season, run, take_census(app, clock.now()))


__all__ = ["Census", "County", "CountyShape", "Demo", "RunStats", "Season", "build_demo", "demo_clock",
           "generate_county", "load_county", "take_census"]
