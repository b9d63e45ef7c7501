"""Stored events → domain events for the projection runner, faster than the mapper.

``app.mapper.to_domain_event`` parses each event's JSON with a Python ``object_hook``
called for every object, and builds a fresh value for every typed field (a frozen
``Actor`` dataclass per event costs ~2 µs). A rebuild decodes every event of the
log, so :class:`EventDecoder` does the same work with less Python per event:

* the JSON is parsed by ``orjson`` (C, no hook), then only containers are walked,
  innermost first, exactly as the hook would see them;
* typed values of immutable types (``datetime``, ``UUID``, ``Decimal``, ``Actor``)
  are decoded once per distinct stored form and shared between events (forms are
  compared as JSON values, where ``1``, ``1.0`` and ``true`` are equal — and so are
  the values decoded from them);
* each topic's class, class version and id convertor are looked up once.

The result equals the mapper's (same classes, same ``__dict__``, upcasting applied;
``tests/integration/test_projections_mechanism.py`` compares them on every event of a varied
log). Any other store set-up — a cipher, a compressor, a transcoder that is not the
library's JSON one with its ``_type_``/``_data_`` envelopes — uses the mapper itself.
Transcodings of other types (sealed parties: opened with a key that may be destroyed)
are called each time, never cached.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import (
    JSONTranscoder,
    MapperDeserialisationError,
    TranscodingNotRegisteredError,
    find_id_convertor,
)
from eventsourcing.utils import resolve_topic

from domain.actors import Actor
from engine.settings import DEFAULTS

IMMUTABLE = (datetime, date, UUID, Decimal, Actor)
# Distinct typed values kept (timestamps, actors), cleared when full. What repeats is near
# (an event's occurred_at is its timestamp; an actor acts many times in a row): 10,000 keeps
# the hit rate of 200,000 and ~2.4 MB instead of ~48 MB per decoder; a running worker adds
# a new timestamp per event, so a large bound only fills for hours (docs/performance-log.md, Memory).
CACHE_LIMIT = (
    DEFAULTS.decoder_cache
)  # FENGQIAO_DECODER_CACHE: the runner passes its engine's setting


class EventDecoder:
    """``decode(notification)`` ≡ ``mapper.to_domain_event(notification)``."""

    def __init__(self, mapper: Any, cache_limit: int = CACHE_LIMIT) -> None:
        self.mapper = mapper
        self.cache_limit = cache_limit
        transcoder = mapper.transcoder
        self.fast = (
            isinstance(transcoder, JSONTranscoder)
            and not getattr(mapper, "cipher", None)
            and not getattr(mapper, "compressor", None)
        )
        self._names: dict[str, Any] = dict(getattr(transcoder, "names", {}))
        self._cacheable = {
            name
            for name, t in self._names.items()
            if isinstance(t.type, type) and issubclass(t.type, IMMUTABLE)
        }
        self._values: dict[Any, Any] = {}
        self._classes: dict[str, tuple[type, int]] = {}
        self._convertors: dict[tuple[type, type], Any] = {}

    def decode(self, stored: Any) -> Any:
        if not self.fast:
            return self.mapper.to_domain_event(stored)
        topic = stored.topic
        found = self._classes.get(topic)
        if found is None:
            cls = resolve_topic(topic)
            found = self._classes[topic] = (cls, getattr(cls, "class_version", 1))
        cls, class_version = found
        try:
            state = orjson.loads(stored.state)
            if type(state) is dict:
                state = self._dict(state)
        except Exception as e:
            raise MapperDeserialisationError(
                f"Failed to deserialise state of stored event with topic '{topic}', originator_id "
                f"'{stored.originator_id}' and originator_version {stored.originator_version}: {e}"
            ) from e
        originator_id = stored.originator_id
        key = (cls, type(originator_id))
        convertor = self._convertors.get(key)
        if convertor is None:
            convertor = self._convertors[key] = find_id_convertor(cls, type(originator_id))  # type: ignore[arg-type]  # typeshed's lru_cache wants Hashable; a class is
        state["originator_id"] = convertor(originator_id)
        state["originator_version"] = stored.originator_version
        from_version = state.pop("class_version", 1)
        while from_version < class_version:
            getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(state)
            from_version += 1
        event: Any = object.__new__(cls)
        object.__setattr__(event, "__dict__", state)
        return event

    # -- the object hook's work, innermost first ---------------------------------------

    def _dict(self, d: dict[str, Any]) -> Any:
        if len(d) == 2 and "_type_" in d and "_data_" in d:
            return self._typed(d)
        return self._decode_in(d, d.items())

    def _list(self, items: list[Any]) -> list[Any]:
        return self._decode_in(items, enumerate(items))

    def _decode_in(self, container: Any, entries: Iterable[tuple[Any, Any]]) -> Any:
        """Replace, in place, each dict or list value of ``container`` (its ``entries``) by its decoding."""
        for key, value in entries:
            kind = type(value)
            if kind is dict:
                container[key] = self._dict(value)
            elif kind is list:
                container[key] = self._list(value)
        return container

    def _typed(self, d: dict[str, Any]) -> Any:
        name, data = d["_type_"], d["_data_"]
        if name in self._cacheable:
            try:  # only scalars hash, and the walk leaves scalars as they are
                key = (name, tuple(data.items())) if type(data) is dict else (name, data)
                return self._values[key]
            except TypeError:
                key = None
            except KeyError:
                pass
        else:
            key = None
        kind = type(data)
        if kind is dict:
            data = self._dict(data)
        elif kind is list:
            data = self._list(data)
        d["_data_"] = data
        try:
            transcoding = self._names[name]
        except KeyError as e:
            raise TranscodingNotRegisteredError(
                f"Data serialized with name '{name}' is not deserializable. "
                "Please register a custom transcoding for this type."
            ) from e
        value = transcoding.decode(data)
        if key is not None:
            if len(self._values) >= self.cache_limit:
                self._values.clear()
            self._values[key] = value
        return value
