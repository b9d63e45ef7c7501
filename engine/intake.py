"""A reported case as the duplicate rule compares it (``domain.search.duplicate_signals``):
its words, its point, its persons — and where its possible duplicates are looked for."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from domain.policy import Duplicates
from domain.search import Intake, duplicate_area
from engine.privacy import persons_of


def intake_of(app: Any, case_id: UUID) -> tuple[Intake, str, Duplicates]:
    """The case as :class:`Intake`, the region its duplicates are looked for in, and the
    rule's figures in the case's policy version."""
    case = app.current_case(case_id)
    details = case.details or {}
    point = (
        (float(details["lat"]), float(details["long"]))
        if details.get("lat") is not None and details.get("long") is not None
        else None
    )
    intake = Intake(
        case_id=str(case.id),
        kind=str(case.kind),
        category=case.category,
        title=case.title,
        reported_at=case.occurred_at,
        point=point,
        persons=persons_of(app, list(case.parties)),
    )
    rule = app.policy(case.policy_version).duplicates
    return intake, duplicate_area(app.ladder().tree, case.origin_region), rule
