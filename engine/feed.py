"""The public event feed: every case event as a CloudEvent 1.0, from any position.

A reader asks for the events *after* a position and gets at most ``limit`` of them,
in position order, with the position to ask for next. Positions are the global
notification ids of eventsourcing's recorder.

**Gap-safe.** On PostgreSQL the recorder takes an ``EXCLUSIVE`` lock on the events
table for each inserting transaction, so positions become visible in commit order:
once position *n* is visible, every lower position is committed (or rolled back and
gone for good). On SQLite there is only one writer at a time. Either way a reader
that asks for "after the last position I saw" never skips an event that commits
later. ``tests/integration/test_feed_gaps.py`` proves it with concurrent writers.

**What is public.** Dispute, hazard and petition events are; the ladder's and the
policy book's events are internal and never appear (see ``engine.event_schemas``).

Each CloudEvent::

    id          <case id>:<case version>     stable across re-reads
    source      /fengqiao/<deployment>/regions/<region code of the case after the event>
    type        cn.fengqiao.<kind>.<event>.v<class version>
    subject     <case id>
    time        recorded time (RFC 3339)
    datacontenttype application/json
    dataschema  <public URL>/v1/schemas/<type>
    position    global position (extension attribute)
    data        the event's fields (engine.event_schemas), parties as the reader's role may see them
"""

from __future__ import annotations

import json
import re
import threading
import types
import typing
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import JSONTranscoder, Notification
from eventsourcing.utils import resolve_topic

from domain.actors import Role
from domain.errors import ValidationFailed
from domain.permissions import MASKED_ROLES, case_in_scope, mask_numbers, shown_to
from engine.event_schemas import (
    SHARED_FIELDS,
    ActorData,
    EventData,
    PartyData,
    data_model,
    public_event_classes,
    schema_url,
    type_for,
)
from engine.privacy import SealedParty, open_party, open_stored_text, reveal
from engine.service import Fengqiao
from engine.settings import DEFAULTS

DIRECT_VARIABLE = (
    "FENGQIAO_FEED_DIRECT"  # 0: every event by the reference path (a baseline, a way out)
)
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_POSITION = (
    2**62
)  # no larger position can exist; larger numbers overflow the databases' integers
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
EVENT_CONTENT_TYPE = "application/cloudevents+json"
SCAN_FACTOR = 10  # a filtered page scans at most this many times ``limit`` rows


@dataclass(frozen=True)
class FeedFilter:
    """Which events a reader wants: some types only, and/or one region's subtree."""

    types: frozenset[str] = frozenset()
    region: str | None = None
    _admitted: dict[Whereabouts, bool] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    @classmethod
    def of(cls, types: Iterable[str] | str | None = None, region: str | None = None) -> FeedFilter:
        """From API input: ``types`` as a list or a comma-separated string."""
        if isinstance(types, str):
            types = types.split(",")
        return cls(frozenset(t.strip() for t in types or () if t.strip()), region or None)

    def admits(self, whereabouts: Whereabouts, bound: int = DEFAULTS.feed_cache) -> bool:
        """In the region's subtree: where the case is now, or where it was reported
        (the rule of ``domain.permissions.case_in_scope``; remembered per pair of regions)."""
        if self.region is None:
            return True
        admitted = self._admitted.get(whereabouts)
        if admitted is None:
            if len(self._admitted) >= bound:
                self._admitted.clear()
            admitted = self._admitted[whereabouts] = case_in_scope(
                (whereabouts.region, whereabouts.origin), self.region
            )
        return admitted


@dataclass(frozen=True)
class FeedPage:
    """One page: the events, and the position to ask for next (``after``)."""

    events: list[dict[str, Any]]
    next_after: int
    head: int

    @property
    def positions(self) -> list[int]:
        return [event["position"] for event in self.events]


@dataclass(frozen=True)
class Whereabouts:
    """Where a case is right after one of its events, and where it was reported."""

    region: str
    origin: str


