"""A case's snapshot: its whole state at one version, so a read need not replay every event.

eventsourcing's :class:`~eventsourcing.domain.Snapshot` copies the aggregate's attributes
and the engine's JSON transcoder stores them. JSON alone would lose some of their types
(a ``StrEnum`` comes back as ``str``, a tuple as a list, a set not at all), so
:class:`CaseSnapshot` tags those on the way in and restores them on the way out: a case
restored from a snapshot is the replayed case, attribute for attribute and type for type.

A change to what a case keeps in its state bumps the case class's ``class_version``
with an ``upcast_vN_vN+1(state)`` (the library's way: old snapshots are upcast on reading).
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from eventsourcing.domain import Snapshot
from eventsourcing.utils import get_topic, resolve_topic

TAG = "__snap__"
PLAIN = (str, int, float, bool, type(None))
_PLAIN = frozenset(PLAIN)
_STR = frozenset((str,))


def _plain_dict(value: dict[Any, Any]) -> bool:
    """Are a dict's keys all ``str`` and its values all plain (JSON keeps them as they are)?
    Counted in C (``map``/``set``), not one Python call an entry: a case's processed command
    ids grow with its history, and every snapshot holds them."""
    return set(map(type, value)) <= _STR and set(map(type, value.values())) <= _PLAIN


def encode_state(value: Any) -> Any:
    """``value`` with the types JSON would lose tagged (enums, sets, tuples, non-str keys)."""
    kind = type(value)
    if kind in PLAIN:
        return value
    if isinstance(value, Enum):
        return {TAG: "enum", "t": get_topic(kind), "v": value.value}
    if kind is dict:
        if _plain_dict(value):
            return dict(value)
        if all(type(k) is str for k in value):
            return {k: encode_state(v) for k, v in value.items()}
        return {TAG: "dict", "v": [[encode_state(k), encode_state(v)] for k, v in value.items()]}
    if kind is list:
        return [encode_state(v) for v in value]
    if kind in (tuple, set, frozenset):
        return {TAG: kind.__name__, "v": [encode_state(v) for v in value]}
    return value  # datetimes, UUIDs, actors, sealed parties: the transcoder's own types


def decode_state(value: Any) -> Any:
    """The inverse of :func:`encode_state`."""
    kind = type(value)
    if kind in PLAIN:
        return value
    if kind is list:
        return [decode_state(v) for v in value]
    if kind is not dict:
        return value
    tag = value.get(TAG)
    if tag is None:
        if _plain_dict(value):
            return dict(value)
        return {k: decode_state(v) for k, v in value.items()}
    if tag == "enum":
        return resolve_topic(value["t"])(value["v"])
    if tag == "dict":
        return {decode_state(k): decode_state(v) for k, v in value["v"]}
    return {"tuple": tuple, "set": set, "frozenset": frozenset}[tag](
        decode_state(v) for v in value["v"]
    )


class CaseSnapshot(Snapshot):
    """The library's snapshot with the case's attribute types kept."""

    @classmethod
    def take(cls, aggregate: Any) -> CaseSnapshot:
        taken = super().take(aggregate)
        object.__setattr__(taken, "state", encode_state(taken.state))
        return taken

    def mutate(self, _: None) -> Any:
        restored = type(self)(
            originator_id=self.originator_id,
            originator_version=self.originator_version,
            timestamp=self.timestamp,
            topic=self.topic,
            state=decode_state(self.state),
        )
        return Snapshot.mutate(restored, None)
