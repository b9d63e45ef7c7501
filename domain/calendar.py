"""Working-time calendar: statutory holidays, 调休 make-up days, office hours.

Pure domain code: no I/O. Override files are passed in as already-read text.

Which days are working days
---------------------------
A date is a working day when, in order of precedence:

1. it is in ``extra_workdays`` (a policy's override: 调休上班) -> working;
2. it is in ``extra_holidays`` (a policy's override: 放假) -> not working;
3. the statutory facts (``Statutory``) decide: a date an imported year lists ->
   its verdict; another date of an imported year -> Monday to Friday; else the
   ``chinesecalendar`` package's verdict for its years (statutory holidays *and*
   make-up working weekends);
4. otherwise (a year with no statutory data, see ``Statutory.covers``)
   -> plain Monday to Friday. Callers warn about it; no year is invented.

Statutory years are facts, not policy: every policy version's calendar takes
them from one ``Statutory`` value (the event-sourced ``CalendarBook``'s), and a
policy's inline overrides sit on top.

Every working day has the same working windows (``WorkingHours``), in local
time of the calendar's ``tz`` (Asia/Shanghai by default). Windows are closed
at both ends for the purpose of "is this instant inside working hours".

Working-time rules
------------------
All datetimes must be timezone-aware (naive ones raise ``ValueError``); results
are in the calendar's ``tz``. Arithmetic is done on local wall-clock time,
which assumes the zone has no DST shift inside working windows (true for
Asia/Shanghai since 1991).

* ``add_working_hours(start, h)`` consumes only time inside windows on working
  days and returns the instant the h-th working hour completes. A result that
  coincides with a window end is that window end, never the next window start.
  ``h == 0`` returns the *normalised start*: ``start`` itself if it lies inside
  a window (ends included), else the next window start.
* ``add_working_days(start, n)`` is ``add_working_hours(start, n * day_length)``
  where ``day_length`` is the total length of the daily windows. Because all
  working days share the same windows this reads as:

  - start inside working hours -> same wall-clock time on the n-th following
    working day (Fri 10:00 + 1 = Mon 10:00);
  - start before hours, in a break, after hours, or on a non-working day ->
    the clock starts at the next window start, and the result is the end of
    the working day the n-th day's worth of time runs out on
    (Sat + 1 = Mon 17:30; Fri 18:00 + 1 = Mon 17:30; Mon 07:00 + 1 = Mon 17:30;
    lunch 12:45 + 1 = next working day 12:00);
  - ``n == 0`` returns the normalised start; negative ``n`` raises.
* ``working_time_between(a, b)`` is the working time inside ``[a, b)``; it is the
  inverse of ``add_working_hours``: ``working_time_between(s,
  add_working_hours(s, h)) == h`` for every ``s`` and ``h > 0``.
* ``working_days_between(a, b)`` is ``working_time_between(a, b) / day_length``
  (a float), the inverse of ``add_working_days``.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from importlib.metadata import version as package_version
from typing import Any
from uuid import NAMESPACE_URL, uuid5
from zoneinfo import ZoneInfo

import chinese_calendar
from eventsourcing.domain import Aggregate

from domain.errors import ValidationFailed

__all__ = [
    "SHANGHAI",
    "DEFAULT_HOURS",
    "CALENDAR_BOOK_ID",
    "CalendarBook",
    "CalendarFileError",
    "Statutory",
    "StatutoryYear",
    "WorkingHours",
    "WorkingCalendar",
    "add_calendar",
    "statutory_data_covers",
]

SHANGHAI = ZoneInfo("Asia/Shanghai")

_ONE_DAY = timedelta(days=1)
_DAYS_KEPT = 4096  # dates whose windows a calendar keeps (about ten years of them)
_MAX_RANGE_DAYS = 366  # sanity cap for one [[holiday]]/[[workday]] from..to entry


class CalendarFileError(ValueError):
    """An override file is malformed; the message names the field (and line when known)."""


# ---------------------------------------------------------------- working hours


@dataclass(frozen=True)
class WorkingHours:
    """Daily working windows in local time, ordered and non-overlapping.

    Example: ``((time(9, 0), time(12, 0)), (time(13, 30), time(17, 30)))``.
    Each window must have start < end; a window may start where the previous ends.
    """

    windows: tuple[tuple[time, time], ...]

    def __post_init__(self) -> None:
        windows = tuple((start, end) for start, end in self.windows)
        object.__setattr__(self, "windows", windows)
        if not windows:
            raise ValueError("working hours need at least one window")
        previous_end: time | None = None
        for i, (start, end) in enumerate(windows):
            if not (isinstance(start, time) and isinstance(end, time)):
                raise ValueError(f"window {i}: start and end must be datetime.time")
            if start.tzinfo is not None or end.tzinfo is not None:
                raise ValueError(f"window {i}: times are local, tzinfo not allowed")
            if not start < end:
                raise ValueError(f"window {i}: start {start} must be before end {end}")
            if previous_end is not None and start < previous_end:
                raise ValueError(f"window {i}: starts at {start}, before previous window ends")
            previous_end = end

    @property
    def day_length(self) -> timedelta:
        """Total working time in one working day."""
        return sum((_span(start, end) for start, end in self.windows), timedelta())

    def on(self, d: date) -> Iterator[tuple[datetime, datetime]]:
        """The windows of date ``d`` as naive local datetimes."""
        for start, end in self.windows:
            yield datetime.combine(d, start), datetime.combine(d, end)


def _span(start: time, end: time) -> timedelta:
    d = date(2000, 1, 1)
    return datetime.combine(d, end) - datetime.combine(d, start)


DEFAULT_HOURS = WorkingHours(((time(9, 0), time(12, 0)), (time(13, 30), time(17, 30))))


# ---------------------------------------------------------- statutory calendar


@lru_cache(maxsize=8192)
def _statutory_is_workday(d: date) -> bool | None:
    """chinesecalendar's verdict for ``d``, or None when it has no data for that year."""
    try:
        workday: bool = chinese_calendar.is_workday(d)
        return workday
    except NotImplementedError:
        return None


