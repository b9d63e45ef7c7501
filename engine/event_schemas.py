"""The public event types and their JSON Schemas, generated from the event classes.

Every event of a dispute, hazard or petition is public; the ladder's and the policy
book's events are internal and never leave the engine. A public type is named
``cn.fengqiao.<kind>.<event>.v<version>``: the kind (``dispute``, ``hazard``,
``petition``), the event class's name in snake case (``SentBack`` → ``sent_back``)
and its ``class_version`` (1 unless the class was evolved with an upcaster).

The CloudEvent ``data`` of each type is described by a pydantic model built from
the event class's annotations plus the fields every event shares (case id,
version, actor, times, policy version); the feed serialises through the same
model, so the schema and the data cannot drift apart.

``python -m engine.event_schemas docs/events`` writes one ``<type>.json`` per type.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import typing
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic
from pydantic import BaseModel, ConfigDict, create_model

from domain.cases import CASE_CLASSES
from domain.errors import NotFound
from engine.settings import DEFAULTS, Settings

TYPE_PREFIX = "cn.fengqiao"
DOCS_PUBLIC_URL = "https://fengqiao.example"  # the public URL docs/events/ is written with

SHARED_FIELDS = frozenset(
    {
        "originator_id",
        "originator_version",
        "originator_topic",
        "timestamp",
        "actor",
        "occurred_at",
        "command_id",
        "policy_version",
    }
)
"""Fields every event has; they appear in ``data`` under the envelope names below."""


class ActorData(BaseModel):
    """Who acted: a member of staff or a process (``system:timers``)."""

    id: str
    role: str
    unit: str | None = None
    region: str | None = None
    rank: int | None = None


class PartyData(BaseModel):
    """A party to a case. ``name``, ``phone`` and ``id_number`` are masked for integrators
    (张*, 138****5678, 410928********127X) and read ``[erased]`` after crypto-shredding;
    ``person`` is the random, stable id of the person (the same party across cases)."""

    person: str | None = None
    name: str | None = None
    role: str | None = None
    phone: str | None = None
    id_number: str | None = None


class EventData(BaseModel):
    """What every public event's ``data`` carries."""

    model_config = ConfigDict(extra="ignore")

    case_id: str
    version: int
    kind: str
    occurred_at: datetime
    recorded_at: datetime
    actor: ActorData
    policy_version: int


def snake(name: str) -> str:
    """``SentBack`` → ``sent_back``: the one rule for event names in type strings."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def public_event_classes() -> dict[str, type[Aggregate.Event]]:
    """Every public event class by its stored topic (``domain.cases:Dispute.Escalated``)."""
    classes: dict[str, type[Aggregate.Event]] = {}
    for case_class in CASE_CLASSES.values():
        for name in dir(case_class):
            obj = getattr(case_class, name)
            if (
                isinstance(obj, type)
                and issubclass(obj, Aggregate.Event)
                and name not in ("Event", "Created")
                and obj.__qualname__ == f"{case_class.__name__}.{name}"
            ):
                classes[get_topic(obj)] = obj
    return classes


def kind_and_name(topic: str) -> tuple[str, str]:
    """``domain.cases:Dispute.Escalated`` → ``("dispute", "escalated")``."""
    qualname = topic.partition(":")[2]
    case_name, _, event_name = qualname.partition(".")
    return case_name.lower(), snake(event_name)


def type_for(topic: str, event_class: type) -> str:
    """The CloudEvents ``type`` of a stored event."""
    kind, name = kind_and_name(topic)
    return f"{TYPE_PREFIX}.{kind}.{name}.v{getattr(event_class, 'class_version', 1)}"


def schema_url(event_type: str, public_url: str = DEFAULTS.public_url) -> str:
    """The CloudEvents ``dataschema``: where the type's schema is served (``FENGQIAO_PUBLIC_URL``)."""
    return f"{public_url.rstrip('/')}/v1/schemas/{event_type}"


@cache
def data_model(event_class: type) -> type[EventData]:
    """The pydantic model of an event class's ``data`` (cached per class)."""
    hints = typing.get_type_hints(event_class)
    defaults = (
        {
            f.name: f.default
            for f in dataclasses.fields(event_class)
            if f.default is not dataclasses.MISSING
        }
        if dataclasses.is_dataclass(event_class)
        else {}
    )
    fields: dict[str, Any] = {}
    for name, annotation in hints.items():
        if (
            name in SHARED_FIELDS
            or name.startswith("_")
            or typing.get_origin(annotation) is typing.ClassVar
        ):
            continue
        if name == "parties":
            annotation = list[PartyData]
        fields[name] = (annotation, defaults.get(name, ...))  # a field added later has a default:
        # events stored before it was added lack it
    return create_model(
        f"{event_class.__qualname__.replace('.', '')}V{getattr(event_class, 'class_version', 1)}",
        __base__=EventData,
        __doc__=f"The data of a {event_class.__qualname__} event (version {getattr(event_class, 'class_version', 1)}).",
        **fields,
    )


def event_types() -> dict[str, type[Aggregate.Event]]:
    """Every public type string with its event class, sorted by type."""
    found = {type_for(topic, cls): cls for topic, cls in public_event_classes().items()}
    return dict(sorted(found.items()))


def json_schema(event_type: str, public_url: str = DEFAULTS.public_url) -> dict[str, Any]:
    """The JSON Schema of one public type's ``data``."""
    try:
        event_class = event_types()[event_type]
    except KeyError:
        raise NotFound(
            f"no public event type {event_type!r}", resource="event_type", id=event_type
        ) from None
    schema = data_model(event_class).model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": schema_url(event_type, public_url),
        **schema,
        "title": event_type,
    }


def catalogue(public_url: str = DEFAULTS.public_url) -> list[dict[str, Any]]:
    """The list served at ``GET /v1/schemas``."""
    return [{"type": t, "schema": schema_url(t, public_url)} for t in event_types()]


def write_schemas(folder: Path, public_url: str = DOCS_PUBLIC_URL) -> list[Path]:
    """Write ``<type>.json`` for every public type into ``folder``; return the files."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for event_type in event_types():
        path = folder / f"{event_type}.json"
        path.write_text(
            json.dumps(json_schema(event_type, public_url), ensure_ascii=False, indent=2) + "\n"
        )
        written.append(path)
    return written


if __name__ == "__main__":  # python -m engine.event_schemas docs/events
    settings = Settings.from_environment()
    url = settings.public_url if "public_url" in settings.model_fields_set else DOCS_PUBLIC_URL
    for written_path in write_schemas(
        Path(sys.argv[1] if len(sys.argv) > 1 else "docs/events"), url
    ):
        print(written_path)
