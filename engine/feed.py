"""The public event feed: every case event as a CloudEvent 1.0, from any position.

A reader asks for the events *after* a position and gets at most ``limit`` of them,
in position order, with the position to ask for next. Positions are the global
notification ids of eventsourcing's recorder.

**Gap-safe.** On PostgreSQL the recorder takes an ``EXCLUSIVE`` lock on the events
table for each inserting transaction, so positions become visible in commit order:
once position *n* is visible, every lower position is committed (or rolled back and
gone for good). On SQLite there is only one writer at a time. Either way a reader
that asks for "after the last position I saw" never skips an event that commits
later. ``tests/test_feed_gaps.py`` proves it with concurrent writers.

**What is public.** Dispute, hazard and petition events are; the ladder's and the
policy book's events are internal and never appear (see ``engine.schemas``).

Each CloudEvent::

    id          <case id>:<case version>     stable across re-reads
    source      /fengqiao/<deployment>/regions/<region code of the case after the event>
    type        cn.fengqiao.<kind>.<event>.v<class version>
    subject     <case id>
    time        recorded time (RFC 3339)
    datacontenttype application/json
    dataschema  <public URL>/v1/schemas/<type>
    position    global position (extension attribute)
    data        the event's fields (engine.schemas), parties as the reader's role may see them
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from domain.actors import Role
from domain.errors import ValidationFailed
from domain.permissions import MASKED_ROLES, case_in_scope, mask_numbers
from engine.privacy import reveal
from engine.schemas import SHARED_FIELDS, data_model, public_event_classes, schema_url, type_for
from engine.service import Fengqiao

DEPLOYMENT_VARIABLE = "FENGQIAO_DEPLOYMENT"
DEFAULT_DEPLOYMENT = "demo"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_POSITION = 2**62  # no larger position can exist; larger numbers overflow the databases' integers
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
EVENT_CONTENT_TYPE = "application/cloudevents+json"
SCAN_FACTOR = 10  # a filtered page scans at most this many times ``limit`` rows
REGION_CACHE_SIZE = 100_000


@dataclass(frozen=True)
class FeedFilter:
    """Which events a reader wants: some types only, and/or one region's subtree."""

    types: frozenset[str] = frozenset()
    region: str | None = None

    @classmethod
    def of(cls, types: Iterable[str] | str | None = None, region: str | None = None) -> FeedFilter:
        """From API input: ``types`` as a list or a comma-separated string."""
        if isinstance(types, str):
            types = types.split(",")
        return cls(frozenset(t.strip() for t in types or () if t.strip()), region or None)

    def admits(self, whereabouts: Whereabouts) -> bool:
        """In the region's subtree: where the case is now, or where it was reported
        (the rule of ``domain.permissions.case_in_scope``)."""
        return self.region is None or case_in_scope((whereabouts.region, whereabouts.origin), self.region)


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
    """Recently seen cases: ``case id → (version, whereabouts)``."""

    entries: OrderedDict[UUID, tuple[int, Whereabouts]] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, case_id: UUID, version: int) -> Whereabouts | None:
        """The whereabouts before ``version`` (or at it), if the cache knows them."""
        entry = self.entries.get(case_id)
        if entry is not None and entry[0] in (version, version - 1):
            return entry[1]
        return None

    def put(self, case_id: UUID, version: int, whereabouts: Whereabouts) -> None:
        with self.lock:  # pages are read from several threads (the API's pool, SSE)
            self.entries[case_id] = (version, whereabouts)
            self.entries.move_to_end(case_id)
            if len(self.entries) > REGION_CACHE_SIZE:
                self.entries.popitem(last=False)


def region_carried_by(event: Any) -> str | None:
    """The case's region after this event, if the event says (report, assign,
    escalate, resolve); None for events that leave the region as it was."""
    return getattr(event, "to_region", None) or getattr(event, "region", None)


