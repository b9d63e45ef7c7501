"""The supervisor's case table: one row per case, kept current from its events.

Tables (public names; see docs/projections.md):

* ``cases`` — every case's current view plus the facts the boards and rates need
  (when it was reported, dispatched, signed for, resolved, visited; at which rank;
  whether within the ceiling of the severity it was reported with).
* ``cases_upward`` — one row per push above the ceiling, dated, attributed to the
  case's origin: ``reclassified_up`` (重新定性 upwards, 矛盾上交) and
  ``escalation_refused`` (an escalation or assignment the ceiling refused, from
  the per-case refusal log, ``domain.refusals``).
* ``cases_policies`` — the policy documents seen in the log (clock rules, targets).
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
that clock stops, is cancelled, restarts or is extended. ``overdue`` = an open
clock breached; ``due_soon`` = an open clock warned at ≥ 75%; ``next_due_at`` =
the earliest due time among open clocks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from domain.calendar import WorkingCalendar, add_calendar
from domain.ladder import Rank, parent_code
from domain.policy import PolicyDocument, parse_duration
from engine.sql import Tx
from projections.base import Projection

DUE_SOON = 0.75
VILLAGE, TOWNSHIP = 1, 2

COLUMNS = (
    "case_id", "kind", "category", "severity", "reported_severity", "status", "region", "origin_region",
    "village", "township", "rank", "ceiling", "reported_ceiling", "ceilings", "profile", "policy_version",
    "title", "channel", "reporter", "assignee", "unit", "responsible_unit", "suspended", "clocks",
    "next_due_at", "overdue", "due_soon", "breached", "reported_at", "recorded_at", "last_event_at",
    "version", "position", "resolved_at", "resolved_rank", "within_ceiling", "reclassified_up",
    "escalations_refused", "escalations", "reopened", "dispatched_at", "accepted_at", "sign_for_due_at", "responded_in_time",
    "satisfaction", "visited_at", "closed_at",
)
INTEGER = {"rank", "ceiling", "reported_ceiling", "policy_version", "suspended", "overdue", "due_soon",
           "version", "resolved_rank", "within_ceiling", "reclassified_up", "escalations_refused",
           "escalations", "reopened",
           "responded_in_time"}
INDEXED = (
    ("region", "region, reported_at"), ("origin", "origin_region, reported_at"),
    ("village", "village, resolved_at"), ("township", "township, resolved_at"),
    ("status", "status, reported_at"), ("kind", "kind, severity"), ("rank", "rank"),
    ("assignee", "assignee, status"), ("unit", "unit, status"), ("overdue", "overdue, next_due_at"),
    ("due_soon", "due_soon"), ("sort", "reported_at, case_id"), ("resolved", "resolved_at"),
)
OPEN_STATUSES = ("reported", "assigned", "accepted", "in_progress")
OPEN_SQL = f"status IN ({', '.join(repr(s) for s in OPEN_STATUSES)})"  # literal: partial indexes match it
SATISFIED = ("satisfied", "basically_satisfied")

# Roll-up days and months are Beijing's (UTC+8, no daylight saving), as the API's dates are.
DAY_OFFSET = timedelta(hours=8)
RANK_COLUMNS = tuple(f"resolved_{rank.label}" for rank in Rank)
PETITION_COLUMNS = ("petitions", "dispatched", "responded", "petitions_resolved", "visited", "satisfied")
STAT_COLUMNS = ("received", "resolved", "within_ceiling", *RANK_COLUMNS, "reclassified_up",
                "escalations_refused", *PETITION_COLUMNS)
# a stats row is empty when these are (the others count subsets of received or resolved)
STAT_PRESENT = ("received", "resolved", "reclassified_up", "escalations_refused")
BOARD_COLUMNS = ("open", "overdue", "due_soon")
_S = {name: i for i, name in enumerate(STAT_COLUMNS)}
BOARD_FACTS = 12  # FACTS[:12] feed cases_stats, the rest cases_board
FACTS = ("origin_region", "village", "township", "kind", "reported_at", "resolved_at", "resolved_rank",
         "within_ceiling", "dispatched_at", "responded_in_time", "visited_at", "satisfaction", "status",
         "region", "assignee", "unit", "overdue", "due_soon")


def iso(moment: datetime | None) -> str | None:
    """Timestamps are stored as ISO 8601 UTC text, so they sort and compare."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds") if moment is not None else None


