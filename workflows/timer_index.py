"""The timer index: each open clock's next due threshold, indexed on its due time.

A projection (``projections.base.Projection``) over case events, so the timer
service never scans cases: it asks ``timer_index`` for rows with
``due_at <= now``. One row per open, running clock of a case:
``(case_id, clock, leg, threshold, due_at)``. A paused, stopped or cancelled
clock, or one whose thresholds are all recorded, has no row.

A batch recomputes each case it touches once, from that case's events up to
the last one in the batch (a pure function of the events, so a rebuild equals
the incremental result). ``due_at`` is stored as fixed-width UTC ISO text, so it
sorts the same on SQLite and PostgreSQL.

Clocks count with the statutory calendar now in force (``app.statutory()``).
A ``CalendarImported`` event (a year of holidays imported into the calendar
book) re-indexes every case in the index, so each open clock's thresholds move
with the new facts, and a rebuild equals the incremental index once the import
is processed. ``missing_year`` is the first year a working-time clock's span
(start to due) touches that has no statutory data: the log warns and
``/readyz`` reports it (:func:`missing_years`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import structlog

from domain.calendar import CalendarBook
from domain.cases import Case
from domain.clocks import ClockState, clocks_under
from engine.sql import Database, Tx
from projections.base import Projection

log = structlog.get_logger("fengqiao.timers")

TABLE = "timer_index"


def as_key(moment: datetime) -> str:
    """A sortable text form of an instant (UTC, fixed width)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_key(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


class TimerIndex(Projection):
    """Next due threshold of every open clock."""

    name = TABLE
    tables = (TABLE,)
    topics = ()  # any case event may start, stop or move a clock; so may a calendar import
    version = 2  # 2: missing_year

    def __init__(self, app: Any) -> None:
        self.app = app
        self._warned: set[tuple[str, str, str]] = set()

    def create_tables(self, tx: Tx) -> None:
        t = self.t(TABLE)
        tx.execute(
            f"CREATE TABLE {t} (case_id TEXT NOT NULL, clock TEXT NOT NULL, leg TEXT NOT NULL, "
            f"threshold REAL NOT NULL, due_at TEXT NOT NULL, missing_year INTEGER, PRIMARY KEY (case_id, clock))"
        )
        tx.execute(f"CREATE INDEX {t}_due ON {t} (due_at)")

    def apply_batch(self, tx: Tx, events: Sequence[tuple[int, Any]]) -> None:
        latest: dict[UUID, int | None] = {}
        t = self.t(TABLE)
        for _, event in events:
            if isinstance(event, Case.Event | Case.Reported):
                latest[event.originator_id] = max(
                    latest.get(event.originator_id) or 0, event.originator_version
                )
            elif isinstance(event, CalendarBook.CalendarImported):
                self.app.calendar_book(
                    min_version=event.originator_version
                )  # count with the new year now
                for row in tx.query(f"SELECT DISTINCT case_id FROM {t}"):
                    latest.setdefault(
                        UUID(row["case_id"]), None
                    )  # None: the case's events as stored
        for case_id, version in latest.items():
            tx.execute(f"DELETE FROM {t} WHERE case_id = ?", (str(case_id),))
            rows = [(str(case_id), *row) for row in self.next_thresholds(case_id, version)]
            tx.executemany(
                f"INSERT INTO {t} (case_id, clock, leg, threshold, due_at, missing_year) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

    def next_thresholds(
        self, case_id: UUID, version: int | None
    ) -> list[tuple[str, str, float, str, int | None]]:
        """``(clock, leg, threshold, due_at, missing_year)`` of each open clock, from
        the case's events up to ``version`` (None: all)."""
        events = list(self.app.events.get(case_id, lte=version))
        if not events:
            return []
        policy = self.app.policy(events[0].policy_version)
        statutory = self.app.statutory()
        rows = []
        for state in clocks_under(policy, events, events[-1].timestamp, statutory):
            upcoming = state.next_threshold()
            if upcoming is not None:
                threshold, at = upcoming
                missing = (
                    statutory.missing_years(state.started_at, state.due_at) if state.working else ()
                )
                if missing:
                    self._warn(case_id, state, missing)
                rows.append(
                    (state.name, state.leg, threshold, as_key(at), missing[0] if missing else None)
                )
        return rows

    def _warn(self, case_id: UUID, state: ClockState, missing: tuple[int, ...]) -> None:
        key = (str(case_id), state.name, state.leg)
        if key not in self._warned:
            self._warned.add(key)
            log.warning(
                "clock due in a year without statutory calendar data: counted Monday to Friday",
                case_id=str(case_id),
                clock=state.name,
                due_at=state.due_at.isoformat(),
                years=list(missing),
            )


def due_cases(db: Database, now: datetime, limit: int) -> list[tuple[UUID, datetime]]:
    """Cases with a threshold due by ``now``, earliest first (at most ``limit``
    rows are read: a range scan of the ``due_at`` index, never the whole table)."""
    rows = db.query(
        f"SELECT case_id, due_at FROM {TABLE} WHERE due_at <= ? ORDER BY due_at LIMIT ?",
        (as_key(now), limit),
    )
    first: dict[str, str] = {}
    for row in rows:
        first.setdefault(row["case_id"], row["due_at"])
    return [(UUID(case_id), from_key(due_at)) for case_id, due_at in first.items()]


def missing_years(db: Database) -> dict[int, int]:
    """Years without statutory data that open working-time clocks run into, with
    how many clocks do (as last indexed)."""
    rows = db.query(
        f"SELECT missing_year, COUNT(*) AS clocks FROM {TABLE} WHERE missing_year IS NOT NULL "
        "GROUP BY missing_year"
    )
    return {int(row["missing_year"]): int(row["clocks"]) for row in rows}


def next_due(db: Database) -> datetime | None:
    """The earliest threshold in the index, if any."""
    rows = db.query(f"SELECT MIN(due_at) AS due_at FROM {TABLE}")
    return from_key(rows[0]["due_at"]) if rows and rows[0]["due_at"] else None
