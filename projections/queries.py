"""What supervisors ask of the read models: plain dicts and lists for the API.

Regions are matched by subtree (a code and every code below it). Case lists and
the SLA board follow where a case is handled now (``region``); compliance and
三率 follow where it was reported (``origin_region``): a village answers for the
cases reported in it, wherever they ended up.

Periods are ``[start, end)`` on when things happened (``occurred_at``): reports
by report time, resolutions by resolution time, reclassifications by their time;
三率 take the petitions reported in the period as the cohort. A rate with an empty
denominator is ``None``.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

from domain.cases import Status
from domain.errors import ValidationFailed
from domain.kinds import Kind, Severity
from domain.ladder import Rank
from domain.permissions import case_in_scope
from domain.policy import Duplicates
from domain.search import CANDIDATES, Earlier, Intake, duplicate_signals, terms
from engine import deadlines
from engine.sql import Database, Tx
from projections.cases import (
    DAY_OFFSET,
    NOT_REFERRED,
    OPEN_SQL,
    PETITION_COLUMNS,
    PRIMARY,
    RANK_COLUMNS,
    SATISFIED,
    STAT_COLUMNS,
    STAT_PRESENT,
    iso,
)

RANK_KEYS = {int(r): r.label for r in Rank}
BEIJING = timezone(DAY_OFFSET)
OLDEST = "case_id, title, region, assignee, unit, next_due_at"
MAX_LIMIT = 500


def subtree(column: str, region: str) -> tuple[str, list[str]]:
    """``column`` is ``region`` or below it: an index range, byte-ordered ('.' follows '-')."""
    return f"({column} = ? OR ({column} >= ? AND {column} < ?))", [
        region,
        f"{region}-",
        f"{region}.",
    ]


def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _bound(moment: datetime | None, field: str) -> datetime | None:
    if moment is not None and (not isinstance(moment, datetime) or moment.tzinfo is None):
        raise ValidationFailed(f"{field} must be a date-time with a time zone", field=field)
    return moment


def _period(column: str, start: datetime | None, end: datetime | None) -> tuple[str, list[str]]:
    clauses: list[str] = []
    params: list[str] = []
    for bound, op, field in ((start, ">=", "start"), (end, "<", "end")):
        moment = _bound(bound, field)
        if moment is None:
            continue
        clauses.append(f"{column} {op} ?")
        params.append(iso(moment))
    return (" AND ".join(clauses) or "1 = 1"), params


def _one_of(field: str, value: str | None, allowed: type[StrEnum]) -> None:
    if value is not None and value not in {str(v) for v in allowed}:
        raise ValidationFailed(
            f"unknown {field} {value!r}", field=field, allowed=[str(v) for v in allowed]
        )


def _region(region: str | None) -> str:
    if not isinstance(region, str) or not region.strip():
        raise ValidationFailed("region is required", field="region")
    return region.strip()


MAX_REGIONS_SEEN = 100_000  # boards remembered (overdue or not): bounded memory


class ReadModels:
    """Queries over the projections' public tables."""

    few_overdue = 1000  # the SLA board sorts at most this many overdue cases of a region

    def __init__(self, db: Database) -> None:
        self.db = db
        self._ranks: dict[str, int] = {}  # the region tree's ranks, as read
        self._overdue_seen: dict[
            str, bool
        ] = {}  # a region's board had overdue cases when last read

    # -- case list and detail --------------------------------------------------------

    def list_cases(
        self,
        *,
        region: str | None = None,
        status: str | list[str] | None = None,
        kind: str | None = None,
        severity: str | None = None,
        rank: int | str | None = None,
        assignee: str | None = None,
        overdue: bool | None = None,
        due_soon: bool | None = None,
        limit: int = 50,
        cursor: str | None = None,
        unit: str | None = None,
        q: str | None = None,
        persons: list[str] | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest reported first; ``cursor`` continues where the last page ended.

        ``q``: only cases whose words hold every term of it (``domain.search.terms``),
        ranked as ``domain.search.TIERS`` says — the title matches, then the rest, newest
        first within each. Each tier is one query, as the list is: the list's sort index
        walked and each row's words looked up by key for a common word, the word index
        for a rare one; a page costs one query, two where it crosses from one tier to the
        next. The cursor carries the tier. ``persons``: only cases with one of these
        persons among their parties."""
        if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise ValidationFailed(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
        where, params = _filters(
            None, status, kind, severity, rank, assignee, unit, overdue, due_soon
        )
        _parties(where, params, persons)
        tiers = search_tiers(q, self.db.is_postgres)
        if region is not None:
            self._within(where, params, _region(region))
        tier, after = 0, None
        if cursor is not None:
            tier, *after = decode_cursor(cursor)
            if tier >= len(tiers):
                raise ValidationFailed("the cursor is not one this service issued", field="cursor")
        rows = self._tiered_rows(tiers, tier, after, where, params, limit + 1, q is not None)
        page = [case_row(r) for _, r in rows[:limit]]
        following = None
        if len(rows) > limit:
            following = encode_cursor(rows[limit - 1][1], rows[limit - 1][0] if q else None)
        return page, following

    def _tiered_rows(
        self,
        tiers: list[tuple[list[str], list[Any]]],
        tier: int,
        after: list[Any] | None,
        where: list[str],
        params: list[Any],
        wanted: int,
        searching: bool,
    ) -> list[tuple[int, dict[str, Any]]]:
        """Up to ``wanted`` rows, each with its tier: from ``tier`` after ``after`` (the
        cursor's place), then from the next tiers while the page is not full."""
        rows: list[tuple[int, dict[str, Any]]] = []
        one = tier == len(tiers) - 1 and not (self.db.is_postgres and searching)
        # the tiers of one page: one state; one query (a list without ``q``) is one already
        with self.db.statement() if one else self.db.snapshot() as tx:
            if tx.is_postgres and searching:
                # a page walked by index gains nothing from parallel workers; their start cost
                # ~100 ms on a loaded host, where the planner misjudges a word's rows
                tx.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            for at in range(tier, len(tiers)):
                clauses, values = tiers[at]
                found = _newest(
                    tx,
                    [*where, *clauses],
                    [*params, *values],
                    after if at == tier else None,
                    wanted - len(rows),
                )
                rows += [(at, row) for row in found]
                if len(rows) >= wanted:
                    break
        return rows

    def _rank(self, code: str) -> int | None:
        """``code``'s rank in the projection's region tree (None: unknown, asked again next
        time; a known code's rank never changes)."""
        if code not in self._ranks:
            rows = self.db.query("SELECT rank FROM cases_regions WHERE code = ?", (code,))
            if not rows:
                return None
            self._ranks[code] = int(rows[0]["rank"])
        return self._ranks[code]

    def _within(self, where: list[str], params: list[Any], region: str) -> None:
        """Cases handled at ``region`` or below. A township's are those whose
        ``region_township`` it is (the same set: walked by its own sort index, and
        estimated as one condition, not two the planner would multiply)."""
        if self._rank(region) == Rank.TOWNSHIP:
            where.append("region_township = ?")
            params.append(region)
            return
        clause, values = subtree("region", region)
        where.append(clause)
        params += values

    def possible_duplicates(
        self, new: Intake, area: str, scope: str | None, rule: Duplicates
    ) -> list[dict[str, Any]]:
        """Open cases reported in ``area`` (``domain.search.duplicate_area``) within the
        rule's window of ``new`` that may be the same matter (``domain.search.duplicate_signals``),
        those in the caller's ``scope`` only (None: everywhere): each with its id, title and why."""
        clause, params = (  # a village's: walked newest first by its open cases' index
            ("c.village = ?", [area])
            if self._rank(area) == Rank.VILLAGE
            else subtree("c.origin_region", area)
        )
        low, high = (iso(new.reported_at + sign * rule.window) for sign in (-1, 1))
        candidates = (
            "SELECT c.case_id, c.title, c.kind, c.category, c.reported_at, c.region, "
            "c.origin_region, p.lat, p.long FROM cases c LEFT JOIN search_points p "
            f"ON p.case_id = c.case_id WHERE {clause} AND c.{OPEN_SQL} AND c.duplicate_of IS NULL "
            "AND c.reported_at >= ? AND c.reported_at <= ? AND c.case_id <> ?"
        )
        params += [low, high, new.case_id]
        rows = self.db.query(  # the newest few, by the open cases' index
            f"{candidates} ORDER BY c.reported_at DESC LIMIT ?", [*params, CANDIDATES]
        )
        shared: set[str] = set()
        if new.persons:  # every one sharing a party, by the persons' own cases
            marks = ", ".join("?" for _ in new.persons)
            sharing = self.db.query(
                f"{candidates} AND c.case_id IN (SELECT case_id FROM search_parties "
                f"WHERE person IN ({marks}))",
                [*params, *sorted(new.persons)],
            )
            shared = {r["case_id"] for r in sharing}
            newest = {r["case_id"] for r in rows}
            rows += [r for r in sharing if r["case_id"] not in newest]
        if scope is not None:
            rows = [r for r in rows if case_in_scope((r["region"], r["origin_region"]), scope)]
        found = []
        for row in rows:
            other = Intake(
                case_id=row["case_id"],
                kind=row["kind"],
                category=row["category"],
                title=row["title"] or "",
                reported_at=datetime.fromisoformat(row["reported_at"]),
                point=(row["lat"], row["long"]) if row["lat"] is not None else None,
                persons=new.persons if row["case_id"] in shared else frozenset(),
            )
            why = duplicate_signals(
                new, other, window=rule.window, threshold=rule.similarity, radius_m=rule.radius_m
            )
            if why:
                found.append({"case_id": row["case_id"], "title": row["title"], "why": why})
        return sorted(found, key=lambda d: (-len(d["why"]), d["case_id"]))

    def earlier_cases(self, persons: frozenset[str]) -> list[Earlier]:
        """Every case with one of ``persons`` among its parties, as 重复件 reads it
        (``domain.search.repeat_of``; the engine's ``earlier_cases``)."""
        if not persons:
            return []
        marks = ", ".join("?" for _ in persons)
        rows = self.db.query(
            "SELECT DISTINCT c.case_id, c.kind, c.category, c.closed_at FROM cases c "
            f"WHERE c.case_id IN (SELECT case_id FROM search_parties WHERE person IN ({marks}))",
            sorted(persons),
        )
        return [
            Earlier(
                r["case_id"],
                r["kind"],
                r["category"],
                datetime.fromisoformat(r["closed_at"]) if r["closed_at"] else None,
            )
            for r in rows
        ]

    def get_case(self, case_id: Any) -> dict[str, Any] | None:
        rows = self.db.query("SELECT * FROM cases WHERE case_id = ?", (str(case_id),))
        return case_row(rows[0]) if rows else None

    def awaiting_approval(self, region: str, limit: int = MAX_LIMIT) -> list[dict[str, Any]]:
        """The requests awaiting approval (延期, 挂起) of cases handled under ``region``, the
        longest waiting first: one dict per request, with its case's row."""
        clause, params = subtree("region", _region(region))
        rows = self.db.query(
            f"SELECT * FROM cases WHERE awaiting > 0 AND {clause} ORDER BY case_id LIMIT ?",
            [*params, limit],
        )
        found = []
        for row in rows:
            requests = json.loads(row["requests"] or "{}")
            case = case_row(row)
            found += [{**request, "key": key, "case": case} for key, request in requests.items()]
        found.sort(key=lambda r: (r["requested_at"] or "", r["case"]["case_id"], r["key"]))
        return found

    # -- the SLA board ------------------------------------------------------------------

    def sla_board(self, region: str) -> dict[str, Any]:
        """Open cases under a region: overdue, due soon, breaches by clock, workload.

        Counts come from the ``cases_board`` roll-up, which holds a row per region and
        per ancestor (one index lookup at any rank, ~1,000 rows at a county). The oldest
        overdue case: none if the board counts none; among a few (≤ ``few_overdue``), the
        region's open overdue cases sorted (a partial index by region); among many, the
        first in due order (a partial index by due time) that lies in the region."""
        code = _region(region)
        clause, params = subtree("region", code)
        board = "SELECT dim, name, open, overdue, due_soon FROM cases_board WHERE region = ? AND open <> 0"
        overdue = f"SELECT {OLDEST} FROM cases WHERE overdue = 1 AND {OPEN_SQL} AND {clause}"
        groups: dict[str, list[dict[str, Any]]] | None = None
        if not self._overdue_seen.get(code):
            # none overdue when last read: one query on its own snapshot, no BEGIN and ROLLBACK
            # (two of the three round trips on PostgreSQL); if some are now, the counts are
            # read again with the oldest, in one state
            with self.db.statement() as tx:
                groups = _board_groups(tx.query(board, (code,)))
        oldest: list[dict[str, Any]] = []
        if groups is None or _board_total(groups)["overdue"]:
            with self.db.snapshot() as tx:
                groups = _board_groups(tx.query(board, (code,)))
                count = _board_total(groups)["overdue"]
                if count:
                    oldest = tx.query(
                        f"WITH o AS MATERIALIZED ({overdue}) SELECT * FROM o ORDER BY next_due_at, case_id LIMIT 1"
                        if count <= self.few_overdue
                        else f"{overdue} ORDER BY next_due_at, case_id LIMIT 1",
                        params,
                    )
        total = _board_total(groups)
        if len(self._overdue_seen) > MAX_REGIONS_SEEN:
            self._overdue_seen.clear()
        self._overdue_seen[code] = bool(total["overdue"])
        return {
            "region": region,
            "open": total["open"],
            "overdue": total["overdue"],
            "due_soon": total["due_soon"],
            "breached_by_clock": {
                r["name"]: r["open"] for r in sorted(groups["clock"], key=lambda r: r["name"])
            },
            "oldest_overdue": oldest[0] if oldest else None,
            "workers": sorted(groups["assignee"], key=_busiest),
            "units": sorted(groups["unit"], key=_busiest),
        }

    # -- 小事不出村 and 三率 ---------------------------------------------------------------

    def region_stats(
        self, region: str, start: datetime | None = None, end: datetime | None = None
    ) -> dict[str, Any]:
        """Compliance and 三率 for every case reported under ``region``."""
        code = _region(region)
        counts = self._stats(code, start, end, group=None).get(code) or _zero()
        return _public(code, counts, petitions=True)

    def compliance(
        self,
        region: str,
        start: datetime | None = None,
        end: datetime | None = None,
        level: str = "village",
    ) -> list[dict[str, Any]]:
        """Per village or per township under ``region``, the worst rate first."""
        if level not in ("village", "township"):
            raise ValidationFailed("level must be village or township", field="level")
        found = self._stats(_region(region), start, end, group=level)
        rows = [
            _public(name, counts)
            for name, counts in found.items()
            if any(counts[c] for c in STAT_PRESENT)
        ]
        return sorted(
            rows,
            key=lambda r: (
                r["within_ceiling_rate"] is None,
                r["within_ceiling_rate"] or 0,
                -r["resolved"],
                r["region"],
            ),
        )

    def _stats(
        self, region: str, start: datetime | None, end: datetime | None, group: str | None
    ) -> dict[str, dict[str, int]]:
        """Counters per group: whole Beijing months and days from the ``cases_stats``
        roll-up, the sub-day edges of the period (if any) from the case rows."""
        buckets, edges = split_period(_bound(start, "start"), _bound(end, "end"))
        found: dict[str, dict[str, int]] = {}
        if group is None:  # the region's own rows
            key, which, which_params = "?", "region = ?", [region, region]
        else:  # the rows of each village (township) under the region; or the region's own, below it
            key = group
            which = (
                f"((region = {group} AND region >= ? AND region < ? AND (region = ? OR region >= ?)) "
                f"OR (region = ? AND {group} IS NOT NULL AND {group} <> ?))"
            )
            which_params = [region, f"{region}.", region, f"{region}-", region, region]
        grouped = f" GROUP BY {group}" if group else ""
        sums = ", ".join(f"SUM({c}) AS {c}" for c in STAT_COLUMNS)
        with self.db.snapshot() as tx:
            for grain, low, high in buckets:
                deadlines.check()
                where, params = [which, "grain = ?"], [*which_params, grain]
                for bound, op in ((low, ">="), (high, "<")):
                    if bound is not None:
                        where.append(f"bucket {op} ?")
                        params.append(bound)
                for row in tx.query(
                    f"SELECT {key} AS region, {sums} FROM cases_stats WHERE {' AND '.join(where)}"
                    f"{grouped}",
                    params,
                ):
                    _merge(found, row)
            for low, high in edges:
                for row in counts_from_cases(tx, region, low, high, group, petitions=group is None):
                    _merge(found, row)
        return found


def _filters(
    region: str | None,
    status: str | list[str] | None,
    kind: str | None,
    severity: str | None,
    rank: int | str | None,
    assignee: str | None,
    unit: str | None,
    overdue: bool | None,
    due_soon: bool | None,
) -> tuple[list[str], list[Any]]:
    """The case list's conditions (SQL) and their parameters."""
    where: list[str] = []
    params: list[Any] = []
    if region is not None:
        clause, values = subtree("region", _region(region))
        where.append(clause)
        params += values
    if status is not None:
        statuses = [status] if isinstance(status, str) else list(status)
        for value in statuses:
            _one_of("status", value, Status)
        where.append(f"status IN ({', '.join('?' for _ in statuses)})")
        params += statuses
    _one_of("kind", kind, Kind)
    _one_of("severity", severity, Severity)
    for column, wanted in (
        ("kind", kind),
        ("severity", severity),
        ("assignee", assignee),
        ("unit", unit),
    ):
        if wanted is not None:
            where.append(f"{column} = ?")
            params.append(wanted)
    if rank is not None:
        where.append("rank = ?")
        params.append(int(Rank.parse(rank)))
    for column, flag in (("overdue", overdue), ("due_soon", due_soon)):
        if flag is not None:  # a literal 0 or 1: the overdue list's partial index matches it
            where.append(f"{column} = {int(bool(flag))}")
    return where, params


def split_period(start: datetime | None, end: datetime | None) -> tuple[list[tuple], list[tuple]]:
    """``[start, end)`` as roll-up buckets — ``(grain, first, past)``: whole Beijing months
    (``m``, ``YYYY-MM``) and the whole days (``d``, ``YYYY-MM-DD``) beside them — and the
    sub-day edges left over, ``(start, end)``, to be counted from the case rows."""
    if start is None and end is None:
        return [("m", None, None)], []
    low = None if start is None else _day_floor(start, up=True)
    high = None if end is None else _day_floor(end)
    if low is not None and high is not None and low >= high:
        return [], [(start, end)]
    edges = [
        (a, b) for a, b in ((start, low), (high, end)) if a is not None and b is not None and a < b
    ]
    month_low = None if low is None else _month_floor(low, up=True)
    month_high = None if high is None else _month_floor(high)
    if (
        low is not None
        and high is not None
        and month_low is not None
        and month_high is not None
        and month_low >= month_high
    ):  # (each month bound is set exactly when its day bound is)
        return [("d", _day_key(low), _day_key(high))], edges
    buckets = [
        (
            "m",
            month_low and month_low.strftime("%Y-%m"),
            month_high and month_high.strftime("%Y-%m"),
        )
    ]
    if low is not None and month_low is not None and low < month_low:
        buckets.append(("d", _day_key(low), _day_key(month_low)))
    if high is not None and month_high is not None and month_high < high:
        buckets.append(("d", _day_key(month_high), _day_key(high)))
    return buckets, edges


def _day_floor(moment: datetime, up: bool = False) -> datetime:
    local = moment.astimezone(BEIJING)
    floor = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return floor + timedelta(days=1) if up and floor < local else floor


def _month_floor(day: datetime, up: bool = False) -> datetime:
    floor = day.replace(day=1)
    if up and floor < day:
        floor = (floor + timedelta(days=32)).replace(day=1)
    return floor


def _day_key(day: datetime) -> str:
    return day.date().isoformat()


def counts_from_cases(
    tx: Tx,
    region: str,
    start: datetime | None,
    end: datetime | None,
    group: str | None,
    petitions: bool = True,
) -> list[dict[str, Any]]:
    """The counters of :data:`STAT_COLUMNS` per group (``village``, ``township`` or none:
    the region itself), straight from the case rows: what the roll-up sums, recomputed."""
    origin, origin_params = subtree("origin_region", region)
    key = group or "?"
    key_params = [] if group else [region]
    grouped = f" AND {group} IS NOT NULL GROUP BY {group}" if group else ""
    (reported, reported_params), (resolved, resolved_params), (moved, moved_params) = (
        _period(column, start, end) for column in ("reported_at", "resolved_at", "at")
    )  # the rows reported, resolved and moved up in the period
    cohort = (
        "".join(
            f", SUM(CASE WHEN kind = 'petition' AND {PRIMARY}{condition} THEN 1 ELSE 0 END) AS {name}"
            for name, condition in (
                ("petitions", ""),
                ("repeats", " AND repeat = 1"),
                ("dispatched", " AND dispatched_at IS NOT NULL"),
                ("responded", " AND responded_in_time = 1"),
                ("petitions_resolved", " AND resolved_at IS NOT NULL"),
                ("visited", " AND visited_at IS NOT NULL"),
                ("satisfied", f" AND satisfaction IN {SATISFIED!r}"),
            )
        )
        if petitions
        else ""
    )
    ranks = "".join(
        f", SUM(CASE WHEN resolved_rank = {i} AND {NOT_REFERRED} THEN 1 ELSE 0 END) AS {c}"
        for i, c in enumerate(RANK_COLUMNS)
    )
    return [
        *tx.query(
            f"SELECT {key} AS region, SUM(CASE WHEN {PRIMARY} THEN 1 ELSE 0 END) AS received, "
            f"SUM(CASE WHEN {PRIMARY} THEN 0 ELSE 1 END) AS duplicates{cohort} FROM cases "
            f"WHERE {origin} AND {reported}{grouped}",
            [*key_params, *origin_params, *reported_params],
        ),
        *tx.query(
            f"SELECT {key} AS region, SUM(CASE WHEN {NOT_REFERRED} THEN 1 ELSE 0 END) AS resolved, "
            f"SUM(COALESCE(referred, 0)) AS referred, SUM(within_ceiling) AS within_ceiling{ranks} "
            f"FROM cases WHERE {origin} AND resolved_at IS NOT NULL AND {PRIMARY} AND {resolved}{grouped}",
            [*key_params, *origin_params, *resolved_params],
        ),
        *tx.query(
            f"SELECT {key} AS region, SUM(CASE WHEN fact = 'reclassified_up' THEN 1 ELSE 0 END) "
            "AS reclassified_up, SUM(CASE WHEN fact = 'escalation_refused' THEN 1 ELSE 0 END) "
            f"AS escalations_refused FROM cases_upward WHERE {origin} AND {moved}{grouped}",
            [*key_params, *origin_params, *moved_params],
        ),
    ]


def _zero() -> dict[str, int]:
    return dict.fromkeys(STAT_COLUMNS, 0)


def _merge(found: dict[str, dict[str, int]], row: dict[str, Any]) -> None:
    counts = found.setdefault(row["region"], _zero())
    for column in STAT_COLUMNS:
        counts[column] += int(row.get(column) or 0)


def _public(region: str, counts: dict[str, int], petitions: bool = False) -> dict[str, Any]:
    """Counters as the API shows them."""
    stats = {
        "region": region,
        "received": counts["received"],
        "duplicates": counts["duplicates"],  # 并案: linked to a primary, counted here only
        "resolved": counts["resolved"],
        "resolved_within_ceiling": counts["within_ceiling"],
        "within_ceiling_rate": _rate(counts["within_ceiling"], counts["resolved"]),
        "resolved_at_rank": {RANK_KEYS[i]: counts[c] for i, c in enumerate(RANK_COLUMNS)},
        "referred": counts[
            "referred"
        ],  # disputes ended referred: never resolved, never within the ceiling
        "reclassified_up": counts["reclassified_up"],
        "escalations_refused": counts["escalations_refused"],
    }
    if petitions:
        cohort = dict(
            zip(
                ("received", "dispatched", "responded", "resolved", "visited", "satisfied"),
                (counts[c] for c in PETITION_COLUMNS),
                strict=True,
            )
        )
        stats.update(
            petitions=cohort,
            response_rate=_rate(cohort["responded"], cohort["dispatched"]),
            resolution_rate=_rate(cohort["resolved"], cohort["received"]),
            satisfaction_rate=_rate(cohort["satisfied"], cohort["visited"]),
            repeats=counts["repeats"],  # 重复件 among the petitions received
            repeat_rate=_rate(counts["repeats"], cohort["received"]),
        )
    return stats


def _board_groups(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """A region's ``cases_board`` rows by dimension."""
    groups: dict[str, list[dict[str, Any]]] = {"total": [], "assignee": [], "unit": [], "clock": []}
    for row in rows:
        groups[row["dim"]].append(_counts(row))
    return groups


def _board_total(groups: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return groups["total"][0] if groups["total"] else {"open": 0, "overdue": 0, "due_soon": 0}


def _counts(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "open": int(row["open"]),
        "overdue": int(row["overdue"] or 0),
        "due_soon": int(row["due_soon"] or 0),
    }


def _busiest(row: dict[str, Any]) -> tuple[int, str]:
    return -row["open"], row["name"]


BOOLEAN = ("suspended", "overdue", "due_soon", "within_ceiling", "responded_in_time", "repeat")
INTERNAL = ("ceilings", "position", "requests", "awaiting", "region_township")


def case_row(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row as the API shows it: JSON decoded, flags as booleans."""
    view = {k: v for k, v in row.items() if k not in INTERNAL}
    view["clocks"] = json.loads(row["clocks"] or "{}")
    view["breached"] = json.loads(row["breached"] or "[]")
    view["repeat_of"] = json.loads(row.get("repeat_of") or "[]")
    for flag in BOOLEAN:
        if view.get(flag) is not None:
            view[flag] = bool(view[flag])
    return view


def _newest(
    tx: Tx, where: list[str], params: list[Any], after: list[str] | None, limit: int
) -> list[dict[str, Any]]:
    """The first ``limit`` cases of ``where``, newest reported first, after ``after`` (a
    cursor's ``reported_at`` and ``case_id``)."""
    if after is not None:
        where = [*where, "(reported_at < ? OR (reported_at = ? AND case_id < ?))"]
        params = [*params, after[0], after[0], after[1]]
    sql = "SELECT * FROM cases"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY reported_at DESC, case_id DESC LIMIT ?"
    return tx.query(sql, [*params, limit])


def _parties(where: list[str], params: list[Any], persons: list[str] | None) -> None:
    """Only the cases with one of ``persons`` among their parties (None: no condition)."""
    if persons is not None:
        marks = ", ".join("?" for _ in persons) or "NULL"
        where.append(f"case_id IN (SELECT case_id FROM search_parties WHERE person IN ({marks}))")
        params += persons


def search_tiers(q: str | None, postgres: bool) -> list[tuple[list[str], list[Any]]]:
    """Each rank of ``domain.search.TIERS`` for ``q`` as conditions on ``cases``: the
    title holds every term; the body holds every term and the title does not (each case
    in one tier only). No ``q``: one tier, no condition."""
    if q is None:
        return [([], [])]
    words = terms(q)
    title, title_params = _holding(words, "title", "title_grams", postgres)
    body, body_params = _holding(words, "body", "grams", postgres)
    if postgres:  # one look-up of the case's row for both
        return [
            ([f"case_id IN (SELECT case_id FROM search_text WHERE {title})"], title_params),
            (
                [f"case_id IN (SELECT case_id FROM search_text WHERE {body} AND NOT ({title}))"],
                [*body_params, *title_params],
            ),
        ]
    return [([title], title_params), ([body, f"NOT ({title})"], [*body_params, *title_params])]


def _holding(words: list[str], text: str, grams: str, postgres: bool) -> tuple[str, list[Any]]:
    """A condition that the ``text`` column (its bigrams in ``grams``) holds every word: a
    trigram index for words of three characters or more, the bigram index for words of
    two. PostgreSQL: on a ``search_text`` row; SQLite: on ``cases`` (FTS5 look-ups)."""
    long, short = [w for w in words if len(w) >= 3], [w for w in words if len(w) < 3]
    if postgres:
        clauses = [f"{text} LIKE ? ESCAPE '!'" for _ in long]
        values: list[Any] = [f"%{_like(w)}%" for w in long]
        if short:
            clauses.append(f"{grams} @> ?::text[]")
            values.append(short)
        return " AND ".join(clauses), values
    clauses, values = [], []
    for table, column, found in (("search_text", text, long), ("search_grams", grams, short)):
        if found:
            clauses.append(f"case_id IN (SELECT case_id FROM {table} WHERE {column} MATCH ?)")
            values.append(" AND ".join(_phrase(w) for w in found))
    return " AND ".join(clauses), values


def _like(word: str) -> str:
    """``word`` as a literal inside a ``LIKE`` pattern (escape character ``!``)."""
    return word.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def _phrase(word: str) -> str:
    """``word`` as one FTS5 phrase (a string in double quotes, its quotes doubled)."""
    return '"' + word.replace('"', '""') + '"'


def encode_cursor(row: dict[str, Any], tier: int | None = None) -> str:
    """An opaque cursor: the last row's sort key (and its search tier, when ranked)."""
    key = [row["reported_at"], row["case_id"]]
    raw = json.dumps(key if tier is None else [tier, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str, str]:
    """The tier and sort key a cursor carries (tier 0 for an unranked list's); anything
    else is refused, never a crash."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
        if not isinstance(key, list) or len(key) not in (2, 3):
            raise ValueError
        tier, reported_at, case_id = key if len(key) == 3 else [0, *key]
        if (
            type(tier) is not int
            or tier < 0
            or not isinstance(reported_at, str)
            or not isinstance(case_id, str)
        ):
            raise ValueError
        datetime.fromisoformat(reported_at)
        return tier, reported_at, case_id
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise ValidationFailed(
            "the cursor is not one this service issued", field="cursor"
        ) from None
