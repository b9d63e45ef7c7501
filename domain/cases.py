"""The three kinds of case: 矛盾纠纷 disputes, 安全隐患 hazards, 诉求 petitions.

Each case is an event-sourced aggregate. A public method is a command: it checks
the rules and, if they hold, records one event. An event's ``apply`` only changes
state, so replaying the stored events rebuilds the case exactly.

Every event carries who acted (``actor``), when it happened (``occurred_at``, may
be earlier than recording: offline grid workers), when it was recorded
(``timestamp``), the command that caused it (``command_id``, for idempotency) and
the policy version the case runs under.

The rule above all: 小事不出村、大事不出乡、矛盾不上交. A case may not be handled
above its severity's ceiling unless it was first reclassified (重新定性), with a
written reason, by someone at the ceiling rank.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, NoReturn
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.actors import Actor, Role
from domain.errors import EscalationCeiling, InvalidTransition, NotPermitted, ValidationFailed
from domain.ladder import Rank
from domain.policy import Kind, Severity

CLOCK_SKEW = timedelta(minutes=5)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # no act of this service happened before it
MAX_BACKDATE = timedelta(days=7)  # the policy's max_backdate when a stamp names none
SEND_BACK_CLOCK = "send_back"  # the policy clock whose breach closes the 退单 window


class Status(StrEnum):
    REPORTED = "reported"  # 已上报, awaiting dispatch
    ASSIGNED = "assigned"  # 已派单
    ACCEPTED = "accepted"  # 已签收
    IN_PROGRESS = "in_progress"  # 办理中
    RESOLVED = "resolved"  # 已化解 / 已办结
    CLOSED = "closed"  # 已结案


OPEN = frozenset({Status.REPORTED, Status.ASSIGNED, Status.ACCEPTED, Status.IN_PROGRESS})
WORKING = frozenset({Status.ACCEPTED, Status.IN_PROGRESS})


class Outcome(StrEnum):
    AGREED = "agreed"  # 调解成功
    FAILED = "failed"  # 调解不成
    ADJOURNED = "adjourned"  # 择期再调


class Satisfaction(StrEnum):
    SATISFIED = "satisfied"  # 满意
    BASICALLY_SATISFIED = "basically_satisfied"  # 基本满意
    DISSATISFIED = "dissatisfied"  # 不满意


class HazardLevel(StrEnum):
    GENERAL = "general"  # 一般隐患
    MAJOR = "major"  # 重大隐患


CATEGORIES: dict[Kind, tuple[str, ...]] = {
    Kind.DISPUTE: ("neighbours", "marriage_family", "property", "wages", "land", "damages", "other"),
    Kind.HAZARD: ("fire", "gas", "electrical", "building", "production", "drowning", "small_venues", "other"),
    Kind.PETITION: (
        "utilities", "environment", "traffic", "housing", "social_security", "public_order", "services", "other",
    ),
}


@dataclass(frozen=True)
class Stamp:
    """Who issues a command, why it is unique, and when."""

    actor: Actor
    command_id: str
    recorded_at: datetime
    occurred_at: datetime | None = None
    max_backdate: timedelta = MAX_BACKDATE  # the policy's max_backdate

    def when(self, not_before: datetime | None = None) -> datetime:
        """When the act happened: as reported, never later than it was recorded (5
        minutes of clock skew allowed), never before 2000-01-01, never more than
        ``max_backdate`` before it was recorded (a person's act; a process — the timers,
        role ``system`` — records instants computed from the case, however late it runs),
        and never before ``not_before`` (the report's own ``occurred_at``)."""
        occurred = self.occurred_at or self.recorded_at
        if occurred.tzinfo is None:
            raise ValidationFailed("occurred_at needs a time zone", field="occurred_at")
        if occurred > self.recorded_at + CLOCK_SKEW:
            raise ValidationFailed(
                "occurred_at is in the future", field="occurred_at", occurred_at=occurred.isoformat()
            )
        backdate = None if self.actor.role == Role.SYSTEM else self.recorded_at - self.max_backdate
        for floor, why in ((EARLIEST, "before 2000-01-01"),
                           (backdate, f"more than {self.max_backdate} before it is recorded"),
                           (not_before, "earlier than the case's report")):
            if floor is not None and occurred < floor:
                raise ValidationFailed(f"occurred_at is {why}", field="occurred_at",
                                       occurred_at=occurred.isoformat(), earliest=floor.isoformat())
        return occurred


def responsible_after_send_back(responsible_unit: str | None, unit: str | None) -> str | None:
    """首接负责 after a send-back (退单) by ``unit``: it ends when the responsible unit
    itself hands the case back; another unit's send-back leaves it."""
    return None if responsible_unit == unit else responsible_unit


def case_id_for(command_id: str) -> UUID:
    """A case's id follows from the command that reported it: a repeated report
    with the same command id cannot create a second case."""
    return uuid5(NAMESPACE_URL, f"fengqiao:case:{command_id}")


def _required(text: str | None, field: str) -> str:
    if text is None or not str(text).strip():
        raise ValidationFailed(f"{field} is required", field=field)
    return str(text).strip()


class Case(Aggregate):
    """What every kind of case shares: dispatch, escalation, clocks, closure."""

    kind = Kind.DISPUTE  # each kind's class sets its own (no annotation: aggregates with
    # annotations become dataclasses in eventsourcing, with generated __init__ methods)

    # -- events ----------------------------------------------------------------

    class Event(Aggregate.Event):
        actor: Actor
        occurred_at: datetime
        command_id: str
        policy_version: int

        def mutate(self, case: Case | None) -> Case | None:
            case = super().mutate(case)
            case.processed_commands[self.command_id] = self.originator_version
            return case

    class Reported(Aggregate.Created):
        actor: Actor
        occurred_at: datetime
        command_id: str
        policy_version: int
        kind: str
        category: str
        severity: str
        region: str
        rank: int
        profile: str
        ceilings: dict
        title: str
        description: str
        channel: str
        parties: list
        details: dict

    class Assigned(Event):
        assignee: str | None
        unit: str | None
        region: str
        rank: int

        def apply(self, case: Case) -> None:
            case.assignee, case.unit = self.assignee, self.unit
            case.region, case.rank = self.region, self.rank
            case.send_back_closed = False  # a new dispatch opens a new send-back window
            case.responsible_unit = case.responsible_unit or self.unit
            case.status = Status.ASSIGNED

    class Accepted(Event):
        def apply(self, case: Case) -> None:
            case.status = Status.ACCEPTED

    class SentBack(Event):
        reason: str

        def apply(self, case: Case) -> None:
            case.responsible_unit = responsible_after_send_back(case.responsible_unit, case.unit)
            if case.unit:
                case.returned_by.add(case.unit)
            case.assignee = case.unit = None
            case.status = Status.REPORTED

    class Escalated(Event):
        from_rank: int
        to_rank: int
        from_region: str
        to_region: str
        unit: str | None
        reason: str

        def apply(self, case: Case) -> None:
            case.region, case.rank = self.to_region, self.to_rank
            case.assignee, case.unit = None, self.unit
            case.status = Status.ASSIGNED if self.unit else Status.REPORTED
            case.escalations += 1

    class Reclassified(Event):
        from_severity: str
        to_severity: str
        reason: str
        upward: bool

        def apply(self, case: Case) -> None:
            case.severity = Severity(self.to_severity)
            if self.upward:
                case.reclassified_up += 1

    class Suspended(Event):
        reason: str

        def apply(self, case: Case) -> None:
            case.suspended = True

    class Resumed(Event):
        def apply(self, case: Case) -> None:
            case.suspended = False

    class Extended(Event):
        clock: str
        days: int | None
        due_at: datetime | None
        reason: str
        approver: str

        def apply(self, case: Case) -> None:
            case.extensions.append({"clock": self.clock, "days": self.days, "due_at": self.due_at})

    class Whistled(Event):
        departments: list
        reason: str

        def apply(self, case: Case) -> None:
            for department in self.departments:
                case.whistled.setdefault(department, None)

    class CheckedIn(Event):
        department: str

        def apply(self, case: Case) -> None:
            case.whistled[self.department] = self.occurred_at

    class Commented(Event):
        text: str
        attachments: list

    class Supervised(Event):
        note: str
        clock: str | None

        def apply(self, case: Case) -> None:
            case.supervisions += 1

    class ClockWarned(Event):
        clock: str
        threshold: float
        due_at: datetime

    class ClockBreached(Event):
        clock: str
        due_at: datetime

        def apply(self, case: Case) -> None:
            case.breached_clocks.add(self.clock)
            if self.clock == SEND_BACK_CLOCK:
                case.send_back_closed = True

    class Resolved(Event):
        resolution: str
        rank: int
        region: str

        def apply(self, case: Case) -> None:
            case.status = Status.RESOLVED
            case.resolution, case.resolved_rank = self.resolution, self.rank

    class Closed(Event):
        def apply(self, case: Case) -> None:
            case.status = Status.CLOSED

    class Reopened(Event):
        reason: str

        def apply(self, case: Case) -> None:
            case.status = Status.IN_PROGRESS
            case.resolution = case.resolved_rank = None
            case.reopened += 1

    # -- state -----------------------------------------------------------------

    def __init__(
        self,
        *,
        actor: Actor,
        occurred_at: datetime,
        command_id: str,
        policy_version: int,
        kind: str,
        category: str,
        severity: str,
        region: str,
        rank: int,
        profile: str,
        ceilings: dict,
        title: str,
        description: str,
        channel: str,
        parties: list,
        details: dict,
    ) -> None:
        self.kind = Kind(kind)
        self.category = category
        self.severity = Severity(severity)
        self.origin_region = self.region = region
        self.rank = rank
        self.profile = profile
        self.ceilings = {Severity(k): int(v) for k, v in ceilings.items()}
        self.policy_version = policy_version
        self.title, self.description, self.channel = title, description, channel
        self.parties = parties
        self.details = details
        self.reporter = actor
        self.occurred_at = occurred_at
        self.status = Status.REPORTED
        self.assignee: str | None = None
        self.unit: str | None = None
        self.responsible_unit: str | None = None  # 首接负责: the first unit stays responsible
        self.returned_by: set[str] = set()  # units that sent the case back (退单): not asked again
        self.suspended = False
        self.whistled: dict[str, datetime | None] = {}
        self.extensions: list[dict[str, Any]] = []
        self.breached_clocks: set[str] = set()
        self.send_back_closed = False  # the send-back clock breached since the last dispatch
        self.resolution: str | None = None
        self.resolved_rank: int | None = None
        self.escalations = self.reclassified_up = self.supervisions = self.reopened = 0
        self.processed_commands: dict[str, int] = {}  # command id → version it produced
        self.init_kind_state()

    def init_kind_state(self) -> None:
        """Kind-specific initial state; the base kind has none."""

    @property
    def ceiling(self) -> int:
        return self.ceilings[self.severity]

    @property
    def reported_at(self) -> datetime:
        return self.created_on

    # -- reporting ---------------------------------------------------------------

    @classmethod
    def report(
        cls,
        stamp: Stamp,
        *,
        policy_version: int,
        category: str,
        severity: str,
        region: str,
        rank: int,
        profile: str,
        ceilings: dict[str, int],
        title: str,
        description: str = "",
        channel: str = "grid",
        parties: list[dict[str, Any]] | None = None,
        details: dict[str, Any] | None = None,
    ) -> Case:
        if category not in CATEGORIES[cls.kind]:
            raise ValidationFailed(
                f"unknown {cls.kind} category {category!r}",
                field="category",
                allowed=list(CATEGORIES[cls.kind]),
            )
        try:
            severity = Severity(severity)
        except ValueError:
            raise ValidationFailed(f"unknown severity {severity!r}", field="severity") from None
        details = cls.check_details(severity, dict(details or {}))
        case = cls._create(
            cls.Reported,
            id=case_id_for(stamp.command_id),
            timestamp=stamp.recorded_at,
            actor=stamp.actor,
            occurred_at=stamp.when(),
            command_id=stamp.command_id,
            policy_version=policy_version,
            kind=str(cls.kind),
            category=category,
            severity=str(severity),
            region=region,
            rank=int(rank),
            profile=str(profile),
            ceilings=dict(ceilings),
            title=_required(title, "title"),
            description=description or "",
            channel=channel or "grid",
            parties=list(parties or []),
            details=details,
        )
        return case

    @classmethod
    def check_details(cls, severity: Severity, details: dict[str, Any]) -> dict[str, Any]:
        """Kind-specific report fields; the base kind takes none."""
        return details

    # -- the commands shared by every kind --------------------------------------------

    def _record(self, event_class: type[Case.Event], stamp: Stamp, **fields: Any) -> None:
        self.trigger_event(
            event_class,
            timestamp=stamp.recorded_at,
            actor=stamp.actor,
            occurred_at=stamp.when(not_before=self.occurred_at),
            command_id=stamp.command_id,
            policy_version=self.policy_version,
            **fields,
        )

    def _refuse(self, action: str, message: str, **details: Any) -> NoReturn:
        """Refuse ``action``: the case is not in a state that allows it."""
        raise InvalidTransition(message, action=action, status=str(self.status), **details)

    def _require_status(self, action: str, allowed: frozenset[Status] | set[Status]) -> None:
        if self.status not in allowed:
            self._refuse(
                action,
                f"cannot {action} a case that is {self.status}",
                allowed=sorted(str(s) for s in allowed),
            )

    def _require_not_suspended(self, action: str) -> None:
        if self.suspended:
            self._refuse(action, f"cannot {action} a suspended case; resume it first", suspended=True)

    def _require_within_ceiling(self, rank: int, action: str) -> None:
        if rank > self.ceiling:
            raise EscalationCeiling(
                f"a {self.severity} case may not be handled above {Rank(self.ceiling).label} "
                "unless it is first reclassified by the ceiling rank",
                action=action,
                severity=str(self.severity),
                ceiling=Rank(self.ceiling).label,
                requested=Rank(rank).label,
            )

    def assign(self, stamp: Stamp, *, assignee: str | None, unit: str | None, region: str, rank: int) -> None:
        """派单: give the case to a handler or unit; they work it at their region's rank."""
        self._require_status("assign", {Status.REPORTED, Status.ASSIGNED, Status.ACCEPTED, Status.IN_PROGRESS})
        if not assignee and not unit:
            raise ValidationFailed("assign needs an assignee or a unit", field="assignee")
        self._require_within_ceiling(rank, "assign")
        self._record(self.Assigned, stamp, assignee=assignee, unit=unit, region=region, rank=int(rank))

    def accept(self, stamp: Stamp) -> None:
        """签收: the assigned handler signs for the case."""
        self._require_status("accept", {Status.ASSIGNED})
        self._record(self.Accepted, stamp)

    def send_back(self, stamp: Stamp, *, reason: str) -> None:
        """退单: not this unit's duty; back to dispatch with a reason."""
        self._require_status("send back", {Status.ASSIGNED, Status.ACCEPTED})
        if self.send_back_closed:
            self._refuse(
                "send-back",
                "the send-back window (退单时限) has passed: the unit handles the case or asks for it to be reassigned",
                clock=SEND_BACK_CLOCK,
            )
        self._record(self.SentBack, stamp, reason=_required(reason, "reason"))

    def escalate(self, stamp: Stamp, *, to_rank: int, to_region: str, unit: str | None, reason: str) -> None:
        """上报: move the case up the ladder, never above its ceiling."""
        reason = _required(reason, "reason")
        self.check_escalation(to_rank)
        self._record(
            self.Escalated,
            stamp,
            from_rank=self.rank,
            to_rank=int(to_rank),
            from_region=self.region,
            to_region=to_region,
            unit=unit,
            reason=reason,
        )

    def check_escalation(self, to_rank: int) -> None:
        """An escalation goes up, from an open case, and never above the ceiling."""
        self._require_status("escalate", OPEN)
        if to_rank <= self.rank:
            self._refuse(
                "escalate",
                f"escalation must go up: the case is at {Rank(self.rank).label}",
                rank=Rank(self.rank).label,
                requested=Rank(to_rank).label,
            )
        self._require_within_ceiling(to_rank, "escalate")

    def reclassify(self, stamp: Stamp, *, severity: str, reason: str) -> None:
        """重新定性: change the severity. Upwards only by someone at the current ceiling
        rank, with a written reason; each such change counts as 矛盾上交."""
        self._require_status("reclassify", OPEN)
        reason = _required(reason, "reason")
        try:
            new = Severity(severity)
        except ValueError:
            raise ValidationFailed(f"unknown severity {severity!r}", field="severity") from None
        if new == self.severity:
            self._refuse("reclassify", f"the case is already {new}")
        upward = new.order > self.severity.order
        actor_rank = stamp.actor.rank
        if upward and actor_rank != self.ceiling:
            raise NotPermitted(
                f"only someone at the ceiling rank ({Rank(self.ceiling).label}) may reclassify "
                f"a {self.severity} case upwards",
                action="reclassify",
                ceiling=Rank(self.ceiling).label,
                actor_rank=Rank(actor_rank).label if actor_rank is not None else None,
            )
        if not upward and self.rank > self.ceilings[new]:
            raise EscalationCeiling(
                f"the case is handled at {Rank(self.rank).label}, above the {new} ceiling",
                action="reclassify",
                severity=str(new),
                ceiling=Rank(self.ceilings[new]).label,
                requested=Rank(self.rank).label,
            )
        self._record(
            self.Reclassified,
            stamp,
            from_severity=str(self.severity),
            to_severity=str(new),
            reason=reason,
            upward=upward,
        )

    def suspend(self, stamp: Stamp, *, reason: str) -> None:
        """挂起: pause the clocks (with approval)."""
        self._require_status("suspend", OPEN)
        if self.suspended:
            self._refuse("suspend", "the case is already suspended")
        self._record(self.Suspended, stamp, reason=_required(reason, "reason"))

    def resume(self, stamp: Stamp) -> None:
        if not self.suspended:
            self._refuse("resume", "the case is not suspended")
        self._record(self.Resumed, stamp)

    def extend(
        self, stamp: Stamp, *, clock: str, days: int | None, due_at: datetime | None, reason: str
    ) -> None:
        """延期: move a clock's due time, approved, with a reason."""
        self._require_status("extend", OPEN | {Status.RESOLVED})
        if (days is None) == (due_at is None):
            raise ValidationFailed("extend needs exactly one of days or due_at", field="days")
        if days is not None and days <= 0:
            raise ValidationFailed("days must be positive", field="days")
        self._record(
            self.Extended,
            stamp,
            clock=_required(clock, "clock"),
            days=days,
            due_at=due_at,
            reason=_required(reason, "reason"),
            approver=stamp.actor.id,
        )

    def whistle(self, stamp: Stamp, *, departments: list[str], reason: str) -> None:
        """吹哨: summon named departments, each of which must check in (报到)."""
        self._require_status("whistle", OPEN)
        departments = [d.strip() for d in departments if d and d.strip()]
        if not departments:
            raise ValidationFailed("whistle names at least one department", field="departments")
        self._record(self.Whistled, stamp, departments=departments, reason=_required(reason, "reason"))

    def check_in(self, stamp: Stamp, *, department: str) -> None:
        """报到: a summoned department checks in on the case."""
        if department not in self.whistled:
            self._refuse("check-in", f"{department!r} was not summoned to this case")
        if self.whistled[department] is not None:
            self._refuse("check-in", f"{department!r} has already checked in")
        self._record(self.CheckedIn, stamp, department=department)

    def comment(self, stamp: Stamp, *, text: str, attachments: list[str] | None = None) -> None:
        self._record(self.Commented, stamp, text=_required(text, "text"), attachments=list(attachments or []))

    def supervise(self, stamp: Stamp, *, note: str, clock: str | None = None) -> None:
        """督办: a supervision notice on the case."""
        self._require_status("supervise", OPEN | {Status.RESOLVED})
        self._record(self.Supervised, stamp, note=_required(note, "note"), clock=clock)

    def warn_clock(self, stamp: Stamp, *, clock: str, threshold: float, due_at: datetime) -> None:
        self._record(self.ClockWarned, stamp, clock=clock, threshold=threshold, due_at=due_at)

    def breach_clock(self, stamp: Stamp, *, clock: str, due_at: datetime) -> None:
        self._record(self.ClockBreached, stamp, clock=clock, due_at=due_at)

    def resolve(self, stamp: Stamp, *, resolution: str) -> None:
        """化解 / 办结: the matter is settled at the current rank."""
        self._require_status("resolve", WORKING)
        self._require_not_suspended("resolve")
        self.check_resolvable()
        self._record(self.Resolved, stamp, resolution=_required(resolution, "resolution"), rank=self.rank, region=self.region)

    def check_resolvable(self) -> None:
        """Kind-specific conditions for resolution; none for the base kind."""

    def close(self, stamp: Stamp) -> None:
        """结案."""
        self._require_status("close", {Status.RESOLVED})
        self.check_closable()
        self._record(self.Closed, stamp)

    def check_closable(self) -> None:
        """Kind-specific conditions for closing; none for the base kind."""

    def reopen(self, stamp: Stamp, *, reason: str) -> None:
        self._require_status("reopen", {Status.RESOLVED, Status.CLOSED})
        self._record(self.Reopened, stamp, reason=_required(reason, "reason"))

    def _start_work(self, action: str) -> None:
        self._require_status(action, WORKING)
        self._require_not_suspended(action)


class Dispute(Case):
    """矛盾纠纷, mediated under the People's Mediation Law (人民调解法)."""

    kind = Kind.DISPUTE

    class MediationHeld(Case.Event):
        outcome: str
        summary: str
        agreement: str | None

        def apply(self, case: Dispute) -> None:
            case.status = Status.IN_PROGRESS
            case.mediations.append(self.outcome)
            if self.outcome == Outcome.AGREED:
                case.agreement = self.agreement

    class CourtConfirmationApplied(Case.Event):
        note: str

        def apply(self, case: Dispute) -> None:
            case.court_confirmation_applied = True

    def init_kind_state(self) -> None:
        self.mediations: list[str] = []
        self.agreement: str | None = None
        self.court_confirmation_applied = False

    def mediate(self, stamp: Stamp, *, outcome: str, summary: str, agreement: str | None = None) -> None:
        """调解: one session and its outcome. Agreement needs its text (written 调解协议书
        or the mediator's record of an oral agreement)."""
        self._start_work("mediate")
        try:
            outcome = Outcome(outcome)
        except ValueError:
            raise ValidationFailed(f"unknown outcome {outcome!r}", field="outcome") from None
        if self.agreement is not None:
            self._refuse("mediate", "the parties have already agreed")
        if outcome == Outcome.AGREED:
            agreement = _required(agreement, "agreement")
        self._record(self.MediationHeld, stamp, outcome=str(outcome), summary=_required(summary, "summary"), agreement=agreement)

    def apply_court_confirmation(self, stamp: Stamp, *, note: str) -> None:
        """司法确认: the parties jointly apply to court within 30 days of the agreement."""
        if self.agreement is None:
            self._refuse("court-confirmation", "there is no agreement to confirm")
        if self.court_confirmation_applied:
            self._refuse("court-confirmation", "court confirmation was already applied for")
        self._record(self.CourtConfirmationApplied, stamp, note=_required(note, "note"))

    def check_resolvable(self) -> None:
        if not self.mediations or self.mediations[-1] == Outcome.ADJOURNED:
            self._refuse(
                "resolve",
                "a dispute is resolved after a mediation that agreed or failed "
                "(failure: the parties were told of arbitration, administrative and court routes)",
            )


class Hazard(Case):
    """安全隐患: found → rectification notice → rectified → re-inspection → sign-off (销号)."""

    kind = Kind.HAZARD

    class RectificationOrdered(Case.Event):
        deadline: datetime
        measures: str
        plan: dict

        def apply(self, case: Hazard) -> None:
            case.status = Status.IN_PROGRESS
            case.rectification = "ordered"
            case.deadline = self.deadline

    class Rectified(Case.Event):
        note: str

        def apply(self, case: Hazard) -> None:
            case.rectification = "rectified"

    class Reinspected(Case.Event):
        passed: bool
        note: str

        def apply(self, case: Hazard) -> None:
            case.rectification = "passed" if self.passed else "ordered"

    PLAN_FIELDS = ("funds", "people", "interim_measures")

    def init_kind_state(self) -> None:
        self.rectification: str | None = None
        self.deadline: datetime | None = None

    @property
    def level(self) -> HazardLevel:
        return HazardLevel(self.details.get("hazard_level", HazardLevel.GENERAL))

    @classmethod
    def check_details(cls, severity: Severity, details: dict[str, Any]) -> dict[str, Any]:
        level = details.get("hazard_level") or (HazardLevel.MAJOR if severity == Severity.CRITICAL else HazardLevel.GENERAL)
        try:
            details["hazard_level"] = str(HazardLevel(level))
        except ValueError:
            raise ValidationFailed(f"unknown hazard_level {level!r}", field="hazard_level") from None
        return details

    def order_rectification(
        self, stamp: Stamp, *, deadline: datetime, measures: str, plan: dict[str, Any] | None = None
    ) -> None:
        """限时整改: a notice with a deadline; a 重大隐患 needs a plan with measures,
        funds, people, deadline and interim safety measures."""
        self._start_work("order rectification")
        if self.rectification in ("ordered", "rectified", "passed"):
            self._refuse("order-rectification", f"rectification is already {self.rectification}")
        if deadline.tzinfo is None:
            raise ValidationFailed("deadline needs a time zone", field="deadline")
        if deadline <= stamp.when():
            raise ValidationFailed("the deadline must be after the notice", field="deadline")
        plan = dict(plan or {})
        if self.level == HazardLevel.MAJOR:
            for name in self.PLAN_FIELDS:
                _required(plan.get(name), f"plan.{name}")
        self._record(self.RectificationOrdered, stamp, deadline=deadline, measures=_required(measures, "measures"), plan=plan)

    def rectify(self, stamp: Stamp, *, note: str) -> None:
        self._start_work("rectify")
        if self.rectification != "ordered":
            self._refuse("rectify", "there is no open rectification notice")
        self._record(self.Rectified, stamp, note=_required(note, "note"))

    def reinspect(self, stamp: Stamp, *, passed: bool, note: str) -> None:
        """复查: a failed re-inspection reopens the rectification."""
        self._start_work("reinspect")
        if self.rectification != "rectified":
            self._refuse("reinspect", "nothing has been rectified to re-inspect")
        self._record(self.Reinspected, stamp, passed=bool(passed), note=_required(note, "note"))

    def check_resolvable(self) -> None:
        if self.rectification != "passed":
            self._refuse("resolve", "a hazard is signed off (销号) only after a passed re-inspection")


class Petition(Case):
    """诉求 / 信访, 接诉即办: dispatch → sign-for → handle → reply → return visit → close."""

    kind = Kind.PETITION

    class Replied(Case.Event):
        text: str

        def apply(self, case: Petition) -> None:
            case.status = Status.IN_PROGRESS
            case.replied = True

    class ReturnVisited(Case.Event):
        satisfaction: str
        note: str

        @property
        def redo(self) -> bool:
            """发回重办: a dissatisfied visit sends the case back, not resolved after all."""
            return self.satisfaction == Satisfaction.DISSATISFIED

        def apply(self, case: Petition) -> None:
            case.satisfaction = self.satisfaction
            if self.redo:  # 发回重办
                case.status = Status.IN_PROGRESS
                case.replied = False
                case.resolution = case.resolved_rank = None
                case.redone += 1

    def init_kind_state(self) -> None:
        self.replied = False
        self.satisfaction: str | None = None
        self.redone = 0

    def reply(self, stamp: Stamp, *, text: str) -> None:
        """反馈: the reply to the petitioner."""
        self._start_work("reply")
        self._record(self.Replied, stamp, text=_required(text, "text"))

    def return_visit(self, stamp: Stamp, *, satisfaction: str, note: str = "") -> None:
        """回访: 满意 / 基本满意 / 不满意; dissatisfied sends the case back to be redone."""
        self._require_status("return-visit", {Status.RESOLVED})
        try:
            satisfaction = Satisfaction(satisfaction)
        except ValueError:
            raise ValidationFailed(f"unknown satisfaction {satisfaction!r}", field="satisfaction") from None
        self._record(self.ReturnVisited, stamp, satisfaction=str(satisfaction), note=note or "")

    def check_resolvable(self) -> None:
        if not self.replied:
            self._refuse("resolve", "a petition is resolved after its reply")

    def check_closable(self) -> None:
        if self.satisfaction is None:
            self._refuse("close", "a petition is closed after its return visit")


CASE_CLASSES: dict[Kind, type[Case]] = {Kind.DISPUTE: Dispute, Kind.HAZARD: Hazard, Kind.PETITION: Petition}
