"""``fengqiao timers …``: clocks of a case, the timer index, one tick, one routing pass."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, TypeVar
from uuid import UUID

import typer

from api.cli.common import domain_errors, emit, engine
from domain.errors import ValidationFailed

if TYPE_CHECKING:
    from engine.service import Fengqiao

app = typer.Typer(no_args_is_help=True)


class _Closes(Protocol):
    def close(self) -> None: ...


W = TypeVar("W", bound=_Closes)


@contextmanager
def _worker(make: Callable[[Fengqiao], W]) -> Iterator[W]:
    """A worker (timer service, router) on the configured engine, closed before the engine is."""
    with engine() as application:
        worker = make(application)
        try:
            yield worker
        finally:
            worker.close()


def _moment(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationFailed(f"bad time {text!r}: use ISO 8601 with a zone", field="at") from None
    if moment.tzinfo is None:
        raise ValidationFailed("--at needs a time zone, e.g. 2025-10-09T10:00:00+08:00", field="at")
    return moment


@app.command()
def clocks(
    case_id: UUID,
    at: str = typer.Option(None, "--at", help="evaluate at this moment (ISO 8601 with zone)"),
    policy_version: int = typer.Option(
        None,
        "--policy-version",
        help="as-of recalculation under another policy version (writes nothing)",
    ),
) -> None:
    """A case's clocks: state, start, due time, elapsed %."""
    from engine.case_clocks import clocks_of, recalculate

    with engine() as application, domain_errors():
        now = _moment(at)
        states = (
            recalculate(application, case_id, policy_version, now)
            if policy_version
            else clocks_of(application, case_id, now)
        )
        emit([s.view() for s in states])


@app.command()
def due(limit: int = typer.Option(20, min=1, max=10_000)) -> None:
    """The timer index: the earliest thresholds still to fire."""
    from workflows.timers import TimerService

    with _worker(TimerService) as timers:
        timers.runner.run_once()
        emit(timers.db.query("SELECT * FROM timer_index ORDER BY due_at LIMIT ?", (limit,)))


@app.command()
def tick() -> None:
    """Record every clock threshold due now (warnings, breaches, 督办, auto-escalation)."""
    from workflows.timers import TimerService

    with _worker(TimerService) as timers:
        emit(
            [
                {
                    "case_id": str(f.case_id),
                    "clock": f.clock,
                    "action": f.action,
                    "threshold": f.threshold,
                    "at": f.at.isoformat(),
                    "repeated": f.repeated,
                }
                for f in timers.tick()
            ]
        )


@app.command()
def route() -> None:
    """Dispatch every reported or returned case not yet handled by the router."""
    from workflows.routing import Router

    with _worker(Router) as router:
        emit({"handled": router.run_once(), "position": router.position()})
