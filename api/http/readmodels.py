"""The projections' read models, if this deployment has them.

``projections.queries`` provides ``ReadModels(db)`` (lists, SLA board, region
statistics) and a ``ProjectionRunner``; routes that need them answer 503
``/problems/not-ready`` while they are missing.
"""

from __future__ import annotations

from typing import Any

from api.http.services import Services
from domain.errors import DomainError


class NotReady(DomainError, code="not_ready"):
    """The projections are not available in this process."""


def read_models(svc: Services) -> Any:
    if svc.read_models is None:
        raise NotReady("the projections are not available in this process")
    return svc.read_models