def statutory_data_covers(year: int) -> bool:
    """Whether the installed chinesecalendar knows the holidays of ``year``.

    Outside that range the calendar silently falls back to Monday to Friday,
    so callers may want to warn, or load an override file for that year.
    """
    return _statutory_is_workday(date(year, 1, 1)) is not None


@lru_cache(maxsize=1)
def package_years() -> tuple[int, ...]:
    """The years the installed chinesecalendar covers (2004–2026 in 1.11.0)."""
    return tuple(y for y in range(1990, 2100) if statutory_data_covers(y))


def package_source() -> str:
    return f"chinesecalendar {package_version('chinesecalendar')}"


@dataclass(frozen=True)
class StatutoryYear:
    """One year of the State Council's holiday notice, as imported: its days off
    (放假, weekends inside a holiday included) and 调休 working days. Dates may
    reach into the neighbouring years (a 元旦 holiday from 30 December)."""

    year: int
    holidays: frozenset[date]
    workdays: frozenset[date]
    name: str = ""
    digest: str = ""
    imported_by: str = ""
    imported_at: datetime | None = None


@dataclass(frozen=True)
class Statutory:
    """The statutory calendar: imported years on top of the chinesecalendar package.

    Hashable, so calendars built on it can be cached. ``Statutory()`` is the
    package alone.
    """

    years: tuple[StatutoryYear, ...] = ()
    _days: dict[date, bool] = field(init=False, repr=False, compare=False, hash=False)
    _imported: frozenset[int] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        days: dict[date, bool] = {}
        # a year's own notice decides its dates; a neighbour's notice only what it lists beyond
        for entry in sorted(self.years, key=lambda y: y.year):
            for d in entry.workdays | entry.holidays:
                if d.year == entry.year or d not in days:
                    days[d] = d in entry.workdays
        object.__setattr__(self, "_days", days)
        object.__setattr__(self, "_imported", frozenset(y.year for y in self.years))

    @property
    def imported(self) -> frozenset[int]:
        """The years an import covers (it replaces the package's data for them)."""
        return self._imported

    def verdict(self, d: date) -> bool | None:
        """Working day or not by statutory data; None for a year without any."""
        listed = self._days.get(d)
        if listed is not None:
            return listed
        if d.year in self._imported:
            return d.weekday() < 5
        return _statutory_is_workday(d)

    def covers(self, year: int) -> bool:
        return year in self.imported or statutory_data_covers(year)

    def missing_years(self, start: datetime, end: datetime) -> tuple[int, ...]:
        """Years from ``start`` to ``end`` (Beijing time) without statutory data."""
        first, last = start.astimezone(SHANGHAI).year, end.astimezone(SHANGHAI).year
        return tuple(y for y in range(first, last + 1) if not self.covers(y))

    def sources(self) -> list[dict[str, Any]]:
        """Each year covered and where its data came from, in year order."""
        imported = {y.year: y for y in self.years}
        rows = [
            {"year": y, "source": package_source()} for y in package_years() if y not in imported
        ]
        for y in imported.values():
            rows.append(
                {
                    "year": y.year,
                    "source": "import",
                    "name": y.name,
                    "digest": y.digest,
                    "imported_by": y.imported_by,
                    "imported_at": y.imported_at.isoformat() if y.imported_at else None,
                    "holidays": len(y.holidays),
                    "workdays": len(y.workdays),
                    "replaces": package_source() if statutory_data_covers(y.year) else None,
                }
            )
        return sorted(rows, key=lambda r: r["year"])