def ancestor(code: str, rank: int, target: int) -> str | None:
    """The code of the region at rank ``target`` above a region at ``rank`` (codes
    are hierarchical: the parent drops the last segment)."""
    if rank > target:
        return None
    for _ in range(target - rank):
        code = parent_code(code) or ""
    return code or None


class CasesProjection(Projection):
    name = "cases"
    tables = ("cases", "cases_upward", "cases_policies", "cases_stats", "cases_board")
    version = 5  # 3: a send-back ends the first receiver's responsibility; 4, 5: roll-ups

    def __init__(self) -> None:
        self._policies: dict[int, PolicyDocument] = {}

    # -- tables ------------------------------------------------------------------

    def create_tables(self, tx: Tx) -> None:
        key = tx.key_type
        types = {c: "INTEGER" for c in INTEGER} | {"position": "BIGINT"}
        keyed = {"case_id", "region", "origin_region", "village", "township", "reported_at", "resolved_at",
                 "next_due_at", "status", "kind", "severity", "assignee", "unit"}
        columns = ", ".join(f"{c} {types.get(c, key if c in keyed else 'TEXT')}" for c in COLUMNS)
        tx.execute(f"CREATE TABLE {self.t('cases')} ({columns}, PRIMARY KEY (case_id))")
        tx.execute(f"CREATE TABLE {self.t('cases_upward')} (case_id {key} NOT NULL, position BIGINT NOT NULL, "
                   f"fact {key} NOT NULL, at {key} NOT NULL, origin_region {key} NOT NULL, village {key}, "
                   f"township {key}, detail TEXT, PRIMARY KEY (case_id, position))")
        tx.execute(f"CREATE TABLE {self.t('cases_policies')} (version INTEGER PRIMARY KEY, document TEXT NOT NULL)")
        fill = " WITH (fillfactor = 50)" if tx.is_postgres else ""  # room on the page: counter updates stay HOT
        counters = ", ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in STAT_COLUMNS)
        tx.execute(f"CREATE TABLE {self.t('cases_stats')} (grain TEXT NOT NULL, region {key} NOT NULL, "
                   f"bucket {key} NOT NULL, village {key}, township {key}, {counters}, "
                   f"PRIMARY KEY (grain, region, bucket)){fill}")
        counters = ", ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in BOARD_COLUMNS)
        tx.execute(f"CREATE TABLE {self.t('cases_board')} (region {key} NOT NULL, dim TEXT NOT NULL, "
                   f"name {key} NOT NULL, {counters}, PRIMARY KEY (region, dim, name)){fill}")

    def create_indexes(self, tx: Tx) -> None:
        cases, upward = self.t("cases"), self.t("cases_upward")
        for suffix, on in INDEXED:
            tx.execute(f"CREATE INDEX {cases}_{suffix} ON {cases} ({on})")
        # the board's oldest overdue case: open overdue cases only, by due time and by region
        tx.execute(f"CREATE INDEX {cases}_oldest ON {cases} (next_due_at, case_id) WHERE overdue = 1 AND {OPEN_SQL}")
        tx.execute(f"CREATE INDEX {cases}_overdue_region ON {cases} (region) WHERE overdue = 1 AND {OPEN_SQL}")
        tx.execute(f"CREATE INDEX {cases}_overdue_list ON {cases} (reported_at, case_id) WHERE overdue = 1")
        tx.execute(f"CREATE INDEX {upward}_origin ON {upward} (fact, origin_region, at)")

    # -- applying ----------------------------------------------------------------

    def apply(self, tx: Tx, event: Any, position: int) -> None:
        self.apply_batch(tx, [(position, event)])

    def apply_batch(self, tx: Tx, events: Sequence[tuple[int, Any]]) -> None:
        """Load the batch's cases once, fold the events into them, write them once."""
        ids = sorted({_case_of(e) for _, e in events if _is_case_event(e) or _is_refusal(e)})
        rows = self._load(tx, ids)
        # a rebuild leaves the roll-ups to finish_rebuild (one refill_rollups pass at the end)
        before = {} if self.rebuilding else {case_id: _facts(row) for case_id, row in rows.items()}
        upward: list[tuple] = []
        for position, event in events:
            kind = type(event).__name__
            if kind == "PolicyLoaded":
                self._remember_policy(tx, event)
                continue
            if kind == "EscalationRefused" and _is_refusal(event):
                row = rows.get(event.case_id)
                if row is not None:
                    row.update(_dirty=True, escalations_refused=row["escalations_refused"] + 1)
                    upward.append((row["case_id"], position, "escalation_refused", iso(event.occurred_at),
                                   row["origin_region"], row["village"], row["township"],
                                   f"{event.action} {event.requested} > {event.ceiling}"))
                continue
            if not _is_case_event(event):
                continue
            case_id = str(event.originator_id)
            if kind == "Reported":
                rows[case_id] = self._new_row(case_id, event)
            row = rows.get(case_id)
            if row is None:  # an event of a case we never saw reported: ignore, never crash
                continue
            self._fold(tx, row, kind, event, position, upward)
        cases = self.t("cases")
        names = ", ".join(COLUMNS)
        marks = ", ".join("?" for _ in COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "case_id")
        tx.executemany(
            f"INSERT INTO {cases} ({names}) VALUES ({marks}) ON CONFLICT (case_id) DO UPDATE SET {updates}",
            [tuple(_stored(c, row[c]) for c in COLUMNS) for row in rows.values() if row.get("_dirty")],
        )
        tx.executemany(
            f"INSERT INTO {self.t('cases_upward')} (case_id, position, fact, at, origin_region, village, township, "
            "detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (case_id, position) DO NOTHING",
            upward,
        )
        if self.rebuilding:
            return
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
            if now[:BOARD_FACTS] != then[:BOARD_FACTS]:  # only what changed is taken away and added again
                _add_stats(then, -1, stats)
                _add_stats(now, 1, stats)
            if now[BOARD_FACTS:] != then[BOARD_FACTS:]:
                _add_board(then, -1, board)
                _add_board(now, 1, board)
        for _, _, fact, at, origin, village, township, _ in upward:
            _add_stat(stats, origin, village, township, at, fact if fact == "reclassified_up" else
                      "escalations_refused", 1)
        self._write_rollups(tx, stats, board)

    # -- roll-ups ------------------------------------------------------------------

    def _write_rollups(self, tx: Tx, stats: dict[tuple, list], board: dict[tuple, list]) -> None:
        """Add a batch's summed changes to the roll-ups (one statement per 400 rows), and
        delete the rows they left empty."""
        _add_rows(tx, self.t("cases_stats"), ("grain", "region", "bucket"), ("village", "township"),
                  STAT_COLUMNS, STAT_PRESENT, [(*k, *v) for k, v in stats.items() if any(v[2:])])
        _add_rows(tx, self.t("cases_board"), ("region", "dim", "name"), (), BOARD_COLUMNS, ("open",),
                  [(*k, *v) for k, v in board.items() if any(v)])

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
        stats, board, cases, upward = (self.t(n) for n in ("cases_stats", "cases_board", "cases", "cases_upward"))
        tx.execute(f"DELETE FROM {stats}")
        tx.execute(f"DELETE FROM {board}")
        hours = int(DAY_OFFSET.total_seconds() // 3600)

        def day(column: str) -> str:
            if postgres:
                return (f"to_char(({column})::timestamptz AT TIME ZONE 'UTC' + interval '{hours} hours', "
                        "'YYYY-MM-DD')")
            return f"strftime('%Y-%m-%d', {column}, '+{hours} hours')"

        def flag(condition: str) -> str:
            return f"CASE WHEN {condition} THEN 1 ELSE 0 END"

        petition = "kind = 'petition'"
        received = {"received": "1", "petitions": flag(petition),
                    "dispatched": flag(f"{petition} AND dispatched_at IS NOT NULL"),
                    "responded": flag(f"{petition} AND responded_in_time = 1"),
                    "petitions_resolved": flag(f"{petition} AND resolved_at IS NOT NULL"),
                    "visited": flag(f"{petition} AND visited_at IS NOT NULL"),
                    "satisfied": flag(f"{petition} AND satisfaction IN {SATISFIED!r}")}
        resolved = {"resolved": "1", "within_ceiling": "COALESCE(within_ceiling, 0)",
                    **{c: flag(f"resolved_rank = {i}") for i, c in enumerate(RANK_COLUMNS)}}
        moved = {c: flag(f"fact = '{c if c == 'reclassified_up' else 'escalation_refused'}'")
                 for c in ("reclassified_up", "escalations_refused")}
        grains = "(SELECT 'd' AS grain, 10 AS len UNION ALL SELECT 'm', 7) AS g"

        def part(source: str, stamp: str, values: dict[str, str]) -> str:
            picked = ", ".join(f"{values.get(c, '0')} AS {c}" for c in STAT_COLUMNS)
            return (f"SELECT g.grain, substr(c.day, 1, g.len) AS bucket, c.* FROM (SELECT origin_region, village, "
                    f"township, {day(stamp)} AS day, {picked} FROM {source} WHERE {stamp} IS NOT NULL) AS c "
                    f"CROSS JOIN {grains}")

        sums = ", ".join(f"SUM({c}) AS {c}" for c in STAT_COLUMNS)
        sums_stats: dict[tuple, list] = {}
        for row in tx.query(
            f"SELECT grain, origin_region, bucket, MIN(village) AS village, MIN(township) AS township, {sums} "
            f"FROM ({part(cases, 'reported_at', received)} UNION ALL {part(cases, 'resolved_at', resolved)} "
            f"UNION ALL {part(upward, 'at', moved)}) AS parts GROUP BY grain, origin_region, bucket"
        ):
            counts = [int(row[c]) for c in STAT_COLUMNS]
            for key, village, township in _ancestry(row["origin_region"], row["village"], row["township"]):
                vector = sums_stats.setdefault((row["grain"], key, row["bucket"]), [village, township,
                                                                                      *(0 for _ in counts)])
                for i, n in enumerate(counts):
                    vector[2 + i] += n
        sums_board: dict[tuple, list] = {}
        names = ", ".join(FACTS)
        for row in tx.query(f"SELECT {names}, breached FROM {cases} WHERE {OPEN_SQL}"):
            row["breached"] = json.loads(row["breached"] or "[]")
            _add_board(_facts(row), 1, sums_board)
        self._write_rollups(tx, sums_stats, sums_board)

    def _load(self, tx: Tx, ids: list[str]) -> dict[str, dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ", ".join("?" for _ in chunk)
            for row in tx.query(f"SELECT * FROM {self.t('cases')} WHERE case_id IN ({marks})", chunk):
                row["clocks"] = json.loads(row["clocks"] or "{}")
                row["breached"] = json.loads(row["breached"] or "[]")
                row["ceilings"] = json.loads(row["ceilings"] or "{}")
                rows[row["case_id"]] = row
        return rows

    def _new_row(self, case_id: str, event: Any) -> dict[str, Any]:
        ceilings = {str(k): int(v) for k, v in event.ceilings.items()}
        ceiling = ceilings.get(event.severity)
        row = dict.fromkeys(COLUMNS)
        row.update(
            case_id=case_id, kind=event.kind, category=event.category, severity=event.severity,
            reported_severity=event.severity, status="reported", region=event.region,
            origin_region=event.region, village=ancestor(event.region, event.rank, VILLAGE),
            township=ancestor(event.region, event.rank, TOWNSHIP), rank=event.rank, ceiling=ceiling,
            reported_ceiling=ceiling, ceilings=ceilings, profile=event.profile,
            policy_version=event.policy_version, title=event.title, channel=event.channel,
            reporter=event.actor.id, suspended=0, clocks={}, overdue=0, due_soon=0, breached=[],
            reported_at=iso(event.occurred_at), recorded_at=iso(event.timestamp), reclassified_up=0,
            escalations_refused=0,
            escalations=0, reopened=0,
        )
        return row

    def _fold(self, tx: Tx, row: dict[str, Any], kind: str, event: Any, position: int,
              upward: list[tuple]) -> None:
        at = iso(event.occurred_at)
        row.update(_dirty=True, version=event.originator_version, position=position, last_event_at=at)
        if kind in ("Assigned", "Escalated"):
            row["region"] = event.region if kind == "Assigned" else event.to_region
            row["rank"] = event.rank if kind == "Assigned" else event.to_rank
            row["unit"] = event.unit
            row["assignee"] = event.assignee if kind == "Assigned" else None
            row["status"] = "assigned" if kind == "Assigned" or event.unit else "reported"
            if kind == "Assigned":
                row["responsible_unit"] = row["responsible_unit"] or event.unit
            else:
                row["escalations"] += 1
            if row["status"] == "assigned" and row["accepted_at"] is None:
                row["dispatched_at"] = at
                row["sign_for_due_at"] = self._sign_for_due(tx, row, event.occurred_at)
        elif kind == "Accepted":
            row["status"] = "accepted"
            if row["accepted_at"] is None:
                row["accepted_at"] = at
                due = row["sign_for_due_at"]
                breached_first = "sign_for" in row["clocks"] and row["clocks"]["sign_for"]["state"] == "breached"
                row["responded_in_time"] = int(not breached_first and (due is None or at <= due))
        elif kind == "SentBack":
            if row["responsible_unit"] == row["unit"]:  # 首接负责 ends with the hand-back (as the case does)
                row["responsible_unit"] = None
            row.update(assignee=None, unit=None, status="reported")
        elif kind == "Reclassified":
            row["severity"] = event.to_severity
            row["ceiling"] = row["ceilings"].get(event.to_severity, row["ceiling"])
            if event.upward:
                row["reclassified_up"] += 1
                upward.append((row["case_id"], position, "reclassified_up", at, row["origin_region"],
                               row["village"], row["township"], f"{event.from_severity} > {event.to_severity}"))
        elif kind == "Suspended":
            row["suspended"] = 1
        elif kind == "Resumed":
            row["suspended"] = 0
        elif kind in ("MediationHeld", "RectificationOrdered", "Replied"):
            row["status"] = "in_progress"
        elif kind == "Resolved":
            row.update(status="resolved", resolved_at=at, resolved_rank=event.rank,
                       within_ceiling=int(event.rank <= row["reported_ceiling"]))
        elif kind == "Closed":
            row.update(status="closed", closed_at=at)
        elif kind == "Reopened":
            row.update(status="in_progress", resolved_at=None, resolved_rank=None, within_ceiling=None,
                       closed_at=None, reopened=row["reopened"] + 1)
        elif kind == "ReturnVisited":
            row.update(satisfaction=event.satisfaction, visited_at=at)
            if event.satisfaction == "dissatisfied":  # 发回重办: not resolved after all
                row.update(status="in_progress", resolved_at=None, resolved_rank=None, within_ceiling=None)
        self._follow_clocks(tx, row, kind, event)

    # -- clocks --------------------------------------------------------------------

    def _follow_clocks(self, tx: Tx, row: dict[str, Any], kind: str, event: Any) -> None:
        clocks: dict[str, dict[str, Any]] = row["clocks"]
        if kind in ("ClockWarned", "ClockBreached"):
            breached = kind == "ClockBreached"
            clocks[event.clock] = {
                "state": "breached" if breached else "warned",
                "threshold": 1.0 if breached else float(event.threshold),
                "due_at": iso(event.due_at),
            }
            if breached and event.clock not in row["breached"]:
                row["breached"].append(event.clock)
        else:
            policy = self._policy(tx, row["policy_version"])
            for name in list(clocks):
                spec = _clock_spec(policy, name)
                if spec is None:
                    continue
                ends = spec.stop_on + spec.cancel_on + spec.restart_on
                if any(_matches(condition, kind, event) for condition in ends) or (
                    kind == "Extended" and event.clock == name
                ):
                    del clocks[name]
            if row["status"] in ("resolved", "closed") and kind in ("Resolved", "Closed"):
                for name in [n for n in clocks if _clock_spec(policy, n) is None]:
                    del clocks[name]
        open_clocks = clocks.values()
        row["overdue"] = int(any(c["state"] == "breached" for c in open_clocks))
        row["due_soon"] = int(any(c["state"] == "warned" and c["threshold"] >= DUE_SOON for c in open_clocks))
        row["next_due_at"] = min((c["due_at"] for c in open_clocks if c["due_at"]), default=None)

    def _sign_for_due(self, tx: Tx, row: dict[str, Any], start: datetime) -> str | None:
        """When the sign-for clock falls due for a dispatch at ``start``, by the case's policy."""
        policy = self._policy(tx, row["policy_version"])
        spec = _clock_spec(policy, "sign_for")
        if spec is None:
            return None
        target = spec.target_for(row["severity"], row["rank"])
        if target is None:
            return None
        amount, unit = parse_duration(target)
        if unit in ("m", "h", "d"):
            delta = timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[unit]: amount})
            return iso(add_calendar(start, delta))
        calendar = _calendar(policy)
        if unit == "wd":
            return iso(calendar.add_working_hours(start, calendar.day_length * amount))
        return iso(calendar.add_working_hours(start, timedelta(hours=amount)))

    # -- policies -------------------------------------------------------------------

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
            rows = tx.query(f"SELECT document FROM {self.t('cases_policies')} WHERE version = ?", (version,))
            if not rows:
                return None
            self._policies[version] = PolicyDocument.model_validate(json.loads(rows[0]["document"]))
        return self._policies[version]


