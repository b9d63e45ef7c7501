"""The timer service: record clock thresholds as they fall due, and act on breaches.

Each tick:

1. catch the timer index up with the event log (``workflows.timer_index``);
2. take the cases with a threshold due by now (an index lookup, not a scan);
3. for each, evaluate its clocks and issue, through the service, one command
   per threshold reached and not yet recorded: ``warn-clock`` at each warning,
   ``breach-clock`` at 100%, then the clock's ``on_breach``:

   * ``supervise`` → a 督办 ``Supervised`` notice;
   * ``escalate`` → up one rank (高台 四级七天); at the ceiling no escalation but
     a 督办 for the ceiling rank's supervisor (小事不出村: the case stays there).

Every command's id is derived from the case, the clock, its leg (cycle and
extension) and the threshold (``warn:0.5``, ``breach``, ``on-breach``: one slot
for the breach action, so escalate-or-supervise is decided once), so a restart — or two timer services racing —
records each crossing exactly once: a repeat is answered, not re-recorded. The
events carry the crossing instant as ``occurred_at`` and the service's clock as
recorded time, so a late tick (after downtime) still shows when the threshold
was really crossed.

The return visit (回访) needs no special code: the ``return_visit`` clock starts
on ``Resolved`` and this service warns and breaches it like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import structlog

from domain.actors import SYSTEM_ACTOR
from domain.clocks import ClockState
from domain.commands import Envelope
from domain.errors import DomainError
from domain.ladder import Rank
from engine.case_clocks import clocks_of
from engine.leadership import fence
from engine.sql import Database
from projections.runner import ProjectionRunner
from workflows.timer_index import TimerIndex, due_cases, next_due

log = structlog.get_logger("fengqiao.timers")

MAX_ROUNDS = 20


@dataclass(frozen=True)
class Fired:
    """One command the timer service issued (``repeated``: it had been issued before)."""

    case_id: UUID
    clock: str
    action: str
    threshold: float
    at: datetime
    repeated: bool


def command_id(case_id: UUID, state: ClockState, what: str) -> str:
    """Stable per case, clock, leg and threshold (or breach action)."""
    return f"timer:{case_id}:{state.name}:{state.leg}:{what}"


class TimerService:
    """Finds due clock thresholds through the index and records them."""

    def __init__(self, app: Any, db: Database | None = None, batch: int = 500) -> None:
        self.app = app
        self.runner = ProjectionRunner(app, [TimerIndex(app)], db)
        self.db = self.runner.db
        self.batch = batch

    def close(self) -> None:
        self.runner.close()

    # -- ticking ---------------------------------------------------------------

    def tick(self, now: datetime | None = None) -> list[Fired]:
        """Record every threshold due by ``now`` (default: the engine's clock)."""
        fired: list[Fired] = []
        self._tick(now, fired.extend)
        return fired

    def tick_counting(self, now: datetime | None = None) -> int:
        """:meth:`tick` keeping only the count (the worker's): after a backlog (a store
        whose clocks went overdue while no worker ran) one tick runs up to ``MAX_ROUNDS``
        rounds of ``batch`` cases for minutes, and the list would hold every command
        issued meanwhile (~350 bytes each; docs/performance-log.md, Memory)."""
        count = 0

        def add(fresh: list[Fired]) -> None:
            nonlocal count
            count += len(fresh)

        self._tick(now, add)
        return count

    def _tick(self, now: datetime | None, issued: Callable[[list[Fired]], None]) -> None:
        now = now or self.app.clock.now()
        for _ in range(MAX_ROUNDS):  # a breach may start a new cycle that is due already
            self.runner.run_once()
            fresh = [
                f
                for case_id, _ in due_cases(self.db, now, self.batch)
                for f in self.fire(case_id, now)
            ]
            issued(fresh)
            if all(f.repeated for f in fresh):
                break

    def next_due(self) -> datetime | None:
        """The earliest threshold still to fire (after catching up)."""
        self.runner.run_once()
        return next_due(self.db)

    def run_until(self, clock: Any, end: datetime) -> list[Fired]:
        """Simulation: move a ``SimulatedClock`` from threshold to threshold up to
        ``end``, ticking at each, then to ``end``."""
        fired: list[Fired] = []
        while (due := self.next_due()) is not None and due <= end:
            if due > clock.now():
                clock.set(due)
            fired.extend(self.tick())
        if end > clock.now():
            clock.set(end)
        fired.extend(self.tick())
        return fired

    # -- one case ----------------------------------------------------------------

    def fire(self, case_id: UUID, now: datetime) -> list[Fired]:
        """Issue the commands for every threshold of the case due by ``now``."""
        fired: list[Fired] = []
        # every event recorded so far counts, including this tick's own (recorded after ``now``)
        for state in clocks_of(self.app, case_id, max(now, self.app.clock.now())):
            for threshold, at in state.due_thresholds(now):
                try:
                    fired.extend(self._cross(case_id, state, threshold, at))
                except DomainError as error:
                    log.warning(
                        "timer command refused",
                        case_id=str(case_id),
                        clock=state.name,
                        threshold=threshold,
                        code=error.code,
                        error=error.message,
                    )
        return fired

    def _cross(
        self, case_id: UUID, state: ClockState, threshold: float, at: datetime
    ) -> list[Fired]:
        if threshold != state.breach_threshold:
            body = {"clock": state.name, "threshold": threshold, "due_at": state.due_at}
            return [
                self._do(case_id, state, "warn-clock", body, f"warn:{threshold}", threshold, at)
            ]
        body = {"clock": state.name, "due_at": state.due_at}
        done = [self._do(case_id, state, "breach-clock", body, "breach", threshold, at)]
        if state.on_breach == "supervise":
            note = f"督办: {state.title or state.clock} overdue since {at.isoformat()}"
            done.append(self._supervise(case_id, state, note, threshold, at))
        elif state.on_breach == "escalate":
            done.append(self._escalate(case_id, state, threshold, at))
        return done

    def _escalate(self, case_id: UUID, state: ClockState, threshold: float, at: datetime) -> Fired:
        """Up one rank within the ceiling; at the ceiling a 督办 for its supervisor."""
        case = self.app.case(case_id)
        tree = self.app.ladder().tree
        up = tree.next_rank_up(case.region)
        if up is not None and up.rank <= case.ceiling:
            reason = (
                f"{state.title or state.clock}: not settled at {Rank(case.rank).label} "
                f"by {state.due_at.isoformat()}; escalated automatically"
            )
            return self._do(
                case_id, state, "escalate", {"reason": reason}, "on-breach", threshold, at
            )
        region, supervisor = tree.supervisor_at(case.region, case.ceiling)
        note = (
            f"督办: {state.title or state.clock} overdue at {Rank(case.rank).label}, the ceiling "
            f"for a {case.severity} case; no escalation. For the supervisor of {region.name}"
            + (f" ({supervisor})" if supervisor else "")
        )
        return self._supervise(case_id, state, note, threshold, at)

    def _supervise(
        self, case_id: UUID, state: ClockState, note: str, threshold: float, at: datetime
    ) -> Fired:
        """督办 on the clock's breach."""
        body = {"note": note, "clock": state.name}
        return self._do(case_id, state, "supervise", body, "on-breach", threshold, at)

    def _do(
        self,
        case_id: UUID,
        state: ClockState,
        action: str,
        body: dict[str, Any],
        what: str,
        threshold: float,
        at: datetime,
    ) -> Fired:
        envelope = Envelope(
            actor=SYSTEM_ACTOR, command_id=command_id(case_id, state, what), occurred_at=at
        )
        fence()  # under a worker lease: never issue after the lock is lost
        log.debug("timer firing", timer_command=envelope.command_id)
        result = self.app.do(case_id, action, body, envelope)
        log.info(
            "timer fired",
            case_id=str(case_id),
            clock=state.name,
            action=action,
            threshold=threshold,
            repeated=result.repeated,
            timer_command=envelope.command_id,
        )
        return Fired(case_id, state.name, action, threshold, at, result.repeated)
