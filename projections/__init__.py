"""Read models built from the event log (see :mod:`projections.base`)."""

from __future__ import annotations

from projections.base import Projection


def default_projections() -> list[Projection]:
    """The read models the server and ``fengqiao worker`` keep up to date."""
    from projections.cases import CasesProjection

    return [CasesProjection()]
