"""Clocks (SLA): what the policy's clocks say about a case, from its events alone.

Pure: :func:`evaluate_clocks` folds a case's events, in order, through the
policy's clock specs and a working calendar, and answers each clock's state at
``now``. Nothing is stored; the timer service (``workflows/timers.py``) records
the threshold crossings this module predicts.

The rules
---------
* A condition is an event type name, optionally with field predicates:
  ``Reinspected[passed=false]``, ``MediationHeld[outcome=agreed]``.
* On each event, per clock, the first matching transition applies, in this
  order: cancel, stop, restart, start, pause, resume.
  ``start`` starts an idle (never started, met, breached-and-stopped or
  cancelled) clock; ``restart`` starts a new cycle whether or not one runs.
* An event's time is when it happened (``occurred_at``), never earlier than the
  event before it (late offline events cannot run a pause backwards); but a clock
  started by a back-dated act starts at that act's ``occurred_at``, and an act that
  stops a clock is judged by its own ``occurred_at``.
* Met or breached: :func:`on_time` (the act happened by the due time, was recorded
  within the policy's ``sync_grace`` after it, and no breach was recorded first).
* The target is fixed when a cycle starts, from the case's severity, rank and
  category at that moment (after the starting event: an ``Escalated`` restart
  gets the new rank's target). Each of these bounds the cycle and the earliest
  due time governs: the duration by rank, else by severity, else ``target``;
  the category's (``target_by_category``: water, power, gas, heat 24 h); and
  ``target_from``, an event field holding an absolute due time (the
  rectification notice's ``deadline``: a notice cannot grant more than policy).
  So a category shortens a target and never lengthens it: an emergency
  (critical, 2 h) about water stays 2 h.
* ``start_from`` names an event field holding the instant a cycle counts from,
  instead of the starting event's time (销号 counts from the notice's
  ``deadline``, whenever the rectification is reported). That instant may lie
  ahead: the clock runs but uses nothing until then, and a pause ended before
  it resumes counting from it.
* Working-time targets (``wh``, ``wd``) count only working time on the calendar;
  calendar targets (``m``, ``h``, ``d``) count elapsed time. Progress (the
  fraction used) is measured the same way.
* A pause (``Suspended``) freezes the elapsed time, so the due time moves back
  by the length of the pause. A paused clock never warns or breaches.
* ``Extended`` moves the named clock's due time: ``days`` adds to the target in
  the clock's own measure (working days for a working-time clock, calendar
  days for a calendar clock: a 5-working-day reply extended by 3 is due 8
  working days after it started); ``due_at`` sets the due time outright
  (pauses after it still push it back). Each extension starts a new *leg*:
  warnings already passed are not repeated, the breach may fire again.
* States: running, paused, met (stopped on time), breached (past due, open or
  stopped late), cancelled.
* ``each_from``: one clock per item of a list field of the start event (吹哨:
  one check-in clock per summoned department, named ``check_in:<department>``);
  an event with the ``each_match`` field stops only its own item's clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any

from domain.calendar import NO_IMPORTS, Statutory, WorkingCalendar, add_calendar
from domain.errors import ValidationFailed
from domain.policy import CalendarRef, ClockSpec, Policy, Thresholds, parse_duration

LINKED = "LinkedAsDuplicate"  # 并案: every open clock of the duplicate stops, whatever the policy
UNLINKED = "UnlinkedDuplicate"  # the link undone: the clocks it stopped start afresh
SIGN_FOR = "sign_for"  # the 签收 clock: its outcome is the 响应 fact of 三率 (``Case.Accepted``)
CONDITION_PATTERN = re.compile(r"^([A-Z][A-Za-z]*)(?:\[([^\]]*)\])?$")


class ClockStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    MET = "met"
    BREACHED = "breached"
    CANCELLED = "cancelled"


# -- conditions on events ---------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """``EventType`` or ``EventType[field=value,...]``; values compare as text,
    booleans as ``true``/``false``."""

    event: str
    fields: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Condition:
        match = CONDITION_PATTERN.match(str(text).strip())
        if not match:
            raise ValidationFailed(
                f"bad clock condition {text!r}: use Event or Event[field=value]", field="clocks"
            )
        fields = []
        for part in filter(None, (p.strip() for p in (match.group(2) or "").split(","))):
            name, sep, value = part.partition("=")
            if not sep or not name.strip():
                raise ValidationFailed(
                    f"bad clock condition {text!r}: use field=value", field="clocks"
                )
            fields.append((name.strip(), value.strip()))
        return cls(match.group(1), tuple(fields))

    def matches(self, event: Any) -> bool:
        if type(event).__name__ != self.event:
            return False
        return all(_as_text(getattr(event, name, None)) == value for name, value in self.fields)


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


@lru_cache(maxsize=1024)
def _conditions(texts: tuple[str, ...]) -> dict[str, tuple[Condition, ...]]:
    """The conditions ``texts`` parsed, by the event type each names."""
    by_event: dict[str, tuple[Condition, ...]] = {}
    for condition in map(Condition.parse, texts):
        by_event[condition.event] = (*by_event.get(condition.event, ()), condition)
    return by_event


def matches_any(texts: Sequence[str], event: Any) -> bool:
    """Does ``event`` meet any of the policy conditions ``texts`` (parsed once)? Only those
    naming the event's type are tried (a fold asks up to six times an event, for every clock)."""
    conditions = _conditions(tuple(texts)).get(type(event).__name__)
    return conditions is not None and any(c.matches(event) for c in conditions)


