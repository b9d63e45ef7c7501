"""Typed commands: what a caller may ask of a case, validated before any rule runs.

Each action is a pydantic model (the HTTP body, the CLI's fields) with one
``execute`` method that calls the case's command method. The envelope (who, the
command id, the expected version, when it happened) travels beside it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal, TypeVar, cast
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from domain.actors import Actor
from domain.calendar import Statutory
from domain.cases import Case, ExtendableClock, Hazard, Stamp
from domain.clocks import SIGN_FOR, ClockState, send_back_window_closes
from domain.errors import InvalidTransition, ValidationFailed
from domain.kinds import Kind, Severity
from domain.ladder import Rank, RegionTree
from domain.policy import Policy
from domain.routing import responsible_unit

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
"""No time a command carries is earlier: the engine's cases begin this century, and a
year-1 time in a far-east zone cannot even be turned into UTC (issue 19)."""
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
"""No time a command carries is later (a fixed cap the type checks; :func:`check_horizon`
then bounds each time by the moment of recording)."""
HORIZON = timedelta(days=3653)
"""A time ahead (a rectification deadline, an extended due time) is at most ten years
after the command is recorded."""


_REFUSED_IN_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
"""What free text refuses: C0/C1 controls but tab and line feed, lone surrogates, U+FFFE/F."""
_REFUSED_IN_LINE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff\u2028\u2029]")
"""What one line refuses: the same, line feed and the Unicode line separators too."""


def _printable(value: str, *, newlines: bool) -> str:
    """Refuse NUL and the other C0/C1 control characters (tab and, where ``newlines``,
    line feed excepted), lone surrogates and the Unicode line separators of one-line text:
    PostgreSQL refuses a NUL in text, and a surrogate cannot be written as UTF-8. (One
    regular-expression search, not a Python loop over each character of up to 20,000.)"""
    found = (_REFUSED_IN_TEXT if newlines else _REFUSED_IN_LINE).search(value)
    if found is not None:
        ch = found.group(0)
        kind = (
            "a line break" if ch in "\n\r\u2028\u2029" else f"the control character U+{ord(ch):04X}"
        )
        raise ValueError(f"{kind} is not allowed here")
    return value


def _multi_line(value: str) -> str:
    return _printable(value, newlines=True)


def _one_line(value: str) -> str:
    return _printable(value, newlines=False)


Text = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000),
    AfterValidator(_multi_line),
]
"""Free text of several lines: up to 20,000 characters, tabs and line feeds allowed."""
OptionalText = Annotated[str, StringConstraints(max_length=20_000), AfterValidator(_multi_line)]
ShortText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=500),
    AfterValidator(_one_line),
]
"""One line: up to 500 characters, no line break or control character but tab."""
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_one_line),
]


def _aware(value: datetime | None) -> datetime | None:
    return value if value is None else check_moment(value)


def check_moment(value: datetime) -> datetime:
    """``value`` if it has a zone and lies from :data:`EARLIEST` to before :data:`LATEST`;
    else ValueError (every time a caller sends goes through this)."""
    if value.tzinfo is None:
        raise ValueError("a time zone is required (RFC 3339, e.g. 2026-11-23T09:30:00+08:00)")
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise ValueError(f"the time must lie from {EARLIEST.date()} to before {LATEST.date()}")
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]
"""A time with its zone, from 2000-01-01 to before 2100-01-01 (see :func:`check_horizon`)."""


def check_horizon(model: BaseModel, now: datetime, path: str = "") -> None:
    """Refuse a time in ``model`` (a command body, nested models included) more than
    :data:`HORIZON` after ``now``, the moment the command is recorded. (Times that must
    not lie ahead at all, ``occurred_at``, are the stamp's rule: ``Stamp.when``.)"""
    for name in type(model).model_fields:
        value, field = getattr(model, name), f"{path}{name}"
        if isinstance(value, datetime) and value > now + HORIZON:
            raise ValidationFailed(
                f"{field}: more than ten years ahead", field=field, value=value.isoformat()
            )
        if isinstance(value, BaseModel):
            check_horizon(value, now, f"{field}.")


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], data: Any) -> M:
    """Validate ``data`` as ``model``; a failure is a ValidationFailed naming each field."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
            for e in error.errors(include_url=False)
        ]
        first = errors[0]
        raise ValidationFailed(
            f"{first['field']}: {first['message']}", field=first["field"], errors=errors
        ) from None


def parse_action(name: str, body: Any) -> CaseAction:
    """The action called ``name`` (as in the API path), validated."""
    try:
        action_class = ACTIONS[name]
    except KeyError:
        raise ValidationFailed(
            f"unknown action {name!r}", field="action", allowed=sorted(ACTIONS)
        ) from None
    return validated(action_class, body if body is not None else {})


Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
"""An evidence file named by its SHA-256 (lower-case hex), as ``POST /v1/evidence`` answered it."""
Attachments = Annotated[list[Sha256], Field(max_length=20)]
"""The evidence a report or a comment names: each must have been uploaded (422 if not)."""


class Envelope(BaseModel):
    """Who sends a command, its idempotency id, and the version it expects."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    actor: Actor
    command_id: Name
    expected_version: int | None = Field(default=None, ge=1)
    occurred_at: AwareDatetime | None = None


