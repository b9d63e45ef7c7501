"""The ``projections`` background worker: keeps the default read models caught up."""

from __future__ import annotations

import threading
from typing import Any

from engine.workers import register_worker


@register_worker("projections")
def run_projections(app: Any, stop: threading.Event) -> None:
    """Keep the default read models caught up (``FENGQIAO_PROJECTIONS_BATCH`` events per
    transaction, default 1000)."""
    from projections import default_projections
    from projections.runner import ProjectionRunner

    runner = ProjectionRunner(app, default_projections())
    try:
        runner.run_forever(stop, batch_size=app.settings.projections_batch)
    finally:
        runner.close()
