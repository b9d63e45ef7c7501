"""Worker leases: which of several ``fengqiao worker`` processes acts, and on what.

Several worker processes may run against one store (for availability; see
``docs/scaling.md``). Each process opens ONE dedicated lock session per store
(:class:`LockSession`) and holds its locks on it:

* **leader election** (:meth:`Leadership.lead`): a worker kind (``timers``,
  ``routing``, ``projections``, ``checkpoints``) acts only while its process holds
  the kind's exclusive lock; the others stand by and try again every
  ``FENGQIAO_LEASE_POLL_SECONDS`` (default 1);
* **partitioned work** (:class:`Share`): a kind whose work splits by key
  (``webhooks``: one key per subscription) holds a shared "member" lock, so the
  members can count each other, and one exclusive lock per key it works on, at
  most its fair share (keys ÷ members, rounded up).

On PostgreSQL the locks are session-level advisory locks
(``pg_try_advisory_lock(class, key)``, keyed by the schema and the name) on a
connection used for nothing else. PostgreSQL releases them when the session ends:
a killed process holds nothing, and there is no lease to expire. The standby's
takeover after a leader dies is bounded by

    the time PostgreSQL takes to see the session end  +  one poll.

A process that dies (kill -9, OOM) on a live host has its socket closed by the
kernel, so the first term is ~0 and the bound is the poll (tested:
``tests/e2e/test_worker_split.py``). A host that vanishes is seen by TCP keepalives,
which this session sets to 5 s idle + 3 × 1 s probes (``tcp_keepalives_*``), so
the bound is ~8 s + the poll.

The leader stops acting at once when its session is lost: :func:`fence`, called
before every action that must not be done twice (a timer command, a routing
command, a webhook POST), makes one round trip on the lock session; if the session
is gone the lock is gone, and it raises :class:`LeaseLost` instead of acting. A
keep-alive thread pings every ``FENGQIAO_LEASE_KEEPALIVE_SECONDS`` (default 1) so
an idle leader notices too. The client side gives up on a dead link after 5 s
(``tcp_user_timeout``, keepalives), before the server frees the lock (~8 s), so a
partitioned leader has stopped before a standby can start.

On SQLite the store is one file on one machine: the same locks are ``flock``
locks on files beside it (``<db>.locks/``), which the kernel also drops when a
process dies; they cannot be lost while the process lives, so :func:`fence` is
free. Member counting is not possible with ``flock``: a sender on SQLite takes
every free key (the first sender does all the work, a second one is a standby).
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import functools
import hashlib
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import structlog

from engine.settings import DEFAULTS
from engine.store import StoreConfig

log = structlog.get_logger("fengqiao.leadership")

LOCK_CLASS = (
    "fengqiao.worker"  # the first key of every lock: keeps them apart from other advisory locks
)


class LeaseLost(RuntimeError):
    """The lock session ended: this process no longer holds its locks and must not act."""


class LockSession:
    """A dedicated connection (PostgreSQL) or a folder of lock files (SQLite) holding
    named locks for this process. Thread-safe."""

    def __init__(self, store: StoreConfig) -> None:
        self.store = store
        self.postgres = store.is_postgres
        self.lost = threading.Event()
        self._lock = threading.RLock()
        self._held: dict[str, Any] = {}  # name → "x"/"s" (PostgreSQL) or an open file (SQLite)
        self._connection: Any = None
        if self.postgres:
            import psycopg

            self._connection = psycopg.connect(
                store.psycopg_url(),
                autocommit=True,
                connect_timeout=5,
                application_name="fengqiao-lease",
                keepalives=1,
                keepalives_idle=5,
                keepalives_interval=1,
                keepalives_count=3,
                tcp_user_timeout=5000,
            )
            # the server side frees the locks of a vanished client after ~8 s
            for setting, value in (
                ("tcp_keepalives_idle", "5"),
                ("tcp_keepalives_interval", "1"),
                ("tcp_keepalives_count", "3"),
                ("statement_timeout", "5s"),
                ("idle_session_timeout", "0"),
                ("idle_in_transaction_session_timeout", "0"),
            ):
                with contextlib.suppress(
                    psycopg.errors.UndefinedObject
                ):  # idle_session_timeout: PG ≥ 14
                    self._connection.execute("SELECT set_config(%s, %s, false)", (setting, value))
        else:
            self._folder = Path(f"{store.sqlite_path}.locks")
            self._folder.mkdir(parents=True, exist_ok=True)

    # -- the session -------------------------------------------------------------------

    def _key(self, name: str) -> str:
        return f"{self.store.schema}:{name}" if self.postgres else name

    def _sql(self, sql: str, *params: Any) -> Any:
        """One statement on the lock connection; a failure means the session (and every
        lock on it) is gone."""
        if self.lost.is_set():
            raise LeaseLost("the lock session was lost")
        try:
            with self._lock:
                return self._connection.execute(sql, params).fetchone()[0]
        except Exception as error:
            self._lose(error)
            raise LeaseLost(f"the lock session was lost: {error}") from error

    def _lose(self, error: BaseException) -> None:
        if not self.lost.is_set():
            self.lost.set()
            log.warning(
                "lock session lost; every lock it held is gone",
                store=self.store.kind,
                held=sorted(self._held),
                error=str(error),
            )
            with contextlib.suppress(Exception):
                self._connection.close()

    def confirm(self) -> None:
        """Raise :class:`LeaseLost` unless this session (and so each lock it holds) is alive."""
        if self.postgres:
            self._sql("SELECT 1")
        elif self.lost.is_set():
            raise LeaseLost("the lock session was closed")

    # -- locks -------------------------------------------------------------------------

    def try_lock(self, name: str, shared: bool = False) -> bool:
        """Take the named lock if free (``shared``: with other sharers); True if held."""
        with self._lock:
            if name in self._held:
                return True
            if self.postgres:
                function = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
                got = self._sql(
                    f"SELECT {function}(hashtext(%s), hashtext(%s))", LOCK_CLASS, self._key(name)
                )
                if got:
                    self._held[name] = "s" if shared else "x"
                return bool(got)
            digest = hashlib.sha1(name.encode()).hexdigest()[:20]
            handle = (self._folder / f"{digest}.lock").open("a+")
            try:
                fcntl.flock(handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                return False
            self._held[name] = handle
            return True

    def unlock(self, name: str) -> None:
        with self._lock:
            held = self._held.pop(name, None)
            if held is None:
                return
            if self.postgres:
                function = "pg_advisory_unlock_shared" if held == "s" else "pg_advisory_unlock"
                with contextlib.suppress(LeaseLost):  # a lost session holds nothing anyway
                    self._sql(
                        f"SELECT {function}(hashtext(%s), hashtext(%s))",
                        LOCK_CLASS,
                        self._key(name),
                    )
            else:
                held.close()  # closing the file drops its flock

    def holds(self, name: str) -> bool:
        return name in self._held and not self.lost.is_set()

    def sharers(self, name: str) -> int | None:
        """How many sessions share the named lock (None on SQLite: ``flock`` cannot tell)."""
        if not self.postgres:
            return None
        return int(
            self._sql(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND mode = 'ShareLock'"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND classid = hashtext(%s)::oid AND objid = hashtext(%s)::oid AND objsubid = 2",
                LOCK_CLASS,
                self._key(name),
            )
        )

    def close(self) -> None:
        with self._lock:
            for name in list(self._held):
                self.unlock(name)
            self.lost.set()
            if self._connection is not None:
                with contextlib.suppress(Exception):
                    self._connection.close()


# -- fencing: the session of the lease the current thread acts under ----------------------------

_acting: contextvars.ContextVar[LockSession | None] = contextvars.ContextVar(
    "fengqiao_lease", default=None
)


def fence() -> None:
    """Call before an action that must not be done twice: raises :class:`LeaseLost` if
    this thread acts under a lease whose session is gone. Outside a lease (tests, the
    library used directly) it does nothing."""
    session = _acting.get()
    if session is not None:
        session.confirm()


@contextlib.contextmanager
def acting_under(session: LockSession) -> Iterator[None]:
    token = _acting.set(session)
    try:
        yield
    finally:
        _acting.reset(token)


class Term:
    """What a worker under a lease waits on, in place of its ``stop`` event: set when the
    process stops or the lease's session is lost."""

    SLICE = 0.05  # how soon a wait notices either

    def __init__(self, stop: threading.Event, session: LockSession) -> None:
        self._stop = stop
        self._session = session

    def is_set(self) -> bool:
        return self._stop.is_set() or self._session.lost.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            remaining = (
                self.SLICE if deadline is None else min(self.SLICE, deadline - time.monotonic())
            )
            if remaining <= 0:
                break
            self._stop.wait(remaining)
        return self.is_set()


