"""A season of traffic through the real command path, on a simulated clock.

Cases arrive day by day (more on working days, more hazards in the first days
of a month when villages sweep for them: 隐患排查). Each case lives out its
story (:mod:`api.demo.stories`); the simulator runs every story's steps in
the order of their moments, moving the clock to each one and sending the step
through ``Fengqiao.report`` / ``Fengqiao.do`` like any caller would. Steps due
after the season ends are not run: those cases stay open, some of them late.

When a timer service is given (``workflows.timers.TimerService``), it ticks
every simulated ``timer_period`` so clock warnings, breaches, 督办 notices and
the 四级七天 automatic escalations are recorded as the season goes. A dispute
the timer escalated is taken over at its new rank: the story's plan is dropped
and that rank's supervisor dispatches it (:func:`api.demo.stories.take_over`).

Deterministic: the arrivals and every story draw from random generators seeded
from ``seed``, and every command id derives from the seed, so running the same
season again on the same store repeats nothing (on a rerun, a case the timer
took over in the first run is taken over at the same moment again).
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

import structlog

from api.demo.county import County
from api.demo.stories import REPORT, STORIES, Life, Place, Step, check_categories, take_over
from domain.calendar import SHANGHAI, WorkingCalendar
from domain.cases import case_id_for
from domain.commands import Envelope, ReportCase
from domain.errors import DomainError
from domain.kinds import Kind
from domain.ladder import Profile
from domain.routing import responsible_unit
from engine.service import Fengqiao
from engine.time_source import SimulatedClock

log = structlog.get_logger("fengqiao.demo")

DAILY_RATES = {Kind.DISPUTE: 12.0, Kind.HAZARD: 6.0, Kind.PETITION: 12.0}
"""New cases a day at scale 1 (阳高县 mediated 3,305 disputes in a year)."""
RESTDAY_FACTOR = 0.55
SWEEP_FACTOR = 2.0  # hazards found in the monthly sweep (days 1–5)
URBAN_WEIGHT = 2.5  # a building grid is busier than a village grid
TIMER_PERIOD = timedelta(hours=6)
"""How often the timer service sweeps during the simulated season (see docs/demo.md for the cost)."""


class Timers(Protocol):
    """What the simulator needs of the timer service."""

    def tick(self, now: datetime | None = None) -> list[Any]: ...


@dataclass(frozen=True)
class Season:
    """The simulated stretch of time: ``days`` days ending at ``end``."""

    start: datetime
    end: datetime

    @classmethod
    def ending(cls, end: datetime, days: int) -> Season:
        if end.tzinfo is None:
            raise ValueError("the season's end needs a time zone")
        if days < 1:
            raise ValueError("a season lasts at least one day")
        end = end.astimezone(UTC)
        return cls(end - timedelta(days=days), end)

    @property
    def days(self) -> int:
        return round((self.end - self.start) / timedelta(days=1))


@dataclass
class RunStats:
    """What the simulator did (the store's own account is the census)."""

    cases: int = 0
    commands: int = 0
    repeated: int = 0
    not_run: int = 0  # steps due after the season's end
    timer_commands: int = 0  # warnings, breaches, 督办 and escalations the timer recorded
    taken_over: int = 0  # disputes the timer escalated, then worked at their new rank
    refused: Counter = field(default_factory=Counter)  # (action, error code) → count


@dataclass
class _Story:
    number: int
    case_id: UUID
    life: Life
    steps: Generator[Step, None, None]
    index: int = 0
    plan: int = 0  # bumped when the timer takes the case over: older queued steps are dropped
    earlier_takeovers: list[datetime] = field(
        default_factory=list
    )  # on a rerun: the timer's escalations


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth; fine for the few dozen a day the demo needs)."""
    if mean <= 0:
        return 0
    if mean > 60:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


class Simulation:
    def __init__(
        self,
        app: Fengqiao,
        clock: SimulatedClock,
        county: County,
        season: Season,
        *,
        seed: int,
        scale: float = 1.0,
        calendar: WorkingCalendar | None = None,
        timers: Timers | None = None,
        timer_period: timedelta = TIMER_PERIOD,
        on_progress: Callable[[datetime, RunStats], None] | None = None,
    ) -> None:
        check_categories()
        self.app, self.clock, self.county, self.season = app, clock, county, season
        self.seed, self.scale = seed, scale
        self.calendar = calendar or WorkingCalendar()
        self.on_progress = on_progress
        self.timers, self.timer_period = timers, timer_period
        self.stories: dict[UUID, _Story] = {}
        self.stats = RunStats()
        self.ceilings = {str(profile): app.policy().ceilings_for(profile) for profile in Profile}
        self.places = [
            Place(county, township, village, grid)
            for township in county.townships
            for village in township.villages
            for grid in village.grids
        ]
        self.place_weights = [URBAN_WEIGHT if p.urban else 1.0 for p in self.places]
        self._tree, self._routing = app.ladder().tree, app.policy().routing

    def route(self, region: str, kind: str, category: str) -> str | None:
        """The unit the policy's routing table names for such a case in ``region``."""
        unit = responsible_unit(self._tree, self._routing, region, kind, category)
        return unit.id if unit else None

    # -- arrivals ----------------------------------------------------------------

    def arrivals(self) -> list[tuple[datetime, Kind, Place]]:
        """Every case of the season: when it is reported, its kind and its grid."""
        rng = random.Random(f"fengqiao-demo-arrivals:{self.seed}")
        first = self.season.start.astimezone(SHANGHAI).date()
        found = []
        for offset in range(self.season.days + 1):
            day = first + timedelta(days=offset)
            working = self.calendar.is_working_day(day)
            for kind, rate in DAILY_RATES.items():
                mean = rate * self.scale * (1.0 if working else RESTDAY_FACTOR)
                if kind == Kind.HAZARD and day.day <= 5:
                    mean *= SWEEP_FACTOR
                for _ in range(poisson(rng, mean)):
                    at = self._moment(rng, day, kind)
                    place = rng.choices(self.places, weights=self.place_weights)[0]
                    if self.season.start <= at < self.season.end:
                        found.append((at, kind, place))
        found.sort(key=lambda item: item[0])
        return found

    @staticmethod
    def _moment(rng: random.Random, day: date, kind: Kind) -> datetime:
        """Grid workers report in the day (08:00–18:30); the 12345 line rings 07:00–22:00."""
        start, hours = (7.0, 15.0) if kind == Kind.PETITION else (8.0, 10.5)
        local = datetime(day.year, day.month, day.day, tzinfo=SHANGHAI) + timedelta(
            hours=start + rng.random() * hours
        )
        return local.astimezone(UTC).replace(microsecond=0)

    # -- running -------------------------------------------------------------------

    def command_id(self, story: _Story) -> str:
        return f"demo-{self.seed}-{story.number:06d}-{story.index:02d}"

    def run(self) -> RunStats:
        """Run every story's steps in time order, up to the season's end."""
        if self.clock.now() > self.season.start:
            raise ValueError("the clock is already past the season's start")
        queue: list[tuple[datetime, int, int, _Story, Step]] = []
        for number, (at, kind, place) in enumerate(self.arrivals(), start=1):
            rng = random.Random(f"fengqiao-demo-case:{self.seed}:{number}")
            profile = str(place.grid.region.profile)
            life = Life(rng, self.calendar, at, place, self.ceilings[profile], self.route)
            story = _Story(
                number, case_id_for(f"demo-{self.seed}-{number:06d}-00"), life, STORIES[kind](life)
            )
            self.stories[story.case_id] = story
            self._push(queue, story)
        next_tick = self.first_tick()
        sent = 0
        while queue:
            at, _, plan, story, step = heapq.heappop(queue)
            if plan != story.plan:
                continue
            if at >= self.season.end:
                self.stats.not_run += 1 + sum(1 for _ in story.steps)
                continue
            if self.timers is not None and next_tick <= at:
                self._tick(next_tick, queue)
                next_tick += self.timer_period
                heapq.heappush(queue, (at, _, plan, story, step))
                continue
            if (
                story.plan < len(story.earlier_takeovers)
                and at >= story.earlier_takeovers[story.plan]
            ):
                self._take_over(queue, story, story.earlier_takeovers[story.plan])
                continue
            self.clock.set(max(at, self.clock.now()))
            if self._send(story, step):
                self._push(queue, story)
            sent += 1
            if self.on_progress and sent % 250 == 0:
                self.on_progress(self.clock.now(), self.stats)
        if self.timers is not None:
            self._tick(self.season.end, queue)
        if self.on_progress:
            self.on_progress(self.clock.now(), self.stats)
        return self.stats

    def first_tick(self) -> datetime:
        """The first tick after the season starts, on the period's grid from Beijing
        midnight (a 6-hour period ticks at 00:00, 06:00, 12:00 and 18:00)."""
        local = self.season.start.astimezone(SHANGHAI)
        tick = local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
        while tick <= self.season.start:
            tick += self.timer_period
        return tick

    def _tick(self, moment: datetime, queue: list) -> None:
        """The timer service's turn: record what fell due; a case it escalated is
        taken over at its new rank (the rest of its story is dropped)."""
        assert self.timers is not None
        self.clock.set(max(moment, self.clock.now()))
        for fired in self.timers.tick():
            if fired.repeated:
                continue
            self.stats.timer_commands += 1
            story = self.stories.get(fired.case_id)
            if fired.action == "escalate" and story is not None:
                self._take_over(queue, story, self.clock.now())

    def _take_over(self, queue: list, story: _Story, moment: datetime) -> None:
        """The timer escalated the case at ``moment``: drop the rest of its story and
        work it at its new rank from then on."""
        story.steps.close()
        story.plan += 1
        story.life.t = moment
        story.steps = take_over(story.life, self.app.case_as_of(story.case_id, moment))
        self.stats.taken_over += 1
        self._push(queue, story)

    def _timer_escalations(self, case_id: UUID) -> list[datetime]:
        """When the timer service escalated a case (read back on a rerun)."""
        return [
            e.event.timestamp
            for e in self.app.history(case_id)
            if e.type == "Escalated" and e.event.actor.role == "system"
        ]

    def _push(self, queue: list, story: _Story) -> None:
        step = next(story.steps, None)
        if step is not None:
            at = step.at.astimezone(UTC)
            heapq.heappush(queue, (at, story.number * 1000 + story.index, story.plan, story, step))

    def _send(self, story: _Story, step: Step) -> bool:
        """Send one step; a refusal ends the story (and is counted: it should not happen)."""
        envelope = Envelope(
            actor=step.actor,
            command_id=self.command_id(story),
            occurred_at=step.occurred_at.astimezone(UTC) if step.occurred_at else None,
        )
        story.index += 1
        try:
            if step.action == REPORT:
                result = self.app.report(ReportCase.model_validate(step.body), envelope)
                self.stats.cases += 1
                if result.repeated:  # a rerun: follow the timer's escalations of the first run
                    story.earlier_takeovers = self._timer_escalations(story.case_id)
            else:
                result = self.app.do(story.case_id, step.action, step.body, envelope)
        except DomainError as error:
            self.stats.refused[(step.action, error.code)] += 1
            log.warning(
                "demo step refused",
                action=step.action,
                case=str(story.case_id),
                error=error.as_dict(),
            )
            story.steps.close()
            return False
        self.stats.commands += 1
        self.stats.repeated += int(result.repeated)
        return True
