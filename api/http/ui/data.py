"""What the dashboard pages show, gathered from the read models and the engine (no HTTP here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from api.http import problems
from domain.calendar import SHANGHAI
from domain.ladder import Rank, Region, RegionTree
from projections.cases import OPEN_STATUSES

OVERDUE_SHOWN = 500  # rows in the overdue table at most (the counts above it are exact)
WEEKS = 13  # the rate-over-time chart: about a season


@dataclass(frozen=True)
class OverdueCase:
    row: dict[str, Any]
    due_at: datetime
    late: timedelta


def overdue_cases(
    read_models: Any, region: str, now: datetime, limit: int = OVERDUE_SHOWN
) -> list[OverdueCase]:
    """Open overdue cases handled under ``region``, the longest past due first."""
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        page, cursor = read_models.list_cases(
            region=region, status=list(OPEN_STATUSES), overdue=True, limit=500, cursor=cursor
        )
        rows += page
        if cursor is None:
            break
    found = [
        OverdueCase(r, due, now - due)
        for r in rows
        if (due := _moment(r.get("next_due_at"))) is not None
    ]
    found.sort(key=lambda c: (c.due_at, c.row["case_id"]))
    return found[:limit]


def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def week_starts(now: datetime, weeks: int = WEEKS) -> list[datetime]:
    """Mondays 00:00 Beijing time, the last being this week's."""
    today = now.astimezone(SHANGHAI).replace(hour=0, minute=0, second=0, microsecond=0)
    monday = today - timedelta(days=today.weekday())
    return [monday - timedelta(weeks=weeks - 1 - i) for i in range(weeks)]


def weekly_rates(
    read_models: Any, region: str, now: datetime, weeks: int = WEEKS
) -> list[dict[str, Any]]:
    """The within-ceiling rate of the cases resolved in each week (Monday to Monday),
    from the first week with a resolution (or the last two weeks)."""
    series = []
    for start in week_starts(now, weeks):
        stats = read_models.region_stats(region, start, start + timedelta(weeks=1))
        series.append(
            {
                "week": start,
                "label": f"{start:%m-%d}",
                "resolved": stats["resolved"],
                "rate": stats["within_ceiling_rate"],
            }
        )
    while len(series) > 2 and series[0]["resolved"] == 0:  # before the first case: nothing to draw
        series.pop(0)
    return series


def lineage(tree: RegionTree, code: str, root: str) -> list[Region]:
    """The regions from the caller's own region down to ``code`` (a breadcrumb)."""
    chain = tree.lineage(code)[::-1]  # the root of the ladder first
    codes = [r.code for r in chain]
    return chain[codes.index(root) :] if root in codes else [tree.get(code)]


def region_name(tree: RegionTree, code: str | None) -> str:
    if code is None:
        return "–"
    return tree.regions[code].name if code in tree.regions else code


def rank_label(rank: int | None) -> str | None:
    """A stored rank number as its label (``1`` → ``village``)."""
    return Rank(int(rank)).label if rank is not None else None


def unit_name(tree: RegionTree, unit: str | None) -> str:
    if unit is None:
        return "–"
    return tree.units[unit].name if unit in tree.units else unit


def handled_by(tree: RegionTree, unit: str | None, assignee: str | None) -> str:
    """``unit / person``, either alone, or ``–``."""
    names = [n for n in (unit_name(tree, unit) if unit else None, assignee) if n]
    return " / ".join(names) or "–"


# -- the case timeline --------------------------------------------------------------

EVENT_NAMES = {
    "Reported": "上报 reported",
    "Assigned": "派单 assigned",
    "Accepted": "签收 accepted",
    "SentBack": "退单 sent back",
    "Escalated": "上报上级 escalated",
    "Reclassified": "重新定性 reclassified",
    "Suspended": "挂起 suspended",
    "Resumed": "恢复 resumed",
    "Extended": "延期 extended",
    "Whistled": "吹哨 whistled",
    "CheckedIn": "报到 checked in",
    "Commented": "备注 comment",
    "Supervised": "督办 supervised",
    "ClockWarned": "时限预警 clock warning",
    "ClockBreached": "超时 clock breached",
    "Resolved": "化解 resolved",
    "Closed": "办结 closed",
    "Reopened": "重办 reopened",
    "MediationHeld": "调解 mediation",
    "CourtConfirmationApplied": "司法确认 court",
    "MediationRefused": "拒绝调解 mediation refused",
    "AgreementSigned": "协议签名 agreement signed",
    "AgreementSealed": "协议盖章 agreement sealed",
    "RectificationOrdered": "限时整改 rectification ordered",
    "Rectified": "整改 rectified",
    "Reinspected": "复查 reinspected",
    "Replied": "反馈 replied",
    "ReturnVisited": "回访 return visit",
}
REASON_FIELDS = ("reason", "note", "resolution", "summary", "text", "reply", "comment")
HIDDEN_FIELDS = {"parties", "description", "title", "ceilings", "profile", *REASON_FIELDS}