class Leadership:
    """One process's leases on one store: a lock session (reopened after a loss), a
    keep-alive thread, and the terms of the workers acting under it."""

    def __init__(
        self, store: StoreConfig, *, poll: float | None = None, keepalive: float | None = None
    ) -> None:
        self.store = store
        self.poll = DEFAULTS.lease_poll_seconds if poll is None else poll
        self.keepalive = DEFAULTS.lease_keepalive_seconds if keepalive is None else keepalive
        self._session: LockSession | None = None
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._pinger: threading.Thread | None = None

    def session(self) -> LockSession | None:
        """The live session, opened (again) if need be; None if the database is unreachable."""
        with self._lock:
            if self._session is None or self._session.lost.is_set():
                try:
                    self._session = LockSession(self.store)
                except Exception as error:  # noqa: BLE001 - unreachable now; the caller waits and retries
                    log.warning("lock session could not be opened; standing by", error=str(error))
                    return None
                if self.store.is_postgres and self._pinger is None:
                    self._pinger = threading.Thread(
                        target=self._ping, name="lease-keepalive", daemon=True
                    )
                    self._pinger.start()
            return self._session

    def _ping(self) -> None:
        """Keep-alive: an idle leader learns of a lost session within ``keepalive``."""
        while not self._closed.wait(self.keepalive):
            with self._lock:
                session = self._session
            if session is not None:
                with contextlib.suppress(LeaseLost):
                    session.confirm()

    def lead(self, kind: str, work: Callable[[Term], None], stop: threading.Event) -> None:
        """Run ``work(term)`` only while this process holds the lock of ``kind``; stand by
        otherwise; return when ``stop`` is set. ``work`` must return soon after ``term`` is set."""
        standing_by = False
        while not stop.is_set():
            session = self.session()
            try:
                leads = session is not None and session.try_lock(kind)
            except LeaseLost:
                leads = False
            if not leads:
                if not standing_by:
                    log.info("worker standing by", worker=kind, pid=os.getpid())
                    standing_by = True
                stop.wait(self.poll)
                continue
            assert session is not None  # leads: a session took the lock
            standing_by = False
            self._act(kind, session, work, stop, "worker leading")

    def member(self, kind: str, work: Callable[[Term, Share], None], stop: threading.Event) -> None:
        """Run ``work(term, share)`` as one of the members splitting ``kind``'s keys."""
        while not stop.is_set():
            session = self.session()
            try:
                joined = session is not None and session.try_lock(f"{kind}:members", shared=True)
            except LeaseLost:
                joined = False
            if not joined:
                stop.wait(self.poll)
                continue
            assert session is not None  # joined: a session took the shared lock
            self._act(
                f"{kind}:members",
                session,
                functools.partial(_with_share, work, Share(session, kind)),
                stop,
                "worker joined",
            )

    def _act(
        self,
        lock: str,
        session: LockSession,
        work: Callable[[Term], None],
        stop: threading.Event,
        message: str,
    ) -> None:
        log.info(message, worker=lock, pid=os.getpid())
        try:
            with acting_under(session):
                work(Term(stop, session))
        except LeaseLost:
            pass
        finally:
            if session.lost.is_set():
                log.warning("worker lease lost; stopped acting", worker=lock, pid=os.getpid())
            else:
                session.unlock(lock)
                log.info("worker stepped down", worker=lock, pid=os.getpid())

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            if self._session is not None:
                self._session.close()