@dataclass
class _WhereaboutsCache:
    """Recently seen cases: ``case id → (version, whereabouts)``, at most ``size`` of them."""

    size: int = DEFAULTS.feed_cache
    entries: OrderedDict[str, tuple[int, Whereabouts]] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # one object per (region, origin) pair, shared by the entries: a region's code is read
    # from each event's JSON as a new string, and there are few pairs but many cases
    shared: dict[Whereabouts, Whereabouts] = field(default_factory=dict)

    def get(self, case_id: str, version: int) -> Whereabouts | None:
        """The whereabouts before ``version`` (or at it), if the cache knows them."""
        entry = self.entries.get(case_id)
        if entry is not None and entry[0] in (version, version - 1):
            return entry[1]
        return None

    def put(self, case_id: str, version: int, whereabouts: Whereabouts) -> None:
        with self.lock:  # pages are read from several threads (the API's pool, SSE)
            if len(self.shared) >= self.size:
                self.shared.clear()
            whereabouts = self.shared.setdefault(whereabouts, whereabouts)
            self.entries[case_id] = (version, whereabouts)
            self.entries.move_to_end(case_id)
            if len(self.entries) > self.size:
                self.entries.popitem(last=False)


def region_carried_by(event: Any) -> str | None:
    """The case's region after this event, if the event says (report, assign,
    escalate, resolve); None for events that leave the region as it was."""
    return getattr(event, "to_region", None) or getattr(event, "region", None)


def rfc3339(moment: Any) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(
            f"limit must be between 1 and {MAX_LIMIT}", field="limit", max=MAX_LIMIT
        )
    return limit