class Party(BaseModel):
    """申请人 / 被申请人 / 诉求人: personal data, masked for integrators."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    role: Literal["applicant", "respondent", "petitioner", "reporter", "other"] = "other"
    phone: Annotated[str, StringConstraints(pattern=r"^[0-9+\- ]{3,20}$")] | None = None
    id_number: (
        Annotated[str, StringConstraints(pattern=r"^[0-9]{17}[0-9Xx]$|^[0-9]{15}$")] | None
    ) = None


class ReportCase(BaseModel):
    """上报: a grid worker (or a channel) reports a new case."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind
    category: Name
    severity: Severity
    region: Name
    title: ShortText
    description: OptionalText = ""
    channel: Literal["grid", "hotline_12345", "letters_visits", "walk_in", "online", "platform"] = (
        "grid"
    )
    parties: list[Party] = Field(default_factory=list, max_length=50)
    attachments: Attachments = Field(default_factory=list)
    hazard_level: Literal["general", "major"] | None = None
    rectify_by: AwareDatetime | None = None
    # where it is, as a map or an Open311 client gives it (WGS-84); kept in the event's details
    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)] | None = None
    long: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)] | None = None
    address_string: ShortText | None = None
    media_url: (
        Annotated[
            str,
            StringConstraints(strip_whitespace=True, max_length=2000, pattern=r"^https?://[^\s]+$"),
            AfterValidator(_one_line),
        ]
        | None
    ) = None

    @model_validator(mode="after")
    def _point_whole(self) -> ReportCase:
        if (self.lat is None) != (self.long is None):
            raise ValueError("lat and long go together")
        return self

    def details(self) -> dict[str, Any]:
        """The kind's own facts and the location, for the ``Reported`` event's ``details``
        (an old event without a key simply lacks it: no upcaster needed)."""
        details: dict[str, Any] = {}
        if self.hazard_level is not None:
            details["hazard_level"] = self.hazard_level
        if self.rectify_by is not None:
            details["rectify_by"] = self.rectify_by.isoformat()
        for name in LOCATION_FIELDS:
            if getattr(self, name) is not None:
                details[name] = getattr(self, name)
        return details


LOCATION_FIELDS = ("lat", "long", "address_string", "media_url")


class ReportAt(ReportCase):
    """A report whose region may be left to its ``lat``/``long``: ``Fengqiao.placed``
    fills it in (the smallest region whose geometry holds the point) before the command."""

    region: Name | None = None  # type: ignore[assignment]


@dataclass(frozen=True)
class ActionContext:
    """What an action's rule may read beside the case and the stamp: the region tree, the
    case's policy and, when the action declares it needs them, the clocks and calendar."""

    tree: RegionTree
    policy: Policy
    clocks: Sequence[ClockState] = ()
    """The case's clock states at the command's recorded time (``needs_clocks``)."""
    statutory: Statutory | None = None
    """The statutory calendar facts every clock counts with (``needs_calendar``)."""
    related: Case | None = None
    """The other case the action's rule reads (:meth:`CaseAction.related`: 并案's primary)."""
    evidence: Sequence[dict[str, Any]] = ()
    """Each named file's ``{sha256, media_type, size}`` as stored (``needs_evidence``)."""