NO_IMPORTS = Statutory()


# ------------------------------------------------------------ working calendar


@dataclass(frozen=True)
class WorkingCalendar:
    """Working days and hours, with optional overrides on top of statutory data."""

    hours: WorkingHours = DEFAULT_HOURS
    extra_holidays: frozenset[date] = frozenset()
    extra_workdays: frozenset[date] = frozenset()
    tz: ZoneInfo = SHANGHAI
    name: str = "cn-statutory"
    statutory: Statutory = NO_IMPORTS
    _days: dict[date, tuple[tuple[datetime, datetime], ...]] = field(
        init=False, repr=False, compare=False, hash=False
    )  # each date's windows (none on a day off), worked out once: see :meth:`_windows_on`

    def __post_init__(self) -> None:
        object.__setattr__(self, "_days", {})
        object.__setattr__(self, "extra_holidays", _date_set(self.extra_holidays, "extra_holidays"))
        object.__setattr__(self, "extra_workdays", _date_set(self.extra_workdays, "extra_workdays"))
        both = self.extra_holidays & self.extra_workdays
        if both:
            listed = ", ".join(sorted(d.isoformat() for d in both))
            raise ValueError(f"dates both extra holiday and extra workday: {listed}")

    # -- days

    def is_working_day(self, d: date) -> bool:
        """Overrides first, then chinesecalendar, then plain Monday to Friday."""
        if isinstance(d, datetime) or not isinstance(d, date):
            raise TypeError(f"expected a date, got {type(d).__name__}")
        if d in self.extra_workdays:
            return True
        if d in self.extra_holidays:
            return False
        statutory = self.statutory.verdict(d)
        return d.weekday() < 5 if statutory is None else statutory

    def next_working_day(self, d: date) -> date:
        """The first working day strictly after ``d``."""
        d += _ONE_DAY
        while not self.is_working_day(d):
            d += _ONE_DAY
        return d

    # -- arithmetic

    @property
    def day_length(self) -> timedelta:
        """Working time in one working day (7 h with the default hours)."""
        return self.hours.day_length

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """``start`` plus ``days`` working days' worth of working time.

        Inside working hours: same wall-clock time on the n-th following working
        day. Outside them: counted from the next window start, ending at the end
        of a working day. ``days == 0`` gives the normalised start.
        """
        if isinstance(days, bool) or not isinstance(days, int):
            raise TypeError(f"working days must be an int, got {type(days).__name__}")
        if days < 0:
            raise ValueError(f"working days must not be negative, got {days}")
        return self._advance(start, self.day_length * days)

    def add_working_hours(self, start: datetime, hours: float | timedelta) -> datetime:
        """The instant the given amount of working time, counted from ``start``, completes.

        Only time inside windows on working days is consumed. Completing exactly
        at a window end returns that end. Zero gives the normalised start.
        """
        return self._advance(start, _as_duration(hours))

    def working_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Working time inside ``[start, end)``; zero when ``end <= start``."""
        a, b = self._local(start), self._local(end)
        total = timedelta()
        if b <= a:
            return total
        for window_start, window_end in self._windows_from(a.date()):
            if window_start >= b:
                return total
            overlap = min(window_end, b) - max(window_start, a)
            if overlap > timedelta():
                total += overlap
        raise AssertionError("unreachable: window stream is infinite")

    def working_days_between(self, start: datetime, end: datetime) -> float:
        """``working_time_between`` measured in working days (may be fractional).

        Inverse of ``add_working_days``: ``working_days_between(s, add_working_days(s, n)) == n``.
        """
        return self.working_time_between(start, end) / self.day_length

    # -- overrides

    @classmethod
    def from_overrides(cls, text: str, **kw: Any) -> WorkingCalendar:
        """Build a calendar from override TOML text (see docs/calendar.md).

        Keyword arguments are passed to the constructor and win over the file's
        ``name``/``hours``; ``extra_holidays``/``extra_workdays`` given as keywords
        are merged with the file's dates.
        """
        overrides = _parse_overrides(text)
        holidays = overrides.holidays | _date_set(kw.pop("extra_holidays", ()), "extra_holidays")
        workdays = overrides.workdays | _date_set(kw.pop("extra_workdays", ()), "extra_workdays")
        settings: dict[str, Any] = {}
        if overrides.name is not None:
            settings["name"] = overrides.name
        if overrides.hours is not None:
            settings["hours"] = overrides.hours
        settings.update(kw)
        try:
            return cls(extra_holidays=holidays, extra_workdays=workdays, **settings)
        except ValueError as exc:
            raise CalendarFileError(str(exc)) from exc

    # -- internals

    def _local(self, moment: datetime) -> datetime:
        """``moment`` as naive local wall-clock time in this calendar's tz."""
        if not isinstance(moment, datetime):
            raise TypeError(f"expected a datetime, got {type(moment).__name__}")
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"naive datetime not allowed: {moment.isoformat()}")
        return moment.astimezone(self.tz).replace(tzinfo=None)

    def _windows_on(self, d: date) -> tuple[tuple[datetime, datetime], ...]:
        """The working windows of date ``d`` as naive local datetimes, none on a day off:
        worked out once a date (the calendar is immutable), as clocks ask again and again."""
        windows = self._days.get(d)
        if windows is None:
            windows = tuple(self.hours.on(d)) if self.is_working_day(d) else ()
            if len(self._days) >= _DAYS_KEPT:
                self._days.clear()
            self._days[d] = windows
        return windows

    def _windows_from(self, d: date) -> Iterator[tuple[datetime, datetime]]:
        """All working windows on working days from ``d`` on, in order, forever."""
        while True:
            yield from self._windows_on(d)
            d += _ONE_DAY

    def _advance(self, start: datetime, amount: timedelta) -> datetime:
        """Earliest instant at which ``amount`` of working time after ``start`` is used up."""
        if amount < timedelta():
            raise ValueError(f"working time must not be negative, got {amount}")
        remaining = amount
        t = self._local(start)
        for window_start, window_end in self._windows_from(t.date()):
            if window_end < t:
                continue
            segment_start = max(window_start, t)
            available = window_end - segment_start
            if remaining <= available:
                return (segment_start + remaining).replace(tzinfo=self.tz)
            remaining -= available
        raise AssertionError("unreachable: window stream is infinite")