class Feed:
    """Reads the stored case events as CloudEvents. Thread-safe for readers.

    Each stored event takes the **direct path** (:class:`_Direct`): its JSON is parsed
    by orjson and the CloudEvent is built from it, without a domain object or a schema
    model. An event the direct path does not take (a cipher or compressor on the store,
    an event class that needs upcasting, a value of a shape it does not know) takes the
    **reference path**: eventsourcing's mapper, then the type's schema model
    (:meth:`cloud_event`). Both give the same documents, byte for byte
    (``tests/integration/test_feed_direct.py``); ``Feed(app, direct=False)``, or
    ``FENGQIAO_FEED_DIRECT=0`` in the engine's settings, reads by the reference path only.
    """

    def __init__(
        self, app: Fengqiao, deployment: str | None = None, *, direct: bool | None = None
    ) -> None:
        self.app = app
        settings = app.settings
        self.deployment = deployment or settings.deployment
        self.public_url, self.cache_size = (
            settings.public_url,
            settings.feed_cache,
        )  # cases whose whereabouts it keeps
        self.classes = public_event_classes()
        self.types = {type_for(topic, cls): topic for topic, cls in self.classes.items()}
        self._whereabouts = _WhereaboutsCache(self.cache_size)
        self._schema_urls: dict[str, str] = {}
        if direct is None:
            direct = settings.feed_direct
        self._direct = _Direct(self) if direct and _Direct.fits(app.mapper) else None

    # -- pages -------------------------------------------------------------------

    def topics(self, wanted: FeedFilter) -> list[str]:
        """The stored topics to read: the requested types', or every public one."""
        if not wanted.types:
            return list(self.classes)
        unknown = sorted(wanted.types - self.types.keys())
        if unknown:
            raise ValidationFailed(
                f"unknown event types: {', '.join(unknown)}",
                field="types",
                unknown=unknown,
                allowed=sorted(self.types),
            )
        return sorted(self.types[t] for t in wanted.types)

    def page(
        self,
        after: int = 0,
        limit: int = DEFAULT_LIMIT,
        wanted: FeedFilter | None = None,
        *,
        role: str = Role.INTEGRATOR,
        base_url: str | None = None,
    ) -> FeedPage:
        """At most ``limit`` events after position ``after``, in position order.

        ``base_url``: the base of the events' ``dataschema`` URLs (default: the
        configured public URL); the HTTP API passes the request's own when
        ``FENGQIAO_PUBLIC_URL`` is unset (``Settings.base_url``).

        ``next_after`` is the last position this page looked at: ask for the events
        after it next. With a region filter a page may look at more rows than it
        returns (at most ``SCAN_FACTOR × limit``), so it can be short or empty and
        still move ``next_after`` forward.
        """
        if not 0 <= after <= MAX_POSITION:
            raise ValidationFailed(
                f"after must be a position from 0 to {MAX_POSITION}", field="after"
            )
        check_limit(limit)
        wanted = wanted or FeedFilter()
        topics = self.topics(wanted)
        head = self.app.head_position()
        events: list[dict[str, Any]] = []
        direct, masked = self._direct, role in MASKED_ROLES
        scanned_to, budget = after, limit * SCAN_FACTOR
        while len(events) < limit and budget > 0:
            rows = self._rows(scanned_to + 1, min(limit, budget), topics)
            if not rows:
                break
            budget -= len(rows)
            for position, case_id, version, topic, state in rows:
                scanned_to = position
                parsed = direct.parse(topic, state) if direct is not None else None
                if parsed is not None:
                    carried = parsed[0].get("to_region") or parsed[0].get("region")
                    event = None
                else:
                    event = self._decode(position, case_id, version, topic, state)
                    carried = region_carried_by(event)
                whereabouts = self._whereabouts_after(case_id, version, carried)
                if not wanted.admits(whereabouts, self.cache_size):
                    continue
                cloud_event = None
                if parsed is not None:
                    assert direct is not None  # parsed only on the direct path
                    cloud_event = direct.cloud_event(
                        position, case_id, version, topic, state, parsed, whereabouts, role, masked
                    )
                    if cloud_event is None:  # the direct path declined: read it the reference way
                        event = self._decode(position, case_id, version, topic, state)
                if cloud_event is None:
                    cloud_event = self.cloud_event(position, topic, event, whereabouts, role=role)
                events.append(cloud_event)
                if len(events) == limit:
                    break
        if base_url is not None:
            rebase_schemas(events, self.public_url, base_url)
        return FeedPage(events, scanned_to, max(head, scanned_to))

    def _rows(
        self, start: int, limit: int, topics: list[str]
    ) -> list[tuple[int, str, int, str, bytes]]:
        """At most ``limit`` stored events of ``topics`` from position ``start`` on, in
        position order, as ``(position, case id text, version, topic, state)``: one keyset
        range scan of the events table by position (the recorder's ``select_notifications``
        query, read into tuples: no ``Notification`` or ``UUID`` per row)."""
        if self._direct is None:
            return [
                (n.id, str(n.originator_id), n.originator_version, n.topic, n.state)
                for n in self.app.recorder.select_notifications(start, limit, topics=topics)
            ]
        return self.app.recorder.event_rows(start - 1, limit, topics=topics)

    def _decode(self, position: int, case_id: str, version: int, topic: str, state: bytes) -> Any:
        """The domain event, by eventsourcing's mapper (the reference path)."""
        return self.app.mapper.to_domain_event(
            Notification(
                id=position,
                originator_id=UUID(case_id),
                originator_version=version,
                topic=topic,
                state=state,
            )
        )

    # -- one event: the reference path -------------------------------------------------

    def cloud_event(
        self,
        position: int,
        topic: str,
        event: Any,
        whereabouts: Whereabouts,
        *,
        role: str = Role.INTEGRATOR,
    ) -> dict[str, Any]:
        """One stored event as a structured CloudEvent (a JSON-ready dict)."""
        event_type = type_for(topic, type(event))
        case_id = event.originator_id
        return {
            "specversion": "1.0",
            "id": f"{case_id}:{event.originator_version}",
            "source": f"/fengqiao/{self.deployment}/regions/{whereabouts.region}",
            "type": event_type,
            "subject": str(case_id),
            "time": rfc3339(event.timestamp),
            "datacontenttype": "application/json",
            "dataschema": self.schema_url(event_type),
            "position": position,
            "data": self.data(event, role=role),
        }

    def schema_url(self, event_type: str) -> str:
        """The ``dataschema`` of a type (cached: the public URL is read once per type)."""
        url = self._schema_urls.get(event_type)
        if url is None:
            url = self._schema_urls[event_type] = schema_url(event_type, self.public_url)
        return url

    def data(self, event: Any, *, role: str = Role.INTEGRATOR) -> dict[str, Any]:
        """The event's fields through its schema model; parties as ``role`` may see them
        (masked for integrators, ``[erased]`` kept as it is: ``engine.privacy.reveal``)."""
        fields = {k: v for k, v in vars(event).items() if k not in SHARED_FIELDS}
        if fields.get("parties"):
            fields["parties"] = reveal(fields["parties"], role)
        payload = {
            "case_id": str(event.originator_id),
            "version": event.originator_version,
            "kind": type(event).__qualname__.split(".")[0].lower(),
            "occurred_at": event.occurred_at,
            "recorded_at": event.timestamp,
            "actor": dict(vars(event.actor)),
            "policy_version": event.policy_version,
            **fields,
        }
        model = data_model(type(event))  # type: ignore[arg-type]  # typeshed's lru_cache wants Hashable; a class is
        data = model.model_validate(payload).model_dump(mode="json")
        return shown_to(role, data)  # numbers typed into free text, for integrators

    # -- where cases are ---------------------------------------------------------------

    def _whereabouts_after(self, case_id: str, version: int, carried: str | None) -> Whereabouts:
        """Where the case is right after its event ``version`` (which carries the region
        ``carried``, or None): said by the event, known from the previous version, or found
        by reading the case's events up to it (once per case: then it is cached)."""
        known = self._whereabouts.get(case_id, version)
        if known is None and carried and version == 1:  # reported: here it starts
            known = Whereabouts(carried, carried)
        elif known is None:
            region = origin = None
            for stored in self.app.recorder.select_events(UUID(case_id), lte=version):
                parsed = (
                    self._direct.parse(stored.topic, stored.state)
                    if self._direct is not None
                    else None
                )
                earlier = (
                    parsed[0].get("to_region") or parsed[0].get("region")
                    if parsed is not None
                    else region_carried_by(self.app.mapper.to_domain_event(stored))
                )
                region = earlier or region
                origin = origin or earlier
            known = Whereabouts(region or "unknown", origin or region or "unknown")
        elif carried:
            known = Whereabouts(carried, known.origin if version > 1 else carried)
        self._whereabouts.put(case_id, version, known)
        return known


