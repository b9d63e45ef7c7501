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
from engine.case_clocks import current_clocks


def replayed(
    app: Any, case_id: UUID, version: int | None = None, as_of: datetime | None = None
) -> tuple[Case, list[Case.Event]]:
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
        raise NotFound(
            f"case {case_id} did not exist at {as_of.isoformat()}", resource="case", id=str(case_id)
        )
    if not isinstance(case, Case) or (version is not None and case.version != version):
        app.case(case_id, version=version)  # raises the engine's own NotFound
        raise NotFound(f"no case {case_id}", resource="case", id=str(case_id))
    return case, events


def case_view(
    app: Any,
    case_id: UUID,
    version: int | None = None,
    as_of: datetime | None = None,
    now: datetime | None = None,
    stored_version: int | None = None,
) -> dict[str, Any]:
    """The case view with its clocks, now, at ``version`` or as recorded at ``as_of``.

    The clocks run to ``now``; by default the moment shown: ``as_of``, the moment
    ``version`` was recorded, or the engine's clock for the case now.

    The case now (or at the version it is now: a command's answer) costs the same whatever
    its length: it is the engine's cached copy brought up to date, or its last snapshot
    and the events after, and its clocks resume from the cached fold
    (:func:`engine.case_clocks.current_clocks`). An earlier version or moment is replayed
    from the events. ``stored_version``: see :func:`taken_case`."""
    if as_of is None:
        shown = _current_view(app, case_id, version, now, stored_version)
        if shown is not None:
            return shown
    case, events = replayed(app, case_id, version, as_of)
    if now is None:
        now = as_of or (case.modified_on if version is not None else app.clock.now())
    deadlines.check()
    return case_fields(
        case, clocks_under(app.policy(case.policy_version), events, now, app.statutory())
    )


def taken_case(
    app: Any, case_id: UUID, current: bool = True, stored_version: int | None = None
) -> Case:
    """The case as the store has it now, taken out of the engine's case cache (the caller
    puts it back, or drops it): the cached copy brought up to date with any events written
    since (by another process), else its last snapshot and the events after.
    ``current=False``: the cached copy as it is (the caller checks its version).

    ``stored_version``: the case's last version in the store, read by the caller after its
    request arrived (the HTTP API reads it with the token: ``UserStore.authenticate``). A
    cached copy at that version or later is current as it is: no look for newer events."""
    case: Any = app.case_cache.take(case_id)
    if case is None:
        return app.case(case_id)
    if not current or (stored_version is not None and case.version >= stored_version):
        return case
    return _brought_up_to_date(app, case)


def _brought_up_to_date(app: Any, case: Any) -> Any:
    for event in app.events.get(case.id, gt=case.version):
        case = event.mutate(case)
    return case


def _current_view(
    app: Any,
    case_id: UUID,
    version: int | None,
    now: datetime | None,
    stored_version: int | None = None,
) -> dict[str, Any] | None:
    """The view of the case as it is now, if ``version`` is None or its current one (else None).

    The cached case is taken out while in use and put back after (see ``engine.case_cache``)."""
    case = taken_case(app, case_id, current=version is None, stored_version=stored_version)
    if version is not None and case.version < version:
        case = _brought_up_to_date(app, case)
    shown = None
    if version is None or case.version == version:
        if now is None:
            now = case.modified_on if version is not None else app.clock.now()
        shown = case_fields(case, current_clocks(app, case, now))
    app.case_cache.put(case)
    return shown


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
        "duplicate_of": case.duplicate_of,  # 并案: the primary this case was linked to
        "duplicates": list(case.duplicates),  # 并案: the cases linked to this one
        "repeat_of": list(case.repeat_of),  # 重复件: the earlier petitions it repeats
        "clocks": [c.view() for c in clocks or ()],
        "overdue": any(c.overdue for c in clocks)
        if clocks is not None
        else bool(case.breached_clocks),
    }


def event_view(position: int | None, event: Case.Event) -> dict[str, Any]:
    """One history entry: version, position, type, times, actor, policy version, data."""
    common = {
        "originator_id",
        "originator_version",
        "timestamp",
        "actor",
        "occurred_at",
        "command_id",
        "policy_version",
        "originator_topic",
    }
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
