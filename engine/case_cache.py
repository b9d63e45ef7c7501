"""The cases this engine last wrote, kept for its next command on them.

A command normally reads the case's events back from the store (a round trip
and a replay). When this engine wrote the case last, the state it saved is the
state it would read back, so the command can start from a copy of it instead.

The copy may be stale if another process wrote the case since. That is safe:
the save then conflicts (the next version already exists) and the command is
retried from the store; a refusal decided on a cached copy is likewise checked
again on a fresh one before it is reported (see ``Fengqiao.act``).

Entries are pickled: loading one gives a private copy (a failed command cannot
corrupt the cache), several times faster than ``copy.deepcopy``.
"""

from __future__ import annotations

import os
import pickle
import threading
from collections import OrderedDict
from typing import Any
from uuid import UUID

DEFAULT_SIZE = int(os.environ.get("FENGQIAO_CASE_CACHE", "10000"))


class CaseCache:
    """A bounded, thread-safe LRU of pickled aggregates by id."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[UUID, tuple[int, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, aggregate_id: UUID) -> Any | None:
        with self._lock:
            entry = self._entries.get(aggregate_id)
            if entry is None:
                return None
            self._entries.move_to_end(aggregate_id)
        return pickle.loads(entry[1])  # noqa: S301 - our own bytes, never from outside

    def put(self, aggregate: Any) -> None:
        """Keep the aggregate as saved (an older version never replaces a newer one)."""
        if self.size <= 0:
            return
        data = pickle.dumps(aggregate, protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            held = self._entries.get(aggregate.id)
            if held is not None and held[0] > aggregate.version:
                return
            self._entries[aggregate.id] = (aggregate.version, data)
            self._entries.move_to_end(aggregate.id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def forget(self, aggregate_id: UUID) -> None:
        with self._lock:
            self._entries.pop(aggregate_id, None)
