"""The versioned policy: ceilings, clocks and calendar, as one document.

Deadlines are policy, not code. A policy document (TOML) is loaded as a new
version; each case records the version it was reported under and keeps using it.
The document is stored whole inside the ``PolicyLoaded`` event, so an old version
can always be read back exactly as it was.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from datetime import timedelta
from functools import lru_cache
from typing import Any, Literal
from uuid import NAMESPACE_URL, uuid5

from eventsourcing.domain import Aggregate
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from domain.errors import NotFound, ValidationFailed
from domain.kinds import Kind, Severity
from domain.ladder import Profile, Rank

DURATION_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|h|d|wh|wd)\s*$")
DURATION_UNITS = {
    "m": "calendar minutes",
    "h": "calendar hours",
    "d": "calendar days",
    "wh": "working hours",
    "wd": "working days",
}


@lru_cache(maxsize=256)
def calendar_delta(text: str) -> timedelta:
    """A calendar duration (``30m``, ``4h``, ``7d``) as a timedelta (kept per text: a
    policy's ``max_backdate`` bounds every command's stamp)."""
    amount, unit = parse_duration(text)
    return timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[unit]: amount})


def parse_duration(text: str) -> tuple[float, str]:
    """``"30m"``, ``"2h"``, ``"7d"`` (calendar) or ``"2wh"``, ``"5wd"`` (working time)."""
    return _parse_duration(str(text))


@lru_cache(maxsize=256)
def _parse_duration(text: str) -> tuple[float, str]:
    """:func:`parse_duration`, kept per text (the clocks parse their policy's durations
    on every fold)."""
    match = DURATION_PATTERN.match(text)
    if not match:
        raise ValueError(f"bad duration {text!r}: use e.g. 30m, 2h, 7d, 2wh, 5wd")
    amount, unit = float(match.group(1)), match.group(2)
    if amount <= 0:
        raise ValueError(f"duration {text!r} must be positive")
    return amount, unit


Duration = str


class ClockSpec(BaseModel):
    """One named clock: when it starts, pauses, stops, and its target.

    Conditions are case event type names (``Assigned``, ``Accepted`` …), with
    optional field predicates (``Reinspected[passed=false]``); domain/clocks.py
    has the rules and docs/clocks.md the meaning of each field. The
    target is a duration, per severity and/or per rank where the figure differs,
    per category where a kind of matter is owed a shorter one (water, power, gas,
    heat: 24 h), or is read from an event field (``target_from``, e.g. a
    rectification notice's deadline). ``start_from`` names an event field a cycle counts from
    instead of the starting event's time (销号: from the notice's deadline).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str = ""
    kinds: list[Kind]
    severities: list[Severity] = Field(default_factory=lambda: list(Severity))
    target: Duration | None = None
    target_by_severity: dict[Severity, Duration] = Field(default_factory=dict)
    target_by_rank: dict[str, Duration] = Field(default_factory=dict)
    target_by_category: dict[str, Duration] = Field(default_factory=dict)
    target_from: str | None = None
    start_from: str | None = None  # an event field holding the instant a cycle counts from
    start_on: list[str]
    stop_on: list[str] = Field(default_factory=list)
    pause_on: list[str] = Field(default_factory=lambda: ["Suspended"])
    resume_on: list[str] = Field(default_factory=lambda: ["Resumed"])
    cancel_on: list[str] = Field(default_factory=lambda: ["Closed"])
    restart_on: list[str] = Field(default_factory=list)
    on_breach: Literal["none", "supervise", "escalate"] = "none"
    each_from: str | None = None  # one clock per item of this list field of the start event
    each_match: str | None = None  # the field naming the item an event concerns
    max_extension: int | None = Field(default=None, ge=1, le=366)  # 延期 in all, in days of the
    # clock's own measure (working days for a working-time clock); None: not extendable

    @field_validator("start_on", "stop_on", "pause_on", "resume_on", "cancel_on", "restart_on")
    @classmethod
    def _conditions_parse(cls, value: list[str]) -> list[str]:
        from domain.clocks import Condition  # the one parser (domain.clocks imports this module)

        for condition in value:
            try:
                Condition.parse(condition)
            except ValidationFailed:
                raise ValueError(
                    f"bad condition {condition!r}: use Event or Event[field=value,...]"
                ) from None
        return value

    @field_validator("target", "target_by_severity", "target_by_rank", "target_by_category")
    @classmethod
    def _durations_parse(cls, value: Any) -> Any:
        values = value.values() if isinstance(value, dict) else [value]
        for v in values:
            if v is not None:
                parse_duration(v)
        return value

    @field_validator("target_by_rank")
    @classmethod
    def _ranks_known(cls, value: dict[str, Duration]) -> dict[str, Duration]:
        for rank in value:
            Rank.parse(rank)
        return value

    @model_validator(mode="after")
    def _has_a_target(self) -> ClockSpec:
        if not (
            self.target
            or self.target_by_severity
            or self.target_by_rank
            or self.target_by_category
            or self.target_from
        ):
            raise ValueError(f"clock {self.name!r} needs a target")
        return self

    @model_validator(mode="after")
    def _categories_known(self) -> ClockSpec:
        from domain.cases import CATEGORIES  # the cases module builds on this one

        known = {c for kind in self.kinds for c in CATEGORIES[kind]}
        unknown = sorted(set(self.target_by_category) - known)
        if unknown:
            raise ValueError(
                f"clock {self.name!r}: unknown categories {unknown} for {[str(k) for k in self.kinds]}"
            )
        return self

    def applies_to(self, kind: str, severity: str) -> bool:
        return Kind(kind) in self.kinds and Severity(severity) in self.severities

    def target_for(self, severity: str, rank: int) -> Duration | None:
        """The configured duration for a case of this severity at this rank:
        the rank's, else the severity's, else ``target``."""
        by_rank = {Rank.parse(k): v for k, v in self.target_by_rank.items()}
        return (
            by_rank.get(Rank(rank))
            or self.target_by_severity.get(Severity(severity))
            or self.target
        )

    def targets_for(self, severity: str, rank: int, category: str | None = None) -> list[Duration]:
        """Every duration that bounds a cycle: :meth:`target_for` and the category's
        (the earliest due time governs, see ``domain.clocks``)."""
        found = [self.target_for(severity, rank), self.target_by_category.get(category or "")]
        return [d for d in found if d]


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid")
    warn: list[float] = Field(default_factory=lambda: [0.5, 0.75])
    breach: float = 1.0

    @field_validator("warn")
    @classmethod
    def _ascending(cls, value: list[float]) -> list[float]:
        if any(not 0 < v < 1 for v in value) or value != sorted(value):
            raise ValueError("warn thresholds must be ascending fractions between 0 and 1")
        return value


