"""A case's SLA clocks read from the store: now, or under another policy version.

Both read the stored events and write nothing. A case keeps the policy version
it was reported under; :func:`recalculate` answers "what would its clocks be
under version N" for supervisors and auditors without touching the history
(service desks that "repair" SLAs destroy evidence; we never do).

:func:`current_clocks` answers a case's clocks at its version for the case view and the
commands that need them without refolding its whole history: the engine keeps each
case's fold (``domain.clocks.clock_fold``) after the last version it folded, in
``Fengqiao.clock_folds``, and folds only the events after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.clocks import ClockState, clock_fold, clocks_under, fold_states
from domain.errors import ValidationFailed


@dataclass
class CachedFold:
    """A case's clock fold after ``version``, under one policy version and statutory calendar."""

    id: UUID
    version: int
    policy_version: int
    statutory: Any
    fold: Any


def current_clocks(app: Any, case: Any, now: datetime) -> list[ClockState]:
    """The clocks of ``case`` (at its own version) at ``now``: :func:`clocks_under` over
    its events up to that version, resumed from the cached fold when there is one.

    A fold is taken from the cache while in use (no two threads share one) and put back
    after the newer events. Anything it cannot answer exactly (a fold ahead of the case,
    events recorded after ``now``) is folded afresh from every event, and not kept."""
    policy, statutory = app.policy(case.policy_version), app.statutory()
    entry = app.clock_folds.take(case.id)
    if (
        entry is None
        or entry.policy_version != case.policy_version
        or not (entry.statutory is statutory or entry.statutory == statutory)
    ):  # a book re-read is equal
        entry = CachedFold(
            case.id, 0, case.policy_version, statutory, clock_fold(policy, statutory)
        )
    fold = entry.fold
    if fold.version > case.version or (fold.latest is not None and fold.latest > now):
        return clocks_under(policy, app.events.get(case.id, lte=case.version), now, statutory)
    newer = (
        list(app.events.get(case.id, gt=fold.version, lte=case.version))
        if fold.version < case.version
        else []
    )
    if any(event.timestamp > now for event in newer):
        app.clock_folds.put(entry)
        return clocks_under(policy, app.events.get(case.id, lte=case.version), now, statutory)
    for event in newer:
        fold.apply(event)
    entry.version = fold.version
    states = fold_states(fold, now)
    app.clock_folds.put(entry)
    return states


def advance_fold(app: Any, case: Any, recordings: list[Any]) -> None:
    """A command just stored ``recordings`` (the case now at ``case.version``): bring the
    case's cached fold, if it stood just before them, past them — decoded from the stored
    form the command has in hand, exactly as a read of the store would give them — so the
    view at the new version reads none of them back (one store read fewer a command).
    Anything else (no fold kept, another version or policy) is left to :func:`current_clocks`."""
    entry = app.clock_folds.take(case.id)
    if entry is None:
        return
    try:
        stored = [r.notification for r in recordings if r.notification.originator_id == case.id]
        if (
            stored
            and entry.policy_version == case.policy_version
            and entry.fold.version == stored[0].originator_version - 1
            and stored[-1].originator_version == case.version
        ):
            for notification in stored:
                entry.fold.apply(app.mapper.to_domain_event(notification))
            entry.version = entry.fold.version
    finally:
        app.clock_folds.put(entry)


def _events(app: Any, case_id: UUID) -> list[Any]:
    return [recorded.event for recorded in app.history(case_id)]


def clocks_of(app: Any, case_id: UUID, now: datetime | None = None) -> list[ClockState]:
    """The case's clocks at ``now`` (default: the engine's clock) under its own policy version."""
    return current_clocks(app, app.case(case_id), now or app.clock.now())


def recalculate(
    app: Any, case_id: UUID, policy_version: int, now: datetime | None = None
) -> list[ClockState]:
    """As-of recalculation: the case's clocks had it been reported under
    ``policy_version``. Reads only; the stored history is left as it is."""
    if (
        isinstance(policy_version, bool)
        or not isinstance(policy_version, int)
        or policy_version < 1
    ):
        raise ValidationFailed("policy_version must be a positive integer", field="policy_version")
    return clocks_under(
        app.policy(policy_version), _events(app, case_id), now or app.clock.now(), app.statutory()
    )
