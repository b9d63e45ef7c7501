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
from datetime import datetime
from enum import StrEnum
from typing import Any

from domain.cases import Status
from domain.errors import ValidationFailed
from domain.ladder import Rank
from domain.policy import Kind, Severity
from projections.cases import OPEN_STATUSES, iso
from projections.db import Database

RANK_KEYS = {int(r): r.label for r in Rank}
SATISFIED = ("satisfied", "basically_satisfied")
MAX_LIMIT = 500


def subtree(column: str, region: str) -> tuple[str, list[str]]:
    """``column`` is ``region`` or below it: an index range, byte-ordered ('.' follows '-')."""
    return f"({column} = ? OR ({column} >= ? AND {column} < ?))", [region, f"{region}-", f"{region}."]


def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _period(column: str, start: datetime | None, end: datetime | None) -> tuple[str, list[str]]:
    clauses, params = [], []
    for bound, op, field in ((start, ">=", "start"), (end, "<", "end")):
        if bound is None:
            continue
        if not isinstance(bound, datetime) or bound.tzinfo is None:
            raise ValidationFailed(f"{field} must be a date-time with a time zone", field=field)
        clauses.append(f"{column} {op} ?")
        params.append(iso(bound))
    return (" AND ".join(clauses) or "1 = 1"), params


def _one_of(field: str, value: str | None, allowed: type[StrEnum]) -> None:
    if value is not None and value not in {str(v) for v in allowed}:
        raise ValidationFailed(f"unknown {field} {value!r}", field=field, allowed=[str(v) for v in allowed])


def _region(region: str | None) -> str:
    if not isinstance(region, str) or not region.strip():
        raise ValidationFailed("region is required", field="region")
    return region.strip()


