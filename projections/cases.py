"""The supervisor's case table: one row per case, kept current from its events.

Tables (public names; see docs/projections.md):

* ``cases`` — every case's current view plus the facts the boards and rates need
  (when it was reported, dispatched, signed for, resolved, visited; at which rank;
  whether within the ceiling of the severity it was reported with).
  ``requests`` (JSON) holds the requests awaiting approval, keyed ``suspension`` or
  ``extension:<clock>`` (who asked, when, the days and reason the request carries), and
  ``awaiting`` their number: set by ``SuspensionRequested`` / ``ExtensionRequested``, cleared
  by the refusal, the approval (``Suspended``; ``Extended`` with ``requested_by``), as the
  case's own ``apply`` clears them. ``region_township``: the township of ``region``
  (where the case is handled now), so that a township's list walks its own sort index.
* ``cases_upward`` — one row per push above the ceiling, dated, attributed to the
  case's origin: ``reclassified_up`` (重新定性 upwards, 矛盾上交) and
  ``escalation_refused`` (an escalation or assignment the ceiling refused, from
  the per-case refusal log, ``domain.refusals``).
* ``cases_policies`` — the policy documents seen in the log (clock rules, targets).
* ``cases_calendar`` — the statutory years imported (``CalendarBook.CalendarImported``),
  one row per year, the latest import: due times count with them
  (``domain.clocks.calendar_for(ref, statutory)``), after a restart or a rebuild too.
* ``cases_regions`` — the region tree as the ladder's events built it: each report's
  village and township are its ancestors *by rank* (``RegionTree.ancestor_at``; a
  micro-grid's village is two segments up), as the tree stood when it was reported.
* ``cases_stats`` — roll-up for compliance and 三率: per region of origin *and each of
  its ancestors* (``region``: every dash-prefix of the origin code, so a region's stats
  are one equality lookup at any rank) × Beijing day (``grain`` ``d``) and month
  (``m``): received, resolved (within the ceiling, at each rank), pushes above the
  ceiling, and the petition cohort's 三率 counters. ``village`` / ``township`` name
  the village or township of the row's cases when the row's region is at or below it
  (else NULL): compliance per village sums the rows whose region *is* their village.
* ``cases_board`` — roll-up for the SLA board: per region *and each of its ancestors*
  (every dash-prefix of the code, so a board is one equality lookup at any rank) ×
  (``total`` | ``assignee`` | ``unit`` | ``clock``, name): open cases, overdue, due soon.

Roll-ups are a pure function of the case rows (and ``cases_upward``): each batch
subtracts what a changed row contributed before and adds what it contributes now,
summed in memory and upserted once per batch; rows that fall to zero are deleted, so
an incremental build equals a rebuild row for row. :meth:`CasesProjection.refill_rollups`
recomputes both from the case rows alone (a rebuild's ``finish_rebuild`` and the
query benchmark use it; tests prove it equals the incrementally maintained ones).

Clocks: the timer service records ``ClockWarned`` / ``ClockBreached``; this
projection keeps each case's warned or breached clocks in the ``clocks`` JSON
column (due time, state, threshold) and drops one when the case's policy says
that clock stops, is cancelled, restarts or is extended (``domain.clocks.ends_clock``:
a check-in ends only its own department's ``check_in:<department>``). ``overdue`` = an open
clock breached; ``due_soon`` = an open clock warned at ≥ 75%; ``next_due_at`` =
the earliest due time among open clocks.

Rules are the domain's: events are handled by class (``singledispatchmethod``), clock
conditions by ``domain.clocks.matches_any``, due times by ``domain.clocks.due_from``,
签收 on time as ``Case.Accepted`` records it (``responded_in_time``, decided by the clock
view's rule at command time; ``domain.clocks.on_time`` for version-1 events), a send-back by
``domain.cases.responsible_after_send_back``, 发回重办 by ``ReturnVisited.redo``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache, singledispatch, singledispatchmethod
from typing import Any, cast, overload

from domain.calendar import NO_IMPORTS, CalendarBook, Statutory, StatutoryYear
from domain.cases import Case, Dispute, Hazard, Petition, responsible_after_send_back
from domain.clocks import SIGN_FOR, calendar_for, due_from, ends_clock, on_time
from domain.ladder import Profile, Rank, Region, RegionLadder, RegionTree
from domain.policy import PolicyBook, PolicyDocument
from domain.refusals import CeilingRefusals
from engine.sql import Tx
from projections.base import Projection

DUE_SOON = 0.75
SYNC_GRACE = timedelta(hours=4)  # the policy's sync_grace when the case's policy is unknown

COLUMNS: dict[str, str] = {
    # the cases table: column → SQL type ("KEY": text the dialect indexes, see Tx.key_type)
    "case_id": "KEY",
    "kind": "KEY",
    "category": "TEXT",
    "severity": "KEY",
    "reported_severity": "TEXT",
    "status": "KEY",
    "region": "KEY",
    "origin_region": "KEY",
    "village": "KEY",
    "township": "KEY",
    "region_township": "KEY",
    "rank": "INTEGER",
    "ceiling": "INTEGER",
    "reported_ceiling": "INTEGER",
    "ceilings": "TEXT",
    "profile": "TEXT",
    "policy_version": "INTEGER",
    "title": "TEXT",
    "channel": "TEXT",
    "reporter": "TEXT",
    "assignee": "KEY",
    "unit": "KEY",
    "responsible_unit": "TEXT",
    "suspended": "INTEGER",
    "clocks": "TEXT",
    "next_due_at": "KEY",
    "overdue": "INTEGER",
    "due_soon": "INTEGER",
    "breached": "TEXT",
    "reported_at": "KEY",
    "recorded_at": "TEXT",
    "last_event_at": "TEXT",
    "version": "INTEGER",
    "position": "BIGINT",
    "resolved_at": "KEY",
    "resolved_rank": "INTEGER",
    "within_ceiling": "INTEGER",
    "referred": "INTEGER",
    "reclassified_up": "INTEGER",
    "escalations_refused": "INTEGER",
    "escalations": "INTEGER",
    "reopened": "INTEGER",
    "dispatched_at": "TEXT",
    "accepted_at": "TEXT",
    "sign_for_due_at": "TEXT",
    "responded_in_time": "INTEGER",
    "satisfaction": "TEXT",
    "visited_at": "TEXT",
    "closed_at": "TEXT",
    "duplicate_of": "TEXT",
    "repeat": "INTEGER",
    "repeat_of": "TEXT",
    "requests": "TEXT",
    "awaiting": "INTEGER",
}
INDEXED = (
    ("region", "region, reported_at"),
    ("origin", "origin_region, reported_at"),
    ("village", "village, resolved_at"),
    ("township", "township, resolved_at"),
    ("status", "status, reported_at"),
    ("kind", "kind, severity"),
    ("rank", "rank"),
    ("assignee", "assignee, status"),
    ("unit", "unit, status"),
    ("overdue", "overdue, next_due_at"),
    ("due_soon", "due_soon"),
    ("sort", "reported_at, case_id"),
    ("township_sort", "region_township, reported_at, case_id"),
    ("resolved", "resolved_at"),
)
OPEN_STATUSES = ("reported", "assigned", "accepted", "in_progress")
OPEN_SQL = (
    f"status IN ({', '.join(repr(s) for s in OPEN_STATUSES)})"  # literal: partial indexes match it
)
SATISFIED = ("satisfied", "basically_satisfied")

# Roll-up days and months are Beijing's (UTC+8, no daylight saving), as the API's dates are.
DAY_OFFSET = timedelta(hours=8)
RANK_COLUMNS = tuple(f"resolved_{rank.label}" for rank in Rank)
PETITION_COLUMNS = (
    "petitions",
    "dispatched",
    "responded",
    "petitions_resolved",
    "visited",
    "satisfied",
)
STAT_COLUMNS = (
    "received",
    "duplicates",
    "repeats",
    "resolved",
    "within_ceiling",
    *RANK_COLUMNS,
    "referred",
    "reclassified_up",
    "escalations_refused",
    *PETITION_COLUMNS,
)
# a stats row is empty when these are (the others count subsets of received or resolved)
STAT_PRESENT = (
    "received",
    "duplicates",
    "resolved",
    "referred",
    "reclassified_up",
    "escalations_refused",
)
BOARD_COLUMNS = ("open", "overdue", "due_soon")
_S = {name: i for i, name in enumerate(STAT_COLUMNS)}
BOARD_FACTS = 15  # FACTS[:15] feed cases_stats, the rest cases_board
FACTS = (
    "origin_region",
    "village",
    "township",
    "kind",
    "reported_at",
    "resolved_at",
    "resolved_rank",
    "within_ceiling",
    "referred",
    "dispatched_at",
    "responded_in_time",
    "visited_at",
    "satisfaction",
    "duplicate_of",
    "repeat",
    "status",
    "region",
    "assignee",
    "unit",
    "overdue",
    "due_soon",
    "duplicate_of",
)


@overload
def iso(moment: datetime) -> str: ...
@overload
def iso(moment: None) -> None: ...
@overload
def iso(moment: datetime | None) -> str | None: ...
def iso(moment: datetime | None) -> str | None:
    """Timestamps are stored as ISO 8601 UTC text, so they sort and compare."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds") if moment is not None else None


