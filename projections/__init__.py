"""Read models built from the event log (see :mod:`projections.base`)."""

from __future__ import annotations

import importlib

from projections.base import Projection

DEFAULT_PROJECTIONS = [
    "projections.cases:CasesProjection",
    "projections.search:SearchProjection",
    # -- more projections here, one line each ("module:Class") --
]


def default_projections() -> list[Projection]:
    """The read models the server and ``fengqiao worker`` keep up to date."""
    found = []
    for path in DEFAULT_PROJECTIONS:
        module, _, name = path.partition(":")
        found.append(getattr(importlib.import_module(module), name)())
    return found
