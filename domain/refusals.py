"""Escalations the ceiling refused: counted, though they changed no case.

A refused command writes nothing to its case. But supervisors are judged on how
often cases were pushed above their ceiling (矛盾上交 attempts), so each refusal
of an escalation (or of an assignment above the ceiling) is recorded in a log of
its own, one per case, beside the case. Repeating the same command records it once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.actors import Actor


def refusal_log_id(case_id: UUID) -> UUID:
    return uuid5(NAMESPACE_URL, f"fengqiao:ceiling-refusals:{case_id}")


class CeilingRefusals(Aggregate):
    """The escalation attempts the ceiling stopped for one case."""

    class Started(Aggregate.Created):
        case_id: str

    class EscalationRefused(Aggregate.Event):
        case_id: str
        region: str
        rank: int
        severity: str
        ceiling: str
        requested: str
        action: str
        actor: Actor
        occurred_at: datetime
        command_id: str

        def apply(self, log: CeilingRefusals) -> None:
            log.command_ids.add(self.command_id)

    def __init__(self, case_id: str) -> None:
        self.case_id = case_id
        self.command_ids: set[str] = set()

    @classmethod
    def start(cls, case_id: UUID, timestamp: datetime) -> CeilingRefusals:
        return cls._create(
            cls.Started, id=refusal_log_id(case_id), case_id=str(case_id), timestamp=timestamp
        )

    def record(self, *, recorded_at: datetime, command_id: str, **refusal: Any) -> bool:
        """Record one refusal (``refusal``: the other fields of :class:`EscalationRefused`);
        False if this command was already recorded."""
        if command_id in self.command_ids:
            return False
        self.trigger_event(
            self.EscalationRefused,
            timestamp=recorded_at,
            case_id=self.case_id,
            command_id=command_id,
            **refusal,
        )
        return True