def local_day(stamp: str) -> str:
    """The Beijing day (``YYYY-MM-DD``) of a stored timestamp: a roll-up's day bucket."""
    if stamp.endswith(("+00:00", "Z")) and stamp[10:11] == "T" and stamp[11:13] < _LATE:  # UTC before 16:00
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


@lru_cache(maxsize=65536)
def _ancestry(origin: str, village: str | None, township: str | None) -> list[tuple[str, str | None, str | None]]:
    """Each region a case reported at ``origin`` counts for, with the village and the
    township it counts for there (``None`` above them)."""
    def within(region: str, top: str | None) -> str | None:
        return top if top is not None and (region == top or region.startswith(f"{top}-")) else None

    return [(region, within(region, village), within(region, township)) for region in prefixes(origin)]


def _add_stat(stats: dict[tuple, list], origin: str, village: str | None, township: str | None, stamp: str,
              column: str, sign: int, extra: Sequence[str] = ()) -> None:
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
    """Add (``sign`` 1) or take away (-1) one case's contribution to ``cases_stats``."""
    (origin, village, township, kind, reported_at, resolved_at, resolved_rank, within, dispatched_at,
     responded, visited_at, satisfaction) = facts[:BOARD_FACTS]
    if reported_at is not None:
        extra: list[str] = []
        if kind == "petition":
            extra.append("petitions")
            for column, present in (("dispatched", dispatched_at is not None), ("responded", responded == 1),
                                    ("petitions_resolved", resolved_at is not None),
                                    ("visited", visited_at is not None), ("satisfied", satisfaction in SATISFIED)):
                if present:
                    extra.append(column)
        _add_stat(stats, origin, village, township, reported_at, "received", sign, extra)
    if resolved_at is not None:
        extra = [RANK_COLUMNS[resolved_rank]] if resolved_rank is not None else []
        if within:
            extra.append("within_ceiling")
        _add_stat(stats, origin, village, township, resolved_at, "resolved", sign, extra)