class CaseAction(BaseModel):
    """An action on an existing case. ``name`` is its path segment in the API."""

    model_config = ConfigDict(extra="forbid")

    name: ClassVar[str]
    kinds: ClassVar[tuple[Kind, ...]] = tuple(Kind)
    needs_clocks: ClassVar[bool] = False
    """An action whose rule depends on the case's clocks declares it; the engine then
    passes ``clocks``: the case's clock states at the command's recorded time, from
    :func:`domain.clocks.clocks_under` (the one clock computation)."""
    needs_calendar: ClassVar[bool] = False
    """An action whose rule counts working time declares it; the engine then passes
    ``statutory``: the statutory calendar facts (imported years) every clock counts with."""
    needs_evidence: ClassVar[bool] = False
    """An action that names evidence (its ``attachments`` hashes) declares it; the engine
    then passes ``evidence``: each file's ``{sha256, media_type, size}`` as stored."""

    method: ClassVar[str]
    """The case's command method :meth:`apply` calls (set by :func:`action`)."""
    arguments: ClassVar[tuple[str, ...]]
    """The registered action's own fields (set by :func:`action`): a subclass that adds
    fields of the request (HTTP's ``occurred_at``) passes no more to the case."""

    def related(self) -> UUID | None:
        """Another case the action's rule reads (并案: the primary); the engine passes it
        as ``ctx.related``."""
        return None

    def follow_up(self, case: Case) -> tuple[UUID, CaseAction] | None:
        """An action the engine then records on another case (``case``: this one before
        the action), under a command id derived from this one's: 并案 notes the link on
        the primary's history too."""
        return None

    def execute(self, case: Case, stamp: Stamp, ctx: ActionContext) -> None:
        """Apply the action to ``case``. One that needs no more than the case and the stamp
        relies on :meth:`apply` (or overrides it); one that needs the tree, policy or clocks
        overrides this."""
        self.apply(case, stamp)

    def apply(self, case: Case, stamp: Stamp) -> None:
        """Call the case's :attr:`method` with the action's fields as its keyword arguments
        (tests/unit/test_commands.py checks that every such action's fields are exactly them)."""
        getattr(case, self.method)(stamp, **self.case_arguments())

    def case_arguments(self) -> dict[str, Any]:
        """The action's own fields, by name: the keyword arguments of its case method."""
        return {a: getattr(self, a) for a in self.arguments}

    def check_kind(self, case: Case) -> None:
        if case.kind not in self.kinds:
            raise InvalidTransition(
                f"{self.name} does not apply to a {case.kind}",
                action=self.name,
                status=str(case.status),
                kinds=[str(k) for k in self.kinds],
            )


ACTIONS: dict[str, type[CaseAction]] = {}


A = TypeVar("A", bound="CaseAction")


def action(name: str, *kinds: Kind, method: str | None = None) -> Callable[[type[A]], type[A]]:
    """Register an action under ``name`` for ``kinds`` (default: every kind); its case
    method is ``method``, by default the name with ``_`` for ``-``."""

    def register(cls: type[A]) -> type[A]:
        cls.name = name
        cls.method = method or name.replace("-", "_")
        cls.arguments = tuple(cls.model_fields)
        if kinds:
            cls.kinds = kinds
        ACTIONS[name] = cls
        return cls

    return register


@action("assign")
class Assign(CaseAction):
    assignee: Name | None = None
    unit: Name | None = None

    def execute(self, case: Case, stamp: Stamp, ctx: ActionContext) -> None:
        tree = ctx.tree
        if self.assignee:
            person = tree.person(self.assignee)
            unit = self.unit or person.unit
            region = tree.get(person.region)
        else:
            unit = self.unit
            region = tree.get(tree.unit(unit).region) if unit else tree.get(case.region)
        if unit:
            tree.unit(unit)
        case.assign(
            stamp, assignee=self.assignee, unit=unit, region=region.code, rank=int(region.rank)
        )


@action("accept")
class Accept(CaseAction):
    needs_clocks: ClassVar[bool] = True  # the sign-for clock's due time and outcome go on the event

    def execute(self, case: Case, stamp: Stamp, ctx: ActionContext) -> None:
        sign_for = next((c for c in ctx.clocks if c.clock == SIGN_FOR and c.open), None)
        case.accept(stamp, sign_for=sign_for, sync_grace=ctx.policy.sync_grace_delta)


@action("send-back")
class SendBack(CaseAction):
    reason: Text
    needs_calendar: ClassVar[bool] = True

    def execute(self, case: Case, stamp: Stamp, ctx: ActionContext) -> None:
        since = case.dispatched_at or case.occurred_at
        closes = send_back_window_closes(ctx.policy, since, ctx.statutory)
        case.send_back(stamp, reason=self.reason, window_closes_at=closes)


RouteName = Literal["arbitration", "administrative", "court"]


@action("mediate", Kind.DISPUTE)
class Mediate(CaseAction):
    """调解: one session. ``form`` for an agreement (default ``oral``); ``routes`` for a
    failure: those the parties were told of (default all three, 人民调解法 Art. 26)."""

    outcome: Literal["agreed", "failed", "adjourned"]
    summary: Text
    agreement: Text | None = None
    form: Literal["written", "oral"] | None = None
    routes: list[RouteName] | None = Field(default=None, min_length=1, max_length=3)