def _with_share(work: Callable[[Term, Share], None], share: Share, term: Term) -> None:
    work(term, share)


class Share:
    """A member's part of a kind's keys (e.g. webhook subscriptions): each key is worked by
    at most one member at a time, and each member takes at most its fair share."""

    def __init__(self, session: LockSession, kind: str) -> None:
        self.session = session
        self.kind = kind
        self.mine: set[str] = set()

    def claim(self, keys: list[str]) -> list[str]:
        """The keys to work on this round: keep those held (up to the fair share), take free
        ones up to it, let go of the rest. Call between rounds, never mid-action."""
        sharers = self.session.sharers(f"{self.kind}:members")
        fair = len(keys) if not sharers else math.ceil(len(keys) / sharers)
        wanted = set(keys)
        for key in sorted(self.mine - wanted):  # gone (deleted, disabled)
            self._let_go(key, "gone")
        kept = [k for k in keys if k in self.mine]
        for key in kept[fair:]:
            self._let_go(key, "fair share")
        kept = kept[:fair]
        for key in keys:
            if len(kept) >= fair:
                break
            if key not in self.mine and self.session.try_lock(f"{self.kind}:{key}"):
                self.mine.add(key)
                kept.append(key)
                log.info("worker claimed", worker=self.kind, key=key, pid=os.getpid())
        return kept

    def _let_go(self, key: str, why: str) -> None:
        self.session.unlock(f"{self.kind}:{key}")
        self.mine.discard(key)
        log.info("worker let go", worker=self.kind, key=key, why=why, pid=os.getpid())