class CalendarRef(BaseModel):
    """Which working calendar the clocks use, with optional inline overrides
    (the same TOML shape as a calendar override file, see docs/calendar.md)."""

    model_config = ConfigDict(extra="forbid")
    name: str = "cn-statutory"
    overrides: str = ""

    @field_validator("overrides")
    @classmethod
    def _overrides_parse(cls, value: str) -> str:
        if value.strip():
            from domain.calendar import WorkingCalendar  # a calendar file error names its line

            WorkingCalendar.from_overrides(value)
        return value


class Duplicates(BaseModel):
    """Duplicates at intake and 重复件 (``domain.search``): the window a possible duplicate
    is looked for in, the title similarity (trigram, 0–1) that counts as the same matter,
    the radius two points of the same category are the same place within; and the window
    after a petition's closure in which the same party's petition of the same category is
    a repeat (重复件)."""

    model_config = ConfigDict(extra="forbid")
    window_days: int = Field(default=30, ge=1, le=366)
    similarity: float = Field(default=0.4, gt=0, le=1)
    radius_m: float = Field(default=50.0, gt=0, le=10_000)
    repeat_window_days: int = Field(default=90, ge=1, le=3660)

    @property
    def window(self) -> timedelta:
        return timedelta(days=self.window_days)

    @property
    def repeat_window(self) -> timedelta:
        return timedelta(days=self.repeat_window_days)


LATER_FIELDS = ("sync_grace", "max_backdate", "duplicates")


