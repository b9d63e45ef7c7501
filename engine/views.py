"""The case view: one shape for the API, the CLI, the dashboard and the case file.

:func:`case_view` reads a case (now, at a version, or as recorded at a moment) and
its clocks in one read of its events; :func:`case_fields` is the shape alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.cases import Case
from domain.clocks import ClockState, clocks_under
from domain.errors import NotFound, ValidationFailed
from domain.ladder import Rank
from engine import deadlines


def replayed(app: Any, case_id: UUID, version: int | None = None,
             as_of: datetime | None = None) -> tuple[Case, list[Case.Event]]:
    """The case rebuilt in one read of its events, with those events: up to ``version``,
    or as the store knew it at ``as_of`` (by recorded time), or now."""
    if as_of is not None and as_of.tzinfo is None:
        raise ValidationFailed("as_of needs a time zone", field="as_of")
    case: Any = None
    events = []
    read = app.events.get(case_id) if version is None else app.events.get(case_id, lte=version)
    for event in read:  # decoding stops at the moment
        if as_of is not None and event.timestamp > as_of:
            break
        deadlines.check()  # a request past its deadline stops here (engine/deadlines.py)
        case = event.mutate(case)
        events.append(event)
    if case is None and as_of is not None:
        raise NotFound(f"case {case_id} did not exist at {as_of.isoformat()}", resource="case", id=str(case_id))
    if not isinstance(case, Case) or (version is not None and case.version != version):
        app.case(case_id, version=version)  # raises the engine's own NotFound
        raise NotFound(f"no case {case_id}", resource="case", id=str(case_id))
    return case, events


def case_view(app: Any, case_id: UUID, version: int | None = None, as_of: datetime | None = None,
              now: datetime | None = None) -> dict[str, Any]:
    """The case view with its clocks, now, at ``version`` or as recorded at ``as_of``.

    The clocks run to ``now``; by default the moment shown: ``as_of``, the moment
    ``version`` was recorded, or the engine's clock for the case now."""
    case, events = replayed(app, case_id, version, as_of)
    if now is None:
        now = as_of or (case.modified_on if version is not None else app.clock.now())
    deadlines.check()
    return case_fields(case, clocks_under(app.policy(case.policy_version), events, now, app.statutory()))


def case_fields(case: Case, clocks: Sequence[ClockState] | None = None) -> dict[str, Any]:
    """The case as the outside sees it (API field names; see docs/api.md).

    ``clocks`` are the case's computed clocks (``engine.case_clocks.clocks_of``); without
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
