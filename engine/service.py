"""The application service: commands in, events stored, cases read back.

Built on ``eventsourcing``'s :class:`Application`: its repository rebuilds
aggregates from stored events, its recorder writes each command's events in one
transaction and gives them global positions (the notification log integrators
and projections follow).

What this layer adds:

* **Idempotency** — every command carries a command id. A case remembers the
  command ids it has processed; a repeat answers with the first result and writes
  nothing. A report's case id is derived from its command id, so a repeated
  report cannot create a second case, even when the two race.
* **Optimistic concurrency** — a command may name the version it expects; a
  stale one is refused. A command without one retries on conflict.
* **Time travel** — a case at any version, or as it stood at any moment.
* **The ladder and the policy**, themselves event-sourced, kept fresh in memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from json.encoder import c_encode_basestring, c_make_encoder  # type: ignore[attr-defined]
from typing import Any, TypeVar, cast
from uuid import UUID

import structlog
from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    JSONTranscoder,
    Mapper,
    Notification,
    OperationalError,
    RecordConflictError,
    Recording,
    Transcoder,
    Transcoding,
)
from eventsourcing.utils import get_topic

from domain.actors import Actor
from domain.calendar import CALENDAR_BOOK_ID, CalendarBook, Statutory
from domain.cases import CASE_CLASSES, Case, Stamp, case_id_for
from domain.clocks import ClockState, clocks_under
from domain.commands import (
    ActionContext,
    CaseAction,
    Envelope,
    ReportCase,
    check_horizon,
    parse_action,
)
from domain.errors import (
    DomainError,
    EscalationCeiling,
    IdempotencyKeyInUse,
    NotFound,
    ValidationFailed,
    VersionConflict,
)
from domain.kinds import Kind
from domain.ladder import LADDER_ID, Person, Region, RegionLadder, Unit, parse_region_file
from domain.policy import POLICY_BOOK_ID, Policy, PolicyBook, parse_policy
from domain.refusals import CeilingRefusals, refusal_log_id
from domain.search import Earlier
from engine import views
from engine.audit.recorders import (
    ChainedPostgresRecorder,
    ChainedSQLiteRecorder,
    insert_snapshot,
)
from engine.case_cache import CaseCache
from engine.case_clocks import advance_fold, current_clocks
from engine.group_commit import GroupCommit
from engine.logs import info_enabled, log_context
from engine.privacy import (
    SealedPartyAsDict,
    SealedTextAsStr,
    SealingMapper,
    persons_of,
    protect,
)
from engine.settings import Settings
from engine.sql import ping_when_idle
from engine.store import StoreConfig, store_from_settings
from engine.time_source import Clock, SystemClock

log = structlog.get_logger("fengqiao.engine")

MAX_CONFLICT_RETRIES = 8
# A case is snapshotted every this many versions while it is short (``snapshot_due``): a read or
# a command that misses the case cache restores the last snapshot and replays the newer events.
SNAPSHOT_INTERVAL = 10
ESCALATING_ACTIONS = ("escalate", "assign")  # a refusal of these counts as a 矛盾上交 attempt
TAggregate = TypeVar("TAggregate", bound=Aggregate)


def _follows(action: CaseAction) -> bool:
    """Does the action declare a follow-up (``CaseAction.follow_up`` overridden)?"""
    return type(action).follow_up is not CaseAction.follow_up


def replay(aggregate: Any, events: Any) -> Any:
    """eventsourcing's ``project_aggregate`` without its per-event ``isinstance`` check
    against a runtime Protocol (about half the CPU of a replay)."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


class ActorAsDict(Transcoding):
    type = Actor
    name = "actor"

    def encode(self, obj: Actor) -> dict[str, Any]:
        # what obj.as_dict() gives, without dataclasses.asdict's recursion (every event has an actor)
        return {
            "id": obj.id,
            "role": obj.role,
            "unit": obj.unit,
            "region": obj.region,
            "rank": obj.rank,
        }

    def decode(self, data: dict[str, Any]) -> Actor:
        return Actor.from_dict(data)