def add_calendar(start: datetime, duration: timedelta) -> datetime:
    """Plain elapsed-time arithmetic (自然日/小时), result in Asia/Shanghai."""
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError(f"naive datetime not allowed: {start.isoformat()}")
    return (start.astimezone(UTC) + duration).astimezone(SHANGHAI)


def _as_duration(hours: float | timedelta) -> timedelta:
    if isinstance(hours, timedelta):
        return hours
    if isinstance(hours, bool) or not isinstance(hours, int | float):
        raise TypeError(f"hours must be a number or timedelta, got {type(hours).__name__}")
    try:
        return timedelta(hours=hours)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"invalid number of hours: {hours!r}") from exc


def _date_set(values: Iterable[date], what: str) -> frozenset[date]:
    dates = frozenset(values)
    for d in dates:
        if isinstance(d, datetime) or not isinstance(d, date):
            raise TypeError(f"{what} must contain dates, got {d!r}")
    return dates


# ------------------------------------------------------------- override files


@dataclass(frozen=True)
class _Overrides:
    name: str | None
    hours: WorkingHours | None
    holidays: frozenset[date]
    workdays: frozenset[date]
    year: int | None = None


_TOP_LEVEL_KEYS = {"name", "year", "holiday", "workday", "hours"}
_ENTRY_KEYS = {"date", "from", "to", "name"}