class ReadModels:
    """Queries over the projections' public tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- case list and detail --------------------------------------------------------

    def list_cases(self, *, region: str | None = None, status: str | list[str] | None = None,
                   kind: str | None = None, severity: str | None = None, rank: int | str | None = None,
                   assignee: str | None = None, overdue: bool | None = None, due_soon: bool | None = None,
                   limit: int = 50, cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """Newest reported first; ``cursor`` continues where the last page ended."""
        if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise ValidationFailed(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
        where, params = [], []
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
        for column, value in (("kind", kind), ("severity", severity), ("assignee", assignee)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if rank is not None:
            where.append("rank = ?")
            params.append(int(Rank.parse(rank)))
        for column, flag in (("overdue", overdue), ("due_soon", due_soon)):
            if flag is not None:
                where.append(f"{column} = ?")
                params.append(int(bool(flag)))
        if cursor is not None:
            reported_at, case_id = decode_cursor(cursor)
            where.append("(reported_at < ? OR (reported_at = ? AND case_id < ?))")
            params += [reported_at, reported_at, case_id]
        sql = "SELECT * FROM cases"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY reported_at DESC, case_id DESC LIMIT ?"
        rows = self.db.query(sql, [*params, limit + 1])
        page = [case_row(r) for r in rows[:limit]]
        following = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
        return page, following

    def get_case(self, case_id: Any) -> dict[str, Any] | None:
        rows = self.db.query("SELECT * FROM cases WHERE case_id = ?", (str(case_id),))
        return case_row(rows[0]) if rows else None

    # -- the SLA board ------------------------------------------------------------------

    def sla_board(self, region: str) -> dict[str, Any]:
        """Open cases under a region: overdue, due soon, breaches by clock, workload."""
        clause, params = subtree("region", _region(region))
        open_ = f"{clause} AND status IN ({', '.join('?' for _ in OPEN_STATUSES)})"
        params = [*params, *OPEN_STATUSES]
        with self.db.snapshot() as tx:
            totals = tx.query(f"SELECT COUNT(*) AS open, COALESCE(SUM(overdue), 0) AS overdue, "
                              f"COALESCE(SUM(due_soon), 0) AS due_soon FROM cases WHERE {open_}", params)[0]
            breached_rows = tx.query(f"SELECT breached FROM cases WHERE {open_} AND breached <> '[]'", params)
            oldest = tx.query(f"SELECT case_id, title, region, assignee, unit, next_due_at FROM cases "
                              f"WHERE {open_} AND overdue = 1 ORDER BY next_due_at, case_id LIMIT 1", params)
            workload = {
                group: tx.query(
                    f"SELECT {group} AS name, COUNT(*) AS open, SUM(overdue) AS overdue, SUM(due_soon) AS due_soon "
                    f"FROM cases WHERE {open_} AND {group} IS NOT NULL GROUP BY {group} "
                    f"ORDER BY COUNT(*) DESC, {group}", params)
                for group in ("assignee", "unit")
            }
        breached: dict[str, int] = {}
        for row in breached_rows:
            for clock in json.loads(row["breached"]):
                breached[clock] = breached.get(clock, 0) + 1
        return {
            "region": region,
            "open": int(totals["open"]),
            "overdue": int(totals["overdue"]),
            "due_soon": int(totals["due_soon"]),
            "breached_by_clock": dict(sorted(breached.items())),
            "oldest_overdue": oldest[0] if oldest else None,
            "workers": [_counts(r) for r in workload["assignee"]],
            "units": [_counts(r) for r in workload["unit"]],
        }

    # -- 小事不出村 and 三率 ---------------------------------------------------------------

    def region_stats(self, region: str, start: datetime | None = None,
                     end: datetime | None = None) -> dict[str, Any]:
        """Compliance and 三率 for every case reported under ``region``."""
        rows = self._compliance(_region(region), start, end, group=None)
        stats = rows[0] if rows else _empty(region)
        stats.update(self._three_rates(region, start, end))
        return stats

    def compliance(self, region: str, start: datetime | None = None, end: datetime | None = None,
                   level: str = "village") -> list[dict[str, Any]]:
        """Per village or per township under ``region``, the worst rate first."""
        if level not in ("village", "township"):
            raise ValidationFailed("level must be village or township", field="level")
        rows = self._compliance(_region(region), start, end, group=level)
        return sorted(rows, key=lambda r: (r["within_ceiling_rate"] is None,
                                           r["within_ceiling_rate"] or 0, -r["resolved"], r["region"]))

    def _compliance(self, region: str, start: datetime | None, end: datetime | None,
                    group: str | None) -> list[dict[str, Any]]:
        origin, origin_params = subtree("origin_region", region)
        key = group or "?"
        key_params = [] if group else [region]
        grouped = f" AND {group} IS NOT NULL GROUP BY {group}" if group else ""
        reported, reported_params = _period("reported_at", start, end)
        resolved, resolved_params = _period("resolved_at", start, end)
        moved, moved_params = _period("at", start, end)
        result: dict[str, dict[str, Any]] = {}
        with self.db.snapshot() as tx:
            for row in tx.query(f"SELECT {key} AS region, COUNT(*) AS n FROM cases "
                                f"WHERE {origin} AND {reported}{grouped}",
                                [*key_params, *origin_params, *reported_params]):
                result.setdefault(row["region"], _empty(row["region"]))["received"] = int(row["n"])
            for row in tx.query(f"SELECT {key} AS region, resolved_rank AS rank, COUNT(*) AS n, "
                                f"SUM(within_ceiling) AS within FROM cases WHERE {origin} AND resolved_at "
                                f"IS NOT NULL AND {resolved}{grouped}{', resolved_rank' if group else ' GROUP BY resolved_rank'}",
                                [*key_params, *origin_params, *resolved_params]):
                stats = result.setdefault(row["region"], _empty(row["region"]))
                stats["resolved"] += int(row["n"])
                stats["resolved_within_ceiling"] += int(row["within"] or 0)
                stats["resolved_at_rank"][RANK_KEYS[int(row["rank"])]] += int(row["n"])
            for row in tx.query(f"SELECT {key} AS region, fact, COUNT(*) AS n FROM cases_upward "
                                f"WHERE {origin} AND {moved}{grouped}{', fact' if group else ' GROUP BY fact'}",
                                [*key_params, *origin_params, *moved_params]):
                stats = result.setdefault(row["region"], _empty(row["region"]))
                stats["reclassified_up" if row["fact"] == "reclassified_up" else "escalations_refused"] = int(row["n"])
        for stats in result.values():
            stats["within_ceiling_rate"] = _rate(stats["resolved_within_ceiling"], stats["resolved"])
        return list(result.values())

    def _three_rates(self, region: str, start: datetime | None, end: datetime | None) -> dict[str, Any]:
        """响应率, 解决率, 满意率 over the petitions reported under ``region`` in the period."""
        origin, params = subtree("origin_region", region)
        reported, period_params = _period("reported_at", start, end)
        row = self.db.query(
            "SELECT COUNT(*) AS received, "
            "SUM(CASE WHEN dispatched_at IS NOT NULL THEN 1 ELSE 0 END) AS dispatched, "
            "SUM(CASE WHEN responded_in_time = 1 THEN 1 ELSE 0 END) AS responded, "
            "SUM(CASE WHEN resolved_at IS NOT NULL THEN 1 ELSE 0 END) AS resolved, "
            "SUM(CASE WHEN visited_at IS NOT NULL THEN 1 ELSE 0 END) AS visited, "
            f"SUM(CASE WHEN satisfaction IN ('{SATISFIED[0]}', '{SATISFIED[1]}') THEN 1 ELSE 0 END) AS satisfied "
            f"FROM cases WHERE kind = 'petition' AND {origin} AND {reported}",
            [*params, *period_params],
        )[0]
        counts = {k: int(v or 0) for k, v in row.items()}
        return {
            "petitions": counts,
            "response_rate": _rate(counts["responded"], counts["dispatched"]),
            "resolution_rate": _rate(counts["resolved"], counts["received"]),
            "satisfaction_rate": _rate(counts["satisfied"], counts["visited"]),
        }


def _empty(region: str) -> dict[str, Any]:
    return {
        "region": region, "received": 0, "resolved": 0, "resolved_within_ceiling": 0,
        "within_ceiling_rate": None, "resolved_at_rank": dict.fromkeys(RANK_KEYS.values(), 0),
        "reclassified_up": 0, "escalations_refused": 0,
    }


def _counts(row: dict[str, Any]) -> dict[str, Any]:
    return {"name": row["name"], "open": int(row["open"]), "overdue": int(row["overdue"] or 0),
            "due_soon": int(row["due_soon"] or 0)}


BOOLEAN = ("suspended", "overdue", "due_soon", "within_ceiling", "responded_in_time")
INTERNAL = ("ceilings", "position")


def case_row(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row as the API shows it: JSON decoded, flags as booleans."""
    view = {k: v for k, v in row.items() if k not in INTERNAL}
    view["clocks"] = json.loads(row["clocks"] or "{}")
    view["breached"] = json.loads(row["breached"] or "[]")
    for flag in BOOLEAN:
        if view.get(flag) is not None:
            view[flag] = bool(view[flag])
    return view


def encode_cursor(row: dict[str, Any]) -> str:
    raw = json.dumps([row["reported_at"], row["case_id"]], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The sort key a cursor carries; anything else is refused, never a crash."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        reported_at, case_id = json.loads(raw)
        if not isinstance(reported_at, str) or not isinstance(case_id, str):
            raise ValueError
        datetime.fromisoformat(reported_at)
        return reported_at, case_id
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise ValidationFailed("the cursor is not one this service issued", field="cursor") from None