def item_of(spec: ClockSpec, event: Any) -> str | None:
    """The item of a per-item clock (``each_from``) an event concerns: its ``each_match``
    field (a ``CheckedIn``'s department); None when it concerns every item."""
    own = getattr(event, spec.each_match, None) if spec.each_from and spec.each_match else None
    return None if own is None else str(own)


def ends_clock(spec: ClockSpec, name: str, event: Any) -> bool:
    """Does ``event`` end the cycle of clock ``name`` (``spec``'s, or ``spec:item``) as it
    stands: stop it, cancel it, restart it or extend it (a new due time)? An event naming
    an item (``each_match``) ends only that item's clock, as in the fold. A 并案 (link as
    a duplicate) ends every clock."""
    if type(event).__name__ == LINKED:
        return True
    if type(event).__name__ == "Extended" and getattr(event, "clock", None) == name:
        return True
    if not matches_any((*spec.stop_on, *spec.cancel_on, *spec.restart_on), event):
        return False
    own = item_of(spec, event)
    return own is None or name == f"{spec.name}:{own}"


# -- measuring time -----------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    """Calendar time or working time on a calendar."""

    calendar: WorkingCalendar
    working: bool

    def between(self, start: datetime, end: datetime) -> timedelta:
        if self.working:
            return self.calendar.working_time_between(start, end)
        return max(end - start, timedelta())

    def advance(self, start: datetime, amount: timedelta) -> datetime:
        if self.working:
            return self.calendar.add_working_hours(start, amount)
        return add_calendar(start, amount)

    def duration(self, text: str) -> timedelta:
        amount, unit = parse_duration(text)
        if unit == "wd":
            return self.calendar.day_length * amount
        return timedelta(
            **{
                "m": {"minutes": amount},
                "h": {"hours": amount},
                "wh": {"hours": amount},
                "d": {"days": amount},
            }[unit]
        )

    def days(self, n: int) -> timedelta:
        """An extension of ``n`` days in this measure (working or calendar days)."""
        return self.calendar.day_length * n if self.working else timedelta(days=n)


def is_working_duration(text: str) -> bool:
    return parse_duration(text)[1] in ("wh", "wd")


@lru_cache(maxsize=64)
def _calendar(name: str, overrides: str, statutory: Statutory) -> WorkingCalendar:
    if overrides:
        return WorkingCalendar.from_overrides(overrides, name=name, statutory=statutory)
    return WorkingCalendar(name=name, statutory=statutory)