def _parse_overrides(text: str) -> _Overrides:
    """Validate parsed TOML and turn it into date sets; every problem -> CalendarFileError."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CalendarFileError(f"invalid TOML: {exc}") from exc

    unknown = sorted(set(data) - _TOP_LEVEL_KEYS)
    if unknown:
        raise CalendarFileError(
            f"unknown key(s) {', '.join(unknown)}; expected {', '.join(sorted(_TOP_LEVEL_KEYS))}"
        )
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        raise CalendarFileError(f"name: expected a string, got {name!r}")
    year = data.get("year")
    if year is not None and (
        isinstance(year, bool) or not isinstance(year, int) or not 2000 <= year <= 2100
    ):
        raise CalendarFileError(f"year: expected a year like 2027, got {year!r}")

    holidays = _entry_dates(data, "holiday", text)
    workdays = _entry_dates(data, "workday", text)
    both = holidays.keys() & workdays.keys()
    if both:
        d = min(both)
        raise CalendarFileError(
            f"{d.isoformat()} is listed as both a holiday ({holidays[d]}) and a workday ({workdays[d]})"
        )
    hours = _parse_hours(data["hours"]) if "hours" in data else None
    return _Overrides(name, hours, frozenset(holidays), frozenset(workdays), year)


def _entry_dates(data: dict[str, Any], kind: str, text: str) -> dict[date, str]:
    """Dates of all ``[[kind]]`` entries, each mapped to a label for error messages."""
    entries = data.get(kind, [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise CalendarFileError(f"{kind}: expected an array of tables ([[{kind}]])")
    lines = _header_lines(text, kind, len(entries))
    dates: dict[date, str] = {}
    for i, entry in enumerate(entries):
        where = f"{kind}[{i}]"
        try:
            for d in _entry_range(entry, where):
                if d in dates:
                    raise CalendarFileError(
                        f"{where}: {d.isoformat()} already listed in {dates[d]}"
                    )
                dates[d] = where
        except CalendarFileError as exc:
            if not lines:
                raise
            raise CalendarFileError(f"line {lines[i]}: {exc}") from exc
    return dates


def _entry_range(entry: dict[str, Any], where: str) -> list[date]:
    unknown = sorted(set(entry) - _ENTRY_KEYS)
    if unknown:
        raise CalendarFileError(f"{where}: unknown key(s) {', '.join(unknown)}")
    if "name" in entry and not isinstance(entry["name"], str):
        raise CalendarFileError(f"{where}.name: expected a string")
    if "date" in entry:
        if "from" in entry or "to" in entry:
            raise CalendarFileError(f"{where}: use either 'date' or 'from'/'to', not both")
        return [_as_date(entry["date"], f"{where}.date")]
    missing = [key for key in ("from", "to") if key not in entry]
    if missing:
        raise CalendarFileError(f"{where}: missing '{missing[0]}' (or give a single 'date')")
    first = _as_date(entry["from"], f"{where}.from")
    last = _as_date(entry["to"], f"{where}.to")
    if last < first:
        raise CalendarFileError(f"{where}: 'to' {last} is before 'from' {first}")
    if (last - first).days >= _MAX_RANGE_DAYS:
        raise CalendarFileError(f"{where}: range longer than {_MAX_RANGE_DAYS} days")
    return [first + timedelta(days=k) for k in range((last - first).days + 1)]


def _as_date(value: Any, where: str) -> date:
    """A TOML local date (2027-01-01) or an ISO date string ("2027-01-01")."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise CalendarFileError(f"{where}: expected a date like 2027-01-01, got {value!r}")


def _parse_hours(table: Any) -> WorkingHours:
    if not isinstance(table, dict):
        raise CalendarFileError("hours: expected a table ([hours])")
    unknown = sorted(set(table) - {"windows"})
    if unknown:
        raise CalendarFileError(f"hours: unknown key(s) {', '.join(unknown)}")
    windows = table.get("windows")
    if not isinstance(windows, list) or not windows:
        raise CalendarFileError('hours.windows: expected a list like [["09:00", "12:00"], ...]')
    parsed = []
    for i, pair in enumerate(windows):
        where = f"hours.windows[{i}]"
        if not isinstance(pair, list) or len(pair) != 2:
            raise CalendarFileError(f'{where}: expected a pair like ["09:00", "12:00"]')
        parsed.append((_as_time(pair[0], where), _as_time(pair[1], where)))
    try:
        return WorkingHours(tuple(parsed))
    except ValueError as exc:
        raise CalendarFileError(f"hours.windows: {exc}") from exc


