"""The worker registry: ``fengqiao worker`` runs every registered worker, each in a thread.

A worker is a function ``(app, stop) -> None`` that works until ``stop`` is set.
Every kind registers here with :func:`register_worker` (projections, checkpoints,
timers, routing, webhooks), so any layer may register one without importing
another; the modules that register are listed in ``api/workers.py``
(``WORKER_MODULES``), which imports them before :func:`run_workers`.

Several worker processes may run against one store (``engine.leadership``): each
worker acts under a lease. ``lease="leader"`` (the default): the worker runs only
while its process holds the kind's lock, and its ``stop`` is set when the lock is
lost; the other processes stand by. ``lease="share"``: the worker runs in every
process and is also given a :class:`engine.leadership.Share` to split its keys.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Sequence
from typing import Any

import structlog

log = structlog.get_logger("fengqiao.worker")

Worker = Callable[..., None]
WORKERS: dict[str, Worker] = {}
LEASES: dict[str, str] = {}  # worker → "leader" or "share"


def register_worker(name: str, lease: str = "leader") -> Callable[[Worker], Worker]:
    if lease not in ("leader", "share"):
        raise ValueError(f"lease must be 'leader' or 'share', not {lease!r}")

    def register(worker: Worker) -> Worker:
        WORKERS[name] = worker
        LEASES[name] = lease
        return worker

    return register


def load_workers(modules: Sequence[str] = ()) -> dict[str, Worker]:
    """Import ``modules`` (each registers its workers); every registered worker."""
    for module in modules:
        importlib.import_module(module)
    return WORKERS


def run_workers(
    app: Any, stop: threading.Event, names: list[str] | None = None, modules: Sequence[str] = ()
) -> None:
    """Run the named workers (default: all registered once ``modules`` are imported),
    each under its lease, until ``stop`` is set or one of them dies."""
    from engine.leadership import Leadership

    workers = load_workers(modules)
    chosen = names or sorted(workers)
    unknown = [n for n in chosen if n not in workers]
    if unknown:
        raise KeyError(f"unknown workers {unknown}; known: {sorted(workers)}")
    leadership = Leadership(app.store)
    threads = []
    for name in chosen:

        def target(worker: Worker = workers[name], name: str = name) -> None:
            try:
                if LEASES[name] == "share":
                    leadership.member(
                        name, lambda term, share: worker(app, term, share=share), stop
                    )
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
