"""The cases this engine last wrote, kept for its next command on them.

A command normally reads the case's events back from the store (a round trip
and a replay). When this engine wrote the case last, the state it saved is the
state it would read back, so the command can start from that object instead.

A command *takes* the entry (it leaves the cache), so no two threads ever hold
the same object, and a command that fails simply does not give it back. Only a
successful save puts the case (as saved) back.

The object may be stale if another process wrote the case since. That is safe:
the save then conflicts (the next version already exists) and the command is
retried from the store; a refusal decided on a cached copy is likewise decided
again on a fresh one before it is reported (see ``Fengqiao.act``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any
from uuid import UUID

from engine.settings import DEFAULTS

# ~6-7 KB a case (a case of 6-12 events): 2,000 cases ≈ 12-14 MB. The cache serves a case's next
# command soon after its last (the router's assignment after a report, a burst of actions on
# one case); at 40 distinct cases written a second (bench_memory, timer backlog included) it
# covers the last ~50 s, at 1 a second more than half an hour. 10,000 (~60 MB) kept it
# filling for minutes under load (docs/performance-log.md, Memory).
DEFAULT_SIZE = DEFAULTS.case_cache  # FENGQIAO_CASE_CACHE: the engine passes its setting


class CaseCache:
    """A bounded, thread-safe LRU of aggregates by id, taken out while in use."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[UUID, Any] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, aggregate_id: UUID) -> Any | None:
        """The cached aggregate, removed from the cache (None if there is none)."""
        with self._lock:
            return self._entries.pop(aggregate_id, None)

    def __contains__(self, aggregate_id: object) -> bool:
        """Is an entry kept for ``aggregate_id`` just now (another thread may take it next)?"""
        return aggregate_id in self._entries

    def put(self, aggregate: Any) -> None:
        """Keep the aggregate as just saved (an older version never replaces a newer one)."""
        if self.size <= 0:
            return
        with self._lock:
            held = self._entries.get(aggregate.id)
            if held is not None and held.version > aggregate.version:
                return
            self._entries[aggregate.id] = aggregate
            self._entries.move_to_end(aggregate.id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def forget(self, aggregate_id: UUID) -> None:
        with self._lock:
            self._entries.pop(aggregate_id, None)