class OneShotJSONTranscoder(JSONTranscoder):
    """eventsourcing's ``JSONTranscoder``, its ``encode`` calling the C encoder that
    ``json.JSONEncoder.encode`` would make, made once: ``JSONEncoder.encode`` makes a new
    one for every call (``iterencode``), a quarter of an event's encoding. Same encoder,
    same arguments (the transcoder's ``default``, no ASCII escaping, ``,``/``:`` separators,
    keys in order, NaN allowed), so the same bytes (``tests/unit/test_transcoder.py``, every
    event type); only the check for circular references is left out (``markers``: a
    dict shared by every thread's encoding would see one thread's objects as another's
    cycles; event states hold none)."""

    def __init__(self) -> None:
        super().__init__()
        self._one_shot = (
            c_make_encoder(
                None, self._encode_obj, c_encode_basestring, None, ":", ",", False, False, True
            )
            if c_make_encoder is not None and c_encode_basestring is not None
            else None
        )

    def encode(self, obj: Any) -> bytes:
        if self._one_shot is None or not isinstance(obj, dict):
            return super().encode(obj)
        return "".join(self._one_shot(obj, 0)).encode("utf8")


@dataclass(frozen=True)
class CommandResult:
    """What a command did: the case, its version after, and the global position
    of the last event written (for read-your-writes)."""

    case_id: UUID
    version: int
    position: int | None
    repeated: bool = False


@dataclass(frozen=True)
class RecordedEvent:
    """A stored case event with its global position."""

    position: int | None
    event: Case.Event

    @property
    def type(self) -> str:
        return type(self.event).__name__


PlacedReport = TypeVar("PlacedReport", bound=ReportCase)


def snapshot_due(version: int, interval: int) -> bool:
    """Whether a case is snapshotted at ``version``: every ``interval`` versions up to
    100 × ``interval``, then every 10 × ``interval`` up to 1,000 × ``interval``, and so on.

    A snapshot holds every command id the case has processed (a repeat answers as the first
    time did), so it grows with the case. At a fixed interval a command's share of snapshot
    writing grew with the case's length: a comment on a 5,000-event case cost 1.20× one on a
    10-event case (2026-12-07). Spaced by at most a tenth of the case's length, the share
    stays flat, and a read that misses the case cache replays at most a tenth of the case
    after its last snapshot (fewer than 100 events below 10,000)."""
    step = interval
    while step * 100 <= version:
        step *= 10
    return version % step == 0


