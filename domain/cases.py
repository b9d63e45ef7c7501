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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, NoReturn
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, TAggregate

from domain.actors import Actor, Role
from domain.clocks import ClockState, ClockStatus
from domain.errors import EscalationCeiling, InvalidTransition, NotPermitted, ValidationFailed
from domain.kinds import Kind, Severity
from domain.ladder import Rank, RegionTree
from domain.search import Earlier, repeat_of
from domain.snapshots import CaseSnapshot

CLOCK_SKEW = timedelta(minutes=5)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # no act of this service happened before it
MAX_BACKDATE = timedelta(days=7)  # the policy's max_backdate when a stamp names none


@dataclass(frozen=True)
class ExtendableClock:
    """The clock a 延期 action names: its state when the command is recorded (``None`` if
    it has not started) and the policy's cap on its extensions in all (``None``: none)."""

    name: str
    state: ClockState | None
    max_days: int | None


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


REFUSED = (
    "refused"  # 当事人拒绝调解: a recorded outcome of its own (MediationRefused), not a session
)


class AgreementForm(StrEnum):
    WRITTEN = "written"  # 调解协议书: effective when the parties sign and the committee seals (人民调解法 Art. 29)
    ORAL = "oral"  # 口头协议, recorded by the mediator: effective when made (Art. 30)


class Route(StrEnum):
    """The routes the parties are told of when mediation fails (人民调解法 Art. 26)."""

    ARBITRATION = "arbitration"  # 仲裁
    ADMINISTRATIVE = "administrative"  # 行政 (复议、裁决)
    COURT = "court"  # 司法 (诉讼)


COURT_CONFIRMATION_WINDOW = timedelta(
    days=30
)  # 人民调解法 Art. 33: within 30 days of the agreement taking effect


class Satisfaction(StrEnum):
    SATISFIED = "satisfied"  # 满意
    BASICALLY_SATISFIED = "basically_satisfied"  # 基本满意
    DISSATISFIED = "dissatisfied"  # 不满意


class HazardLevel(StrEnum):
    GENERAL = "general"  # 一般隐患
    MAJOR = "major"  # 重大隐患