def calendar_for(ref: CalendarRef, statutory: Statutory | None = None) -> WorkingCalendar:
    """The working calendar a policy names: the statutory facts (the calendar
    book's, ``engine.statutory()``; default the chinesecalendar package alone)
    with the policy's inline overrides on top. The one calendar cache."""
    return _calendar(ref.name, ref.overrides, statutory if statutory is not None else NO_IMPORTS)


def duration_bounds(
    spec: ClockSpec,
    severity: str | None,
    rank: int,
    category: str | None,
    calendar: WorkingCalendar,
) -> list[tuple[Measure, timedelta, str]]:
    """The duration targets that bound a cycle of ``spec`` (by rank, else severity, else
    the default; and by category), each with its measure, from the case's severity,
    rank and category when the cycle starts."""
    bounds = []
    for duration in spec.targets_for(severity or "minor", rank, category):
        measure = Measure(calendar, is_working_duration(duration))
        bounds.append((measure, measure.duration(duration), duration))
    return bounds


def due_from(
    spec: ClockSpec,
    severity: str | None,
    rank: int,
    start: datetime,
    calendar: WorkingCalendar,
    category: str | None = None,
) -> datetime | None:
    """When a cycle of ``spec`` started at ``start`` falls due, unpaused and unextended
    (the earliest of its duration bounds; the cases projection's ``sign_for_due_at``)."""
    dues = [
        measure.advance(start, amount)
        for measure, amount, _ in duration_bounds(spec, severity, rank, category, calendar)
    ]
    return min(dues, default=None)


def on_time(
    occurred_at: datetime,
    recorded_at: datetime,
    due_at: datetime,
    sync_grace: timedelta,
    breach_recorded: bool = False,
) -> bool:
    """The one rule for "on time" (met, 及时): the act happened by the due time **and**
    was recorded within ``sync_grace`` (policy ``sync_grace``) after it, and no breach
    of the clock was recorded before the act was. Otherwise late, everywhere: the clock
    view (:meth:`_Run.stop`), the SLA board and 三率 / compliance (the cases projection's
    ``responded_in_time``) all call this."""
    return not breach_recorded and occurred_at <= due_at and recorded_at <= due_at + sync_grace


def stopped_on_time(
    paused: bool,
    within_target: bool,
    occurred_at: datetime,
    recorded_at: datetime,
    due_at: datetime,
    sync_grace: timedelta,
    breach_recorded: bool,
) -> bool:
    """Is a clock stopped by an act met? A paused clock by its frozen elapsed time
    (``within_target``), a running one by :func:`on_time`. The fold's
    :meth:`_Run.stop` and :meth:`ClockState.met_if_stopped` (the 签收 fact an
    ``Accepted`` records) both decide through this."""
    if paused:
        return within_target and not breach_recorded
    return on_time(occurred_at, recorded_at, due_at, sync_grace, breach_recorded)


# -- the answer -----------------------------------------------------------------------


