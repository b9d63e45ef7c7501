"""Background workers for ``fengqiao worker``: the timer service and the router.

Each runs under a leader lease (``engine.leadership``): of several worker processes on
one store, one ticks the timers and one routes; the others stand by. Each command
is fenced (``fence()`` just before it is issued), so a leader whose lock session
is gone issues nothing more.
"""

from __future__ import annotations

import threading
from typing import Any

import structlog

from engine.leadership import LeaseLost
from engine.workers import register_worker

log = structlog.get_logger("fengqiao.workflows")


def _loop(step: Any, stop: threading.Event, poll: float) -> None:
    while not stop.is_set():
        try:
            step()
        except LeaseLost:
            return  # the lock is gone: another process may lead now
        except Exception:  # noqa: BLE001 - a worker must outlive one bad round; commands are idempotent
            log.exception("workflow round failed; retrying")
        stop.wait(poll)


@register_worker("timers")
def run_timers(app: Any, stop: threading.Event, poll: float = 1.0) -> None:
    """Tick the timer service on the engine's clock."""
    from workflows.timers import TimerService

    timers = TimerService(app)
    try:
        _loop(timers.tick_counting, stop, poll)  # the commands issued are not kept
    finally:
        timers.close()


@register_worker("routing")
def run_routing(app: Any, stop: threading.Event, poll: float = 0.5) -> None:
    """Dispatch reported and returned cases."""
    from workflows.routing import Router

    router = Router(app)
    try:
        _loop(router.run_once, stop, poll)
    finally:
        router.close()
