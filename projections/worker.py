"""Background workers: ``fengqiao worker`` runs every registered one, each in a thread.

A worker is a function ``(app, stop) -> None`` that works until ``stop`` is set.
Register one with :func:`register_worker`; a module that registers workers is
listed in ``WORKER_MODULES`` (append one line for yours) so the command imports it.

Several worker processes may run against one store (``engine.leadership``): each
worker acts under a lease. ``lease="leader"`` (the default): the worker runs only
while its process holds the kind's lock, and its ``stop`` is set when the lock is
lost; the other processes stand by. ``lease="share"``: the worker runs in every
process and is also given a :class:`engine.leadership.Share` to split its keys.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any

import structlog

log = structlog.get_logger("fengqiao.worker")

Worker = Callable[..., None]
WORKERS: dict[str, Worker] = {}
LEASES: dict[str, str] = {}  # worker → "leader" or "share"
WORKER_MODULES: list[str] = [
    "projections.worker",
    # -- more worker modules here, one line each --
    "engine.audit.worker",
    "workflows.webhooks",
    "workflows.worker",
]


def register_worker(name: str, lease: str = "leader") -> Callable[[Worker], Worker]:
    if lease not in ("leader", "share"):
        raise ValueError(f"lease must be 'leader' or 'share', not {lease!r}")

    def register(worker: Worker) -> Worker:
        WORKERS[name] = worker
        LEASES[name] = lease
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
        runner.run_forever(stop, batch_size=app.settings.projections_batch)
    finally:
        runner.close()


def run_workers(app: Any, stop: threading.Event, names: list[str] | None = None) -> None:
    """Run the named workers (default: all), each under its lease, until ``stop`` is set
    or one of them dies."""
    from engine.leadership import Leadership

    workers = load_workers()
    chosen = names or sorted(workers)
    unknown = [n for n in chosen if n not in workers]
    if unknown:
        raise KeyError(f"unknown workers {unknown}; known: {sorted(workers)}")
    leadership = Leadership(app.store, poll=app.settings.lease_poll_seconds,
                            keepalive=app.settings.lease_keepalive_seconds)
    threads = []
    for name in chosen:
        def target(worker: Worker = workers[name], name: str = name) -> None:
            try:
                if LEASES[name] == "share":
                    leadership.member(name, lambda term, share: worker(app, term, share=share), stop)
                else:
                    leadership.lead(name, lambda term: worker(app, term), stop)
            except BaseException:
                log.exception("worker died", worker=name)
                raise
            finally:
                log.info("worker stopped", worker=name)
                stop.set()

        thread = threading.Thread(target=target, name=f"worker-{name}", daemon=True)
        log.info("worker started", worker=name, lease=LEASES[name])
        thread.start()
        threads.append(thread)
    try:
        for thread in threads:
            thread.join()
    finally:
        leadership.close()