def timeline_entry(entry: dict[str, Any], shown_version: int) -> dict[str, Any]:
    """One history entry (``engine.views.event_view``) as a timeline row."""
    data = entry["data"]
    kind = entry["type"]
    # every written reason the event carries: a request's reason and its approver's note
    reason = "\n".join(str(data[f]) for f in REASON_FIELDS if data.get(f) not in (None, "", [], {}))
    details = {
        k: _shown(v)
        for k, v in data.items()
        if k not in HIDDEN_FIELDS and v not in (None, "", [], {})
    }
    return {
        **entry,
        "name": EVENT_NAMES.get(kind, kind),
        "reason": reason,
        "details": details,
        "clock": "breach"
        if kind == "ClockBreached"
        else "warning"
        if kind == "ClockWarned"
        else None,
        "late_recorded": _late(entry["occurred_at"], entry["recorded_at"]),
        "future": entry["version"] > shown_version,
        "shown": entry["version"] == shown_version,
    }


def _shown(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    return value


def _late(occurred: str, recorded: str) -> bool:
    """Recorded more than a minute after it happened (e.g. an offline phone)."""
    return datetime.fromisoformat(recorded) - datetime.fromisoformat(occurred) > timedelta(
        minutes=1
    )


# -- actions and their refusals, in words -----------------------------------------------

ACTION_NAMES = {
    "assign": "派单 dispatched",
    "supervise": "督办 supervision notice",
    "reclassify": "重新定性 reclassified",
    "close": "办结 closed",
    "reopen": "重办 reopened",
    "approve-extension": "批准延期 extension approved",
    "refuse-extension": "不批准延期 extension refused",
    "approve-suspension": "批准挂起 suspension approved",
    "refuse-suspension": "不批准挂起 suspension refused",
}

REFUSALS = {
    "version_conflict": "案件已有新的变化，操作未执行 the case changed since this page was loaded; nothing was recorded",
    "invalid_transition": "案件当前的状态不允许此操作 the case's state does not allow this",
    "escalation_ceiling": "超出该程度案件的处理上限 above the ceiling for the case's severity",
    "validation": "请检查填写的内容 please check what was entered",
    "point_outside_regions": "位置不在任何区域内 the point lies in no region",
    "forbidden": "您无权执行此操作 you may not do this",
    "idempotency_key_in_use": "表单编号已被使用，请重新载入 the form's key was used: reload the page",
}


def refusal_words(error: Any) -> dict[str, Any]:
    """A domain refusal as the dashboard says it: a headline (Chinese, then English), the
    rule's own message, and the HTTP status of its problem type."""
    kind = problems.BY_CODE.get(error.code, problems.VALIDATION)
    return {
        "code": error.code,
        "headline": REFUSALS.get(error.code, kind.title),
        "message": error.message,
        "status": kind.status,
    }


def pickable(tree: RegionTree, case_region: str, root: str) -> dict[str, list[tuple[str, str]]]:
    """The units and people a case may be dispatched to from the dashboard: those in the
    case's township (or the caller's region, if smaller), as ``(value, label)`` options."""
    township = tree.ancestor_at(case_region, Rank.TOWNSHIP)
    scope = township.code if township is not None else case_region
    if not RegionTree.is_within(scope, root):
        scope = root
    units = sorted(
        (u for u in tree.units.values() if RegionTree.is_within(u.region, scope)),
        key=lambda u: (u.region, u.name),
    )
    people = sorted(
        (p for p in tree.people.values() if RegionTree.is_within(p.region, scope)),
        key=lambda p: (p.region, p.name),
    )
    return {
        "units": [(f"unit:{u.id}", f"{u.name} · {region_name(tree, u.region)}") for u in units],
        "people": [
            (f"person:{p.name}", f"{p.name} ({p.role}) · {region_name(tree, p.region)}")
            for p in people
        ],
    }