def _add_board(facts: tuple, sign: int, board: dict[tuple, list]) -> None:
    status, region, assignee, unit, overdue, due_soon, breached = facts[BOARD_FACTS:]
    if status not in OPEN_STATUSES or not region:
        return
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


def _add_rows(tx: Tx, table: str, keys: Sequence[str], carried: Sequence[str], counters: Sequence[str],
              present: Sequence[str], rows: list[tuple], chunk: int = 400) -> None:
    """Add each row's counters to ``table`` (inserting missing keys, carrying ``carried``
    as first written); then delete, among the rows that lost something, those whose
    ``present`` counters are all zero. PostgreSQL: one statement each (``unnest`` of one
    array per column); SQLite: multi-row ``VALUES`` of ``chunk`` rows."""
    if not rows:
        return
    names = (*keys, *carried, *counters)
    upsert = (f"INSERT INTO {table} ({', '.join(names)}) {{rows}} ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
              + ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in counters))
    first = len(keys) + len(carried)
    shrunk = [row[:len(keys)] for row in rows if any(n < 0 for n in row[first:])]
    gone = " AND ".join(f"{c} = 0" for c in present)
    if tx.is_postgres:
        types = ["text[]"] * first + ["int[]"] * len(counters)
        tx.execute(upsert.format(rows="SELECT * FROM unnest(" + ", ".join(f"?::{t}" for t in types) + ")"),
                   [list(column) for column in zip(*rows, strict=True)])
        if shrunk:
            match = " AND ".join(f"{table}.{k} = e.{k}" for k in keys)
            tx.execute(f"DELETE FROM {table} USING unnest({', '.join('?::text[]' for _ in keys)}) "
                       f"AS e({', '.join(keys)}) WHERE {match} AND {gone}",
                       [list(column) for column in zip(*shrunk, strict=True)])
        return
    one = "(" + ", ".join("?" for _ in names) + ")"
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        tx.execute(upsert.format(rows=f"VALUES {', '.join(one for _ in part)}"), [v for row in part for v in row])
    tx.executemany(f"DELETE FROM {table} WHERE {' AND '.join(f'{k} = ?' for k in keys)} AND {gone}", shrunk)


