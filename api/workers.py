"""What ``fengqiao worker`` and ``fengqiao serve --workers`` run: every module that
registers a worker with ``engine.workers`` (append one line for yours)."""

from __future__ import annotations

import threading
from typing import Any

from engine import workers

WORKER_MODULES: list[str] = [
    "projections.worker",
    "engine.audit.worker",
    "workflows.webhooks",
    "workflows.worker",
]


def load_workers() -> dict[str, workers.Worker]:
    """Every worker kind, by name."""
    return workers.load_workers(WORKER_MODULES)


def run_workers(app: Any, stop: threading.Event, names: list[str] | None = None) -> None:
    """Run the named workers (default: all) until ``stop`` is set (``engine.workers.run_workers``)."""
    workers.run_workers(app, stop, names, WORKER_MODULES)