@dataclass
class _Step:
    """One case event being folded into its row, within a batch."""

    tx: Tx
    row: dict[str, Any]
    position: int
    upward: list[tuple]
    at: str | None


@dataclass
class _Ladder:
    """What ``RegionLadder.RegionAdded.apply`` writes into: the projection's copy of the tree."""

    tree: RegionTree


class CasesProjection(Projection):
    name = "cases"
    tables = (
        "cases",
        "cases_upward",
        "cases_policies",
        "cases_calendar",
        "cases_regions",
        "cases_stats",
        "cases_board",
    )
    # 3: a send-back ends the first receiver's responsibility; 4, 5: roll-ups; 6: villages and
    # townships by rank from the region tree (micro-grids), referred disputes, one on-time rule;
    # 7: the imported statutory years, a check-in ends its own clock, 签收 as Accepted records it;
    # 8: the requests awaiting approval (延期, 挂起); 9: 并案 (duplicate_of; a duplicate counted
    # once, as ``duplicates``) and 重复件 (repeat, repeat_of); 10: region_township (a township's
    # list walks its own sort index) and the open cases' index the duplicate check reads
    version = 10

    def __init__(self) -> None:
        self._policies: dict[int, PolicyDocument] = {}
        self._trees: dict[
            int, RegionTree
        ] = {}  # generation → the region tree as of the last event applied
        self._statutory: dict[int, Statutory] = {}  # generation → the imported statutory years
        self._tree_read = False  # this batch read cases_regions already

    # -- tables ------------------------------------------------------------------

    def create_tables(self, tx: Tx) -> None:
        key = tx.key_type
        columns = ", ".join(f"{c} {key if t == 'KEY' else t}" for c, t in COLUMNS.items())
        tx.execute(f"CREATE TABLE {self.t('cases')} ({columns}, PRIMARY KEY (case_id))")
        tx.execute(
            f"CREATE TABLE {self.t('cases_upward')} (case_id {key} NOT NULL, position BIGINT NOT NULL, "
            f"fact {key} NOT NULL, at {key} NOT NULL, origin_region {key} NOT NULL, village {key}, "
            f"township {key}, detail TEXT, PRIMARY KEY (case_id, position))"
        )
        tx.execute(
            f"CREATE TABLE {self.t('cases_policies')} (version INTEGER PRIMARY KEY, document TEXT NOT NULL)"
        )
        tx.execute(
            f"CREATE TABLE {self.t('cases_calendar')} (year INTEGER PRIMARY KEY, entry TEXT NOT NULL)"
        )
        tx.execute(
            f"CREATE TABLE {self.t('cases_regions')} (code {key} PRIMARY KEY, name TEXT NOT NULL, "
            "rank INTEGER NOT NULL, profile TEXT NOT NULL)"
        )
        self._trees.pop(self.generation, None)  # a new generation learns the ladder from its events
        self._statutory.pop(self.generation, None)  # and the calendar
        fill = (
            " WITH (fillfactor = 50)" if tx.is_postgres else ""
        )  # room on the page: counter updates stay HOT
        counters = ", ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in STAT_COLUMNS)
        tx.execute(
            f"CREATE TABLE {self.t('cases_stats')} (grain TEXT NOT NULL, region {key} NOT NULL, "
            f"bucket {key} NOT NULL, village {key}, township {key}, {counters}, "
            f"PRIMARY KEY (grain, region, bucket)){fill}"
        )
        counters = ", ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in BOARD_COLUMNS)
        tx.execute(
            f"CREATE TABLE {self.t('cases_board')} (region {key} NOT NULL, dim TEXT NOT NULL, "
            f"name {key} NOT NULL, {counters}, PRIMARY KEY (region, dim, name)){fill}"
        )

    def create_indexes(self, tx: Tx) -> None:
        cases, upward = self.t("cases"), self.t("cases_upward")
        for suffix, on in INDEXED:
            tx.execute(f"CREATE INDEX {cases}_{suffix} ON {cases} ({on})")
        # the board's oldest overdue case: open overdue cases only, by due time and by region
        tx.execute(
            f"CREATE INDEX {cases}_oldest ON {cases} (next_due_at, case_id) WHERE overdue = 1 AND {OPEN_SQL}"
        )
        tx.execute(
            f"CREATE INDEX {cases}_overdue_region ON {cases} (region) WHERE overdue = 1 AND {OPEN_SQL}"
        )
        tx.execute(
            f"CREATE INDEX {cases}_overdue_list ON {cases} (reported_at, case_id) WHERE overdue = 1"
        )
        tx.execute(f"CREATE INDEX {upward}_origin ON {upward} (fact, origin_region, at)")
        # possible duplicates at intake: the open primary cases of a village, newest first
        # (a village's cases are those whose ``village`` it is: the origin's village by rank)
        tx.execute(
            f"CREATE INDEX {cases}_open_village ON {cases} (village, reported_at) "
            f"WHERE {OPEN_SQL} AND duplicate_of IS NULL"
        )
        # the approvals queue: the few cases with a request awaiting approval, by region
        tx.execute(f"CREATE INDEX {cases}_awaiting ON {cases} (region) WHERE awaiting > 0")

    # -- applying ----------------------------------------------------------------

    def apply_batch(self, tx: Tx, events: Sequence[tuple[int, Any]]) -> None:
        """Load the batch's cases once, fold the events into them, write them once."""
        self._tree_read = False
        ids = sorted({case_id for _, e in events if (case_id := _case_of(e)) is not None})
        rows = self._load(tx, ids)
        # a rebuild leaves the roll-ups to finish_rebuild (one refill_rollups pass at the end)
        before = {} if self.rebuilding else {case_id: _facts(row) for case_id, row in rows.items()}
        upward: list[tuple] = []
        for position, event in events:
            self._event(event, tx, rows, position, upward)
        self._write_rows(tx, [row for row in rows.values() if row.get("_dirty")], upward)
        if not self.rebuilding:
            stats, board = _batch_rollups(rows, before, upward)
            self._write_rollups(tx, stats, board)

    def _write_rows(self, tx: Tx, rows: list[dict[str, Any]], upward: list[tuple]) -> None:
        names = ", ".join(COLUMNS)
        marks = ", ".join("?" for _ in COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "case_id")
        tx.executemany(
            f"INSERT INTO {self.t('cases')} ({names}) VALUES ({marks}) ON CONFLICT (case_id) DO UPDATE SET {updates}",
            [tuple(_stored(c, row[c]) for c in COLUMNS) for row in rows],
        )
        tx.executemany(
            f"INSERT INTO {self.t('cases_upward')} (case_id, position, fact, at, origin_region, village, township, "
            "detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (case_id, position) DO NOTHING",
            upward,
        )

    # -- roll-ups ------------------------------------------------------------------

    def _write_rollups(self, tx: Tx, stats: dict[tuple, list], board: dict[tuple, list]) -> None:
        """Add a batch's summed changes to the roll-ups (one statement per 400 rows), and
        delete the rows they left empty."""
        _add_rows(
            tx,
            self.t("cases_stats"),
            ("grain", "region", "bucket"),
            ("village", "township"),
            STAT_COLUMNS,
            STAT_PRESENT,
            [(*k, *v) for k, v in stats.items() if any(v[2:])],
        )
        _add_rows(
            tx,
            self.t("cases_board"),
            ("region", "dim", "name"),
            (),
            BOARD_COLUMNS,
            ("open",),
            [(*k, *v) for k, v in board.items() if any(v)],
        )

    def finish_rebuild(self, tx: Tx) -> None:
        """A rebuild maintained no roll-ups batch by batch: compute them once from the rows."""
        self.refill_rollups(tx, tx.is_postgres)

    def refill_rollups(self, tx: Tx, postgres: bool) -> None:
        """Recompute ``cases_stats`` and ``cases_board`` from the case rows alone.

        The reference for the incrementally maintained roll-ups (tests prove the two
        equal) and the way to fill them when case rows were written by other means
        (the query benchmark's synthetic rows). Stats: one ``SELECT … GROUP BY`` per
        origin, grain and bucket over ``cases`` and ``cases_upward``, each row then added
        to the origin's ancestors; board: the open cases (~10% of rows) through the same
        per-case contribution as the projection."""
        tx.execute(f"DELETE FROM {self.t('cases_stats')}")
        tx.execute(f"DELETE FROM {self.t('cases_board')}")
        sums_stats: dict[tuple, list] = {}
        for row in tx.query(_refill_stats_sql(self.t("cases"), self.t("cases_upward"), postgres)):
            counts = [int(row[c]) for c in STAT_COLUMNS]
            for key, village, township in _ancestry(
                row["origin_region"], row["village"], row["township"]
            ):
                vector = sums_stats.setdefault(
                    (row["grain"], key, row["bucket"]), [village, township, *(0 for _ in counts)]
                )
                for i, n in enumerate(counts):
                    vector[2 + i] += n
        sums_board: dict[tuple, list] = {}
        names = ", ".join(FACTS)
        for row in tx.query(
            f"SELECT {names}, breached FROM {self.t('cases')} WHERE {OPEN_SQL} AND {PRIMARY}"
        ):
            row["breached"] = json.loads(row["breached"] or "[]")
            _add_board(_facts(row), 1, sums_board)
        self._write_rollups(tx, sums_stats, sums_board)

    # -- each event, by its class --------------------------------------------------

    @singledispatchmethod
    def _event(
        self,
        event: Any,
        tx: Tx,
        rows: dict[str, dict[str, Any]],
        position: int,
        upward: list[tuple],
    ) -> None:
        """Events of no interest to the case table."""

    @_event.register
    def _policy_loaded(
        self,
        event: PolicyBook.PolicyLoaded,
        tx: Tx,
        rows: dict[str, dict[str, Any]],
        position: int,
        upward: list[tuple],
    ) -> None:
        self._remember_policy(tx, event)

    @_event.register
    def _calendar_imported(
        self,
        event: CalendarBook.CalendarImported,
        tx: Tx,
        rows: dict[str, dict[str, Any]],
        position: int,
        upward: list[tuple],
    ) -> None:
        entry = event.entry()  # the calendar book's own reading of the event
        stored = {
            "year": entry.year,
            "name": entry.name,
            "digest": entry.digest,
            "imported_by": entry.imported_by,
            "imported_at": iso(entry.imported_at),
            "holidays": sorted(d.isoformat() for d in entry.holidays),
            "workdays": sorted(d.isoformat() for d in entry.workdays),
        }
        tx.execute(
            f"INSERT INTO {self.t('cases_calendar')} (year, entry) VALUES (?, ?) "
            "ON CONFLICT (year) DO UPDATE SET entry = excluded.entry",
            (entry.year, json.dumps(stored)),
        )
        self._statutory.pop(self.generation, None)  # read again, with this year

    @_event.register
    def _region_added(
        self,
        event: RegionLadder.RegionAdded,
        tx: Tx,
        rows: dict[str, dict[str, Any]],
        position: int,
        upward: list[tuple],
    ) -> None:  # RegionChanged too (a subclass)
        event.apply(
            cast(RegionLadder, _Ladder(self._tree(tx)))
        )  # the ladder's own rule for what the event changes (its tree only)
        tx.execute(
            f"INSERT INTO {self.t('cases_regions')} (code, name, rank, profile) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (code) DO UPDATE SET name = excluded.name, rank = excluded.rank, "
            "profile = excluded.profile",
            (event.code, event.name, int(event.rank), str(event.profile)),
        )

    @_event.register
    def _escalation_refused(
        self,
        event: CeilingRefusals.EscalationRefused,
        tx: Tx,
        rows: dict[str, dict[str, Any]],
        position: int,
        upward: list[tuple],
    ) -> None:
        row = rows.get(event.case_id)
        if row is not None:
            row.update(_dirty=True, escalations_refused=row["escalations_refused"] + 1)
            upward.append(
                (
                    row["case_id"],
                    position,
                    "escalation_refused",
                    iso(event.occurred_at),
                    row["origin_region"],
                    row["village"],
                    row["township"],
                    f"{event.action} {event.requested} > {event.ceiling}",
                )
            )

    @_event.register
    def _reported(
        self,
        event: Case.Reported,
        tx: Tx,
        rows: dict[str, dict[str, Any]],
        position: int,
        upward: list[tuple],
    ) -> None:
        case_id = str(event.originator_id)
        rows[case_id] = row = self._new_row(tx, case_id, event)
        self._fold(_Step(tx, row, position, upward, iso(event.occurred_at)), event)

    @_event.register
    def _case_event(
        self,
        event: Case.Event,
        tx: Tx,
        rows: dict[str, dict[str, Any]],
        position: int,
        upward: list[tuple],
    ) -> None:
        row = rows.get(str(event.originator_id))
        if row is not None:  # an event of a case we never saw reported: ignore, never crash
            self._fold(_Step(tx, row, position, upward, iso(event.occurred_at)), event)

    def _load(self, tx: Tx, ids: list[str]) -> dict[str, dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            for row in tx.query(
                f"SELECT * FROM {self.t('cases')} WHERE case_id IN ({marks})", chunk
            ):
                row["clocks"] = json.loads(row["clocks"] or "{}")
                row["breached"] = json.loads(row["breached"] or "[]")
                row["ceilings"] = json.loads(row["ceilings"] or "{}")
                row["repeat_of"] = json.loads(row["repeat_of"] or "[]")
                row["requests"] = json.loads(row["requests"] or "{}")
                rows[row["case_id"]] = row
        return rows

    def _new_row(self, tx: Tx, case_id: str, event: Any) -> dict[str, Any]:
        ceilings = {str(k): int(v) for k, v in event.ceilings.items()}
        ceiling = ceilings.get(event.severity)
        tree = self._tree(tx, event.region)
        village, township = (
            tree.ancestor_at(event.region, rank) for rank in (Rank.VILLAGE, Rank.TOWNSHIP)
        )
        row = dict.fromkeys(COLUMNS)
        row.update(
            case_id=case_id,
            kind=event.kind,
            category=event.category,
            severity=event.severity,
            reported_severity=event.severity,
            status="reported",
            region=event.region,
            origin_region=event.region,
            village=village.code if village else None,
            township=township.code if township else None,
            region_township=township.code if township else None,
            rank=event.rank,
            ceiling=ceiling,
            reported_ceiling=ceiling,
            ceilings=ceilings,
            profile=event.profile,
            policy_version=event.policy_version,
            title=event.title,
            channel=event.channel,
            reporter=event.actor.id,
            suspended=0,
            clocks={},
            overdue=0,
            due_soon=0,
            breached=[],
            requests={},
            awaiting=0,
            reported_at=iso(event.occurred_at),
            recorded_at=iso(event.timestamp),
            reclassified_up=0,
            escalations_refused=0,
            escalations=0,
            reopened=0,
            referred=0,
            repeat=int(bool(event.repeat_of)),  # 重复件, as the report decided it
            repeat_of=list(event.repeat_of),
        )
        return row

    def _fold(self, step: _Step, event: Any) -> None:
        step.row.update(
            _dirty=True,
            version=event.originator_version,
            position=step.position,
            last_event_at=step.at,
        )
        self._change(event, step)
        self._follow_clocks(step.tx, step.row, event)

    # -- what each case event changes in its row -------------------------------------

    @singledispatchmethod
    def _change(self, event: Any, step: _Step) -> None:
        """Events that change nothing the table shows (comments, whistles, check-ins …)."""

    @_change.register
    def _assigned(self, event: Case.Assigned, step: _Step) -> None:
        row = step.row
        row.update(region=event.region, rank=event.rank, assignee=event.assignee, status="assigned")
        row["region_township"] = self._township(step.tx, event.region)
        row["responsible_unit"] = row["responsible_unit"] or event.unit
        self._dispatched(step, event)

    @_change.register
    def _escalated(self, event: Case.Escalated, step: _Step) -> None:
        row = step.row
        status = "assigned" if event.unit else "reported"
        row.update(region=event.to_region, rank=event.to_rank, assignee=None, status=status)
        row["region_township"] = self._township(step.tx, event.to_region)
        row["escalations"] += 1
        self._dispatched(step, event)

    def _dispatched(self, step: _Step, event: Case.Assigned | Case.Escalated) -> None:
        """The case lies with ``event.unit`` now. A dispatch before the first sign-for starts
        the 响应 window at the act's time."""
        row = step.row
        row["unit"] = event.unit
        if row["status"] == "assigned" and row["accepted_at"] is None:
            row["dispatched_at"] = step.at
            row["sign_for_due_at"] = self._sign_for_due(step.tx, row, event.occurred_at)

    @_change.register
    def _accepted(self, event: Case.Accepted, step: _Step) -> None:
        row = step.row
        row["status"] = "accepted"
        if row["accepted_at"] is None:
            row["accepted_at"] = step.at
            if (
                event.responded_in_time is not None
            ):  # the fact the clock view decided at command time
                row.update(
                    sign_for_due_at=iso(event.sign_for_due_at),
                    responded_in_time=int(event.responded_in_time),
                )
            else:
                row["responded_in_time"] = int(self._responded_in_time(step.tx, row, event))

    def _responded_in_time(self, tx: Tx, row: dict[str, Any], event: Any) -> bool:
        """响应 on time for a version-1 ``Accepted`` (no recorded outcome):
        :func:`domain.clocks.on_time` on the sign-for due time from the dispatch."""
        breached = row["clocks"].get(SIGN_FOR, {}).get("state") == "breached"
        due = row["sign_for_due_at"]
        if due is None:
            return not breached
        policy = self._policy(tx, row["policy_version"])
        grace = policy.sync_grace_delta if policy is not None else SYNC_GRACE
        return on_time(
            event.occurred_at, event.timestamp, datetime.fromisoformat(due), grace, breached
        )

    @_change.register
    def _sent_back(self, event: Case.SentBack, step: _Step) -> None:
        row = step.row
        row.update(
            responsible_unit=responsible_after_send_back(row["responsible_unit"], row["unit"]),
            assignee=None,
            unit=None,
            status="reported",
        )

    @_change.register
    def _reclassified(self, event: Case.Reclassified, step: _Step) -> None:
        row = step.row
        row["severity"] = event.to_severity
        row["ceiling"] = row["ceilings"].get(event.to_severity, row["ceiling"])
        if event.upward:
            row["reclassified_up"] += 1
            step.upward.append(
                (
                    row["case_id"],
                    step.position,
                    "reclassified_up",
                    step.at,
                    row["origin_region"],
                    row["village"],
                    row["township"],
                    f"{event.from_severity} > {event.to_severity}",
                )
            )

    @_change.register
    def _suspended(self, event: Case.Suspended, step: _Step) -> None:
        step.row["suspended"] = 1
        _settled(step, SUSPENSION)

    # -- requests awaiting approval: what the events say was asked, and what settled it

    @_change.register
    def _suspension_requested(self, event: Case.SuspensionRequested, step: _Step) -> None:
        _asked(step, SUSPENSION, event, reason=event.reason)

    @_change.register
    def _extension_requested(self, event: Case.ExtensionRequested, step: _Step) -> None:
        _asked(
            step,
            f"extension:{event.clock}",
            event,
            clock=event.clock,
            days=event.days,
            reason=event.reason,
        )

    @_change.register
    def _suspension_refused(self, event: Case.SuspensionRefused, step: _Step) -> None:
        _settled(step, SUSPENSION)

    @_change.register
    def _extension_refused(self, event: Case.ExtensionRefused, step: _Step) -> None:
        _settled(step, f"extension:{event.clock}")

    @_change.register
    def _extended(self, event: Case.Extended, step: _Step) -> None:
        if event.requested_by is not None:  # granted directly: a request stays awaiting
            _settled(step, f"extension:{event.clock}")

    @_change.register
    def _resumed(self, event: Case.Resumed, step: _Step) -> None:
        step.row["suspended"] = 0

    @_change.register(Dispute.MediationHeld)
    @_change.register(Hazard.RectificationOrdered)
    @_change.register(Petition.Replied)
    def _worked_on(self, event: Any, step: _Step) -> None:
        step.row["status"] = "in_progress"

    @_change.register
    def _resolved(self, event: Case.Resolved, step: _Step) -> None:
        row = step.row
        referred = bool(getattr(event, "referred", False))  # a dispute ended referred: never 化解
        row.update(
            status="resolved",
            resolved_at=step.at,
            resolved_rank=event.rank,
            referred=int(referred),
            within_ceiling=int(not referred and event.rank <= row["reported_ceiling"]),
        )

    @_change.register
    def _closed(self, event: Case.Closed, step: _Step) -> None:
        step.row.update(status="closed", closed_at=step.at)

    @_change.register
    def _reopened(self, event: Case.Reopened, step: _Step) -> None:
        row = step.row
        row.update(
            status="in_progress",
            resolved_at=None,
            resolved_rank=None,
            within_ceiling=None,
            referred=0,
            closed_at=None,
            reopened=row["reopened"] + 1,
        )

    @_change.register
    def _return_visited(self, event: Petition.ReturnVisited, step: _Step) -> None:
        step.row.update(satisfaction=event.satisfaction, visited_at=step.at)
        if event.redo:  # 发回重办: not resolved after all
            step.row.update(
                status="in_progress", resolved_at=None, resolved_rank=None, within_ceiling=None
            )

    @_change.register
    def _linked(self, event: Case.LinkedAsDuplicate, step: _Step) -> None:
        step.row["duplicate_of"] = event.primary

    @_change.register
    def _unlinked(self, event: Case.UnlinkedDuplicate, step: _Step) -> None:
        step.row["duplicate_of"] = None

    @_change.register(Case.ClockWarned)
    @_change.register(Case.ClockBreached)
    def _clock_crossed(self, event: Any, step: _Step) -> None:
        breached = isinstance(event, Case.ClockBreached)
        step.row["clocks"][event.clock] = {
            "state": "breached" if breached else "warned",
            "threshold": 1.0 if breached else float(event.threshold),
            "due_at": iso(event.due_at),
        }
        if breached and event.clock not in step.row["breached"]:
            step.row["breached"].append(event.clock)

    # -- clocks --------------------------------------------------------------------

    def _follow_clocks(self, tx: Tx, row: dict[str, Any], event: Any) -> None:
        clocks: dict[str, dict[str, Any]] = row["clocks"]
        if not isinstance(event, Case.ClockWarned | Case.ClockBreached):
            policy = self._policy(tx, row["policy_version"])
            for name in list(clocks):
                spec = _clock_spec(policy, name)
                if spec is not None and ends_clock(spec, name, event):
                    del clocks[name]
            if row["status"] in ("resolved", "closed") and isinstance(
                event, Case.Resolved | Case.Closed
            ):
                for name in [n for n in clocks if _clock_spec(policy, n) is None]:
                    del clocks[name]
        open_clocks = clocks.values()
        row["overdue"] = int(any(c["state"] == "breached" for c in open_clocks))
        row["due_soon"] = int(
            any(c["state"] == "warned" and c["threshold"] >= DUE_SOON for c in open_clocks)
        )
        row["next_due_at"] = min((c["due_at"] for c in open_clocks if c["due_at"]), default=None)

    def _sign_for_due(self, tx: Tx, row: dict[str, Any], start: datetime) -> str | None:
        """When the sign-for clock falls due for a dispatch at ``start`` (``domain.clocks.due_from``)."""
        policy = self._policy(tx, row["policy_version"])
        spec = _clock_spec(policy, SIGN_FOR)
        if policy is None or spec is None:
            return None
        calendar = calendar_for(policy.calendar, self._statutory_of(tx))
        return iso(due_from(spec, row["severity"], row["rank"], start, calendar, row["category"]))

    # -- policies and the ladder ------------------------------------------------------

    def _remember_policy(self, tx: Tx, event: Any) -> None:
        tx.execute(
            f"INSERT INTO {self.t('cases_policies')} (version, document) VALUES (?, ?) "
            "ON CONFLICT (version) DO NOTHING",
            (event.policy_version, json.dumps(event.document, default=str)),
        )
        self._policies[event.policy_version] = PolicyDocument.model_validate(event.document)

    def _policy(self, tx: Tx, version: int | None) -> PolicyDocument | None:
        if version is None:
            return None
        if version not in self._policies:
            rows = tx.query(
                f"SELECT document FROM {self.t('cases_policies')} WHERE version = ?", (version,)
            )
            if not rows:
                return None
            self._policies[version] = PolicyDocument.model_validate(json.loads(rows[0]["document"]))
        return self._policies[version]

    def _statutory_of(self, tx: Tx) -> Statutory:
        """The statutory years imported so far (kept in ``cases_calendar``), as the calendar book has them."""
        statutory = self._statutory.get(self.generation)
        if statutory is None:
            years = [
                _year(json.loads(row["entry"]))
                for row in tx.query(f"SELECT entry FROM {self.t('cases_calendar')} ORDER BY year")
            ]
            statutory = self._statutory[self.generation] = (
                Statutory(tuple(years)) if years else NO_IMPORTS
            )
        return statutory

    def _township(self, tx: Tx, code: str) -> str | None:
        """The township ``code`` lies in (itself, if one), by rank; None above townships."""
        township = self._tree(tx, code).ancestor_at(code, Rank.TOWNSHIP)
        return township.code if township else None

    def _tree(self, tx: Tx, code: str | None = None) -> RegionTree:
        """The region tree as the events applied so far built it (kept in ``cases_regions``;
        read again when it lacks ``code``: another worker may have applied the region)."""
        tree = self._trees.get(self.generation)
        if tree is None or (code is not None and code not in tree and not self._tree_read):
            self._tree_read = (
                True  # at most once a batch (a log may report at regions it never added)
            )
            tree = self._trees[self.generation] = RegionTree()
            for row in tx.query(
                f"SELECT code, name, rank, profile FROM {self.t('cases_regions')} ORDER BY code"
            ):
                tree.put(
                    Region(
                        row["code"], row["name"], Rank(int(row["rank"])), Profile(row["profile"])
                    )
                )
        return tree


SUSPENSION = "suspension"


def _asked(step: _Step, key: str, event: Any, **fields: Any) -> None:
    """A request awaiting approval (``requests``, keyed ``suspension`` or
    ``extension:<clock>``): who asked, when, and what, as the event says."""
    kind = SUSPENSION if key == SUSPENSION else "extension"
    step.row["requests"][key] = {
        "kind": kind,
        "requested_by": event.actor.id,
        "requested_at": step.at,
        **fields,
    }
    step.row["awaiting"] = len(step.row["requests"])


def _settled(step: _Step, key: str) -> None:
    step.row["requests"].pop(key, None)
    step.row["awaiting"] = len(step.row["requests"])


def _year(stored: dict[str, Any]) -> StatutoryYear:
    """A ``cases_calendar`` row read back as the year ``CalendarImported.entry()`` gave."""
    days = {
        k: frozenset(date.fromisoformat(d) for d in stored[k]) for k in ("holidays", "workdays")
    }
    at = stored.get("imported_at")
    return StatutoryYear(
        stored["year"],
        days["holidays"],
        days["workdays"],
        stored["name"],
        stored["digest"],
        stored["imported_by"],
        datetime.fromisoformat(at) if at else None,
    )


def _flag(condition: str) -> str:
    return f"CASE WHEN {condition} THEN 1 ELSE 0 END"


PETITION = "kind = 'petition'"
NOT_REFERRED = "COALESCE(referred, 0) = 0"
PRIMARY = "duplicate_of IS NULL"  # a case counted as itself (a duplicate counts as ``duplicates``)
# each counter of STAT_COLUMNS as an SQL value of one case row (cases_upward: one push), by its
# stamp; rows of duplicates count only as ``duplicates`` (REFILL_WHERE keeps them out of the rest)
REFILL_RECEIVED = {
    "received": "1",
    "repeats": _flag(f"{PETITION} AND repeat = 1"),
    "petitions": _flag(PETITION),
    "dispatched": _flag(f"{PETITION} AND dispatched_at IS NOT NULL"),
    "responded": _flag(f"{PETITION} AND responded_in_time = 1"),
    "petitions_resolved": _flag(f"{PETITION} AND resolved_at IS NOT NULL"),
    "visited": _flag(f"{PETITION} AND visited_at IS NOT NULL"),
    "satisfied": _flag(f"{PETITION} AND satisfaction IN {SATISFIED!r}"),
}
REFILL_RESOLVED = {
    "resolved": _flag(NOT_REFERRED),
    "within_ceiling": "COALESCE(within_ceiling, 0)",
    "referred": "COALESCE(referred, 0)",
    **{c: _flag(f"resolved_rank = {i} AND {NOT_REFERRED}") for i, c in enumerate(RANK_COLUMNS)},
}
REFILL_MOVED = {
    c: _flag(f"fact = '{c if c == 'reclassified_up' else 'escalation_refused'}'")
    for c in ("reclassified_up", "escalations_refused")
}


def _day_sql(column: str, postgres: bool) -> str:
    """The Beijing day (``YYYY-MM-DD``) of a stored timestamp column, in SQL."""
    hours = int(DAY_OFFSET.total_seconds() // 3600)
    if postgres:
        return f"to_char(({column})::timestamptz AT TIME ZONE 'UTC' + interval '{hours} hours', 'YYYY-MM-DD')"
    return f"strftime('%Y-%m-%d', {column}, '+{hours} hours')"


def _refill_stats_sql(cases: str, upward: str, postgres: bool) -> str:
    """Counters per origin, grain (``d``, ``m``) and bucket, straight from the rows."""
    grains = "(SELECT 'd' AS grain, 10 AS len UNION ALL SELECT 'm', 7) AS g"

    def part(source: str, stamp: str, values: dict[str, str], where: str = "1 = 1") -> str:
        picked = ", ".join(f"{values.get(c, '0')} AS {c}" for c in STAT_COLUMNS)
        return (
            f"SELECT g.grain, substr(c.day, 1, g.len) AS bucket, c.* FROM (SELECT origin_region, village, "
            f"township, {_day_sql(stamp, postgres)} AS day, {picked} FROM {source} WHERE {stamp} IS NOT NULL "
            f"AND {where}) AS c CROSS JOIN {grains}"
        )

    sums = ", ".join(f"SUM({c}) AS {c}" for c in STAT_COLUMNS)
    return (
        f"SELECT grain, origin_region, bucket, MIN(village) AS village, MIN(township) AS township, {sums} "
        f"FROM ({part(cases, 'reported_at', REFILL_RECEIVED, PRIMARY)} UNION ALL "
        f"{part(cases, 'reported_at', {'duplicates': '1'}, f'NOT ({PRIMARY})')} UNION ALL "
        f"{part(cases, 'resolved_at', REFILL_RESOLVED, PRIMARY)} UNION ALL {part(upward, 'at', REFILL_MOVED)}) AS parts "
        "GROUP BY grain, origin_region, bucket"
    )


def local_day(stamp: str) -> str:
    """The Beijing day (``YYYY-MM-DD``) of a stored timestamp: a roll-up's day bucket."""
    if (
        stamp.endswith(("+00:00", "Z")) and stamp[10:11] == "T" and stamp[11:13] < _LATE
    ):  # UTC before 16:00
        return stamp[:10]
    return (datetime.fromisoformat(stamp).astimezone(UTC) + DAY_OFFSET).date().isoformat()


_LATE = f"{24 - int(DAY_OFFSET.total_seconds() // 3600):02d}"  # the UTC hour a Beijing day starts


@lru_cache(maxsize=65536)
def prefixes(code: str) -> list[str]:
    """``code`` and every dash-prefix of it: exactly the regions whose subtree holds ``code``
    (see ``projections.queries.subtree``)."""
    return [code, *(code[:i] for i, c in enumerate(code) if c == "-" and i > 0)]


def _facts(row: dict[str, Any]) -> tuple:
    """What of a case row the roll-ups depend on (unchanged facts: nothing to do)."""
    return (*(row[c] for c in FACTS), tuple(row["breached"]))


def _batch_rollups(
    rows: dict[str, dict[str, Any]], before: dict[str, tuple], upward: list[tuple]
) -> tuple[dict[tuple, list], dict[tuple, list]]:
    """A batch's changes to the roll-ups: what each changed row contributed before taken
    away, what it contributes now added, and each push above the ceiling."""
    stats: dict[tuple, list] = {}
    board: dict[tuple, list] = {}
    for case_id, row in rows.items():
        if not row.get("_dirty"):
            continue
        now, then = _facts(row), before.get(case_id)
        if then is None:
            _add_stats(now, 1, stats)
            _add_board(now, 1, board)
            continue
        if (
            now[:BOARD_FACTS] != then[:BOARD_FACTS]
        ):  # only what changed is taken away and added again
            _add_stats(then, -1, stats)
            _add_stats(now, 1, stats)
        if now[BOARD_FACTS:] != then[BOARD_FACTS:]:
            _add_board(then, -1, board)
            _add_board(now, 1, board)
    for _, _, fact, at, origin, village, township, _ in upward:
        _add_stat(
            stats,
            origin,
            village,
            township,
            at,
            fact if fact == "reclassified_up" else "escalations_refused",
            1,
        )
    return stats, board


@lru_cache(maxsize=65536)
def _ancestry(
    origin: str, village: str | None, township: str | None
) -> list[tuple[str, str | None, str | None]]:
    """Each region a case reported at ``origin`` counts for, with the village and the
    township it counts for there (``None`` above them)."""

    def within(region: str, top: str | None) -> str | None:
        return top if top is not None and (region == top or region.startswith(f"{top}-")) else None

    return [
        (region, within(region, village), within(region, township)) for region in prefixes(origin)
    ]


def _add_stat(
    stats: dict[tuple, list],
    origin: str,
    village: str | None,
    township: str | None,
    stamp: str,
    column: str,
    sign: int,
    extra: Sequence[str] = (),
) -> None:
    day = local_day(stamp)
    month = day[:7]
    for region, in_village, in_township in _ancestry(origin, village, township):
        for key in (("d", region, day), ("m", region, month)):
            vector = stats.get(key)
            if vector is None:
                vector = stats[key] = [in_village, in_township, *(0 for _ in STAT_COLUMNS)]
            vector[2 + _S[column]] += sign
            for other in extra:
                vector[2 + _S[other]] += sign


def _add_stats(facts: tuple, sign: int, stats: dict[tuple, list]) -> None:
    """Add (``sign`` 1) or take away (-1) one case's contribution to ``cases_stats``: a
    duplicate linked to its primary (并案) counts only as ``duplicates``, once."""
    (
        origin,
        village,
        township,
        kind,
        reported_at,
        resolved_at,
        resolved_rank,
        within,
        referred,
        dispatched_at,
        responded,
        visited_at,
        satisfaction,
        duplicate_of,
        repeat,
    ) = facts[:BOARD_FACTS]
    if duplicate_of is not None:
        if reported_at is not None:
            _add_stat(stats, origin, village, township, reported_at, "duplicates", sign)
        return
    if reported_at is not None:
        extra: list[str] = []
        if kind == "petition":
            extra.append("petitions")
            for column, present in (
                ("dispatched", dispatched_at is not None),
                ("responded", responded == 1),
                ("petitions_resolved", resolved_at is not None),
                ("visited", visited_at is not None),
                ("satisfied", satisfaction in SATISFIED),
                ("repeats", repeat == 1),
            ):
                if present:
                    extra.append(column)
        _add_stat(stats, origin, village, township, reported_at, "received", sign, extra)
    if resolved_at is not None and referred:  # ended referred: counted apart, never as resolved
        _add_stat(stats, origin, village, township, resolved_at, "referred", sign)
    elif resolved_at is not None:
        extra = [RANK_COLUMNS[resolved_rank]] if resolved_rank is not None else []
        if within:
            extra.append("within_ceiling")
        _add_stat(stats, origin, village, township, resolved_at, "resolved", sign, extra)


def _add_board(facts: tuple, sign: int, board: dict[tuple, list]) -> None:
    status, region, assignee, unit, overdue, due_soon, duplicate_of, breached = facts[BOARD_FACTS:]
    if status not in OPEN_STATUSES or not region or duplicate_of is not None:
        return  # a duplicate is no open work of its own: its primary carries on
    counts = (sign, sign * (overdue or 0), sign * (due_soon or 0))
    for prefix in prefixes(region):
        keys = [(prefix, "total", "")]
        if assignee is not None:
            keys.append((prefix, "assignee", assignee))
        if unit is not None:
            keys.append((prefix, "unit", unit))
        for key in keys:
            vector = board.get(key)
            if vector is None:
                board[key] = list(counts)
            else:
                vector[0] += counts[0]
                vector[1] += counts[1]
                vector[2] += counts[2]
        for clock in breached:
            vector = board.setdefault((prefix, "clock", clock), [0, 0, 0])
            vector[0] += sign


def _add_rows(
    tx: Tx,
    table: str,
    keys: Sequence[str],
    carried: Sequence[str],
    counters: Sequence[str],
    present: Sequence[str],
    rows: list[tuple],
    chunk: int = 400,
) -> None:
    """Add each row's counters to ``table`` (inserting missing keys, carrying ``carried``
    as first written); then delete, among the rows that lost something, those whose
    ``present`` counters are all zero. PostgreSQL: one statement each (``unnest`` of one
    array per column); SQLite: multi-row ``VALUES`` of ``chunk`` rows."""
    if not rows:
        return
    names = (*keys, *carried, *counters)
    upsert = (
        f"INSERT INTO {table} ({', '.join(names)}) {{rows}} ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
        + ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in counters)
    )
    first = len(keys) + len(carried)
    shrunk = [row[: len(keys)] for row in rows if any(n < 0 for n in row[first:])]
    gone = " AND ".join(f"{c} = 0" for c in present)
    if tx.is_postgres:
        types = ["text[]"] * first + ["int[]"] * len(counters)
        tx.execute(
            upsert.format(rows="SELECT * FROM unnest(" + ", ".join(f"?::{t}" for t in types) + ")"),
            [list(column) for column in zip(*rows, strict=True)],
        )
        if shrunk:
            match = " AND ".join(f"{table}.{k} = e.{k}" for k in keys)
            tx.execute(
                f"DELETE FROM {table} USING unnest({', '.join('?::text[]' for _ in keys)}) "
                f"AS e({', '.join(keys)}) WHERE {match} AND {gone}",
                [list(column) for column in zip(*shrunk, strict=True)],
            )
        return
    one = "(" + ", ".join("?" for _ in names) + ")"
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        tx.execute(
            upsert.format(rows=f"VALUES {', '.join(one for _ in part)}"),
            [v for row in part for v in row],
        )
    tx.executemany(
        f"DELETE FROM {table} WHERE {' AND '.join(f'{k} = ?' for k in keys)} AND {gone}", shrunk
    )


@singledispatch
def _case_of(event: Any) -> str | None:
    """The case an event concerns (None: no case's)."""
    return None


@_case_of.register(Case.Event)
@_case_of.register(Case.Reported)
def _case_event_of(event: Any) -> str:
    return str(event.originator_id)


@_case_of.register
def _refusal_of(event: CeilingRefusals.EscalationRefused) -> str:
    return event.case_id


def _stored(column: str, value: Any) -> Any:
    if column in ("clocks", "breached", "ceilings", "repeat_of", "requests"):
        return json.dumps(value, sort_keys=True)
    return value


def _clock_spec(policy: PolicyDocument | None, name: str) -> Any:
    if policy is None:
        return None
    base = name.split(":", 1)[0]  # per-item clocks: check_in:<department>
    return next((c for c in policy.clocks if c.name == base), None)