# -- the direct path: stored JSON → CloudEvent ---------------------------------------------

ISO_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{6})?(?:[+-]\d\d:\d\d)?", re.ASCII)
"""``datetime.isoformat()`` of a datetime whose UTC offset is whole minutes (or naive)."""
DIGIT_LEAD_BYTES = frozenset(b"\xd9\xdb\xdf\xe0\xe1\xea\xef\xf0")
"""The first bytes of the UTF-8 form of every non-ASCII character ``\\d`` matches (Unicode
category Nd: ٠, ०, ０ ...); ``tests/integration/test_feed_direct.py`` checks the set against ``re``."""
DIGITISH = bytes(
    ord("0") if 0x30 <= b <= 0x39 or 0x80 <= b <= 0xBF or b in DIGIT_LEAD_BYTES else ord(".")
    for b in range(256)
)
ASCII_DIGITS = bytes(ord("0") if 0x30 <= b <= 0x39 else ord(".") for b in range(256))
ELEVEN, TWENTY = b"0" * 11, b"0" * 20
TYPED = b'"_type_"'

# How each annotation of a schema model's field is checked and written (what pydantic's lax
# validation then JSON dump does to a value of the one JSON type accepted here); ``T | None``
# of any of these is the same, a stored null written as null (see :func:`field_code`).
STR, INT, FLOAT, BOOL, DICT, LIST, DATETIME, PARTIES, ACTOR = range(9)
CODES: dict[Any, int] = {
    str: STR,
    int: INT,
    float: FLOAT,
    bool: BOOL,
    dict: DICT,
    list: LIST,
    datetime: DATETIME,
    list[PartyData]: PARTIES,
    ActorData: ACTOR,
}
# Where each field of ``data`` comes from: the stored state under its own name, or (for the
# envelope fields ``Feed.data`` puts first) the notification, the class or the timestamp,
# unless the stored state has a field of that name (it wins, as ``**fields`` does there).
STATE, CASE_ID, VERSION, KIND, RECORDED_AT = range(5)
SOURCES = {"case_id": CASE_ID, "version": VERSION, "kind": KIND, "recorded_at": RECORDED_AT}
PARTY_FIELDS = tuple(PartyData.model_fields)
ACTOR_FIELDS = tuple(ActorData.model_fields)