CASE_EVENT_MODULE = "domain.cases"
REFUSAL_EVENT_MODULE = "domain.refusals"


def _is_case_event(event: Any) -> bool:
    return type(event).__module__ == CASE_EVENT_MODULE


def _is_refusal(event: Any) -> bool:
    return type(event).__module__ == REFUSAL_EVENT_MODULE and hasattr(event, "case_id")


def _case_of(event: Any) -> str:
    return event.case_id if _is_refusal(event) else str(event.originator_id)


def _stored(column: str, value: Any) -> Any:
    if column in ("clocks", "breached", "ceilings"):
        return json.dumps(value, sort_keys=True)
    return value


def _clock_spec(policy: PolicyDocument | None, name: str) -> Any:
    if policy is None:
        return None
    base = name.split(":", 1)[0]  # per-item clocks: check_in:<department>
    return next((c for c in policy.clocks if c.name == base), None)


def _matches(condition: str, kind: str, event: Any) -> bool:
    """``Type`` or ``Type[field=value,…]`` against an event."""
    name, _, rest = condition.partition("[")
    if name != kind:
        return False
    for predicate in filter(None, rest.rstrip("]").split(",")):
        field, _, expected = predicate.partition("=")
        actual = getattr(event, field.strip(), None)
        text = str(actual).lower() if isinstance(actual, bool) else str(actual)
        if text != expected.strip():
            return False
    return True


_calendars: dict[tuple[str, str], WorkingCalendar] = {}


def _calendar(policy: PolicyDocument) -> WorkingCalendar:
    key = (policy.calendar.name, policy.calendar.overrides)
    if key not in _calendars:
        _calendars[key] = (WorkingCalendar.from_overrides(key[1], name=key[0]) if key[1]
                           else WorkingCalendar(name=key[0]))
    return _calendars[key]