@action("refuse-mediation", Kind.DISPUTE)
class RefuseMediation(CaseAction):
    """当事人拒绝调解: a party clearly refuses mediation; the parties are told of the routes."""

    party: Literal["applicant", "respondent", "other"]
    reason: Text
    routes: list[RouteName] | None = Field(default=None, min_length=1, max_length=3)


@action("sign-agreement", Kind.DISPUTE)
class SignAgreement(CaseAction):
    """The parties have signed the written agreement (调解协议书)."""


@action("seal-agreement", Kind.DISPUTE)
class SealAgreement(CaseAction):
    """The mediation committee has sealed the written agreement."""


@action("court-confirmation", Kind.DISPUTE, method="apply_court_confirmation")
class CourtConfirmation(CaseAction):
    note: Text


class RectificationPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    funds: ShortText | None = None
    people: ShortText | None = None
    interim_measures: Text | None = None


@action("order-rectification", Kind.HAZARD)
class OrderRectification(CaseAction):
    deadline: AwareDatetime
    measures: Text
    plan: RectificationPlan | None = None

    def apply(self, case: Case, stamp: Stamp) -> None:
        case = cast(Hazard, case)  # check_kind ran first: a hazard
        plan = self.plan.model_dump(exclude_none=True) if self.plan else {}
        case.order_rectification(stamp, deadline=self.deadline, measures=self.measures, plan=plan)


@action("rectify", Kind.HAZARD)
class Rectify(CaseAction):
    note: Text


@action("reinspect", Kind.HAZARD)
class Reinspect(CaseAction):
    passed: bool
    note: Text


@action("reply", Kind.PETITION)
class Reply(CaseAction):
    text: Text


@action("return-visit", Kind.PETITION)
class ReturnVisit(CaseAction):
    satisfaction: Literal["satisfied", "basically_satisfied", "dissatisfied"]
    note: OptionalText = ""


@action("escalate")
class Escalate(CaseAction):
    reason: Text
    to: Literal["grid", "village", "township", "county"] | None = None

    def execute(self, case: Case, stamp: Stamp, ctx: ActionContext) -> None:
        tree = ctx.tree
        if self.to is None:
            target = tree.next_rank_up(case.region)
            if target is None:
                raise InvalidTransition(
                    "the case is at the top of the ladder",
                    action="escalate",
                    status=str(case.status),
                )
        else:
            case.check_escalation(Rank.parse(self.to))
            target = tree.ancestor_at_rank(case.region, Rank.parse(self.to))
        unit = responsible_unit(tree, ctx.policy.routing, target.code, case.kind, case.category)
        case.escalate(
            stamp,
            to_rank=int(target.rank),
            to_region=target.code,
            unit=unit.id if unit else None,
            reason=self.reason,
        )


@action("reclassify")
class Reclassify(CaseAction):
    severity: Severity
    reason: Text


ClockName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(:.{1,200})?$")]
Days = Annotated[int, Field(ge=1, le=366)]
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=20_000)]


def _clock_state(clocks: Sequence[ClockState], name: str) -> ClockState | None:
    return next((c for c in clocks if c.name == name), None)


class _ClockAction(CaseAction):
    """An action on one of the case's clocks (default: its resolve clock). Its case method
    is given that clock (an :class:`ExtendableClock`) and the other fields."""

    needs_clocks = True
    clock: ClockName | None = None

    def execute(self, case: Case, stamp: Stamp, ctx: ActionContext) -> None:
        name = self.clock_name(case, ctx.policy)
        spec = ctx.policy.clock(name, case.kind)
        cap = spec.max_extension if spec else None
        clock = ExtendableClock(name, _clock_state(ctx.clocks, name), cap)
        getattr(case, self.method)(stamp, clock, **self.case_arguments())

    def case_arguments(self) -> dict[str, Any]:
        """The fields but ``clock``: the case method is given the resolved clock instead."""
        return {a: getattr(self, a) for a in self.arguments if a != "clock"}

    def clock_name(self, case: Case, policy: Policy) -> str:
        """The named clock, which must be one of the case's kind (422 if not), or the
        pending request's when exactly one awaits, or the case's resolve clock."""
        if self.clock is not None:
            if policy.clock(self.clock, case.kind) is None:
                raise ValidationFailed(
                    f"no clock {self.clock!r} for a {case.kind}",
                    field="clock",
                    allowed=[c.name for c in policy.clocks_for(case.kind, case.severity)],
                )
            return self.clock
        if len(case.pending_extensions) == 1 and self.name in (
            "approve-extension",
            "refuse-extension",
        ):
            return next(iter(case.pending_extensions))
        name = policy.resolve_clock(case.kind, case.severity)
        if name is None:
            raise ValidationFailed(
                f"a {case.kind} has no extendable clock; name one", field="clock"
            )
        return name


