"""Background workers: ``fengqiao worker`` runs every registered one, each in a thread.

A worker is a function ``(app, stop) -> None`` that works until ``stop`` is set.
Register one with :func:`register_worker`; a module that registers workers is
listed in ``WORKER_MODULES`` (append one line for yours) so the command imports it.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from typing import Any

import structlog

log = structlog.get_logger("fengqiao.worker")

Worker = Callable[[Any, threading.Event], None]
WORKERS: dict[str, Worker] = {}
WORKER_MODULES: list[str] = [
    "projections.worker",
    # -- more worker modules here, one line each --
    "engine.audit.worker",
    "workflows.webhooks",
    "workflows.worker",
]


def register_worker(name: str) -> Callable[[Worker], Worker]:
    def register(worker: Worker) -> Worker:
        WORKERS[name] = worker
        return worker

    return register


def load_workers() -> dict[str, Worker]:
    for module in WORKER_MODULES:
        importlib.import_module(module)
    return WORKERS


@register_worker("projections")
def run_projections(app: Any, stop: threading.Event) -> None:
    """Keep the default read models caught up (``FENGQIAO_PROJECTIONS_BATCH`` events per
    transaction, default 1000)."""
    from projections import default_projections
    from projections.runner import ProjectionRunner

    runner = ProjectionRunner(app, default_projections())
    try:
        runner.run_forever(stop, batch_size=int(os.environ.get("FENGQIAO_PROJECTIONS_BATCH", "1000")))
    finally:
        runner.close()


def run_workers(app: Any, stop: threading.Event, names: list[str] | None = None) -> None:
    """Run the named workers (default: all) until ``stop`` is set or one of them dies."""
    workers = load_workers()
    chosen = names or sorted(workers)
    unknown = [n for n in chosen if n not in workers]
    if unknown:
        raise KeyError(f"unknown workers {unknown}; known: {sorted(workers)}")
    threads = []
    for name in chosen:
        def target(worker: Worker = workers[name], name: str = name) -> None:
            try:
                worker(app, stop)
            finally:
                log.info("worker stopped", worker=name)
                stop.set()

        thread = threading.Thread(target=target, name=f"worker-{name}", daemon=True)
        thread.start()
        threads.append(thread)
        log.info("worker started", worker=name)
    for thread in threads:
        thread.join()
