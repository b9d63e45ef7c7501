"""The store's own account of the demo: every case read back and counted.

Counts come from the recorded events, not from what the simulator meant to
do: cases by kind and status, the rank each was resolved at, escalations,
reclassifications (矛盾上交), disputes ended referred (never counted as 化解),
overdue clocks, satisfaction, and whether anything
was resolved above its ceiling (it never may be).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from domain.cases import OPEN, Case, Petition
from domain.clocks import clocks_under
from domain.ladder import Rank
from domain.policy import Policy
from engine.service import Fengqiao


@dataclass
class Census:
    cases: Counter = field(default_factory=Counter)  # (kind, status)
    resolved_at: Counter = field(default_factory=Counter)  # (kind, rank label)
    minor_disputes_resolved_at: Counter = field(
        default_factory=Counter
    )  # rank label, as reported minor, settled
    minor_disputes_referred_at: Counter = field(
        default_factory=Counter
    )  # ended referred (Resolved.referred)
    referred: Counter = field(default_factory=Counter)  # cases ended referred, by kind: never 化解
    escalated_cases: int = 0
    escalations: int = 0
    reclassified_up: int = 0  # cases reclassified upwards (矛盾上交)
    above_ceiling: int = 0  # resolved above the ceiling at the time: must stay 0
    overdue: Counter = field(default_factory=Counter)  # open cases with an overdue clock, by kind
    overdue_clocks: Counter = field(default_factory=Counter)  # clock name
    satisfaction: Counter = field(default_factory=Counter)  # petitions' latest return visit
    events: Counter = field(default_factory=Counter)  # case event type

    @property
    def total(self) -> int:
        return sum(self.cases.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "cases": {f"{k}/{s}": n for (k, s), n in sorted(self.cases.items())},
            "resolved_at": {f"{k}/{r}": n for (k, r), n in sorted(self.resolved_at.items())},
            "minor_disputes_resolved_at": dict(sorted(self.minor_disputes_resolved_at.items())),
            "minor_disputes_referred_at": dict(sorted(self.minor_disputes_referred_at.items())),
            "referred": dict(sorted(self.referred.items())),
            "escalated_cases": self.escalated_cases,
            "escalations": self.escalations,
            "reclassified_up": self.reclassified_up,
            "above_ceiling": self.above_ceiling,
            "overdue": dict(sorted(self.overdue.items())),
            "overdue_clocks": dict(sorted(self.overdue_clocks.items())),
            "satisfaction": dict(sorted(self.satisfaction.items())),
            "events": dict(sorted(self.events.items())),
        }


def replay(events: list[Any]) -> Case:
    """The case rebuilt from its events, exactly as the repository does."""
    case = None
    for event in events:
        case = event.mutate(case)
    assert case is not None
    return case


def take_census(app: Fengqiao, now: datetime) -> Census:
    census = Census()
    policies: dict[int, Policy] = {}
    for case_id in app.case_ids():
        events: list[Any] = list(app.events.get(case_id))  # Reported first, then case events
        case = replay(events)
        kind, status = str(case.kind), str(case.status)
        census.cases[(kind, status)] += 1
        census.events.update(type(e).__name__ for e in events)
        if case.resolved_rank is not None:
            rank = Rank(case.resolved_rank).label
            census.resolved_at[(kind, rank)] += 1
            referred = _ended_referred(events)
            census.referred[kind] += int(referred)
            if kind == "dispute" and events[0].severity == "minor":
                (
                    census.minor_disputes_referred_at
                    if referred
                    else census.minor_disputes_resolved_at
                )[rank] += 1
        census.above_ceiling += sum(
            1
            for e in events
            if isinstance(e, Case.Resolved) and e.rank > _ceiling_before(events, e)
        )
        if case.escalations:
            census.escalated_cases += 1
            census.escalations += case.escalations
        census.reclassified_up += int(case.reclassified_up > 0)
        satisfaction = cast(Petition, case).satisfaction if kind == "petition" else None
        if satisfaction:
            census.satisfaction[satisfaction] += 1
        if case.status in OPEN:
            late = _overdue_clocks(app, policies, case, events, now)
            if late:
                census.overdue[kind] += 1
                census.overdue_clocks.update(late)
    return census


def _ended_referred(events: list[Any]) -> bool:
    """Did the case's last resolution end it referred (the fact ``Resolved.referred`` records)?"""
    resolved = [e for e in events if isinstance(e, Case.Resolved)]
    return bool(resolved and resolved[-1].referred)


def _ceiling_before(events: list[Any], resolved: Case.Event) -> int:
    """The case's ceiling when it was resolved (severity as reclassified by then)."""
    first = events[0]
    severity = first.severity
    for event in events:
        if event is resolved:
            break
        if isinstance(event, Case.Reclassified):
            severity = event.to_severity
    return int(first.ceilings[severity])


def _overdue_clocks(
    app: Fengqiao, policies: dict[int, Policy], case: Case, events: list, now: datetime
) -> list[str]:
    if case.policy_version not in policies:
        policies[case.policy_version] = app.policy(case.policy_version)
    return [
        state.clock
        for state in clocks_under(policies[case.policy_version], events, now, app.statutory())
        if state.overdue
    ]