@action("request-extension")
class RequestExtension(_ClockAction):
    """延期 asked for by the handler, before the clock's due time."""

    days: Days
    reason: Text


@action("approve-extension")
class ApproveExtension(_ClockAction):
    note: Note = ""


@action("refuse-extension")
class RefuseExtension(_ClockAction):
    reason: Text


@action("extend")
class Extend(_ClockAction):
    """延期 granted directly by a supervisor, before the clock's due time."""

    days: Days
    reason: Text


class _SuspensionAction(CaseAction):
    """挂起 asked for or granted: allowed only before the resolve clock's due time. Its
    case method takes the resolve clock's state (``None``: none runs) beside the fields."""

    needs_clocks = True

    def execute(self, case: Case, stamp: Stamp, ctx: ActionContext) -> None:
        name = ctx.policy.resolve_clock(case.kind, case.severity)
        state = _clock_state(ctx.clocks, name) if name else None
        getattr(case, self.method)(stamp, resolve_clock=state, **self.case_arguments())


@action("request-suspension")
class RequestSuspension(_SuspensionAction):
    """挂起 asked for by the handler, before the resolve clock's due time."""

    reason: Text


@action("approve-suspension")
class ApproveSuspension(_SuspensionAction):
    note: Note = ""


@action("refuse-suspension")
class RefuseSuspension(CaseAction):
    reason: Text


@action("suspend")
class Suspend(_SuspensionAction):
    """挂起 granted directly by a supervisor, before the resolve clock's due time."""

    reason: Text


@action("resume")
class Resume(CaseAction):
    """挂起 ends: the clocks run again."""


@action("whistle")
class Whistle(CaseAction):
    departments: list[Name] = Field(min_length=1, max_length=50)
    reason: Text


@action("check-in")
class CheckIn(CaseAction):
    department: Name


@action("comment")
class Comment(CaseAction):
    """A comment, with evidence (photos, documents) named by hash."""

    text: Text
    attachments: Attachments = Field(default_factory=list)
    needs_evidence: ClassVar[bool] = True

    def execute(self, case: Case, stamp: Stamp, ctx: ActionContext) -> None:
        case.comment(stamp, text=self.text, attachments=list(ctx.evidence))


@action("supervise")
class Supervise(CaseAction):
    note: Text
    clock: Name | None = None


@action("resolve")
class Resolve(CaseAction):
    resolution: Text


@action("close")
class Close(CaseAction):
    """结案."""


@action("reopen")
class Reopen(CaseAction):
    reason: Text


@action("link-duplicate")
class LinkDuplicate(CaseAction):
    """并案: this case is a duplicate of ``primary``; its clocks stop, the primary carries on."""

    primary: UUID
    reason: Text

    def related(self) -> UUID | None:
        return self.primary

    def execute(self, case: Case, stamp: Stamp, ctx: ActionContext) -> None:
        assert ctx.related is not None  # the engine passes the primary
        case.link_duplicate(stamp, primary=ctx.related, reason=self.reason)

    def follow_up(self, case: Case) -> tuple[UUID, CaseAction] | None:
        return self.primary, AttachDuplicate(duplicate=str(case.id), reason=self.reason)


@action("unlink-duplicate")
class UnlinkDuplicate(CaseAction):
    reason: Text

    def follow_up(self, case: Case) -> tuple[UUID, CaseAction] | None:
        if case.duplicate_of is None:
            return None
        detach = DetachDuplicate(duplicate=str(case.id), reason=self.reason)
        return UUID(case.duplicate_of), detach


class _NoteOnPrimary(CaseAction):
    duplicate: Name
    reason: Text


@action("attach-duplicate")
class AttachDuplicate(_NoteOnPrimary):
    """Recorded by the engine on the primary after a ``link-duplicate``."""


@action("detach-duplicate")
class DetachDuplicate(_NoteOnPrimary):
    """Recorded by the engine on the primary after an ``unlink-duplicate``."""


@action("warn-clock")
class WarnClock(CaseAction):
    """Recorded by the timer service when a clock crosses a warning threshold."""

    clock: Name
    threshold: float = Field(gt=0, lt=1)
    due_at: AwareDatetime


@action("breach-clock")
class BreachClock(CaseAction):
    """Recorded by the timer service when a clock passes its due time."""

    clock: Name
    due_at: AwareDatetime
