"""API users and their bearer tokens, stored beside the events.

A user is a name (their unique id, also a :class:`~domain.ladder.Person` on the
ladder, so ``assign`` can take it), a role, a region and an optional unit. Only
the SHA-256 of each token is stored; the token itself is shown once, when the
user is added. Revoking a user invalidates their token at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from domain.actors import Actor
from domain.errors import NotFound, ValidationFailed
from domain.ladder import Person
from domain.permissions import PERSON_ROLES
from engine.service import Fengqiao
from engine.store import StoreConfig

TOKEN_PREFIX = "fq_"
TABLE = "fengqiao_api_users"
PROBE_TABLE = "fengqiao_ready_probe"  # one row, rewritten by each readiness check
RANK_TTL = 5.0  # seconds


@dataclass(frozen=True)
class User:
    name: str
    role: str
    region: str
    unit: str | None
    created_at: str
    revoked_at: str | None = None
    expires_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and datetime.fromisoformat(self.expires_at) <= now

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "region": self.region, "unit": self.unit,
                "created_at": self.created_at, "revoked_at": self.revoked_at, "expires_at": self.expires_at}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class _Sql:
    """One connection to the events' database (SQLite file or PostgreSQL schema),
    shared under a lock. Placeholders are written ``?`` and adapted for psycopg."""

    def __init__(self, store: StoreConfig) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._conn: Any = None

    def _connect(self) -> Any:
        if self.store.is_postgres:
            import psycopg

            conn = psycopg.connect(self.store.psycopg_url(), autocommit=True)
            conn.execute(f'SET search_path TO "{self.store.schema}"')
            return conn
        conn = sqlite3.connect(self.store.sqlite_path, check_same_thread=False, timeout=30,
                               isolation_level=None)
        return conn

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        with self._lock:
            if self._conn is None:
                self._conn = self._connect()
            try:
                yield self._conn
            except Exception as error:
                if _is_connection_error(error):
                    self._close()
                raise

    def execute(self, sql: str, params: tuple = (), describe: bool = False) -> list[Any]:
        """The rows (or, with ``describe``, the column names)."""
        if self.store.is_postgres:
            sql = sql.replace("?", "%s")
        with self._connection() as conn:
            cursor = conn.execute(sql, params)
            if describe:
                return [column[0] for column in cursor.description or ()]
            return list(cursor.fetchall()) if cursor.description else []

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def close(self) -> None:
        with self._lock:
            self._close()


def _is_connection_error(error: Exception) -> bool:
    try:
        import psycopg
    except ImportError:  # pragma: no cover
        return False
    return isinstance(error, psycopg.OperationalError)


class UserStore:
    """Add, revoke, list and authenticate API users."""

    def __init__(self, engine: Fengqiao) -> None:
        self.engine = engine
        self.sql = _Sql(engine.store)
        self._ranks: dict[str, tuple[int, float]] = {}
        self.sql.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} ("
            " name TEXT PRIMARY KEY, role TEXT NOT NULL, region TEXT NOT NULL, unit TEXT,"
            " token_hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, revoked_at TEXT)"
        )
        columns = self.sql.execute(f"SELECT * FROM {TABLE} WHERE 1 = 0", describe=True)
        if "expires_at" not in columns:  # a table made before tokens could expire
            self.sql.execute(f"ALTER TABLE {TABLE} ADD COLUMN expires_at TEXT")

    def add(self, name: str, role: str, region: str, unit: str | None = None, *, by: str = "cli:admin",
            expires_in: timedelta | None = None) -> str:
        """Create (or re-issue) a user; return the new token, which is not stored. With
        ``expires_in``, the token stops working that long from now."""
        if expires_in is not None and expires_in <= timedelta(0):
            raise ValidationFailed("a token must expire in the future", field="expires_in")
        name = (name or "").strip()
        if not name:
            raise ValidationFailed("a user needs a name", field="name")
        if role not in PERSON_ROLES:
            raise ValidationFailed(f"unknown role {role!r}", field="role", allowed=list(PERSON_ROLES))
        self.engine.add_person(Person(name, role, region, unit or None), by)  # checks region and unit
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self.engine.clock.now()
        expires_at = (now + expires_in).isoformat() if expires_in is not None else None
        self.sql.execute(f"DELETE FROM {TABLE} WHERE name = ?", (name,))
        self.sql.execute(
            f"INSERT INTO {TABLE} (name, role, region, unit, token_hash, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (name, role, region, unit or None, token_hash(token), now.isoformat(), expires_at),
        )
        return token

    def revoke(self, name: str) -> User:
        if self.get(name) is None:
            raise NotFound(f"no user {name!r}", resource="user", id=name)
        self.sql.execute(f"UPDATE {TABLE} SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                         (self.engine.clock.now().isoformat(), name))
        return self.get(name)  # type: ignore[return-value]

    def get(self, name: str) -> User | None:
        rows = self.sql.execute(
            f"SELECT name, role, region, unit, created_at, revoked_at, expires_at FROM {TABLE} WHERE name = ?",
            (name,))
        return User(*rows[0]) if rows else None

    def list(self) -> list[User]:
        rows = self.sql.execute(
            f"SELECT name, role, region, unit, created_at, revoked_at, expires_at FROM {TABLE} ORDER BY name")
        return [User(*row) for row in rows]

    def authenticate(self, token: str) -> User | None:
        """The active, unexpired user holding this token, or None."""
        if not token or len(token) > 200:
            return None
        digest = token_hash(token)
        rows = self.sql.execute(
            f"SELECT name, role, region, unit, created_at, revoked_at, expires_at, token_hash FROM {TABLE}"
            " WHERE token_hash = ?",
            (digest,),
        )
        if not rows or not hmac.compare_digest(rows[0][7], digest):
            return None
        user = User(*rows[0][:7])
        return user if user.active and not user.expired(self.engine.clock.now()) else None

    def actor(self, user: User) -> Actor:
        """The actor a user's commands are recorded under (rank: their region's).

        Region ranks are read from the ladder at most every ``RANK_TTL`` seconds:
        a rank changes only when the region file is re-imported."""
        now = time.monotonic()
        cached = self._ranks.get(user.region)
        if cached is None or now - cached[1] > RANK_TTL:
            cached = (int(self.engine.region(user.region).rank), now)
            self._ranks[user.region] = cached
        return Actor(id=user.name, role=user.role, unit=user.unit, region=user.region, rank=cached[0])

    def reachable(self) -> bool:
        for _attempt in range(2):  # a connection a database restart dropped is replaced on the second try
            try:
                self.sql.execute("SELECT 1")
                return True
            except Exception:  # noqa: BLE001 - any failure means "not reachable"
                continue
        return False

    def writable(self) -> bool:
        """Does the database take a write now? (False when read-only, full, stopped or gone.)"""
        try:
            self.sql.execute(f"CREATE TABLE IF NOT EXISTS {PROBE_TABLE} (id INTEGER PRIMARY KEY, at TEXT NOT NULL)")
            self.sql.execute(f"INSERT INTO {PROBE_TABLE} (id, at) VALUES (1, ?) "
                             "ON CONFLICT (id) DO UPDATE SET at = excluded.at", (self.engine.clock.now().isoformat(),))
            return True
        except Exception:  # noqa: BLE001 - any failure means "not writable"
            return False

    def close(self) -> None:
        self.sql.close()