ANY_ITEMS = {
    (list, (Any,)): list,
    (dict, (str, Any)): dict,
}  # JSON's lists and objects, as they are


def field_code(annotation: Any) -> tuple[int, bool] | None:
    """The code of an annotation (see ``CODES``: ``list[Any]`` is ``list``, ``dict[str, Any]``
    ``dict``) and whether it is ``T | None``; None for a type the direct path does not write."""
    optional = isinstance(annotation, types.UnionType) and type(None) in annotation.__args__
    if optional:
        rest = tuple(a for a in annotation.__args__ if a is not type(None))
        if len(rest) != 1:
            return None
        annotation = rest[0]
    if annotation not in CODES:
        annotation = ANY_ITEMS.get(
            (typing.get_origin(annotation), typing.get_args(annotation)), annotation
        )
    code = CODES.get(annotation)
    return None if code is None else (code, optional)


class _Unfit(Exception):
    """A stored value the direct path does not take: the event goes the reference way."""


def rebase_schemas(events: list[dict[str, Any]], public_url: str, base_url: str) -> None:
    """Give the events' ``dataschema`` URLs (made under ``public_url``) ``base_url`` instead."""
    old, new = public_url.rstrip("/"), base_url.rstrip("/")
    if old != new:
        for event in events:
            event["dataschema"] = new + event["dataschema"][len(old) :]


@dataclass(frozen=True)
class _Plan:
    """How one topic's stored events become CloudEvents."""

    cls: type
    class_version: int
    event_type: str
    dataschema: str
    kind: str
    data: Callable[..., tuple[dict[str, Any], int, bool]]  # see _compile


