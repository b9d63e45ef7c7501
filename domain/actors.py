"""Who acts: every command and every event names its actor."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Role(StrEnum):
    REPORTER = "reporter"  # 网格员 grid worker: report, comment
    HANDLER = "handler"  # works cases assigned to their unit
    SUPERVISOR = "supervisor"  # assign, reclassify, approve, supervise, reopen, close
    AUDITOR = "auditor"  # reads everything, including history and verification
    INTEGRATOR = "integrator"  # event feed and subscriptions, personal fields masked
    ADMIN = "admin"
    SYSTEM = "system"  # timers and process managers


@dataclass(frozen=True)
class Actor:
    """A person or process acting on a case.

    ``region`` is the code of the region the actor belongs to and ``rank`` that
    region's rank on the ladder (grid 0 … county 3); the rank decides, for
    example, who may reclassify a case at its ceiling.
    """

    id: str
    role: str
    unit: str | None = None
    region: str | None = None
    rank: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Actor:
        fields: dict[str, Any] = {k: data.get(k) for k in ("id", "role", "unit", "region", "rank")}
        return cls(**fields)


SYSTEM_ACTOR = Actor(id="system:timers", role=Role.SYSTEM, unit=None, region=None, rank=None)