def rfc3339(moment: Any) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit must be between 1 and {MAX_LIMIT}", field="limit", max=MAX_LIMIT)
    return limit


class Feed:
    """Reads the stored case events as CloudEvents. Thread-safe for readers."""

    def __init__(self, app: Fengqiao, deployment: str | None = None) -> None:
        self.app = app
        self.deployment = deployment or os.environ.get(DEPLOYMENT_VARIABLE, DEFAULT_DEPLOYMENT)
        self.classes = public_event_classes()
        self.types = {type_for(topic, cls): topic for topic, cls in self.classes.items()}
        self._whereabouts = _WhereaboutsCache()
        self._schema_urls: dict[str, str] = {}

    # -- pages -------------------------------------------------------------------

    def topics(self, wanted: FeedFilter) -> list[str]:
        """The stored topics to read: the requested types', or every public one."""
        if not wanted.types:
            return list(self.classes)
        unknown = sorted(wanted.types - self.types.keys())
        if unknown:
            raise ValidationFailed(
                f"unknown event types: {', '.join(unknown)}", field="types", unknown=unknown,
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
    ) -> FeedPage:
        """At most ``limit`` events after position ``after``, in position order.

        ``next_after`` is the last position this page looked at: ask for the events
        after it next. With a region filter a page may look at more rows than it
        returns (at most ``SCAN_FACTOR × limit``), so it can be short or empty and
        still move ``next_after`` forward.
        """
        if not 0 <= after <= MAX_POSITION:
            raise ValidationFailed(f"after must be a position from 0 to {MAX_POSITION}", field="after")
        check_limit(limit)
        wanted = wanted or FeedFilter()
        topics = self.topics(wanted)
        head = self.app.head_position()
        events: list[dict[str, Any]] = []
        scanned_to, budget = after, limit * SCAN_FACTOR
        while len(events) < limit and budget > 0:
            batch = self.app.recorder.select_notifications(
                scanned_to + 1, min(limit, budget), topics=topics
            )
            if not batch:
                break
            budget -= len(batch)
            for notification in batch:
                scanned_to = notification.id
                event = self.app.mapper.to_domain_event(notification)
                whereabouts = self._whereabouts_after(event)
                if wanted.admits(whereabouts):
                    events.append(self.cloud_event(notification.id, notification.topic, event, whereabouts, role=role))
                    if len(events) == limit:
                        break
        return FeedPage(events, scanned_to, max(head, scanned_to))

    # -- one event -------------------------------------------------------------------

    def cloud_event(
        self, position: int, topic: str, event: Any, whereabouts: Whereabouts, *, role: str = Role.INTEGRATOR
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
            "dataschema": self._schema_urls.get(event_type) or self._schema_url(event_type),
            "position": position,
            "data": self.data(event, role=role),
        }

    def _schema_url(self, event_type: str) -> str:
        self._schema_urls[event_type] = schema_url(event_type)
        return self._schema_urls[event_type]

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
        data = data_model(type(event)).model_validate(payload).model_dump(mode="json")
        return mask_numbers(data) if role in MASKED_ROLES else data  # numbers typed into free text

    def _whereabouts_after(self, event: Any) -> Whereabouts:
        """Where the case is right after ``event``: said by the event, known from the
        previous version, or found by reading the case's events up to it."""
        case_id, version = event.originator_id, event.originator_version
        known = self._whereabouts.get(case_id, version)
        carried = region_carried_by(event)
        if known is None and carried and version == 1:  # reported: here it starts
            known = Whereabouts(carried, carried)
        elif known is None:
            region = origin = None
            for stored in self.app.recorder.select_events(case_id, lte=version):
                earlier = region_carried_by(self.app.mapper.to_domain_event(stored))
                region = earlier or region
                origin = origin or earlier
            known = Whereabouts(region or "unknown", origin or region or "unknown")
        elif carried:
            known = Whereabouts(carried, known.origin if version > 1 else carried)
        self._whereabouts.put(case_id, version, known)
        return known