class _Direct:
    """Builds each CloudEvent straight from the stored JSON: ``orjson`` parses it, the
    values are checked and written as the event's schema model would write them, in the
    model's field order. It reads only stores written by eventsourcing's JSON transcoder
    (``{"_type_", "_data_"}`` for typed values) with no cipher or compressor, and declines
    any event it is not sure to write exactly as the reference path does: then
    :meth:`parse` or :meth:`cloud_event` answers None."""

    def __init__(self, feed: Feed) -> None:
        self.feed = feed
        self.source = f"/fengqiao/{feed.deployment}/regions/"
        self.plans: dict[str, _Plan | None] = {}

    @staticmethod
    def fits(mapper: Any) -> bool:
        return (
            isinstance(mapper.transcoder, JSONTranscoder)
            and not getattr(mapper, "cipher", None)
            and not getattr(mapper, "compressor", None)
        )

    def parse(self, topic: str, raw: bytes) -> tuple[dict[str, Any], bool] | None:
        """The stored event's state as plain JSON values, and whether it may hold an
        11-digit number (see :func:`_digit_runs`); None for an event of a class this
        path does not know, one that needs upcasting, or state orjson does not read as the
        json module does (NaN, Infinity, lone surrogates, integers beyond 64 bits)."""
        plan = self.plan(topic)
        if plan is None:
            return None
        may_hold_numbers, huge = _digit_runs(raw)
        if huge:  # orjson reads integers beyond 64 bits as floats: those go the json module's way
            return None
        try:
            state = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if type(state) is not dict or state.pop("class_version", 1) != plan.class_version:
            return None
        return state, may_hold_numbers

    def plan(self, topic: str) -> _Plan | None:
        cls = resolve_topic(topic)
        plan = self.plans.get(topic)
        if topic not in self.plans or (
            plan is not None and plan.cls is not cls
        ):  # a class swapped for a newer version
            plan = self.plans[topic] = self._make_plan(topic, cls)
        return plan

    def _make_plan(self, topic: str, cls: type) -> _Plan | None:
        steps = []
        for name, info in data_model(cls).model_fields.items():
            coded = field_code(info.annotation)
            if coded is None:
                return None  # a type this path does not know: the class goes the reference way
            if name in SOURCES and info.annotation != EventData.model_fields[name].annotation:
                return None
            steps.append((name, *coded, SOURCES.get(name, STATE)))
        event_type = type_for(topic, cls)
        kind = cls.__qualname__.split(".")[0].lower()
        return _Plan(
            cls,
            getattr(cls, "class_version", 1),
            event_type,
            self.feed.schema_url(event_type),
            kind,
            _compile(steps, kind),
        )

    def cloud_event(
        self,
        position: int,
        case_id: str,
        version: int,
        topic: str,
        raw: bytes,
        parsed: tuple[dict[str, Any], bool],
        whereabouts: Whereabouts,
        role: str,
        masked: bool,
    ) -> dict[str, Any] | None:
        """The CloudEvent of a stored event (``parsed`` is what :meth:`parse` gave), or None."""
        plan = self.plan(topic)
        if plan is None:
            return None
        state = parsed[0]
        try:
            stamp = state["timestamp"]
            time = _datetime(stamp)
            data, typed, parties = plan.data(state, case_id, version, time, stamp, role, self)
        except (
            _Unfit,
            KeyError,
        ):  # KeyError: a required field missing (the schema model refuses it)
            return None
        if raw.count(TYPED) != typed + 1:  # + the timestamp
            return None  # a typed value somewhere this path did not look (inside a dict or a list)
        if masked:  # numbers typed into free text, in any form (domain.permissions.mask_numbers)
            data = mask_numbers(data)
        return {
            "specversion": "1.0",
            "id": f"{case_id}:{version}",
            "source": self.source + whereabouts.region,
            "type": plan.event_type,
            "subject": case_id,
            "time": time,
            "datacontenttype": "application/json",
            "dataschema": plan.dataschema,
            "position": position,
            "data": data,
        }

    def _parties(self, stored: list[Any], role: str) -> tuple[list[dict[str, Any]], int]:
        """Stored parties as ``PartyData`` writes them for ``role``, and how many were typed."""
        opened = [self._party(p) for p in stored]
        return [_party_data(p) for p in reveal(opened, role)], sum(
            1 for p in stored if "_type_" in p
        )

    def _party(self, value: Any) -> dict[str, Any]:
        """A stored party as the transcoding decodes it: a sealed party opened (or
        ``[erased]``), a plain one (stored before parties were sealed) as it is."""
        if type(value) is not dict:
            raise _Unfit
        if "_type_" not in value:
            return value
        sealed = value.get("_data_")
        if len(value) != 2 or value["_type_"] != "sealed_party" or type(sealed) is not dict:
            raise _Unfit
        return open_party(
            self.feed.app,
            SealedParty(sealed["person"], sealed.get("role"), dict(sealed.get("sealed") or {})),
        )

    def _text(self, value: dict[str, Any]) -> str:
        """A stored sealed text as the transcoding decodes it (numbers opened or ``[erased]``)."""
        parts = value.get("_data_")
        if len(value) != 2 or value.get("_type_") != "sealed_text" or type(parts) is not list:
            raise _Unfit
        return open_stored_text(self.feed.app, parts)


SEALED_TEXT = [
    "if type(v) is dict:",
    "    v = direct._text(v)",
    "    typed += 1",
    "    parties = True",
]
"""A free-text field with numbers sealed in it (``engine.privacy.SealedText``): opened, and masked like parties."""