class PolicyDocument(BaseModel):
    """What a policy file holds. Versions are assigned on load."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(min_length=1)
    ceilings: dict[Profile, dict[Severity, str]]
    thresholds: Thresholds = Field(default_factory=Thresholds)
    calendar: CalendarRef = Field(default_factory=CalendarRef)
    send_back_window: Duration = (
        "2wd"  # 退单 within this long of the dispatch (派单), signed for or not
    )
    clocks: list[ClockSpec] = Field(default_factory=list)
    routing: list[dict[str, Any]] = Field(default_factory=list)
    # an act recorded later than this after its due time is late, whenever it happened
    # (offline sync; domain.clocks.on_time); calendar units only (m, h, d)
    sync_grace: Duration = "4h"
    # the furthest an act's occurred_at may lie before it is recorded (domain.cases.Stamp.when)
    max_backdate: Duration = "7d"
    duplicates: Duplicates = Field(default_factory=Duplicates)

    @field_validator("sync_grace", "max_backdate")
    @classmethod
    def _calendar_duration(cls, value: str) -> str:
        if parse_duration(value)[1] not in ("m", "h", "d"):
            raise ValueError(f"{value!r}: use calendar time (m, h, d)")
        return value

    @property
    def sync_grace_delta(self) -> timedelta:
        return calendar_delta(self.sync_grace)

    @property
    def max_backdate_delta(self) -> timedelta:
        return calendar_delta(self.max_backdate)

    @field_validator("ceilings")
    @classmethod
    def _every_severity_has_a_ceiling(
        cls, value: dict[Profile, dict[Severity, str]]
    ) -> dict[Profile, dict[Severity, str]]:
        for profile in Profile:
            table = value.get(profile)
            if table is None:
                raise ValueError(f"ceilings.{profile} is missing")
            previous = -1
            for severity in Severity:
                if severity not in table:
                    raise ValueError(f"ceilings.{profile}.{severity} is missing")
                rank = Rank.parse(table[severity])
                if rank < previous:
                    raise ValueError(
                        f"ceilings.{profile}: {severity} may not have a lower ceiling "
                        "than a less severe case"
                    )
                previous = rank
        return value

    @field_validator("send_back_window")
    @classmethod
    def _window_parses(cls, value: str) -> str:
        parse_duration(value)
        return value

    @model_validator(mode="after")
    def _clock_names_unique(self) -> PolicyDocument:
        names = [c.name for c in self.clocks]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ValueError(f"clock names must be unique: {sorted(duplicates)}")
        return self

    def ceiling(self, profile: str, severity: str) -> Rank:
        return Rank.parse(self.ceilings[Profile(profile)][Severity(severity)])

    def ceilings_for(self, profile: str) -> dict[str, int]:
        """The ceiling table for one profile, as recorded on each case."""
        return {str(s): int(self.ceiling(profile, s)) for s in Severity}

    def clocks_for(self, kind: str, severity: str) -> list[ClockSpec]:
        return [c for c in self.clocks if c.applies_to(kind, severity)]

    def clock(self, name: str, kind: str) -> ClockSpec | None:
        """The clock spec a clock instance name (``reply``, ``check_in:城管局``) belongs to,
        if it is one of ``kind``'s clocks."""
        spec_name = name.partition(":")[0]
        return next((c for c in self.clocks if c.name == spec_name and Kind(kind) in c.kinds), None)

    def resolve_clock(self, kind: str, severity: str) -> str | None:
        """The clock an extension moves when none is named: the first extendable clock
        (with a ``max_extension``) of the case's kind and severity, in policy order."""
        return next((c.name for c in self.clocks_for(kind, severity) if c.max_extension), None)

    def digest(self) -> str:
        data = self.model_dump(mode="json")
        for name in (
            LATER_FIELDS
        ):  # at their defaults, fields added later leave a document's digest as it was
            if data[name] == _default(name):
                del data[name]
        canonical = json.dumps(data, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


def _default(name: str) -> Any:
    """A document field's default, as ``model_dump(mode="json")`` gives it."""
    field = PolicyDocument.model_fields[name]
    value = field.get_default(call_default_factory=True)
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def parse_policy(text: str) -> PolicyDocument:
    """Parse and validate a policy TOML text; errors name the field."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValidationFailed(f"policy is not valid TOML: {error}", field="toml") from None
    try:
        return PolicyDocument.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(p) for p in first["loc"]) or "policy"
        raise ValidationFailed(
            f"policy field {location}: {first['msg']}",
            field=location,
            errors=[
                {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                for e in error.errors()
            ],
        ) from None


class Policy(PolicyDocument):
    """A loaded policy document with its version number."""

    version: int = Field(ge=1)


# -- the event-sourced policy book -------------------------------------------------

POLICY_BOOK_ID = uuid5(NAMESPACE_URL, "fengqiao:policy-book")


class PolicyBook(Aggregate):
    """Every policy version ever loaded, in order. Versions are never changed."""

    class Started(Aggregate.Created):
        pass

    class PolicyLoaded(Aggregate.Event):
        policy_version: int
        label: str
        document: dict[str, Any]
        digest: str
        actor_id: str

        def apply(self, book: PolicyBook) -> None:
            book.documents[self.policy_version] = self.document
            book.digests[self.policy_version] = self.digest

    def __init__(self) -> None:
        self.documents: dict[int, dict[str, Any]] = {}
        self.digests: dict[int, str] = {}

    @classmethod
    def start(cls) -> PolicyBook:
        return cls._create(cls.Started, id=POLICY_BOOK_ID)

    @property
    def current_version(self) -> int | None:
        return max(self.documents) if self.documents else None

    def load(self, document: PolicyDocument, actor_id: str) -> int:
        """Record a new version unless it equals the current one; return the version."""
        digest = document.digest()
        current = self.current_version
        if current is not None and self.digests[current] == digest:
            return current
        version = (current or 0) + 1
        self.trigger_event(
            self.PolicyLoaded,
            policy_version=version,
            label=document.label,
            document=document.model_dump(mode="json"),
            digest=digest,
            actor_id=actor_id,
        )
        return version

    def get(self, version: int | None = None) -> Policy:
        version = version if version is not None else self.current_version
        if version is None or version not in self.documents:
            raise NotFound(f"no policy version {version}", resource="policy", id=version)
        return Policy.model_validate({**self.documents[version], "version": version})