@dataclass(frozen=True)
class ClockState:
    """One clock of one case, as it stands at ``as_of``.

    ``crossings`` are the instants at which this leg's thresholds (warnings, then
    the breach) are reached while the clock runs; ``fired`` the thresholds the
    case already records for this leg. ``leg`` names the cycle and extension
    (``"2.1"``: second cycle, after one extension) for idempotent timer ids.
    """

    name: str
    clock: str
    title: str
    state: ClockStatus
    cycle: int
    extensions: int
    started_at: datetime
    due_at: datetime
    stopped_at: datetime | None
    target: str
    working: bool
    elapsed_pct: float
    on_breach: str
    as_of: datetime
    crossings: tuple[tuple[float, datetime], ...] = ()
    fired: frozenset[float] = frozenset()
    breach_threshold: float = 1.0

    @property
    def leg(self) -> str:
        return f"{self.cycle}.{self.extensions}"

    @property
    def open(self) -> bool:
        """Still counting: running or paused, or breached and not yet stopped."""
        return self.stopped_at is None and self.state != ClockStatus.CANCELLED

    @property
    def overdue(self) -> bool:
        return self.open and self.state == ClockStatus.BREACHED

    def due_thresholds(self, now: datetime) -> list[tuple[float, datetime]]:
        """Thresholds reached by ``now`` that the case does not yet record, in order."""
        if not self.open or self.state == ClockStatus.PAUSED:
            return []
        return [(t, at) for t, at in self.crossings if at <= now and t not in self.fired]

    def met_if_stopped(
        self, occurred_at: datetime, recorded_at: datetime, sync_grace: timedelta
    ) -> bool:
        """Would an act that happened at ``occurred_at``, recorded at ``recorded_at``, stop
        this (open) clock met? As the fold would decide it (:func:`stopped_on_time`)."""
        return stopped_on_time(
            self.state == ClockStatus.PAUSED,
            self.elapsed_pct <= 100,
            max(occurred_at, self.started_at),
            recorded_at,
            self.due_at,
            sync_grace,
            self.breach_threshold in self.fired,
        )

    def next_threshold(self) -> tuple[float, datetime] | None:
        """The first threshold of this leg not yet recorded (None if paused or closed)."""
        if not self.open or self.state == ClockStatus.PAUSED:
            return None
        return next(((t, at) for t, at in self.crossings if t not in self.fired), None)

    def view(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "state": str(self.state),
            "started_at": self.started_at.isoformat(),
            "due_at": self.due_at.isoformat(),
            "stopped_at": self.stopped_at.isoformat() if self.stopped_at else None,
            "elapsed_pct": round(self.elapsed_pct, 1),
            "target": self.target,
            "cycle": self.cycle,
            "extensions": self.extensions,
        }


# -- the fold ---------------------------------------------------------------------------


