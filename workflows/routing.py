"""Routing (派单), a process manager: a new or returned case finds its unit.

It follows the event log and reacts to:

* ``Reported`` — dispatch to the responsible unit (policy ``[[routing]]`` table,
  ``domain.routing.responsible_unit``) of the case's region; if the region has
  none, the nearest region up the ladder that has one, **never above the
  case's ceiling** (兜底). Dispatching upwards is an ``Assigned``, not an
  ``Escalated``: nobody handled the case below and failed, so it does not count
  as an escalation. If no unit matches up to the ceiling, a 督办 (``Supervised``)
  asks the ceiling region's supervisor to dispatch it by hand: the case is
  never lost, and never leaves its ceiling.
* ``SentBack`` (退单) — re-dispatch, skipping every unit that sent it back.
* ``Escalated`` with no unit at the new rank — dispatch from there the same way.
* A **critical** case is reported up at once (逐级上报), when reported critical
  or reclassified to critical (``domain.cases.reports_up_at_once``): one ``Commented`` note
  per higher rank up to the county ("逐级上报 → 海通乡 (township)"), so every
  level is informed at once, while handling stays with the dispatched unit.
  Notes, not escalations (the case is handled where it is) and not 督办 (no one
  is being urged; 督办 counts stay true).

首接负责: the first unit assigned stays the case's ``responsible_unit`` while the
case moves on (reassignment, escalation). A send-back (退单: not this unit's duty)
is the explicit hand-back that ends it; the unit dispatched next becomes the
responsible one (the case records this, see ``Case.SentBack``).

Commands carry ids derived from the triggering event, so re-reading events after
a crash records nothing twice. The position followed is kept in
``workflow_positions``.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import structlog
from eventsourcing.utils import get_topic

from domain.actors import SYSTEM_ACTOR
from domain.cases import CASE_CLASSES, Case, Status, reports_up_at_once
from domain.commands import Envelope
from domain.errors import DomainError
from domain.ladder import Rank, RegionTree, Unit
from domain.routing import responsible_unit
from engine.leadership import fence
from engine.sql import Database

log = structlog.get_logger("fengqiao.routing")

ROUTING_ACTOR = SYSTEM_ACTOR
TRIGGERS = ("Reported", "SentBack", "Escalated", "Reclassified")
POSITIONS_DDL = "CREATE TABLE IF NOT EXISTS workflow_positions (name TEXT PRIMARY KEY, position BIGINT NOT NULL)"


def dispatch_unit(
    tree: RegionTree,
    rules: list[dict[str, Any]],
    region: str,
    kind: str,
    category: str,
    ceiling: int,
    excluded: frozenset[str] | set[str] = frozenset(),
) -> Unit | None:
    """The responsible unit of ``region`` or, failing that, of the nearest region
    above it, never above ``ceiling``; units in ``excluded`` are skipped."""
    view = RegionTree(
        tree.regions,
        tree.children,
        {k: u for k, u in tree.units.items() if k not in excluded},
        tree.people,
    )
    for candidate in tree.lineage(region):
        if candidate.rank > ceiling:
            return None
        unit = responsible_unit(view, rules, candidate.code, kind, category)
        if unit is not None:
            return unit
    return None


class Router:
    """Dispatches reported, returned and unowned escalated cases."""

    name = "routing"

    def __init__(self, app: Any, db: Database | None = None) -> None:
        self.app = app
        self.db = db or Database.for_store(app.store, settings=app.settings)
        self._owns_db = db is None
        self.topics = [
            get_topic(getattr(cls, event)) for cls in CASE_CLASSES.values() for event in TRIGGERS
        ]
        with self.db.transaction() as tx:
            tx.execute(POSITIONS_DDL)

    def close(self) -> None:
        if self._owns_db:
            self.db.close()

    def position(self) -> int:
        rows = self.db.query("SELECT position FROM workflow_positions WHERE name = ?", (self.name,))
        return rows[0]["position"] if rows else 0

    def run_once(self, batch: int = 500) -> int:
        """Handle every trigger event after the saved position; return how many."""
        handled = 0
        while True:
            start = self.position()
            notifications = self.app.recorder.select_notifications(
                start + 1, batch, topics=self.topics
            )
            if not notifications:
                return handled
            for notification in notifications:
                self.handle(self.app.mapper.to_domain_event(notification))
            with self.db.transaction() as tx:
                tx.execute(
                    "INSERT INTO workflow_positions (name, position) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                    (self.name, notifications[-1].id),
                )
            handled += len(notifications)

    def handle(self, event: Any) -> None:
        case_id = event.originator_id
        trigger = f"route:{case_id}:{event.originator_version}"
        try:
            redispatch = not isinstance(event, Case.Reclassified) and not (
                isinstance(event, Case.Escalated) and event.unit is not None
            )
            if redispatch:
                self.dispatch(case_id, trigger)
            if reports_up_at_once(event):
                self.report_up(case_id, trigger)
        except DomainError as error:
            log.warning(
                "routing refused", case_id=str(case_id), code=error.code, error=error.message
            )

    def dispatch(self, case_id: UUID, trigger: str) -> None:
        case = self.app.case(case_id)
        if case.status != Status.REPORTED:
            return  # dispatched already (by hand, or by an earlier run of this trigger)
        tree = self.app.ladder().tree
        policy = self.app.policy(case.policy_version)
        unit = dispatch_unit(
            tree,
            policy.routing,
            case.region,
            case.kind,
            case.category,
            case.ceiling,
            case.returned_by,
        )
        if unit is not None:
            self._do(case_id, "assign", {"unit": unit.id}, f"{trigger}:assign")
            return
        ceiling, supervisor = tree.supervisor_at(case.region, case.ceiling)
        note = (
            f"兜底: no unit for a {case.kind} ({case.category}) up to {ceiling.name} "
            f"({Rank(case.ceiling).label}, the ceiling); dispatch by hand"
            + (f", {supervisor}" if supervisor else "")
        )
        self._do(case_id, "supervise", {"note": note}, f"{trigger}:unrouted")

    def sent_back_by(self, case_id: UUID) -> set[str]:
        """Units that returned the case (退单): not asked again (the case records them)."""
        return set(self.app.case(case_id).returned_by)

    def report_up(self, case_id: UUID, trigger: str) -> None:
        """逐级上报: a note for every higher rank, up to the county."""
        case = self.app.case(case_id)
        for region in self.app.ladder().tree.ancestors(case.origin_region):
            text = f"逐级上报 → {region.name} ({Rank(region.rank).label}): critical {case.kind} {case.title}"
            self._do(case_id, "comment", {"text": text}, f"{trigger}:report-up:{region.code}")

    def _do(self, case_id: UUID, action: str, body: dict[str, Any], command_id: str) -> None:
        fence()  # under a worker lease: never issue after the lock is lost
        log.debug("routing", routing_command=command_id)
        result = self.app.do(
            case_id, action, body, Envelope(actor=ROUTING_ACTOR, command_id=command_id)
        )
        log.info(
            "routed",
            case_id=str(case_id),
            action=action,
            repeated=result.repeated,
            routing_command=command_id,
        )