def _as_time(value: Any, where: str) -> time:
    """A TOML local time (09:00:00) or a string "HH:MM" / "HH:MM:SS"."""
    if isinstance(value, time):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{2}:\d{2}(:\d{2})?", value):
        try:
            return time.fromisoformat(value)
        except ValueError:
            pass
    raise CalendarFileError(f'{where}: expected a time like "09:00", got {value!r}')


def _header_lines(text: str, kind: str, count: int) -> list[int]:
    """1-based line numbers of the ``[[kind]]`` headers, if they account for every entry."""
    pattern = re.compile(rf"^\s*\[\[\s*{kind}\s*\]\]")
    lines = [n for n, line in enumerate(text.splitlines(), start=1) if pattern.match(line)]
    return lines if len(lines) == count else []


# ------------------------------------------------------- imported statutory years


def parse_statutory_year(text: str) -> StatutoryYear:
    """A statutory-year file: the override format with ``year`` and no ``[hours]``.

    Its dates lie in that year, or in the December before or January after it
    (holidays that span the new year). Problems -> ``CalendarFileError``.
    """
    overrides = _parse_overrides(text)
    if overrides.year is None:
        raise CalendarFileError(
            "year: a statutory calendar file names the year of its notice (year = 2027)"
        )
    if overrides.hours is not None:
        raise CalendarFileError(
            "hours: working hours are policy ([calendar] overrides), not a statutory fact"
        )
    if not overrides.holidays:
        raise CalendarFileError(f"holiday: the {overrides.year} notice lists no holiday")
    y = overrides.year
    for d in sorted(overrides.holidays | overrides.workdays):
        if not (
            d.year == y or (d.year == y - 1 and d.month == 12) or (d.year == y + 1 and d.month == 1)
        ):
            raise CalendarFileError(
                f"{d.isoformat()} is outside {y} (and the December before, January after)"
            )
    return StatutoryYear(
        y,
        overrides.holidays,
        overrides.workdays,
        overrides.name or "",
        hashlib.sha256(text.encode()).hexdigest(),
    )


CALENDAR_BOOK_ID = uuid5(NAMESPACE_URL, "fengqiao:calendar-book")


class CalendarBook(Aggregate):
    """The statutory years imported, each with who imported it and when.

    A year imported again replaces its earlier import (and the package's data
    for that year); importing the same file again records nothing.
    """

    class Started(Aggregate.Created):
        pass

    class CalendarImported(Aggregate.Event):
        year: int
        name: str
        holidays: list[str]
        workdays: list[str]
        digest: str
        actor_id: str
        source: str = ""  # the file's name, as the importer gave it

        def entry(self) -> StatutoryYear:
            """The year as imported (a read model following these events builds its
            ``Statutory`` from them: ``Statutory(tuple(entries))``, one per year, the latest)."""
            return StatutoryYear(
                self.year,
                frozenset(map(date.fromisoformat, self.holidays)),
                frozenset(map(date.fromisoformat, self.workdays)),
                self.name,
                self.digest,
                self.actor_id,
                self.timestamp,
            )

        def apply(self, book: CalendarBook) -> None:
            book.years[self.year] = self.entry()
            book._statutory = None

    def __init__(self) -> None:
        self.years: dict[int, StatutoryYear] = {}
        self._statutory: Statutory | None = None

    @classmethod
    def start(cls) -> CalendarBook:
        return cls._create(cls.Started, id=CALENDAR_BOOK_ID)

    def statutory(self) -> Statutory:
        """The statutory facts: the imported years on top of the package."""
        statutory: Statutory | None = getattr(self, "_statutory", None)
        if statutory is None:
            statutory = self._statutory = Statutory(
                tuple(self.years[y] for y in sorted(self.years))
            )
        return statutory

    def import_year(self, text: str, actor_id: str, source: str = "") -> tuple[int, bool]:
        """Record a year's notice; ``(year, changed)``. Bad files: ``ValidationFailed``."""
        try:
            entry = parse_statutory_year(text)
        except CalendarFileError as exc:
            raise ValidationFailed(f"calendar file: {exc}", field="calendar") from None
        current = self.years.get(entry.year)
        if current is not None and current.digest == entry.digest:
            return entry.year, False
        self.trigger_event(
            self.CalendarImported,
            year=entry.year,
            name=entry.name,
            holidays=sorted(d.isoformat() for d in entry.holidays),
            workdays=sorted(d.isoformat() for d in entry.workdays),
            digest=entry.digest,
            actor_id=actor_id,
            source=source,
        )
        return entry.year, True
