"""The case view: one shape for the API, the CLI, the case file and projections."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from domain.cases import Case
from domain.clocks import ClockState
from domain.ladder import Rank


def case_view(case: Case, clocks: Sequence[ClockState] | None = None) -> dict[str, Any]:
    """The case as the outside sees it (API field names; see docs/api.md).

    ``clocks`` are the case's computed clocks (``engine.clocks.clocks_of``); without
    them the view lists none and ``overdue`` falls back to the recorded breaches.
    """
    return {
        "id": str(case.id),
        "kind": str(case.kind),
        "category": case.category,
        "severity": str(case.severity),
        "status": str(case.status),
        "suspended": case.suspended,
        "region": case.region,
        "origin_region": case.origin_region,
        "rank": Rank(case.rank).label,
        "ceiling": Rank(case.ceiling).label,
        "assignee": case.assignee,
        "unit": case.unit,
        "responsible_unit": case.responsible_unit,
        "title": case.title,
        "channel": case.channel,
        "version": case.version,
        "policy_version": case.policy_version,
        "reported_at": case.created_on.isoformat(),
        "occurred_at": case.occurred_at.isoformat(),
        "updated_at": case.modified_on.isoformat(),
        "resolved_rank": Rank(case.resolved_rank).label if case.resolved_rank is not None else None,
        "escalations": case.escalations,
        "reclassified_up": case.reclassified_up,
        "whistled": {d: (t.isoformat() if t else None) for d, t in case.whistled.items()},
        "clocks": [c.view() for c in clocks or ()],
        "overdue": any(c.overdue for c in clocks) if clocks is not None else bool(case.breached_clocks),
    }


def event_view(position: int | None, event: Case.Event) -> dict[str, Any]:
    """One history entry: version, position, type, times, actor, policy version, data."""
    common = {"originator_id", "originator_version", "timestamp", "actor", "occurred_at", "command_id",
              "policy_version", "originator_topic"}
    data = {k: v for k, v in vars(event).items() if k not in common}
    return {
        "version": event.originator_version,
        "position": position,
        "type": type(event).__name__,
        "occurred_at": event.occurred_at.isoformat(),
        "recorded_at": event.timestamp.isoformat(),
        "actor": event.actor.as_dict(),
        "command_id": event.command_id,
        "policy_version": event.policy_version,
        "data": data,
    }