CATEGORIES: dict[Kind, tuple[str, ...]] = {
    Kind.DISPUTE: (
        "neighbours",
        "marriage_family",
        "property",
        "wages",
        "land",
        "damages",
        "other",
    ),
    Kind.HAZARD: (
        "fire",
        "gas",
        "electrical",
        "building",
        "production",
        "drowning",
        "small_venues",
        "other",
    ),
    Kind.PETITION: (
        "utilities",
        "environment",
        "traffic",
        "housing",
        "social_security",
        "public_order",
        "services",
        "other",
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
                "occurred_at is in the future",
                field="occurred_at",
                occurred_at=occurred.isoformat(),
            )
        backdate = None if self.actor.role == Role.SYSTEM else self.recorded_at - self.max_backdate
        for floor, why in (
            (EARLIEST, "before 2000-01-01"),
            (backdate, None),  # the message written only when it is raised (most acts are now)
            (not_before, "earlier than the case's report"),
        ):
            if floor is not None and occurred < floor:
                raise ValidationFailed(
                    f"occurred_at is {why or f'more than {self.max_backdate} before it is recorded'}",
                    field="occurred_at",
                    occurred_at=occurred.isoformat(),
                    earliest=floor.isoformat(),
                )
        return occurred


def responsible_after_send_back(responsible_unit: str | None, unit: str | None) -> str | None:
    """首接负责 after a send-back (退单) by ``unit``: it ends when the responsible unit
    itself hands the case back; another unit's send-back leaves it."""
    return None if responsible_unit == unit else responsible_unit


def case_id_for(command_id: str) -> UUID:
    """A case's id follows from the command that reported it: a repeated report
    with the same command id cannot create a second case."""
    return uuid5(NAMESPACE_URL, f"fengqiao:case:{command_id}")


def reports_up_at_once(event: Any) -> bool:
    """逐级上报: a case is reported up every rank at once when it becomes critical, as
    reported or by a reclassification (重新定性) to critical."""
    name = type(event).__name__
    if name == "Reported":
        return bool(event.severity == Severity.CRITICAL)
    return name == "Reclassified" and event.to_severity == Severity.CRITICAL


def _required(text: str | None, field: str) -> str:
    if text is None or not str(text).strip():
        raise ValidationFailed(f"{field} is required", field=field)
    return str(text).strip()


class Case(Aggregate):
    """What every kind of case shares: dispatch, escalation, clocks, closure."""

    kind = Kind.DISPUTE  # each kind's class sets its own (no annotation: aggregates with
    # annotations become dataclasses in eventsourcing, with generated __init__ methods)
    Snapshot = CaseSnapshot  # its state at one version, types kept (domain/snapshots.py)
    # 2: 并案 (duplicate_of, duplicates) and 重复件 (repeat_of) in the state
    class_version = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["duplicate_of"] = None
        state["duplicates"] = []
        state["repeat_of"] = []

    # -- events ----------------------------------------------------------------

    class Event(Aggregate.Event):
        actor: Actor
        occurred_at: datetime
        command_id: str
        policy_version: int

        def mutate(self, aggregate: TAggregate | None) -> TAggregate | None:
            case = super().mutate(aggregate)
            if isinstance(case, Case):
                case.processed_commands[self.command_id] = self.originator_version
            return case

    class Reported(Aggregate.Created):
        """上报. ``repeat_of``: 重复件 — the earlier closed petitions of the same parties and
        category this one repeats (``domain.search.repeat_of``, decided when it is reported).
        ``attachments``: the evidence reported with it, each ``{sha256, media_type, size}``.
        Version 2 added ``repeat_of``, version 3 ``attachments``; older events read back
        with none."""

        class_version = 3
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
        ceilings: dict[str, Any]
        title: str
        description: str
        channel: str
        parties: list[Any]
        details: dict[str, Any]
        repeat_of: list[Any]
        attachments: list[Any]

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state.setdefault("repeat_of", [])

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            # a version 2 written before the merge of the workbench carried attachments
            # and no repeat_of: each reads back with what it lacked as none
            state.setdefault("attachments", [])
            state.setdefault("repeat_of", [])

    class Assigned(Event):
        assignee: str | None
        unit: str | None
        region: str
        rank: int

        def apply(self, case: Case) -> None:
            case.assignee, case.unit = self.assignee, self.unit
            case.region, case.rank = self.region, self.rank
            case.dispatched_at = (
                self.occurred_at
            )  # 派单: a new dispatch opens a new send-back window
            case.responsible_unit = case.responsible_unit or self.unit
            case.status = Status.ASSIGNED

    class Accepted(Event):
        """签收. ``sign_for_due_at`` and ``responded_in_time``: the sign-for clock's due
        time and whether this sign-for met it, as the clock view decides
        (``ClockState.met_if_stopped`` on the clocks at command time: pauses counted).
        Version 2 added them; version 1 events read back as None (not known)."""

        class_version = 2
        sign_for_due_at: datetime | None
        responded_in_time: bool | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["sign_for_due_at"] = None
            state["responded_in_time"] = None

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
            if self.unit:
                case.dispatched_at = self.occurred_at  # dispatched to the unit at the new rank
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

    class SuspensionRequested(Event):
        reason: str

        def apply(self, case: Case) -> None:
            case.pending_suspension = {"reason": self.reason, "requested_by": self.actor.id}

    class SuspensionRefused(Event):
        reason: str
        requested_by: str  # the handler who asked

        def apply(self, case: Case) -> None:
            case.pending_suspension = None

    class Suspended(Event):
        reason: str
        approver: str | None = None  # None only on events recorded before approvals were
        requested_by: str | None = None  # the handler who asked; None: suspended directly
        note: str = ""  # the approver's note

        def apply(self, case: Case) -> None:
            case.suspended = True
            case.pending_suspension = None

    class Resumed(Event):
        def apply(self, case: Case) -> None:
            case.suspended = False

    class ExtensionRequested(Event):
        clock: str
        days: int
        reason: str

        def apply(self, case: Case) -> None:
            case.pending_extensions[self.clock] = {
                "days": self.days,
                "reason": self.reason,
                "requested_by": self.actor.id,
            }

    class ExtensionRefused(Event):
        clock: str
        reason: str
        requested_by: str  # the handler who asked

        def apply(self, case: Case) -> None:
            case.pending_extensions.pop(self.clock, None)

    class Extended(Event):
        clock: str
        days: int | None
        due_at: datetime | None
        reason: str
        approver: str
        requested_by: str | None = None  # the handler who asked; None: granted directly
        note: str = ""  # the approver's note

        def apply(self, case: Case) -> None:
            case.extensions.append({"clock": self.clock, "days": self.days, "due_at": self.due_at})
            if self.requested_by is not None:
                case.pending_extensions.pop(self.clock, None)

    class Whistled(Event):
        departments: list[Any]
        reason: str

        def apply(self, case: Case) -> None:
            for department in self.departments:
                case.whistled.setdefault(department, None)

    class CheckedIn(Event):
        department: str

        def apply(self, case: Case) -> None:
            case.whistled[self.department] = self.occurred_at

    class Commented(Event):
        """A comment with evidence: ``attachments`` each ``{sha256, media_type, size}``.
        Version 1 carried free references (file names); they read back as ``{ref}``."""

        class_version = 2
        text: str
        attachments: list[Any]

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["attachments"] = [
                item if isinstance(item, dict) else {"ref": str(item)}
                for item in state.get("attachments") or []
            ]

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

    class Resolved(Event):
        """化解 / 办结. ``referred``: a dispute that ended without an agreement (mediation
        failed or a party refused; the parties were told of the other routes), so it is
        not 化解. Version 2 added ``referred``; version 1 events read back as False."""

        class_version = 2
        resolution: str
        rank: int
        region: str
        referred: bool

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["referred"] = False

        def apply(self, case: Case) -> None:
            case.status = Status.RESOLVED
            case.resolution, case.resolved_rank = self.resolution, self.rank

    class Closed(Event):
        def apply(self, case: Case) -> None:
            case.status = Status.CLOSED

    class LinkedAsDuplicate(Event):
        """并案: this case is a duplicate of ``primary``; its clocks stop
        (``domain.clocks``), the primary carries on."""

        primary: str
        reason: str

        def apply(self, case: Case) -> None:
            case.duplicate_of = self.primary

    class UnlinkedDuplicate(Event):
        """The link undone: the case carries on alone (its stopped clocks start afresh)."""

        primary: str
        reason: str

        def apply(self, case: Case) -> None:
            case.duplicate_of = None

    class DuplicateAttached(Event):
        """On the primary: ``duplicate`` was linked to it (its history shows the 并案)."""

        duplicate: str
        reason: str

        def apply(self, case: Case) -> None:
            if self.duplicate not in case.duplicates:
                case.duplicates.append(self.duplicate)

    class DuplicateDetached(Event):
        duplicate: str
        reason: str

        def apply(self, case: Case) -> None:
            if self.duplicate in case.duplicates:
                case.duplicates.remove(self.duplicate)

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
        ceilings: dict[str, Any],
        title: str,
        description: str,
        channel: str,
        parties: list[Any],
        details: dict[str, Any],
        repeat_of: list[Any] | None = None,
        attachments: list[Any] | None = None,  # in the event only: evidence is read from events
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
        self.pending_extensions: dict[
            str, dict[str, Any]
        ] = {}  # clock → the request awaiting approval
        self.pending_suspension: dict[str, Any] | None = None
        self.breached_clocks: set[str] = set()
        self.dispatched_at: datetime | None = None  # the last 派单: the send-back window opens here
        self.resolution: str | None = None
        self.resolved_rank: int | None = None
        self.escalations = self.reclassified_up = self.supervisions = self.reopened = 0
        self.processed_commands: dict[str, int] = {}  # command id → version it produced
        self.duplicate_of: str | None = None  # 并案: the primary this case duplicates
        self.duplicates: list[str] = []  # 并案: the cases linked to this one as duplicates
        self.repeat_of: list[str] = list(
            repeat_of or []
        )  # 重复件: the earlier petitions it repeats
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
        parties: list[Any] | None = None,  # each a mapping, or what the engine sealed of one
        details: dict[str, Any] | None = None,
        attachments: list[dict[str, Any]] | None = None,  # evidence: {sha256, media_type, size}
        earlier: Sequence[Earlier] = (),
        repeat_window: timedelta = timedelta(days=90),
    ) -> Case:
        """上报. ``earlier``: the parties' earlier cases; a petition that repeats a closed
        one of the same category closed within ``repeat_window`` is marked 重复件."""
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
        occurred_at = stamp.when()
        case = cls._create(
            cls.Reported,
            id=case_id_for(stamp.command_id),
            timestamp=stamp.recorded_at,
            actor=stamp.actor,
            occurred_at=occurred_at,
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
            attachments=list(attachments or []),
            repeat_of=repeat_of(str(cls.kind), category, occurred_at, earlier, repeat_window),
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
            self._refuse(
                action, f"cannot {action} a suspended case; resume it first", suspended=True
            )

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

    def assign(
        self, stamp: Stamp, *, assignee: str | None, unit: str | None, region: str, rank: int
    ) -> None:
        """派单: give the case to a handler or unit; they work it at their region's rank."""
        self._require_status(
            "assign", {Status.REPORTED, Status.ASSIGNED, Status.ACCEPTED, Status.IN_PROGRESS}
        )
        if not assignee and not unit:
            raise ValidationFailed("assign needs an assignee or a unit", field="assignee")
        self._require_within_ceiling(rank, "assign")
        self._record(
            self.Assigned, stamp, assignee=assignee, unit=unit, region=region, rank=int(rank)
        )

    def accept(
        self,
        stamp: Stamp,
        *,
        sign_for: ClockState | None = None,
        sync_grace: timedelta = timedelta(hours=4),
    ) -> None:
        """签收: the assigned handler signs for the case. ``sign_for``: the running
        sign-for clock as it stands at the command (``domain.clocks.clocks_under``); the
        event records its due time and whether this act meets it."""
        self._require_status("accept", {Status.ASSIGNED})
        due, in_time = None, None
        if sign_for is not None:
            due = sign_for.due_at
            in_time = sign_for.met_if_stopped(
                stamp.when(not_before=self.occurred_at), stamp.recorded_at, sync_grace
            )
        self._record(self.Accepted, stamp, sign_for_due_at=due, responded_in_time=in_time)

    def send_back(self, stamp: Stamp, *, reason: str, window_closes_at: datetime) -> None:
        """退单: not this unit's duty; back to dispatch with a reason. Only within the
        send-back window from the last dispatch (派单), signed for or not
        (``window_closes_at``: :func:`domain.clocks.send_back_window_closes`)."""
        self._require_status("send back", {Status.ASSIGNED, Status.ACCEPTED})
        if stamp.when() >= window_closes_at:
            self._refuse(
                "send-back",
                "the send-back window (退单时限) closed at "
                f"{window_closes_at.isoformat()}: the unit handles the case or asks for it to be reassigned",
                rule="send_back_window",
                window_closes_at=window_closes_at.isoformat(),
                dispatched_at=self.dispatched_at.isoformat() if self.dispatched_at else None,
            )
        self._record(self.SentBack, stamp, reason=_required(reason, "reason"))

    def escalate(
        self, stamp: Stamp, *, to_rank: int, to_region: str, unit: str | None, reason: str
    ) -> None:
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
        """重新定性: change the severity, by someone whose region covers the case. Upwards
        only by someone at the current ceiling rank, with a written reason (each such
        change counts as 矛盾上交); a critical case is downgraded only by someone at the
        critical ceiling's rank."""
        self._require_status("reclassify", OPEN)
        reason = _required(reason, "reason")
        try:
            new = Severity(severity)
        except ValueError:
            raise ValidationFailed(f"unknown severity {severity!r}", field="severity") from None
        self.check_severity(new)
        if new == self.severity:
            self._refuse("reclassify", f"the case is already {new}")
        self._require_covering(stamp, "reclassify")
        upward = new.order > self.severity.order
        if upward:
            self._require_rank(stamp, self.ceiling, f"reclassify a {self.severity} case upwards")
        elif self.severity == Severity.CRITICAL:
            self._require_rank(stamp, self.ceilings[Severity.CRITICAL], "downgrade a critical case")
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

    def _require_rank(self, stamp: Stamp, rank: int, what: str) -> None:
        actor_rank = stamp.actor.rank
        if actor_rank != rank:
            raise NotPermitted(
                f"only someone at the {Rank(rank).label} rank may {what}",
                action="reclassify",
                ceiling=Rank(rank).label,
                actor_rank=Rank(actor_rank).label if actor_rank is not None else None,
            )

    def _require_covering(self, stamp: Stamp, action: str) -> None:
        """The actor's region covers the case's current region (a process, with no
        region, acts everywhere)."""
        region = stamp.actor.region
        if region is not None and not RegionTree.is_within(self.region, region):
            raise NotPermitted(
                f"{stamp.actor.id}'s region {region} does not cover the case (at {self.region})",
                action=action,
                region=region,
                case_region=self.region,
            )

    # -- 挂起 and 延期: asked for by the handler before the due time, approved by a
    # supervisor whose region covers the case (or granted directly by one) ----------

    def request_suspension(
        self, stamp: Stamp, *, reason: str, resolve_clock: ClockState | None
    ) -> None:
        """Ask for 挂起 (clocks paused) before the resolve clock's due time."""
        self._check_suspendable("request-suspension", stamp, resolve_clock)
        if self.pending_suspension is not None:
            self._refuse("request-suspension", "a suspension is already awaiting approval")
        self._record(self.SuspensionRequested, stamp, reason=_required(reason, "reason"))

    def approve_suspension(
        self, stamp: Stamp, *, note: str, resolve_clock: ClockState | None
    ) -> None:
        pending = self._pending_suspension("approve-suspension")
        self._require_covering(stamp, "approve-suspension")
        self._check_suspendable("approve-suspension", stamp, resolve_clock)
        self._record(
            self.Suspended,
            stamp,
            reason=pending["reason"],
            approver=stamp.actor.id,
            requested_by=pending["requested_by"],
            note=note or "",
        )

    def refuse_suspension(self, stamp: Stamp, *, reason: str) -> None:
        pending = self._pending_suspension("refuse-suspension")
        self._refuse_request("refuse-suspension", self.SuspensionRefused, stamp, pending, reason)

    def suspend(self, stamp: Stamp, *, reason: str, resolve_clock: ClockState | None) -> None:
        """挂起 granted directly by a supervisor whose region covers the case."""
        self._require_covering(stamp, "suspend")
        self._check_suspendable("suspend", stamp, resolve_clock)
        self._record(
            self.Suspended, stamp, reason=_required(reason, "reason"), approver=stamp.actor.id
        )

    def _refuse_request(
        self,
        action: str,
        event_class: type[Case.Event],
        stamp: Stamp,
        pending: dict[str, Any],
        reason: str,
        **fields: Any,
    ) -> None:
        """A supervisor whose region covers the case refuses the ``pending`` request, saying why."""
        self._require_covering(stamp, action)
        self._record(
            event_class,
            stamp,
            reason=_required(reason, "reason"),
            requested_by=pending["requested_by"],
            **fields,
        )

    def _pending_suspension(self, action: str) -> dict[str, Any]:
        if self.pending_suspension is None:
            self._refuse(action, "no suspension is awaiting approval")
        return self.pending_suspension

    def _check_suspendable(
        self, action: str, stamp: Stamp, resolve_clock: ClockState | None
    ) -> None:
        """Open, not suspended, and the resolve clock (if it runs) not yet due."""
        self._require_status(action, OPEN)
        if self.suspended:
            self._refuse(action, "the case is already suspended")
        if resolve_clock is not None and resolve_clock.open:
            self._require_before_due(action, stamp, resolve_clock)

    def resume(self, stamp: Stamp) -> None:
        if not self.suspended:
            self._refuse("resume", "the case is not suspended")
        self._record(self.Resumed, stamp)

    def request_extension(
        self, stamp: Stamp, clock: ExtendableClock, *, days: int, reason: str
    ) -> None:
        """Ask for 延期 of a running clock by ``days`` (in the clock's own measure)."""
        if clock.name in self.pending_extensions:
            self._refuse(
                "request-extension",
                f"an extension of {clock.name} is already awaiting approval",
                clock=clock.name,
            )
        self._check_extendable("request-extension", stamp, clock, days)
        self._record(
            self.ExtensionRequested,
            stamp,
            clock=clock.name,
            days=days,
            reason=_required(reason, "reason"),
        )

    def approve_extension(self, stamp: Stamp, clock: ExtendableClock, *, note: str) -> None:
        pending = self._pending_extension("approve-extension", clock.name)
        self._require_covering(stamp, "approve-extension")
        self._check_extendable("approve-extension", stamp, clock, pending["days"])
        self._record_extended(
            stamp,
            clock.name,
            pending["days"],
            pending["reason"],
            requested_by=pending["requested_by"],
            note=note or "",
        )

    def refuse_extension(self, stamp: Stamp, clock: ExtendableClock, *, reason: str) -> None:
        pending = self._pending_extension("refuse-extension", clock.name)
        self._refuse_request(
            "refuse-extension", self.ExtensionRefused, stamp, pending, reason, clock=clock.name
        )

    def extend(self, stamp: Stamp, clock: ExtendableClock, *, days: int, reason: str) -> None:
        """延期 granted directly by a supervisor whose region covers the case."""
        self._require_covering(stamp, "extend")
        self._check_extendable("extend", stamp, clock, days)
        self._record_extended(stamp, clock.name, days, _required(reason, "reason"))

    def _record_extended(
        self, stamp: Stamp, clock: str, days: int, reason: str, **request: Any
    ) -> None:
        """Record 延期 granted by the acting supervisor (``request``: the request approved)."""
        self._record(
            self.Extended,
            stamp,
            clock=clock,
            days=days,
            due_at=None,
            reason=reason,
            approver=stamp.actor.id,
            **request,
        )

    def _pending_extension(self, action: str, clock: str) -> dict[str, Any]:
        if clock not in self.pending_extensions:
            self._refuse(
                action,
                f"no extension of {clock} is awaiting approval",
                clock=clock,
                pending=sorted(self.pending_extensions),
            )
        return self.pending_extensions[clock]

    def _check_extendable(
        self, action: str, stamp: Stamp, clock: ExtendableClock, days: int
    ) -> None:
        """The clock runs and is not yet due, and the total stays within the policy's cap."""
        self._require_status(action, OPEN | {Status.RESOLVED})
        if days <= 0:
            raise ValidationFailed("days must be positive", field="days")
        name, state, max_days = clock.name, clock.state, clock.max_days
        if max_days is None:
            raise ValidationFailed(
                f"the policy allows no extension of the {name} clock", field="clock", clock=name
            )
        if state is None or not state.open:
            self._refuse(action, f"the {name} clock is not running", clock=name)
        self._require_before_due(action, stamp, state)
        granted = sum(e["days"] or 0 for e in self.extensions if e["clock"] == name)
        if granted + days > max_days:
            raise ValidationFailed(
                f"the {name} clock may be extended by at most {max_days} days in all "
                f"({granted} granted already)",
                field="days",
                clock=name,
                max_extension=max_days,
                granted=granted,
            )

    def _require_before_due(self, action: str, stamp: Stamp, state: ClockState) -> None:
        if state.state == ClockStatus.BREACHED or stamp.recorded_at >= state.due_at:
            self._refuse(
                action,
                f"the {state.name} clock was due at {state.due_at.isoformat()}: {action} is asked "
                "for before the due time",
                rule="before_due_time",
                clock=state.name,
                due_at=state.due_at.isoformat(),
            )

    def whistle(self, stamp: Stamp, *, departments: list[str], reason: str) -> None:
        """吹哨: summon named departments, each of which must check in (报到)."""
        self._require_status("whistle", OPEN)
        departments = list(dict.fromkeys(d.strip() for d in departments if d and d.strip()))
        if not departments:
            raise ValidationFailed("whistle names at least one department", field="departments")
        new = [
            d for d in departments if d not in self.whistled
        ]  # the summoned keep their clock and check-in
        if not new:
            self._refuse(
                "whistle", "every department named was already summoned", departments=departments
            )
        self._record(self.Whistled, stamp, departments=new, reason=_required(reason, "reason"))

    def check_in(self, stamp: Stamp, *, department: str) -> None:
        """报到: a summoned department checks in on the case."""
        if department not in self.whistled:
            self._refuse("check-in", f"{department!r} was not summoned to this case")
        if self.whistled[department] is not None:
            self._refuse("check-in", f"{department!r} has already checked in")
        self._record(self.CheckedIn, stamp, department=department)

    def comment(
        self, stamp: Stamp, *, text: str, attachments: list[dict[str, Any]] | None = None
    ) -> None:
        self._record(
            self.Commented, stamp, text=_required(text, "text"), attachments=list(attachments or [])
        )

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
        self._record(
            self.Resolved,
            stamp,
            resolution=_required(resolution, "resolution"),
            rank=self.rank,
            region=self.region,
            referred=self.ends_referred(),
        )

    def check_resolvable(self) -> None:
        """Kind-specific conditions for resolution; none for the base kind."""

    def check_severity(self, severity: Severity) -> None:
        """Kind-specific conditions on a new severity (重新定性); none for the base kind."""

    def ends_referred(self) -> bool:
        """Does a resolution now end the case referred to other routes (not 化解)?"""
        return False

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

    # -- 并案: linking a duplicate to its primary --------------------------------------

    def link_duplicate(self, stamp: Stamp, *, primary: Case, reason: str) -> None:
        """并案: this open case is a duplicate of ``primary`` (an open case, itself no
        duplicate), both in the actor's region."""
        self._require_status("link-duplicate", OPEN)
        if self.duplicate_of is not None:
            self._refuse(
                "link-duplicate", f"the case is already a duplicate of {self.duplicate_of}"
            )
        if primary.id == self.id:
            raise ValidationFailed("a case is not its own duplicate", field="primary")
        if primary.duplicate_of is not None or primary.status not in OPEN:
            raise ValidationFailed(
                "the primary must be an open case that is no duplicate itself",
                field="primary",
                primary_status=str(primary.status),
                primary_duplicate_of=primary.duplicate_of,
            )
        self._require_covering(stamp, "link-duplicate")
        primary._require_covering(stamp, "link-duplicate")
        stamp.when(not_before=primary.occurred_at)  # the primary can note it at that time too
        self._record(
            self.LinkedAsDuplicate,
            stamp,
            primary=str(primary.id),
            reason=_required(reason, "reason"),
        )

    def unlink_duplicate(self, stamp: Stamp, *, reason: str) -> None:
        if self.duplicate_of is None:
            self._refuse("unlink-duplicate", "the case is not linked as a duplicate")
        self._require_covering(stamp, "unlink-duplicate")
        self._record(
            self.UnlinkedDuplicate,
            stamp,
            primary=self.duplicate_of,
            reason=_required(reason, "reason"),
        )

    def attach_duplicate(self, stamp: Stamp, *, duplicate: str, reason: str) -> None:
        """The primary's note of a 并案 (recorded by the engine after the link)."""
        self._record(self.DuplicateAttached, stamp, duplicate=duplicate, reason=reason)

    def detach_duplicate(self, stamp: Stamp, *, duplicate: str, reason: str) -> None:
        self._record(self.DuplicateDetached, stamp, duplicate=duplicate, reason=reason)

    def _start_work(self, action: str) -> None:
        self._require_status(action, WORKING)
        self._require_not_suspended(action)


class Dispute(Case):
    """矛盾纠纷, mediated under the People's Mediation Law (人民调解法).

    A dispute ends *settled* (an effective agreement: oral at once, written when the
    parties have signed and the committee has sealed it) or *referred* (the last
    mediation failed, or a party clearly refused mediation; either way the parties
    were told of the arbitration, administrative and court routes, recorded on the
    event). ``Resolved.referred`` says which.
    """

    kind = Kind.DISPUTE

    class MediationHeld(Case.Event):
        """One session. Version 2 added ``form``, ``routes``, ``effective`` and
        ``confirm_by``; a version 1 agreement reads back as effective when made (the
        rule then), a version 1 failure with no routes recorded."""

        class_version = 2
        outcome: str
        summary: str
        agreement: str | None
        form: str | None  # agreed: written / oral
        routes: list[Any]  # failed: the routes the parties were told of
        effective: bool  # this session made the agreement effective (an oral one)
        confirm_by: datetime | None  # then: the end of the court-confirmation window

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["form"] = None
            state["routes"] = []
            state["effective"] = state.get("outcome") == Outcome.AGREED
            state["confirm_by"] = None

        def apply(self, case: Dispute) -> None:
            case.status = Status.IN_PROGRESS
            case.mediations.append(self.outcome)
            case.last_outcome = self.outcome
            if self.outcome == Outcome.AGREED:
                case.agreement = self.agreement
                case.agreement_form = self.form
                case.agreement_takes_effect(self)

    class MediationRefused(Case.Event):
        """当事人拒绝调解: a party clearly refused; no mediation (Art. 17)."""

        party: str
        reason: str
        routes: list[Any]

        def apply(self, case: Dispute) -> None:
            case.status = Status.IN_PROGRESS
            case.last_outcome = REFUSED

    class AgreementSigned(Case.Event):
        """The parties signed the written agreement (签名、盖章或者按指印)."""

        effective: bool  # the committee had sealed it: in effect from these signatures
        confirm_by: datetime | None

        def apply(self, case: Dispute) -> None:
            case.agreement_signed = True
            case.agreement_takes_effect(self)

    class AgreementSealed(Case.Event):
        """The mediation committee sealed the written agreement (加盖人民调解委员会印章)."""

        committee: str | None
        effective: bool  # the parties had signed it: in effect from this seal (Art. 29)
        confirm_by: datetime | None

        def apply(self, case: Dispute) -> None:
            case.agreement_sealed = True
            case.agreement_takes_effect(self)

    class CourtConfirmationApplied(Case.Event):
        note: str

        def apply(self, case: Dispute) -> None:
            case.court_confirmation_applied = True

    def init_kind_state(self) -> None:
        self.mediations: list[str] = []
        self.last_outcome: str | None = None  # of the last session, or ``refused``
        self.agreement: str | None = None
        self.agreement_form: str | None = None
        self.agreement_signed = self.agreement_sealed = False
        self.effective_at: datetime | None = None
        self.confirm_by: datetime | None = None
        self.court_confirmation_applied = False

    def agreement_takes_effect(
        self, event: MediationHeld | AgreementSigned | AgreementSealed
    ) -> None:
        """An agreement ``event`` that made the agreement effective (written: signed and
        sealed; oral: agreed) starts the court-confirmation window from its time."""
        if event.effective:
            self.effective_at = event.occurred_at
            self.confirm_by = event.confirm_by or event.occurred_at + COURT_CONFIRMATION_WINDOW

    def mediate(
        self,
        stamp: Stamp,
        *,
        outcome: str,
        summary: str,
        agreement: str | None = None,
        form: str | None = None,
        routes: Sequence[str] | None = None,
    ) -> None:
        """调解: one session and its outcome. Agreement needs its text (the 调解协议书 or
        the mediator's record of an oral agreement) and its form (default oral); a
        failure records the routes the parties were told of (default all three)."""
        self._start_work("mediate")
        try:
            outcome = Outcome(outcome)
        except ValueError:
            raise ValidationFailed(f"unknown outcome {outcome!r}", field="outcome") from None
        if self.agreement is not None:
            self._refuse("mediate", "the parties have already agreed")
        if form is not None and outcome != Outcome.AGREED:
            raise ValidationFailed("form is for an agreement", field="form")
        if routes is not None and outcome != Outcome.FAILED:
            raise ValidationFailed("routes are told when mediation fails", field="routes")
        effective = False
        if outcome == Outcome.AGREED:
            agreement = _required(agreement, "agreement")
            form = str(_parse(AgreementForm, form or AgreementForm.ORAL, "form"))
            effective = form == AgreementForm.ORAL
        self._record(
            self.MediationHeld,
            stamp,
            outcome=str(outcome),
            summary=_required(summary, "summary"),
            agreement=agreement,
            form=form,
            routes=_routes(routes) if outcome == Outcome.FAILED else [],
            effective=effective,
            confirm_by=stamp.when() + COURT_CONFIRMATION_WINDOW if effective else None,
        )

    def refuse_mediation(
        self, stamp: Stamp, *, party: str, reason: str, routes: Sequence[str] | None = None
    ) -> None:
        """当事人拒绝调解: a party clearly refuses; the parties are told of the other routes."""
        self._start_work("refuse-mediation")
        if self.agreement is not None:
            self._refuse("refuse-mediation", "the parties have already agreed")
        self._record(
            self.MediationRefused,
            stamp,
            party=_required(party, "party"),
            reason=_required(reason, "reason"),
            routes=_routes(routes),
        )

    def sign_agreement(self, stamp: Stamp) -> None:
        """The parties sign the written agreement."""
        self._check_written_agreement(
            "sign-agreement", self.agreement_signed, "signed by the parties"
        )
        self._record(self.AgreementSigned, stamp, **self._effect(stamp, self.agreement_sealed))

    def seal_agreement(self, stamp: Stamp) -> None:
        """The mediation committee seals the written agreement."""
        self._check_written_agreement(
            "seal-agreement", self.agreement_sealed, "sealed by the committee"
        )
        self._record(
            self.AgreementSealed,
            stamp,
            committee=stamp.actor.unit or self.unit,
            **self._effect(stamp, self.agreement_signed),
        )

    def _check_written_agreement(self, action: str, done: bool, what: str) -> None:
        self._require_status(action, WORKING)
        if self.agreement is None or self.agreement_form != AgreementForm.WRITTEN:
            self._refuse(action, "there is no written agreement (调解协议书)")
        if done:
            self._refuse(action, f"the agreement is already {what}")

    def _effect(self, stamp: Stamp, other_half_done: bool) -> dict[str, Any]:
        """Signed and sealed: the written agreement takes effect with the second of the two."""
        return {
            "effective": other_half_done,
            "confirm_by": stamp.when() + COURT_CONFIRMATION_WINDOW if other_half_done else None,
        }

    def apply_court_confirmation(self, stamp: Stamp, *, note: str) -> None:
        """司法确认: the parties jointly apply to court within 30 days of the agreement
        taking effect (人民调解法 Art. 33)."""
        if self.agreement is None:
            self._refuse("court-confirmation", "there is no agreement to confirm")
        if self.confirm_by is None:
            self._refuse(
                "court-confirmation",
                "the written agreement is not yet effective: the parties sign and the committee seals it",
                signed=self.agreement_signed,
                sealed=self.agreement_sealed,
            )
        if self.court_confirmation_applied:
            self._refuse("court-confirmation", "court confirmation was already applied for")
        if stamp.when() > self.confirm_by:
            self._refuse(
                "court-confirmation",
                "the court-confirmation window (30 days from the agreement taking effect) has passed",
                clock="court_confirmation",
                window="30d",
                effective_at=self.effective_at.isoformat() if self.effective_at else None,
                confirm_by=self.confirm_by.isoformat(),
            )
        self._record(self.CourtConfirmationApplied, stamp, note=_required(note, "note"))

    def check_resolvable(self) -> None:
        if self.last_outcome in (Outcome.FAILED, REFUSED):
            return
        if self.last_outcome == Outcome.AGREED and self.confirm_by is None:
            self._refuse(
                "resolve",
                "the written agreement is not yet effective: the parties sign and the committee seals it",
                signed=self.agreement_signed,
                sealed=self.agreement_sealed,
            )
        if self.last_outcome != Outcome.AGREED:
            self._refuse(
                "resolve",
                "a dispute is resolved after a mediation that agreed or failed, or a party's refusal "
                "(the parties told of arbitration, administrative and court routes)",
            )

    def ends_referred(self) -> bool:
        return self.last_outcome in (Outcome.FAILED, REFUSED)


def _parse(enum: type[StrEnum], value: Any, field: str) -> StrEnum:
    try:
        return enum(value)
    except ValueError:
        raise ValidationFailed(
            f"unknown {field} {value!r}", field=field, allowed=[str(m) for m in enum]
        ) from None


def _routes(routes: Sequence[str] | None) -> list[str]:
    """The routes the parties were told of; by default the three the law names."""
    if routes is not None and not routes:
        raise ValidationFailed("name at least one route the parties were told of", field="routes")
    return [str(_parse(Route, r, "routes")) for r in (routes or list(Route))]


class Hazard(Case):
    """安全隐患: found → rectification notice → rectified → re-inspection → sign-off (销号)."""

    kind = Kind.HAZARD

    class RectificationOrdered(Case.Event):
        deadline: datetime
        measures: str
        plan: dict[str, Any]

        def apply(self, case: Hazard) -> None:
            case.status = Status.IN_PROGRESS
            case.rectification = "ordered"
            case.deadline = self.deadline
            case.reinspection_failed = False

    class Rectified(Case.Event):
        note: str

        def apply(self, case: Hazard) -> None:
            case.rectification = "rectified"
            case.reinspection_failed = False

    class Reinspected(Case.Event):
        passed: bool
        note: str

        def apply(self, case: Hazard) -> None:
            case.rectification = "passed" if self.passed else "ordered"
            case.reinspection_failed = not self.passed

    PLAN_FIELDS = ("funds", "people", "interim_measures")

    def init_kind_state(self) -> None:
        self.rectification: str | None = None
        self.deadline: datetime | None = None
        self.reinspection_failed = False  # the last 复查 failed: a new notice may be issued

    @property
    def level(self) -> HazardLevel:
        """一般 / 重大隐患; a critical hazard is always 重大 (even after a reclassification)."""
        if self.severity == Severity.CRITICAL:
            return HazardLevel.MAJOR
        return HazardLevel(self.details.get("hazard_level", HazardLevel.GENERAL))

    @classmethod
    def check_details(cls, severity: Severity, details: dict[str, Any]) -> dict[str, Any]:
        """A 重大隐患 needs severity major or critical; a critical hazard is a 重大隐患."""
        level = details.get("hazard_level") or (
            HazardLevel.MAJOR if severity == Severity.CRITICAL else HazardLevel.GENERAL
        )
        level = _parse(HazardLevel, level, "hazard_level")
        if level == HazardLevel.MAJOR and severity == Severity.MINOR:
            raise ValidationFailed(
                "a 重大隐患 (hazard_level major) needs severity major or critical",
                field="hazard_level",
                severity=str(severity),
            )
        if level == HazardLevel.GENERAL and severity == Severity.CRITICAL:
            raise ValidationFailed(
                "a critical hazard is a 重大隐患: hazard_level must be major",
                field="hazard_level",
                severity=str(severity),
            )
        details["hazard_level"] = str(level)
        return details

    def check_severity(self, severity: Severity) -> None:
        if severity == Severity.MINOR and self.level == HazardLevel.MAJOR:
            raise ValidationFailed(
                "a 重大隐患 (hazard_level major) needs severity major or critical",
                field="severity",
                hazard_level=str(self.level),
            )

    def order_rectification(
        self, stamp: Stamp, *, deadline: datetime, measures: str, plan: dict[str, Any] | None = None
    ) -> None:
        """限时整改: a notice with a deadline; a 重大隐患 needs a plan with measures,
        funds, people, deadline and interim safety measures. After a failed 复查 a
        supervisor may issue a new notice with a new deadline."""
        self._start_work("order rectification")
        renotice = self.rectification == "ordered" and self.reinspection_failed
        if self.rectification in ("ordered", "rectified", "passed") and not renotice:
            self._refuse("order-rectification", f"rectification is already {self.rectification}")
        if renotice and stamp.actor.role not in (Role.SUPERVISOR, Role.ADMIN):
            raise NotPermitted(
                "after a failed re-inspection only a supervisor issues a new rectification notice",
                action="order-rectification",
                role=stamp.actor.role,
            )
        if deadline.tzinfo is None:
            raise ValidationFailed("deadline needs a time zone", field="deadline")
        if deadline <= stamp.when():
            raise ValidationFailed("the deadline must be after the notice", field="deadline")
        plan = dict(plan or {})
        if self.level == HazardLevel.MAJOR:
            for name in self.PLAN_FIELDS:
                _required(plan.get(name), f"plan.{name}")
        self._record(
            self.RectificationOrdered,
            stamp,
            deadline=deadline,
            measures=_required(measures, "measures"),
            plan=plan,
        )

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
            self._refuse(
                "resolve", "a hazard is signed off (销号) only after a passed re-inspection"
            )


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
            raise ValidationFailed(
                f"unknown satisfaction {satisfaction!r}", field="satisfaction"
            ) from None
        self._record(self.ReturnVisited, stamp, satisfaction=str(satisfaction), note=note or "")

    def check_resolvable(self) -> None:
        if not self.replied:
            self._refuse("resolve", "a petition is resolved after its reply")

    def check_closable(self) -> None:
        if self.satisfaction is None:
            self._refuse("close", "a petition is closed after its return visit")


CASE_CLASSES: dict[Kind, type[Case]] = {
    Kind.DISPUTE: Dispute,
    Kind.HAZARD: Hazard,
    Kind.PETITION: Petition,
}