class Fengqiao(Application):
    """The engine's application service."""

    name = "fengqiao"
    recorder: (
        ChainedSQLiteRecorder | ChainedPostgresRecorder
    )  # engine/audit/recorders.py: the chained recorders
    snapshotting_intervals = {cls: SNAPSHOT_INTERVAL for cls in CASE_CLASSES.values()}
    snapshotting_projectors = {cls: replay for cls in CASE_CLASSES.values()}

    def __init__(
        self,
        store: StoreConfig | None = None,
        clock: Clock | None = None,
        env: dict[str, str] | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings or Settings.from_environment()  # read once, here, unless given
        self.store = store or store_from_settings(self.settings)
        self.store.prepare()
        self.clock: Clock = clock or SystemClock()
        self._cache_lock = threading.RLock()
        self._ladder: RegionLadder | None = None
        self._book: PolicyBook | None = None
        self._calendar_book: CalendarBook | None = None
        self._policies: dict[int, Policy] = {}
        self._checked: dict[UUID, float] = {}  # when each reference aggregate was last checked
        super().__init__(env={**self.store.eventsourcing_env(self.settings), **(env or {})})
        if self.store.is_postgres:  # its pre-ping only for connections left idle (engine.sql)
            ping_when_idle(self.recorder.datastore.pool)
        self.group_commit = GroupCommit(self.recorder.insert_events)
        self.case_cache = CaseCache(self.settings.case_cache)
        self.clock_folds = CaseCache(
            self.settings.case_cache
        )  # each case's clock fold (engine.case_clocks)
        self.earlier_cases: Callable[[frozenset[str]], list[Earlier]] | None = None
        """The earlier cases of a set of persons (the read models' ``earlier_cases``, wired
        where they run): what a report's 重复件 rule reads. None: no report is marked."""
        self.command_observers: list[Callable[[str, str], None]] = []
        """Called with (command, outcome) after every ``report`` and ``act``, whichever front
        door called it: outcome ``ok``, ``repeated`` or the refusal's code (the API's metrics)."""

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording]:
        """The library's ``save``, collecting aggregates' events without its
        runtime-Protocol ``isinstance`` checks (a measurable share of a command's CPU)."""
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        for obj in objs:
            if isinstance(obj, Aggregate):
                processing_event.events.extend(obj.collect_events())
                processing_event.aggregates[obj.id] = obj
            elif obj is not None:
                processing_event.collect_events(obj)
        processing_event.saved_kwargs.update(kwargs)
        recordings = self._record(processing_event)
        self._snapshot(processing_event)
        self._notify(recordings)
        return recordings

    def _snapshot(self, processing_event: ProcessingEvent) -> None:
        """Each case at the versions :func:`snapshot_due` names. The case as just saved is the state
        the store would give back, so when the save's event on the interval is the case's
        last, the snapshot is taken from it in memory (the library's ``take_snapshot`` reads
        the case back and replays it: a round trip and a replay on the write path); a
        multiple inside a batch of the case's events is read back as the library does. A
        snapshot only saves reading: the events are stored, so one that cannot be written
        is logged, never the command's failure."""
        snapshots = self.snapshots
        if snapshots is None:
            return
        try:
            for event in processing_event.events:
                case: Any = processing_event.aggregates.get(event.originator_id)
                interval = self.snapshotting_intervals.get(type(case))
                if interval is None or not snapshot_due(event.originator_version, interval):
                    continue
                if case.version == event.originator_version:
                    snapshot = type(case).Snapshot.take(case)
                    insert_snapshot(snapshots.recorder, self.mapper.to_stored_event(snapshot))
                else:
                    self.take_snapshot(event.originator_id, event.originator_version, replay)
        except (RecordConflictError, OperationalError) as error:
            log.warning("snapshot not written", error=str(error))

    def _record(self, processing_event: ProcessingEvent) -> list[Recording]:
        """Concurrent saves are written together (see :mod:`engine.group_commit`)."""
        events = processing_event.events
        if (
            not events
            or processing_event.tracking is not None
            or processing_event.saved_kwargs
            or self.repository.cache
        ):
            return super()._record(processing_event)
        stored = [self.mapper.to_stored_event(event) for event in events]
        positions = self.group_commit.insert(stored) or []
        return [
            Recording(
                event,
                Notification(
                    id=position,
                    originator_id=s.originator_id,
                    originator_version=s.originator_version,
                    topic=s.topic,
                    state=s.state,
                ),
            )
            for event, s, position in zip(events, stored, positions, strict=True)
        ]

    def construct_transcoder(self) -> Transcoder:
        """The library's transcoder (a ``TRANSCODER_TOPIC`` in the environment still names
        another), as :class:`OneShotJSONTranscoder`."""
        if self.env.get(self.factory.TRANSCODER_TOPIC):
            return super().construct_transcoder()
        transcoder = OneShotJSONTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(ActorAsDict())
        transcoder.register(SealedPartyAsDict(self))  # personal fields: see engine.privacy
        transcoder.register(SealedTextAsStr(self))  # numbers typed into free text: likewise

    def construct_mapper(self) -> Mapper:
        """The library's mapper, sealing numbers typed into free text (``engine.privacy.SealingMapper``)."""
        mapper = self.factory.mapper(
            transcoder=self.construct_transcoder(), mapper_class=SealingMapper
        )
        mapper.app = self  # type: ignore[attr-defined]  # SealingMapper reads the engine's keys
        return mapper

    # -- the ladder and the policy ------------------------------------------------

    def _fresh(
        self, cached: TAggregate | None, aggregate_id: UUID, start: Callable[[], TAggregate]
    ) -> TAggregate:
        """The aggregate brought up to date: replay only events newer than the cached copy.

        The store is asked at most once per ``FENGQIAO_REFERENCE_RECHECK`` seconds: changes made
        through this engine are in the cache at once, other processes' within that
        time (a change saved from a stale copy conflicts and is retried fresh).
        """
        now, recheck = time.monotonic(), self.settings.reference_recheck
        if cached is not None and now - self._checked.get(aggregate_id, -recheck) < recheck:
            return cached
        self._checked[aggregate_id] = now
        if cached is None:
            try:
                return self.repository.get(aggregate_id)
            except AggregateNotFoundError:
                return start()
        for event in self.events.get(aggregate_id, gt=cached.version):
            cached = cast(
                TAggregate, cast(Aggregate.Event, event).mutate(cached)
            )  # stored events are typed as
            # a protocol without mutate; a case event returns the case it mutated
        return cached

    def ladder(self) -> RegionLadder:
        with self._cache_lock:
            self._ladder = self._fresh(self._ladder, LADDER_ID, RegionLadder.start)
            return self._ladder

    def policy_book(self) -> PolicyBook:
        with self._cache_lock:
            self._book = self._fresh(self._book, POLICY_BOOK_ID, PolicyBook.start)
            return self._book

    def calendar_book(self, min_version: int | None = None) -> CalendarBook:
        """The statutory years imported; ``min_version``: at least that version of
        the book, read from the store now if the cached copy is older."""
        with self._cache_lock:
            if (
                min_version is not None
                and self._calendar_book is not None
                and self._calendar_book.version < min_version
            ):
                self._checked.pop(CALENDAR_BOOK_ID, None)
            self._calendar_book = self._fresh(
                self._calendar_book, CALENDAR_BOOK_ID, CalendarBook.start
            )
            return self._calendar_book

    def statutory(self) -> Statutory:
        """The statutory holidays and 调休 days every case's clocks count with."""
        return self.calendar_book().statutory()

    def import_calendar(self, text: str, actor_id: str, source: str = "") -> dict[str, Any]:
        """Import one year of the State Council's holiday notice (docs/calendar.md)."""
        year, changed = self._change(
            self.calendar_book, lambda book: book.import_year(text, actor_id, source)
        )
        book = self.calendar_book()
        log.info(
            "calendar imported" if changed else "calendar unchanged",
            year=year,
            actor=actor_id,
            source=source,
            book_version=book.version,
        )
        return {"year": year, "changed": changed, "version": book.version}

    def _change(self, get: Callable[[], TAggregate], change: Callable[[TAggregate], Any]) -> Any:
        """Change the ladder or the policy book, retrying on concurrent writers.

        The change is made on the cached copy under the lock; if anything fails
        the cache is dropped, so it never holds an unsaved change.
        """
        with self._cache_lock:
            for _ in range(MAX_CONFLICT_RETRIES):
                aggregate = get()
                try:
                    result = change(aggregate)
                    self.save(aggregate)
                    return result
                except RecordConflictError:
                    self._ladder = self._book = self._calendar_book = None
                except BaseException:
                    self._ladder = self._book = self._calendar_book = None
                    raise
        raise VersionConflict("too many concurrent changes; try again")

    def import_regions(self, text: str, actor_id: str) -> int:
        """Import a ``code,name,rank,profile`` file; return how many regions changed."""
        regions = parse_region_file(text, known=self.ladder().tree)
        return self._change(self.ladder, lambda ladder: ladder.import_regions(regions, actor_id))

    def add_unit(self, unit: Unit, actor_id: str) -> bool:
        return self._change(self.ladder, lambda ladder: ladder.add_unit(unit, actor_id))

    def add_person(self, person: Person, actor_id: str) -> bool:
        return self._change(self.ladder, lambda ladder: ladder.add_person(person, actor_id))

    def region(self, code: str) -> Region:
        return self.ladder().tree.get(code)

    # -- region geometry (engine.geometry: a side table, not the ladder's events) --

    def import_geometry(self, shapes: dict[str, Any]) -> int:
        """Store each region's shape (every code must be on the ladder); returns how many."""
        from engine.geometry import GeometryStore, check_codes

        tree = self.ladder().tree
        check_codes(shapes, [code for code in shapes if code in tree])
        count = GeometryStore(self.recorder).replace(shapes, self.clock.now().isoformat())
        self._geometry: tuple[Any, Any, float] | None = None
        return count

    def geometry(self) -> Any:
        """The region shapes' index (``engine.geometry.GeometryIndex``), read again from the
        store when another process imported (checked at most every reference_recheck)."""
        from engine.geometry import GeometryStore

        now, cached = time.monotonic(), getattr(self, "_geometry", None)
        if cached is not None and now - cached[2] < self.settings.reference_recheck:
            return cached[0]
        store = GeometryStore(self.recorder)
        stamp = store.stamp()
        if cached is not None and cached[1] == stamp:
            index = cached[0]
        else:
            index = store.load(
                {code: int(region.rank) for code, region in self.ladder().tree.regions.items()}
            )
        self._geometry = (index, stamp, now)
        return index

    def locate(self, lat: float, long: float) -> str:
        """The smallest region whose geometry contains the point (WGS-84);
        ``PointOutsideRegions`` when none does (or no geometry was imported)."""
        return self.geometry().locate(long, lat)

    def placed(self, body: PlacedReport) -> PlacedReport:
        """The report with its region: as given, else :meth:`locate` of its ``lat``/``long``."""
        if body.region:
            return body
        if body.lat is None or body.long is None:
            raise ValidationFailed("give the region, or lat and long to find it", field="region")
        return body.model_copy(update={"region": self.locate(body.lat, body.long)})

    # -- evidence (engine.evidence: a side table, content-addressed) ---------------------

    @property
    def evidence(self) -> Any:
        """The evidence files (``engine.evidence.EvidenceStore``), made on first use."""
        store = self.__dict__.get("_evidence")
        if store is None:
            from engine.evidence import EvidenceStore

            store = self._evidence = EvidenceStore(self.recorder, self.settings.evidence_max_bytes)
        return store

    def load_policy(self, text: str, actor_id: str) -> int:
        """Load a policy document; return its version (the current one if unchanged)."""
        document = parse_policy(text)
        return self._change(self.policy_book, lambda book: book.load(document, actor_id))

    def policy(self, version: int | None = None) -> Policy:
        """The policy now in force, or a version (versions never change: kept parsed)."""
        if version is None:
            version = self.policy_book().current_version
        policy = self._policies.get(version) if version is not None else None
        if policy is None:
            policy = self.policy_book().get(version)
            self._policies[policy.version] = policy
        return policy

    # -- commands ---------------------------------------------------------------

    def _observed(self, command: str, run: Callable[[], CommandResult]) -> CommandResult:
        """Run a command, telling the ``command_observers`` its outcome."""
        try:
            result = run()
        except DomainError as error:
            for observe in self.command_observers:
                observe(command, error.code)
            raise
        for observe in self.command_observers:
            observe(command, "repeated" if result.repeated else "ok")
        return result

    def report(self, body: ReportCase, envelope: Envelope) -> CommandResult:
        """上报 a new case under the current policy (see :meth:`_report`)."""
        return self._observed("report", lambda: self._report(body, envelope))

    def _report(self, body: ReportCase, envelope: Envelope) -> CommandResult:
        """上报 a new case under the current policy.

        Idempotent by command id (the case id is derived from it), checked
        optimistically: a report is built and saved without first reading the store,
        and only a refusal or a conflict on saving (the case already exists: this is
        a repeat, or a racing twin won) asks whether the command was done before.
        A new report — nearly every report — saves the read of the case and its
        round trips. (A repeat whose parties include a bare name, with no phone or
        id number, leaves an unused person key behind: keys of unidentified parties
        are never looked up.)
        """
        case_id = case_id_for(envelope.command_id)
        with log_context(
            case_id=str(case_id), command_id=envelope.command_id, actor=envelope.actor.id
        ):
            try:
                case = self._new_case(body, envelope)
                recordings = self.save(case)
            except (DomainError, RecordConflictError):
                repeated = self._repeat_of_report(case_id, envelope)
                if repeated is None:
                    raise
                return repeated
            result = CommandResult(case.id, case.version, recordings[-1].notification.id)
            self.case_cache.put(case)  # from here on another thread may take and change it
            if info_enabled():
                log.info(
                    "case reported",
                    kind=str(body.kind),
                    severity=str(body.severity),
                    region=case.region,
                )
            return result

    def _new_case(self, body: ReportCase, envelope: Envelope) -> Case:
        """The reported case, not yet saved."""
        tree = self.ladder().tree
        region = tree.get(body.region)
        policy = self.policy()
        stamp = self._stamp(envelope, policy)
        check_horizon(body, stamp.recorded_at)
        parties = protect(self, [p.model_dump(exclude_none=True) for p in body.parties])
        earlier = (
            self.earlier_cases(persons_of(self, list(parties)))
            if self.earlier_cases is not None and parties and body.kind == Kind.PETITION
            else []
        )
        return CASE_CLASSES[body.kind].report(
            stamp,
            policy_version=policy.version,
            category=body.category,
            severity=body.severity,
            region=region.code,
            rank=int(region.rank),
            profile=str(region.profile),
            ceilings=policy.ceilings_for(region.profile),
            title=body.title,
            description=body.description,
            channel=body.channel,
            parties=parties,
            details=body.details(),
            attachments=self.evidence.describe(body.attachments) if body.attachments else [],
            earlier=earlier,
            repeat_window=policy.duplicates.repeat_window,
        )

    def _repeat_of_report(self, case_id: UUID, envelope: Envelope) -> CommandResult | None:
        """The earlier result of this report, if it was made — by the same actor: a case
        another actor reported under this command id is neither returned nor revealed."""
        try:
            case = self.case(case_id)
        except NotFound:
            return None
        if case.reporter.id != envelope.actor.id:
            raise IdempotencyKeyInUse("this command id was used by someone else; send another")
        version = case.processed_commands[envelope.command_id]
        return CommandResult(case.id, version, self.position_of(case.id, version), repeated=True)

    def act(self, case_id: UUID, action: CaseAction, envelope: Envelope) -> CommandResult:
        """Run one action on a case (see :meth:`_act`), then its follow-up on another case
        if it has one (并案: the primary notes the link), under a derived command id: a
        repeat of the command completes a follow-up an earlier attempt left undone."""
        follow = action.follow_up(self.current_case(case_id)) if _follows(action) else None
        result = self._observed(action.name, lambda: self._act(case_id, action, envelope))
        if follow is not None:
            target, then = follow
            derived = envelope.model_copy(
                update={
                    "command_id": f"{envelope.command_id}:{then.name}",
                    "expected_version": None,
                }
            )
            try:
                self._observed(then.name, lambda: self._act(target, then, derived))
            except DomainError as error:  # the act itself is recorded: a repeat completes this
                log.warning("follow-up not recorded", action=then.name, error=error.code)
        return result

    def _act(self, case_id: UUID, action: CaseAction, envelope: Envelope) -> CommandResult:
        """Run one action on a case: idempotent, optimistic, retried on conflict."""
        with log_context(
            case_id=str(case_id), command_id=envelope.command_id, actor=envelope.actor.id
        ):
            use_cache = True
            retried_unknown_outcome = False
            for _ in range(MAX_CONFLICT_RETRIES):
                cached = self.case_cache.take(case_id) if use_cache else None
                case = cached if cached is not None else self.case(case_id)
                try:
                    done = case.processed_commands.get(envelope.command_id)
                    if done is not None:
                        return CommandResult(
                            case.id, done, self.position_of(case.id, done), repeated=True
                        )
                    if (
                        envelope.expected_version is not None
                        and envelope.expected_version != case.version
                    ):
                        raise VersionConflict(
                            f"the case is at version {case.version}, not {envelope.expected_version}",
                            expected=envelope.expected_version,
                            actual=case.version,
                        )
                    action.check_kind(case)
                    policy = self.policy(case.policy_version)
                    stamp = self._stamp(envelope, policy)
                    check_horizon(action, stamp.recorded_at)
                    try:
                        self._execute(action, case, stamp)
                    except EscalationCeiling as refusal:
                        if action.name in ESCALATING_ACTIONS and cached is None:
                            self._record_refusal(case, stamp, action.name, refusal)
                        raise
                except DomainError:
                    if cached is None:
                        raise
                    use_cache = (
                        False  # decided on a copy that may be stale: decide again on the store's
                    )
                    continue
                try:
                    recordings = self.save(case)
                except OperationalError:
                    # The write failed on the way (e.g. a grouped insert whose pipeline a
                    # neighbour's conflict aborted): its outcome is unknown. Commands are
                    # idempotent by id, so reading the case again and retrying once is safe:
                    # if the write landed, the reread case answers with its result.
                    self.case_cache.forget(case_id)
                    use_cache = False
                    if retried_unknown_outcome:
                        raise
                    retried_unknown_outcome = True
                    continue
                except RecordConflictError:
                    # Read the case again: a twin of this command (a double click) that won
                    # answers as a repeat; any other command fails the expected version.
                    self.case_cache.forget(case_id)
                    use_cache = False
                    continue
                result = CommandResult(case.id, case.version, recordings[-1].notification.id)
                advance_fold(self, case, recordings)  # the view at this version reads nothing back
                self.case_cache.put(case)  # from here on another thread may take and change it
                if info_enabled():
                    log.info("case command", action=action.name, version=result.version)
                return result
            raise VersionConflict("too many concurrent changes to this case; try again")

    def _execute(self, action: CaseAction, case: Case, stamp: Stamp) -> None:
        """Run the action's rules on the case. An action that declares ``needs_clocks``
        is given the case's clocks as they stand when the command is recorded; one that
        declares ``needs_calendar``, the statutory calendar facts its rule counts with; one
        that declares ``needs_evidence``, each named file as stored (422 for one never uploaded)."""
        policy = self.policy(case.policy_version)
        clocks: Sequence[ClockState] = ()
        if action.needs_clocks:
            if case.id in self.clock_folds:  # a fold kept (a view read the case): resumed, only
                clocks = current_clocks(self, case, stamp.recorded_at)  # newer events read
            else:  # none kept: folded once, not kept (keeping it costs each later command a fold)
                events = self.events.get(case.id, lte=case.version)
                clocks = clocks_under(policy, events, stamp.recorded_at, self.statutory())
        statutory = self.statutory() if action.needs_calendar else None
        named = getattr(action, "attachments", ()) if action.needs_evidence else ()
        evidence = self.evidence.describe(named) if named else ()
        related_id = action.related()
        related = None
        if related_id is not None:
            try:
                related = self.current_case(related_id)
            except NotFound:
                raise ValidationFailed(f"no case {related_id}", field="primary") from None
        context = ActionContext(
            self.ladder().tree, policy, clocks, statutory, related=related, evidence=evidence
        )
        action.execute(case, stamp, context)

    def _record_refusal(
        self, case: Case, stamp: Stamp, action: str, refusal: EscalationCeiling
    ) -> None:
        """Log an escalation the ceiling stopped (the case itself stays untouched)."""
        log_id = refusal_log_id(case.id)
        for _ in range(MAX_CONFLICT_RETRIES):
            try:
                refusals: CeilingRefusals = self.repository.get(log_id)
            except AggregateNotFoundError:
                refusals = CeilingRefusals.start(case.id, stamp.recorded_at)
            recorded = refusals.record(
                region=case.region,
                rank=case.rank,
                severity=str(case.severity),
                ceiling=refusal.details["ceiling"],
                requested=refusal.details["requested"],
                action=action,
                actor=stamp.actor,
                occurred_at=stamp.when(),
                recorded_at=stamp.recorded_at,
                command_id=stamp.command_id,
            )
            if not recorded:
                return
            try:
                self.save(refusals)
                log.info(
                    "escalation refused at the ceiling",
                    action=action,
                    ceiling=refusal.details["ceiling"],
                    requested=refusal.details["requested"],
                )
                return
            except RecordConflictError:
                continue

    def do(
        self, case_id: UUID, action_name: str, body: dict[str, Any], envelope: Envelope
    ) -> CommandResult:
        """Run an action named as in the API (``escalate``, ``send-back`` …)."""
        return self.act(case_id, parse_action(action_name, body), envelope)

    def _stamp(self, envelope: Envelope, policy: Policy | None = None) -> Stamp:
        """The command's stamp; ``policy`` (the case's) bounds how far ``occurred_at`` may
        lie back (``max_backdate``)."""
        return Stamp(
            actor=envelope.actor,
            command_id=envelope.command_id,
            recorded_at=self.clock.now(),
            occurred_at=envelope.occurred_at,
            **({"max_backdate": policy.max_backdate_delta} if policy is not None else {}),
        )

    # -- queries ----------------------------------------------------------------

    def case(self, case_id: UUID, version: int | None = None) -> Case:
        """The case now, or at a version."""
        try:
            case = self.repository.get(case_id, version=version, projector_func=replay)
        except AggregateNotFoundError:
            raise NotFound(f"no case {case_id}", resource="case", id=str(case_id)) from None
        if not isinstance(case, Case):
            raise NotFound(f"no case {case_id}", resource="case", id=str(case_id))
        if version is not None and case.version != version:
            raise NotFound(
                f"case {case_id} has no version {version}", resource="case_version", id=str(case_id)
            )
        return case

    def current_case(self, case_id: UUID, stored_version: int | None = None) -> Case:
        """The case now, as :meth:`case` answers it, from the engine's cached copy when it
        has one (one read of any newer events instead of the snapshot and its replay; none
        when ``stored_version``, read from the store since, is the copy's: see
        ``views.taken_case``). The copy stays cached: read it at once, never change it (a
        command takes its own)."""
        case = views.taken_case(self, case_id, stored_version=stored_version)
        self.case_cache.put(case)
        return case

    def case_as_of(self, case_id: UUID, moment: datetime) -> Case:
        """The case as the store knew it at ``moment`` (by recorded time)."""
        return views.replayed(self, case_id, as_of=moment)[0]

    # the case view with its clocks, now, at a version or as recorded at a moment: what the
    # HTTP API, the CLI and the dashboard show (``engine.views.case_view``)
    case_view = views.case_view

    def history(self, case_id: UUID) -> list[RecordedEvent]:
        """Every event of the case, in order, with its global position."""
        self.case(case_id)  # raises NotFound for unknown or non-case ids
        positions = self.positions_of(case_id)
        return [
            RecordedEvent(positions.get(e.originator_version), cast(Case.Event, e))
            for e in self.events.get(case_id)
        ]

    def position_of(self, aggregate_id: UUID, version: int) -> int | None:
        return self.positions_of(aggregate_id, version).get(version)

    def positions_of(self, aggregate_id: UUID, version: int | None = None) -> dict[int, int]:
        """Global positions of an aggregate's events, by version."""
        return self.recorder.positions_of(aggregate_id, version)

    def head_position(self) -> int:
        """The position of the last event recorded (0 for an empty store)."""
        return self.recorder.max_notification_id() or 0

    def case_ids(self) -> Iterator[UUID]:
        """Every case id, in the order cases were reported."""
        topics = [get_topic(cls.Reported) for cls in CASE_CLASSES.values()]
        start = 1
        while True:
            batch = self.recorder.select_notifications(start, 1000, topics=topics)
            if not batch:
                return
            for notification in batch:
                yield (
                    notification.originator_id
                    if isinstance(notification.originator_id, UUID)
                    else UUID(str(notification.originator_id))
                )
            start = batch[-1].id + 1
