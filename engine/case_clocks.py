"""A case's SLA clocks read from the store: now, or under another policy version.

Both read the stored events and write nothing. A case keeps the policy version
it was reported under; :func:`recalculate` answers "what would its clocks be
under version N" for supervisors and auditors without touching the history
(service desks that "repair" SLAs destroy evidence; we never do).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from domain.clocks import ClockState, clocks_under
from domain.errors import ValidationFailed


def _events(app: Any, case_id: UUID) -> list[Any]:
    return [recorded.event for recorded in app.history(case_id)]


def clocks_of(app: Any, case_id: UUID, now: datetime | None = None) -> list[ClockState]:
    """The case's clocks at ``now`` (default: the engine's clock) under its own policy version."""
    case = app.case(case_id)
    return clocks_under(app.policy(case.policy_version), _events(app, case_id), now or app.clock.now(),
                        app.statutory())


def recalculate(app: Any, case_id: UUID, policy_version: int, now: datetime | None = None) -> list[ClockState]:
    """As-of recalculation: the case's clocks had it been reported under
    ``policy_version``. Reads only; the stored history is left as it is."""
    if isinstance(policy_version, bool) or not isinstance(policy_version, int) or policy_version < 1:
        raise ValidationFailed("policy_version must be a positive integer", field="policy_version")
    return clocks_under(app.policy(policy_version), _events(app, case_id), now or app.clock.now(),
                        app.statutory())