@dataclass
class _Run:
    """One cycle of one clock instance while the events are folded."""

    spec: ClockSpec
    key: str | None
    cycle: int
    started_at: datetime
    measure: Measure
    target: timedelta
    target_text: str
    elapsed: timedelta = timedelta()
    since: datetime | None = None  # start of the current running segment; None while paused
    stopped_at: datetime | None = None
    met: bool | None = None
    cancelled: bool = False
    extensions: int = 0
    leg_elapsed: timedelta = timedelta()  # elapsed when the current leg began
    fired: set[float] = field(default_factory=set)
    fixed_due: datetime | None = None  # an extension's exact due_at, until the next pause
    closed_due: datetime | None = None  # the due time when the clock stopped or was cancelled

    @property
    def name(self) -> str:
        return f"{self.spec.name}:{self.key}" if self.key is not None else self.spec.name

    @property
    def open(self) -> bool:
        return self.stopped_at is None and not self.cancelled

    def elapsed_at(self, t: datetime) -> timedelta:
        if self.since is None or t <= self.since:
            return self.elapsed
        return self.elapsed + self.measure.between(self.since, t)

    def due_at(self, t: datetime) -> datetime:
        """When the target is used up, counting from the running segment (or from
        ``t`` if paused: the due time as it would be if resumed at ``t``)."""
        if self.closed_due is not None:
            return self.closed_due
        if self.fixed_due is not None and self.since is not None:
            return self.fixed_due
        remaining = max(self.target - self.elapsed, timedelta())
        return self.measure.advance(
            self.since if self.since is not None else max(t, self.started_at), remaining
        )

    def pause(self, t: datetime) -> None:
        if self.since is not None:
            self.elapsed = self.elapsed_at(t)
            self.since = None
            self.fixed_due = None

    def resume(self, t: datetime) -> None:
        if self.since is None:
            self.since = max(
                t, self.started_at
            )  # a cycle counting from a later instant waits for it

    def stop(
        self,
        t: datetime,
        recorded_at: datetime | None = None,
        sync_grace: timedelta = timedelta(hours=4),
        breach: float = 1.0,
    ) -> None:
        """Stop at ``t`` (the act's ``occurred_at``), met or breached by :func:`on_time`."""
        t = max(t, self.started_at)
        self.closed_due = self.due_at(t)
        self.met = stopped_on_time(
            self.since is None,
            self.elapsed <= self.target,
            t,
            recorded_at or t,
            self.closed_due,
            sync_grace,
            breach in self.fired,
        )
        self.pause(t)
        self.stopped_at = t

    def cancel(self, t: datetime) -> None:
        self.closed_due = self.due_at(t)
        self.pause(t)
        self.cancelled = True

    def extend(self, t: datetime, days: int | None, due_at: datetime | None) -> None:
        elapsed = self.elapsed_at(t)
        if days is not None:
            self.target += self.measure.days(int(days))
        elif due_at is not None:
            self.target = elapsed + self.measure.between(max(t, self.started_at), due_at)
            self.fixed_due = max(due_at, t) if self.since is not None else None
        self.extensions += 1
        self.leg_elapsed = elapsed
        self.fired = set()

    def state(self, now: datetime, thresholds: Thresholds) -> ClockState:
        end = self.stopped_at or now
        due = self.due_at(end)
        if self.cancelled:
            status = ClockStatus.CANCELLED
        elif self.stopped_at is not None:
            status = ClockStatus.MET if self.met else ClockStatus.BREACHED
        elif now >= due and self.since is not None:
            status = ClockStatus.BREACHED
        elif self.since is None:
            status = ClockStatus.PAUSED
        else:
            status = ClockStatus.RUNNING
        elapsed = self.elapsed_at(end)
        if self.target > timedelta():
            pct = 100 * (elapsed / self.target)
        else:
            pct = 100.0 if end >= due else 0.0
        return ClockState(
            name=self.name,
            clock=self.spec.name,
            title=self.spec.title,
            state=status,
            cycle=self.cycle,
            extensions=self.extensions,
            started_at=self.started_at,
            due_at=due,
            stopped_at=self.stopped_at,
            target=self.target_text,
            working=self.measure.working,
            elapsed_pct=pct,
            on_breach=self.spec.on_breach,
            as_of=now,
            crossings=self._crossings(thresholds, due)
            if self.since is not None and self.open
            else (),
            fired=frozenset(self.fired),
            breach_threshold=thresholds.breach,
        )

    def _crossings(
        self, thresholds: Thresholds, due: datetime
    ) -> tuple[tuple[float, datetime], ...]:
        """Each threshold of this leg with the instant it is reached. Warnings
        passed before the leg began are left out; the breach never is. ``due``: the
        running clock's due time (``due_at`` of any moment: it counts from ``since``)."""
        assert self.since is not None
        out = []
        for fraction in thresholds.warn:
            needed = self.target * fraction
            if needed > self.leg_elapsed:
                out.append(
                    (
                        fraction,
                        self.measure.advance(self.since, max(needed - self.elapsed, timedelta())),
                    )
                )
        if thresholds.breach == 1.0:
            out.append((1.0, due))  # exact, even after an extension to a due_at
        else:
            needed = self.target * thresholds.breach - self.elapsed
            out.append(
                (thresholds.breach, self.measure.advance(self.since, max(needed, timedelta())))
            )
        return tuple(out)


