"""Group commit: concurrent commands' events written in one transaction.

Every insert into the event store takes a table-wide lock (that is what keeps
the feed gap-safe, see ``tests/integration/test_feed_gaps.py``) and ends with a commit that
waits for the disk. One transaction per command therefore caps a store at one
fsync per command, however many writers there are.

Here, a command that wants to write joins a queue. If nobody is writing, it
becomes the leader and writes at once, alone. While a leader writes, newcomers
queue up; when the leader is done it hands the lead to the first of them, who
writes everything queued as ONE insert (one lock, one commit, positions handed
out in queue order), then hands on in turn. Each member gets back its own
positions. The leader wakes only a group's first member, and each woken member
wakes the next: the wake-ups are off the leader's loop, the one every write waits on.

If a group's insert fails (a version conflict: two commands on one case, or an
idempotency race on a report), nothing of it was written; each member is then
written alone, so each gets exactly the result or the error it would have had
without grouping.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

MAX_GROUP_EVENTS = 2000
MAX_LEADER_ROUNDS = 8

Insert = Callable[[Sequence[Any]], Sequence[int] | None]


class _Member:
    __slots__ = ("events", "ids", "error", "woken", "leads", "then")

    def __init__(self, events: Sequence[Any]) -> None:
        self.events = events
        self.ids: Sequence[int] | None = None
        self.error: BaseException | None = None
        self.woken = (
            threading.Lock()
        )  # held until the member is woken: a bare lock, cheaper than an Event
        self.woken.acquire()
        self.leads = False
        self.then: _Member | None = None  # the member of the same group this one wakes

    def wake(self) -> None:
        """Release the waiting member (each member is woken exactly once)."""
        self.woken.release()


class GroupCommit:
    """Batches concurrent ``insert(stored_events)`` calls into one."""

    def __init__(
        self,
        insert: Insert,
        max_events: int = MAX_GROUP_EVENTS,
        max_rounds: int = MAX_LEADER_ROUNDS,
    ) -> None:
        self._insert = insert
        self._max_events = max_events
        self._max_rounds = max_rounds
        self._lock = threading.Lock()
        self._queue: list[_Member] = []
        self._leading = False  # a leader is writing
        self.groups = 0  # how many inserts were made (for benchmarks)
        self.members = 0

    def insert(self, stored_events: Sequence[Any]) -> Sequence[int] | None:
        """Insert these events, possibly with others'; return their positions."""
        member = _Member(stored_events)
        with self._lock:
            if self._leading:
                self._queue.append(member)
            else:
                self._leading = member.leads = True
        if not member.leads:
            member.woken.acquire()  # until woken: as the next leader, or with the group's result
            if member.then is not None:
                member.then.wake()  # the next of the group: the leader woke only the first
        if member.leads:
            self._lead(member)
        if member.error is not None:
            raise member.error
        return member.ids

    def _lead(self, leader: _Member) -> None:
        """Write the leader's group, then whatever queued meanwhile, for up to
        ``max_rounds`` groups; then hand the lead to the first still queued."""
        group = [leader]
        try:
            for _ in range(self._max_rounds):
                self._fill(group)
                try:
                    self._write(group)
                finally:
                    self._wake([member for member in group if member is not leader])
                group = []
                with self._lock:
                    if not self._queue:
                        break
        finally:
            with self._lock:
                if self._queue:
                    successor = self._queue.pop(0)
                    successor.leads = True
                    successor.wake()
                else:
                    self._leading = False

    @staticmethod
    def _wake(members: list[_Member]) -> None:
        """Wake the first member; each wakes the next. Every wake-up is a system call
        made holding the GIL (tens of µs on a VM): made by the leader for a group of 7,
        they lengthened the one loop every write waits on (a tenth of the writers' CPU)."""
        for member, then in zip(members, members[1:], strict=False):
            member.then = then
        if members:
            members[0].wake()

    def _fill(self, group: list[_Member]) -> None:
        """Add queued members to the group, first come first, up to ``max_events``."""
        with self._lock:
            size = sum(len(member.events) for member in group)
            while self._queue and (
                not group or size + len(self._queue[0].events) <= self._max_events
            ):
                size += len(self._queue[0].events)
                group.append(self._queue.pop(0))

    def _write(self, group: list[_Member]) -> None:
        self.groups += 1
        self.members += len(group)
        if len(group) > 1:
            try:
                ids = self._insert([event for member in group for event in member.events])
            except Exception:  # noqa: BLE001 - each member is retried alone below
                pass
            else:
                start = 0
                for member in group:
                    end = start + len(member.events)
                    member.ids = ids[start:end] if ids is not None else None
                    start = end
                return
        for member in group:
            try:
                member.ids = self._insert(member.events)
            except BaseException as error:  # noqa: BLE001 - handed to the member's own thread
                member.error = error