def _compile(
    steps: list[tuple[str, int, bool, int]], kind: str
) -> Callable[..., tuple[dict[str, Any], int, bool]]:
    """Generate the function that writes one event type's ``data``,
    ``build(state, case_id, version, time, stamp, role, direct) → (data, typed, masked)``.

    Each field is checked and converted as its annotation says, in the model's order
    (straight-line code: a loop over the fields is slower); an ``optional`` step
    (``T | None``) lets a stored null through as it is. ``stamp`` is the stored timestamp
    and ``time`` its JSON form; ``typed`` counts the typed values read; ``masked`` says the
    data holds parties or sealed text (masked for integrators). Raises ``_Unfit`` or
    ``KeyError`` where the reference path must take the event."""
    lines = [
        "def build(state, case_id, version, time, stamp, role, direct):",
        "    typed = 0",
        "    parties = False",
    ]
    check = {
        STR: [*SEALED_TEXT, "elif type(v) is not str: raise Unfit"],
        INT: ["if type(v) is not int: raise Unfit"],
        FLOAT: ["if type(v) is int: v = float(v)", "elif type(v) is not float: raise Unfit"],
        BOOL: ["if type(v) is not bool: raise Unfit"],
        DICT: ["if type(v) is not dict: raise Unfit"],
        LIST: ["if type(v) is not list: raise Unfit"],
        DATETIME: [
            "v = time if v == stamp else iso(v)",
            "typed += 1",
        ],  # occurred_at is often the timestamp
        ACTOR: ["v = actor(v)", "typed += 1"],
        PARTIES: [
            "if type(v) is not list: raise Unfit",
            "if v:",
            "    v, n = direct._parties(v, role)",
            "    typed += n",
            "    parties = True",
        ],
    }
    envelope = {CASE_ID: "case_id", VERSION: "version", KIND: repr(kind), RECORDED_AT: "time"}
    for i, (name, code, optional, source) in enumerate(steps):
        checked = (
            ["if v is not None:", *("    " + line for line in check[code])]
            if optional
            else check[code]
        )
        body = [f"v = state[{name!r}]", *checked, f"v{i} = v"]
        if source == STATE:
            lines += ["    " + line for line in body]
        else:  # an envelope field, unless the stored state has one of that name
            lines += [
                f"    if {name!r} in state:",
                *("        " + line for line in body),
                "    else:",
                f"        v{i} = {envelope[source]}",
            ]
    fields = ", ".join(f"{name!r}: v{i}" for i, (name, *_) in enumerate(steps))
    lines.append(f"    return {{{fields}}}, typed, parties")
    namespace: dict[str, Any] = {"Unfit": _Unfit, "iso": _datetime, "actor": _actor}
    exec("\n".join(lines), namespace)  # noqa: S102 - source made above from the model's field names
    return namespace["build"]


def _digit_runs(raw: bytes) -> tuple[bool, bool]:
    """For stored JSON: might it hold a number ``mask_numbers`` masks, and might it hold an
    integer of 20 digits or more? Every number masked is 11 or more ``\\d`` characters in a
    row, and each byte of their UTF-8 form maps to ``0`` in ``DIGITISH``; a JSON escape
    (``\\uff11``) is not looked into, so any makes the first answer yes."""
    if ELEVEN not in raw.translate(DIGITISH):
        return b"\\u" in raw, False
    return True, TWENTY in raw.translate(ASCII_DIGITS)


def _datetime(value: Any) -> str:
    """A stored ``datetime_iso`` value as the schema model writes it: ``Z`` for UTC."""
    if type(value) is not dict or len(value) != 2 or value.get("_type_") != "datetime_iso":
        raise _Unfit
    text = value.get("_data_")
    if type(text) is not str or ISO_DATETIME.fullmatch(text) is None:
        raise _Unfit
    return text[:-6] + "Z" if text.endswith(("+00:00", "-00:00")) else text


def _actor(value: Any) -> dict[str, Any]:
    """A stored actor as ``ActorData`` writes it (``Actor.from_dict`` keeps these keys)."""
    if type(value) is not dict or len(value) != 2 or value.get("_type_") != "actor":
        raise _Unfit
    stored = value.get("_data_")
    if type(stored) is not dict:
        raise _Unfit
    actor = {name: stored.get(name) for name in ACTOR_FIELDS}
    if type(actor["id"]) is not str or type(actor["role"]) is not str:
        raise _Unfit
    for name in ("unit", "region"):
        if actor[name] is not None and type(actor[name]) is not str:
            raise _Unfit
    if actor["rank"] is not None and type(actor["rank"]) is not int:
        raise _Unfit
    return actor


def _party_data(party: dict[str, Any]) -> dict[str, Any]:
    """A revealed party as ``PartyData`` writes it (every field, None when absent)."""
    written = {name: party.get(name) for name in PARTY_FIELDS}
    if any(value is not None and type(value) is not str for value in written.values()):
        raise _Unfit
    return written


# -- JSON out ----------------------------------------------------------------------------


def encode_json(value: Any) -> bytes:
    """``value`` as UTF-8 JSON (compact). orjson; the json module for what orjson refuses
    (integers beyond 64 bits, lone surrogates)."""
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8", "surrogatepass"
        )