@dataclass(frozen=True)
class _SpecIndex:
    """What a fold asks of a list of clock specs on every event, worked out once a list:
    the event types each spec's conditions name (with ``Extended``, which extends any
    clock: an event of any other type leaves the spec's clocks as they are), and the event
    fields the specs count from (``target_from``, ``start_from``), each once, in order."""

    names: tuple[frozenset[str], ...]
    fields: tuple[str, ...]
    specs: Sequence[ClockSpec] = ()
    _applying: dict[tuple[str, str], tuple[bool, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )
    _bounds: dict[tuple[Any, ...], tuple[WorkingCalendar, tuple[Any, ...]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def bounds(
        self, spec: ClockSpec, case: tuple[str | None, int, str | None], calendar: WorkingCalendar
    ) -> list[tuple[Measure, timedelta, str]]:
        """:func:`duration_bounds` of one of these specs for a case's (severity, rank,
        category), worked out once for each and calendar (its parts are immutable: each
        caller gets a new list)."""
        key = (id(spec), case, id(calendar))
        known = self._bounds.get(key)
        if known is None or known[0] is not calendar:
            known = (calendar, tuple(duration_bounds(spec, *case, calendar)))
            if len(self._bounds) >= 4096:
                self._bounds.clear()
            self._bounds[key] = known
        return list(known[1])

    def applying(self, kind: str, severity: str) -> tuple[bool, ...]:
        """Each spec's ``applies_to`` a case of ``kind`` and ``severity``, asked once a pair."""
        known = self._applying.get((kind, severity))
        if known is None:
            known = tuple(spec.applies_to(kind, severity) for spec in self.specs)
            self._applying[(kind, severity)] = known
        return known

    @classmethod
    def of(cls, specs: Sequence[ClockSpec]) -> _SpecIndex:
        names = []
        for spec in specs:
            texts = (
                *spec.cancel_on,
                *spec.stop_on,
                *spec.restart_on,
                *spec.start_on,
                *spec.pause_on,
                *spec.resume_on,
            )
            names.append(frozenset(_conditions(tuple(texts))) | {"Extended"})
        fields = (f for spec in specs for f in (spec.target_from, spec.start_from) if f)
        return cls(tuple(names), tuple(dict.fromkeys(fields)), specs)


_INDEXES: dict[int, tuple[Sequence[ClockSpec], _SpecIndex]] = {}


def _spec_index(specs: Sequence[ClockSpec]) -> _SpecIndex:
    """The index of ``specs`` (a policy's list: one per policy version in use), kept by
    the list's identity (the list kept with it, so its id is not reused)."""
    kept = _INDEXES.get(id(specs))
    if kept is not None and kept[0] is specs:
        return kept[1]
    index = _SpecIndex.of(specs)
    if len(_INDEXES) >= 256:
        _INDEXES.clear()
    _INDEXES[id(specs)] = (specs, index)
    return index


class _Fold:
    """The case facts clocks depend on, followed event by event."""

    def __init__(
        self,
        specs: Sequence[ClockSpec],
        calendar: WorkingCalendar,
        thresholds: Thresholds,
        sync_grace: timedelta = timedelta(hours=4),
    ) -> None:
        self.specs = specs
        self.index = _spec_index(specs)
        self.applying: tuple[bool, ...] | None = None  # each spec's applies_to the case as it is
        self.sync_grace = sync_grace
        self.calendar = calendar
        self.thresholds = thresholds
        self.kind: str | None = None
        self.severity: str | None = None
        self.category: str | None = None
        self.rank: int | None = None
        self.fields: dict[str, Any] = {}
        self.paused: dict[str, bool] = {}
        self.runs: dict[tuple[str, str | None], _Run] = {}
        self.cycles: dict[tuple[str, str | None], int] = {}
        self.t: datetime | None = None
        self.linked: list[tuple[str, str | None]] = []  # the runs a 并案 stopped
        self.version = 0  # the last event folded (resumable: fold only newer events next time)
        self.latest: datetime | None = None  # the latest recording time folded

    def apply(self, event: Any) -> None:
        self.version = getattr(event, "originator_version", self.version + 1)
        self.latest = event.timestamp if self.latest is None else max(self.latest, event.timestamp)
        own = getattr(event, "occurred_at", None) or event.timestamp
        self.t = t = own if self.t is None or own >= self.t else self.t
        self._follow_case(event)
        if self.kind is None:
            return
        if self._linking(event, t, own):
            return
        if self.applying is None:  # worked out again when the kind or severity changes
            self.applying = self.index.applying(self.kind, self.severity or "minor")
        name = type(event).__name__
        for spec, names, applies in zip(self.specs, self.index.names, self.applying, strict=True):
            if name in names and (applies or self._has_runs(spec)):
                self._transition(spec, event, t, own)
        self._record_fired(event)

    def _linking(self, event: Any, t: datetime, own: datetime) -> bool:
        """并案: a link stops (cancels) every open clock of the duplicate; an unlink starts
        those clocks afresh (a new cycle from the unlink). True: the event was one of them."""
        name = type(event).__name__
        if name == LINKED:
            self.linked = [run_key for run_key, run in self.runs.items() if run.open]
            for run_key in self.linked:
                self.runs[run_key].cancel(t)
            return True
        if name == UNLINKED:
            specs = {spec.name: spec for spec in self.specs}
            for spec_name, key in self.linked:
                if spec_name in specs:
                    self._start(specs[spec_name], key, own)
            self.linked = []
            return True
        return False

    def _follow_case(self, event: Any) -> None:
        name = type(event).__name__
        if name == "Reported":
            self.kind, self.severity, self.rank = event.kind, event.severity, event.rank
            self.category = getattr(event, "category", None)
            self.applying = None
        elif name == "Assigned":
            self.rank = event.rank
        elif name == "Escalated":
            self.rank = event.to_rank
        elif name == "Reclassified":
            self.severity = event.to_severity
            self.applying = None
        for field_name in self.index.fields:
            if getattr(event, field_name, None) is not None:
                self.fields[field_name] = getattr(event, field_name)

    def _has_runs(self, spec: ClockSpec) -> bool:
        return any(s == spec.name for s, _ in self.runs)

    def _keys(self, spec: ClockSpec, event: Any, starting: bool) -> list[str | None]:
        if spec.each_from is None:
            return [None]
        if starting:
            return [str(k) for k in getattr(event, spec.each_from, None) or []]
        own = item_of(spec, event)
        if own is not None:
            return [own]
        return [k for s, k in self.runs if s == spec.name]

    def _transition(self, spec: ClockSpec, event: Any, t: datetime, own: datetime) -> None:
        """``t``: the event's time, never before the one before it (pauses, cancels);
        ``own``: its own ``occurred_at`` (a back-dated act starts a clock, and is judged
        on time, at the moment it happened)."""
        if matches_any(spec.cancel_on, event):
            for run in self._open_runs(spec, event):
                run.cancel(t)
        elif matches_any(spec.stop_on, event):
            for run in self._open_runs(spec, event):
                run.stop(own, event.timestamp, self.sync_grace, self.thresholds.breach)
        elif matches_any(spec.restart_on, event) and (
            self._has_runs(spec) or matches_any(spec.start_on, event)
        ):
            for key in self._keys(spec, event, starting=True):
                self._start(spec, key, own)
        elif matches_any(spec.start_on, event):
            for key in self._keys(spec, event, starting=True):
                existing = self.runs.get((spec.name, key))
                if key is not None and existing is not None:
                    continue  # an item already summoned keeps its clock (吹哨 again: only the new ones)
                if existing is None or not existing.open:
                    self._start(spec, key, own)
        elif matches_any(spec.pause_on, event):
            self.paused[spec.name] = True
            for run in self._open_runs(spec, event):
                run.pause(t)
        elif matches_any(spec.resume_on, event):
            self.paused[spec.name] = False
            for run in self._open_runs(spec, event):
                run.resume(t)
        if type(event).__name__ == "Extended":
            for run in self.runs.values():
                if run.spec is spec and run.name == event.clock and run.open:
                    run.extend(t, event.days, _as_datetime(event.due_at))

    def _open_runs(self, spec: ClockSpec, event: Any) -> list[_Run]:
        keys = self._keys(spec, event, starting=False)
        return [r for k in keys if (r := self.runs.get((spec.name, k))) is not None and r.open]

    def _start(self, spec: ClockSpec, key: str | None, t: datetime) -> None:
        assert (
            self.kind is not None and self.severity is not None
        )  # apply() returns before a Reported
        if not spec.applies_to(self.kind, self.severity):
            return
        if spec.start_from:
            t = _as_datetime(self.fields.get(spec.start_from)) or t
        target = self._target(spec, t)
        if target is None:
            return
        measure, amount, text = target
        cycle = self.cycles.get((spec.name, key), 0) + 1
        self.cycles[(spec.name, key)] = cycle
        run = _Run(spec, key, cycle, t, measure, amount, text, since=t)
        if self.paused.get(spec.name):
            run.since = None
        self.runs[(spec.name, key)] = run

    def _target(self, spec: ClockSpec, t: datetime) -> tuple[Measure, timedelta, str] | None:
        """The cycle's target: of the durations that bound it (rank or severity or
        default; category) and ``target_from``'s due time, the earliest due governs."""
        case = (self.severity, self.rank or 0, self.category)
        bounds = self.index.bounds(spec, case, self.calendar)
        if spec.target_from:
            due = _as_datetime(self.fields.get(spec.target_from))
            if due is not None:
                measure = bounds[0][0] if bounds else Measure(self.calendar, False)
                bounds.append(
                    (measure, measure.between(t, due), f"{spec.target_from} {due.isoformat()}")
                )
        if len(bounds) < 2:  # none, or the one (no due time to compare)
            return bounds[0] if bounds else None
        return min(bounds, key=lambda b: b[0].advance(t, b[1]))

    def _record_fired(self, event: Any) -> None:
        name = type(event).__name__
        if name not in ("ClockWarned", "ClockBreached"):
            return
        threshold = event.threshold if name == "ClockWarned" else self.thresholds.breach
        for run in self.runs.values():
            if run.name == event.clock and run.open:
                run.fired.add(float(threshold))


def _as_datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def evaluate_clocks(
    events: Iterable[Any],
    specs: Sequence[ClockSpec],
    calendar: WorkingCalendar,
    now: datetime,
    thresholds: Thresholds | None = None,
    sync_grace: timedelta = timedelta(hours=4),
) -> list[ClockState]:
    """Every clock the case has started, in policy order, as it stands at ``now``.

    Only events recorded by ``now`` count (a case evaluated as of an earlier
    moment sees only what was known then).
    """
    if now.tzinfo is None:
        raise ValidationFailed("now needs a time zone", field="now")
    fold = _Fold(specs, calendar, thresholds or Thresholds(), sync_grace)
    for event in events:
        if event.timestamp > now:
            continue
        fold.apply(event)
    return fold_states(fold, now)


def fold_states(fold: _Fold, now: datetime) -> list[ClockState]:
    """Every clock the fold has started, in policy order, as it stands at ``now``
    (reads the fold, never changes it)."""
    order = {spec.name: i for i, spec in enumerate(fold.specs)}
    runs = sorted(fold.runs.values(), key=lambda r: (order[r.spec.name], r.key or ""))
    return [run.state(now, fold.thresholds) for run in runs]


def clock_fold(policy: Policy, statutory: Statutory | None = None) -> _Fold:
    """An empty fold of a case's events under one policy version: :meth:`_Fold.apply` each
    event in order, :func:`fold_states` at any moment after the last one's recording. A fold
    kept after version N resumes with the events after N (the engine's clock-fold cache):
    the same clocks as :func:`clocks_under` over every event, without refolding them."""
    return _Fold(
        policy.clocks,
        calendar_for(policy.calendar, statutory),
        policy.thresholds,
        policy.sync_grace_delta,
    )


def clocks_under(
    policy: Policy, events: Iterable[Any], now: datetime, statutory: Statutory | None = None
) -> list[ClockState]:
    """The case's clocks under one policy version (its clocks, calendar overrides and
    thresholds) on the statutory facts of today, whatever the version."""
    return evaluate_clocks(
        events,
        policy.clocks,
        calendar_for(policy.calendar, statutory),
        now,
        policy.thresholds,
        policy.sync_grace_delta,
    )


def send_back_window_closes(
    policy: Policy, dispatched_at: datetime, statutory: Statutory | None = None
) -> datetime:
    """When the 退单 window opened by a dispatch at ``dispatched_at`` closes: the policy's
    ``send_back_window`` later, on its calendar (working time for ``wd``/``wh``)."""
    measure = Measure(
        calendar_for(policy.calendar, statutory), is_working_duration(policy.send_back_window)
    )
    return measure.advance(dispatched_at, measure.duration(policy.send_back_window))
