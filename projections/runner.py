"""Running projections: catch up in batches, exactly once, rebuild beside and swap.

The tracking table ``projection_tracking`` holds, per projection, the live
generation and the global position of the last event applied to it — the role
of eventsourcing's ``TrackingRecorder`` (a ``Tracking`` record written in the
same transaction as the projection's rows). We own the table because it also
carries the generation, which the swap after a rebuild changes atomically.

One batch:

1. read the projection's position (no lock);
2. read up to ``batch_size`` notifications after it (``app.recorder.select_notifications``)
   and decode the wanted ones (``app.mapper.to_domain_event``);
3. in ONE transaction: lock the tracking row, check that generation and position
   are still what step 1 saw (another worker or a swap may have moved them; then
   the batch is dropped and re-read), apply the events in global order, write
   the new position, commit.

A crash anywhere rolls back the whole batch: rows and position together. Two
workers may run; the check in step 3 makes one of them the only writer of each
batch.

Gaps: positions are only safe to follow if an event with a higher position
never becomes visible before a lower one. On SQLite writers are serialised by
the database lock. On PostgreSQL the eventsourcing recorder takes an EXCLUSIVE
lock on the events table for each insert, so commits — and hence visible
positions — come in order. We rely on that.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar

import structlog
from eventsourcing.persistence import Tracking

from engine.audit.recorders import ChainedPostgresRecorder
from engine.sql import Database, Tx
from projections.base import Projection
from projections.decoding import EventDecoder

log = structlog.get_logger("fengqiao.projections")

TRACKING_DDL = (
    "CREATE TABLE IF NOT EXISTS projection_tracking ("
    " name TEXT PRIMARY KEY, generation INTEGER NOT NULL, position BIGINT NOT NULL,"
    " version INTEGER NOT NULL, updated_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS projection_rebuilds ("
    " name TEXT PRIMARY KEY, generation INTEGER NOT NULL, position BIGINT NOT NULL,"
    " updated_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS projection_failures ("
    " name TEXT PRIMARY KEY, position BIGINT NOT NULL, error TEXT NOT NULL, failed_at TEXT NOT NULL,"
    " attempts INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS projection_skips ("
    " name TEXT NOT NULL, position BIGINT NOT NULL, reason TEXT NOT NULL, skipped_by TEXT NOT NULL,"
    " skipped_at TEXT NOT NULL, PRIMARY KEY (name, position))",
)
MAX_ERROR = 1000  # characters of an error kept in projection_failures

Progress = Callable[[int, int], None]  # (position reached, head position)


class Stored(NamedTuple):
    """A stored event with its position: what ``select_notifications`` gives, lighter."""

    id: int
    originator_id: Any
    originator_version: int
    topic: str
    state: bytes


@dataclass(frozen=True)
class Failure:
    """A projection stopped on one event: it retries, and moves on only once the event
    applies or an operator records a skip of that position (:meth:`ProjectionRunner.skip`)."""

    name: str
    position: int
    error: str
    failed_at: str
    attempts: int


@dataclass(frozen=True)
class Skip:
    name: str
    position: int
    reason: str
    skipped_by: str
    skipped_at: str


R = TypeVar("R", "Failure", "Skip")


class ProjectionFailed(RuntimeError):
    """One or more projections stopped on an event (recorded in ``projection_failures``)."""


@dataclass(frozen=True)
class RunnerStatus:
    """Where one projection stands against the event store."""

    name: str
    generation: int
    position: int  # the last event it has folded
    head: int  # the store's last event
    stale: bool  # built by another version of its code: it needs a rebuild
    failure: Failure | None = None  # the event it stopped on, if it stopped

    @property
    def lag(self) -> int:
        return max(self.head - self.position, 0)


ABANDONED_AFTER = 120.0  # seconds without a batch: a rebuild is taken to have died


class RebuildInProgress(RuntimeError):
    """Another rebuild of the projection is still writing."""


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _error_text(error: BaseException) -> str:
    """``Type: message``, one line, without control characters, at most ``MAX_ERROR`` long."""
    text = f"{type(error).__name__}: {error}"
    return "".join(ch if ch.isprintable() else " " for ch in text)[:MAX_ERROR]


def _age(stamp: str) -> float:
    return (datetime.now(UTC) - datetime.fromisoformat(stamp)).total_seconds()


class ProjectionRunner:
    """Keeps a set of projections caught up with the application's event log."""

    def __init__(
        self, app: Any, projections: Sequence[Projection], db: Database | None = None
    ) -> None:
        self.app = app
        self.projections = {p.name: p for p in projections}
        self.db = db or Database.for_store(app.store, settings=app.settings)
        self._owns_db = db is None
        self._advanced = threading.Condition()
        self._ready = False
        self._ensure_lock = threading.Lock()
        self._skips: frozenset[tuple[str, int]] = frozenset()
        self._failing: set[str] | None = None  # projections with a failure row (None: not read yet)
        self.decoder = EventDecoder(app.mapper, app.settings.decoder_cache)

    # -- set-up ----------------------------------------------------------------

    def ensure(self) -> None:
        """Create the tracking tables, and each projection's tables at generation 1."""
        with self._ensure_lock:
            if not self._ready:
                self._create_missing()
                self._ready = True

    def _create_missing(self) -> None:
        with self.db.transaction() as tx:
            tx.serialize("fengqiao.projections.ensure")
            for ddl in TRACKING_DDL:
                tx.execute(ddl)
            for projection in self.projections.values():
                rows = tx.query(
                    "SELECT generation FROM projection_tracking WHERE name = ?", (projection.name,)
                )
                if rows:
                    continue
                projection.generation = 1
                projection.create_tables(tx)
                projection.create_indexes(tx)
                self._point_views(tx, projection)
                tx.execute(
                    "INSERT INTO projection_tracking (name, generation, position, version, updated_at) "
                    "VALUES (?, 1, 0, ?, ?)",
                    (projection.name, projection.version, _now()),
                )

    @staticmethod
    def _point_views(tx: Tx, projection: Projection) -> None:
        for table in projection.tables:
            tx.execute(f"DROP VIEW IF EXISTS {table}")
            tx.execute(f"CREATE VIEW {table} AS SELECT * FROM {projection.t(table)}")

    # -- positions -------------------------------------------------------------

    def _tracking(self, name: str) -> tuple[int, int]:
        row = self.db.query(
            "SELECT generation, position FROM projection_tracking WHERE name = ?", (name,)
        )
        return (row[0]["generation"], row[0]["position"]) if row else (1, 0)

    def position(self, name: str) -> int:
        self.ensure()
        return self.tracking(name).notification_id

    def tracking(self, name: str) -> Tracking:
        """The projection's position as eventsourcing's ``Tracking`` record."""
        return Tracking(application_name=name, notification_id=self._tracking(name)[1])

    def statuses(self) -> list[RunnerStatus]:
        self.ensure()
        head = self.app.head_position()
        rows = {r["name"]: r for r in self.db.query("SELECT * FROM projection_tracking")}
        failures = {f.name: f for f in self.failures()}
        return [
            RunnerStatus(
                name,
                rows[name]["generation"],
                rows[name]["position"],
                head,
                rows[name]["version"] != p.version,
                failures.get(name),
            )
            for name, p in self.projections.items()
        ]

    # -- failures and skips ------------------------------------------------------

    def failures(self) -> list[Failure]:
        """The projections stopped on an event, with the position and the error."""
        failures = self._records(Failure, "projection_failures", "name")
        return [f for f in failures if f.name in self.projections]

    def skips(self) -> list[Skip]:
        """Every position an operator told a projection to pass over, with the reason."""
        return self._records(Skip, "projection_skips", "position, name")

    def _records(self, record: type[R], table: str, order: str) -> list[R]:
        """The rows of ``table`` as ``record``s (its fields are the columns)."""
        self.ensure()
        names = [f.name for f in fields(record)]
        rows = self.db.query(f"SELECT {', '.join(names)} FROM {table} ORDER BY {order}")
        return [record(*(r[n] for n in names)) for r in rows]

    def skip(
        self, position: int, reason: str, by: str, names: Sequence[str] | None = None
    ) -> list[str]:
        """Record that the projections ``names`` (default: those stopped at ``position``)
        pass over the event at ``position``; return the names. Kept for rebuilds too."""
        if not reason.strip():
            raise ValueError("give the reason for skipping")
        chosen = (
            list(names) if names else [f.name for f in self.failures() if f.position == position]
        )
        unknown = [n for n in chosen if n not in self.projections]
        if unknown:
            raise KeyError(
                f"unknown projection {unknown[0]!r}; known: {', '.join(self.projections)}"
            )
        if not chosen:
            raise LookupError(f"no projection is stopped at position {position}: name one")
        with self.db.transaction() as tx:
            for name in chosen:
                tx.execute(
                    "INSERT INTO projection_skips (name, position, reason, skipped_by, skipped_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name, position) DO UPDATE SET "
                    "reason = excluded.reason, skipped_by = excluded.skipped_by, "
                    "skipped_at = excluded.skipped_at",
                    (name, position, reason.strip(), by, _now()),
                )
        log.warning(
            "projection position skipped",
            position=position,
            projections=chosen,
            reason=reason,
            by=by,
        )
        return chosen

    def _load_skips(self) -> None:
        rows = self.db.query("SELECT name, position FROM projection_skips")
        self._skips = frozenset((r["name"], r["position"]) for r in rows)

    def _record_failure(self, name: str, position: int, error: BaseException) -> None:
        text = _error_text(error)
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO projection_failures (name, position, error, failed_at, attempts) "
                "VALUES (?, ?, ?, ?, 1) ON CONFLICT (name) DO UPDATE SET "
                "attempts = CASE WHEN projection_failures.position = excluded.position "
                "THEN projection_failures.attempts + 1 ELSE 1 END, "
                "failed_at = CASE WHEN projection_failures.position = excluded.position "
                "THEN projection_failures.failed_at ELSE excluded.failed_at END, "
                "position = excluded.position, error = excluded.error",
                (name, position, text, _now()),
            )
        if self._failing is not None:
            self._failing.add(name)
        log.error("projection stopped on an event", projection=name, position=position, error=text)

    def _clear_failures(self, names: set[str]) -> None:
        """Forget the failure rows of projections that applied a batch again."""
        if self._failing is None:
            self._failing = {
                r["name"] for r in self.db.query("SELECT name FROM projection_failures")
            }
        cleared = names & self._failing
        if cleared:
            with self.db.transaction() as tx:
                for name in cleared:
                    tx.execute("DELETE FROM projection_failures WHERE name = ?", (name,))
            self._failing -= cleared

    def lag(self) -> dict[str, int]:
        return {s.name: s.lag for s in self.statuses()}

    def wait_for(self, position: int, timeout: float) -> bool:
        """Read-your-writes: wait until every projection has applied ``position``."""
        deadline = time.monotonic() + timeout
        while True:
            if all(self.position(name) >= position for name in self.projections):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._advanced:
                self._advanced.wait(min(remaining, 0.05))

    # -- catching up -------------------------------------------------------------

    def _read(self, after: int, limit: int) -> list[Any]:
        """Up to ``limit`` stored events after position ``after``, in order (each with
        ``id``, ``originator_id``, ``originator_version``, ``topic``, ``state``)."""
        recorder = self.app.recorder
        if not isinstance(recorder, ChainedPostgresRecorder):
            return list(recorder.select_notifications(after + 1, limit))
        return list(
            map(Stored._make, recorder.notification_rows(after, limit))
        )  # tuples: a third of the cost

    def _decoded(
        self, notifications: Sequence[Any], projection: Projection, cache: dict[int, Any]
    ) -> list[tuple[int, Any]]:
        events = []
        skips = self._skips
        for notification in notifications:
            if (
                projection.wants(notification.topic)
                and (projection.name, notification.id) not in skips
            ):
                event = cache.get(notification.id)
                if event is None:
                    event = cache[notification.id] = self.decoder.decode(notification)
                events.append((notification.id, event))
        return events

    def _read_ahead(
        self, after: int, limit: int, projection: Projection
    ) -> tuple[list[Any], dict[int, Any]]:
        notifications = self._read(after, limit)
        decoded: dict[int, Any] = {}
        self._decoded(notifications, projection, decoded)
        return notifications, decoded

    def _apply_batch(
        self,
        projection: Projection,
        table: str,
        generation: int,
        position: int,
        notifications: Sequence[Any],
        cache: dict[int, Any],
    ) -> bool:
        """Apply notifications after ``position`` and move the tracking row, atomically.
        False if someone else moved the row first (nothing is written)."""
        todo = [n for n in notifications if n.id > position]
        if not todo:
            return True
        events = self._decoded(todo, projection, cache)
        with self.db.transaction(bulk=table == "projection_rebuilds") as tx:
            row = tx.query(
                f"SELECT generation, position FROM {table} WHERE name = ?{self.db.for_update}",
                (projection.name,),
            )
            if not row or (row[0]["generation"], row[0]["position"]) != (generation, position):
                return False
            worker = copy.copy(projection)
            worker.generation = generation
            worker.apply_batch(tx, events)
            tx.execute(
                f"UPDATE {table} SET position = ?, updated_at = ? WHERE name = ?",
                (todo[-1].id, _now(), projection.name),
            )
        return True

    def run_once(self, batch_size: int = 1000) -> int:
        """Catch every projection up to the head; return how many events were applied.

        A projection that fails on an event applies the events before it, records the
        position and the error (``projection_failures``) and sits out the rest of this
        call while the others catch up; then :class:`ProjectionFailed` is raised."""
        self.ensure()
        self._load_skips()
        applied, failed, moved = 0, {}, set()
        while True:
            positions = {
                name: self._tracking(name) for name in self.projections if name not in failed
            }
            if not positions:
                break
            start = min(position for _, position in positions.values())
            notifications = self._read(start, batch_size)
            if not notifications:
                break
            cache: dict[int, Any] = {}
            for name, (generation, position) in positions.items():
                try:
                    if self._apply_batch(
                        self.projections[name],
                        "projection_tracking",
                        generation,
                        position,
                        notifications,
                        cache,
                    ):
                        applied += sum(1 for n in notifications if n.id > position)
                        moved.add(name)
                except Exception:  # noqa: BLE001 - one event must not stop the other projections
                    done, stopped = self._pin_failure(
                        name, generation, position, notifications, cache
                    )
                    applied += done
                    if stopped is None:
                        moved.add(name)
                    else:
                        failed[name] = stopped
            with self._advanced:
                self._advanced.notify_all()
        self._clear_failures(moved - set(failed))
        if failed:
            raise ProjectionFailed(
                "projections stopped on an event (fengqiao projections status): "
                + "; ".join(f"{n} at {p}: {e}" for n, (p, e) in sorted(failed.items()))
            )
        return applied

    def _pin_failure(
        self,
        name: str,
        generation: int,
        position: int,
        notifications: Sequence[Any],
        cache: dict[int, Any],
    ) -> tuple[int, tuple[int, str] | None]:
        """After a failed batch: apply its events one by one up to the one that fails, and
        record that one. Return how many were applied, and the failed position and error
        (None if every event applied alone)."""
        applied = 0
        for notification in (n for n in notifications if n.id > position):
            try:
                if not self._apply_batch(
                    self.projections[name],
                    "projection_tracking",
                    generation,
                    position,
                    [notification],
                    cache,
                ):
                    return applied, None  # another worker moved it on: theirs to record
            except Exception as error:  # noqa: BLE001 - this is the event
                self._record_failure(name, notification.id, error)
                return applied, (notification.id, _error_text(error))
            position, applied = notification.id, applied + 1
        return applied, None

    def rebuild_stale(self) -> list[str]:
        """Rebuild every projection whose code version is newer than its tables
        (beside the live ones, so readers keep the old data until the swap)."""
        rebuilt = []
        for status in self.statuses():
            if status.stale:
                try:
                    self.rebuild(status.name)
                    rebuilt.append(status.name)
                except RebuildInProgress:
                    log.info("stale projection is being rebuilt elsewhere", projection=status.name)
        return rebuilt

    def run_forever(self, stop: threading.Event, poll: float = 0.2, batch_size: int = 1000) -> None:
        """Rebuild stale projections, catch up, then poll for new events, until
        ``stop`` is set. Errors are logged and retried (a failed batch was rolled back)."""
        try:
            self.rebuild_stale()
        except Exception:  # noqa: BLE001 - the live tables still serve; status shows it stale
            log.exception("rebuilding a stale projection failed")
        while not stop.is_set():
            try:
                if self.run_once(batch_size):
                    continue
            except ProjectionFailed as stopped:  # recorded with its position; the others went on
                log.error("projection stopped; retrying", error=str(stopped))
                stop.wait(1.0)
            except Exception:  # noqa: BLE001 - a worker must outlive one bad batch
                log.exception("projection batch failed; retrying")
                stop.wait(1.0)
            stop.wait(poll)

    def start(self, poll: float = 0.2, batch_size: int = 1000) -> threading.Event:
        """Run in a background thread (the embedded server); set the returned event to stop it.
        The tables exist when this returns, so readers may query at once."""
        self.ensure()
        stop = threading.Event()
        threading.Thread(
            target=self.run_forever, args=(stop, poll, batch_size), name="projections", daemon=True
        ).start()
        return stop

    # -- rebuilding --------------------------------------------------------------

    def rebuild(
        self,
        name: str,
        progress: Progress | None = None,
        batch_size: int = 5000,
        force: bool = False,
    ) -> int:
        """Replay every event into a new generation beside the live one, then swap
        it in with one transaction. Return the number of events read.

        A rebuild of the same projection that wrote a batch within ``ABANDONED_AFTER``
        is taken to be running: refused unless ``force``. An older one died; its
        tables are dropped."""
        self.ensure()
        self._load_skips()
        builder = copy.copy(self.projections[name])
        builder.rebuilding = True
        generation = self._start_generation(name, builder, force)
        position, events = 0, 0
        head = self.app.head_position()
        with ThreadPoolExecutor(1, thread_name_prefix="rebuild-read") as reader:
            # read and decode the next batch while this one is written
            ahead = reader.submit(self._read_ahead, position, batch_size, builder)
            while True:
                notifications, decoded = ahead.result()
                if not notifications:
                    break
                ahead = reader.submit(self._read_ahead, notifications[-1].id, batch_size, builder)
                if not self._apply_batch(
                    builder, "projection_rebuilds", generation, position, notifications, decoded
                ):
                    raise RebuildInProgress(f"another rebuild of {name} took over")
                position = notifications[-1].id
                events += len(notifications)
                head = max(head, position)
                if progress:
                    progress(position, head)
        self._swap(builder, generation, position)
        with self._advanced:
            self._advanced.notify_all()
        log.info(
            "projection rebuilt",
            projection=name,
            generation=generation,
            position=position,
            events=events,
        )
        return events

    def _start_generation(self, name: str, builder: Projection, force: bool) -> int:
        """Claim the next generation of ``name`` for a rebuild and create its tables (a
        crashed rebuild's are dropped); refused while another rebuild is running."""
        with self.db.transaction() as tx:
            live = tx.query(
                f"SELECT generation FROM projection_tracking WHERE name = ?{self.db.for_update}",
                (name,),
            )
            leftover = tx.query(
                "SELECT generation, updated_at FROM projection_rebuilds WHERE name = ?", (name,)
            )
            if leftover and not force and _age(leftover[0]["updated_at"]) < ABANDONED_AFTER:
                raise RebuildInProgress(
                    f"a rebuild of {name} wrote a batch {_age(leftover[0]['updated_at']):.0f}s "
                    "ago; wait for it, or force if it died"
                )
            generation = max([live[0]["generation"], *(r["generation"] for r in leftover)]) + 1
            for row in leftover:  # a rebuild that crashed: throw its tables away
                builder.generation = row["generation"]
                builder.drop_tables(tx)
            tx.execute("DELETE FROM projection_rebuilds WHERE name = ?", (name,))
            builder.generation = generation
            builder.drop_tables(tx)
            builder.create_tables(tx)
            tx.execute(
                "INSERT INTO projection_rebuilds (name, generation, position, updated_at) VALUES (?, ?, 0, ?)",
                (name, generation, _now()),
            )
        return generation

    def _swap(self, builder: Projection, generation: int, position: int) -> None:
        """Index the new generation; then, in one transaction, catch it up under the
        tracking lock, point the views at it and retire the old one."""
        name = builder.name
        builder.generation = generation
        with self.db.transaction(bulk=True) as tx:
            builder.finish_rebuild(tx)
        builder.rebuilding = False
        with self.db.transaction() as tx:
            builder.create_indexes(tx)
        with self.db.transaction() as tx:
            live = tx.query(
                f"SELECT generation FROM projection_tracking WHERE name = ?{self.db.for_update}",
                (name,),
            )
            while (
                True
            ):  # events written since the last batch; writers to this projection wait on the lock
                notifications = self._read(position, 5000)
                if not notifications:
                    break
                builder.generation = generation
                builder.apply_batch(tx, self._decoded(notifications, builder, {}))
                position = notifications[-1].id
            self._point_views(tx, builder)
            old = copy.copy(builder)
            old.generation = live[0]["generation"]
            old.drop_tables(tx)
            tx.execute(
                "UPDATE projection_tracking SET generation = ?, position = ?, version = ?, updated_at = ? WHERE name = ?",
                (generation, position, builder.version, _now(), name),
            )
            tx.execute("DELETE FROM projection_rebuilds WHERE name = ?", (name,))

    def close(self) -> None:
        if self._owns_db:
            self.db.close()
