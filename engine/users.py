"""API users and their bearer tokens, stored beside the events.

A user is a name (their unique id, also a :class:`~domain.ladder.Person` on the
ladder, so ``assign`` can take it), a role, a region and an optional unit. Only
the SHA-256 of each token is stored; the token itself is shown once, when the
user is added. Revoking a user invalidates their token at once.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from domain.actors import Actor
from domain.errors import NotFound, ValidationFailed
from domain.ladder import Person
from domain.permissions import PERSON_ROLES
from engine.service import Fengqiao
from engine.sql import StoreDb

TOKEN_PREFIX = "fq_"
TABLE = "fengqiao_api_users"
MIN_FREE_BYTES = 64 * 1024  # less room than this on a SQLite file's disk: not writable
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
        return asdict(self)


USER_FIELDS = tuple(field.name for field in fields(User))
USER_COLUMNS = ", ".join(USER_FIELDS)


def _user(row: Any) -> User:
    """A user from a row of :data:`USER_COLUMNS` (SQLite's rows and PostgreSQL's both index by name)."""
    return User(**{name: row[name] for name in USER_FIELDS})


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class UserStore:
    """Add, revoke, list and authenticate API users."""

    def __init__(self, engine: Fengqiao) -> None:
        self.engine = engine
        self.db = StoreDb(
            engine.recorder
        )  # the engine's connections: pooled on PostgreSQL, no lock of our own
        self.table = self.db.table(TABLE)
        self._ranks: dict[str, tuple[int, float]] = {}
        self.db.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} ("
            " name TEXT PRIMARY KEY, role TEXT NOT NULL, region TEXT NOT NULL, unit TEXT,"
            " token_hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, revoked_at TEXT)"
        )
        if "expires_at" not in self.db.columns(
            self.table
        ):  # a table made before tokens could expire
            self.db.execute(f"ALTER TABLE {self.table} ADD COLUMN expires_at TEXT")

    def add(
        self,
        name: str,
        role: str,
        region: str,
        unit: str | None = None,
        *,
        by: str = "cli:admin",
        expires_in: timedelta | None = None,
    ) -> str:
        """Create (or re-issue) a user; return the new token, which is not stored. With
        ``expires_in``, the token stops working that long from now."""
        if expires_in is not None and expires_in <= timedelta(0):
            raise ValidationFailed("a token must expire in the future", field="expires_in")
        name = (name or "").strip()
        if not name:
            raise ValidationFailed("a user needs a name", field="name")
        if role not in PERSON_ROLES:
            raise ValidationFailed(
                f"unknown role {role!r}", field="role", allowed=list(PERSON_ROLES)
            )
        self.engine.add_person(
            Person(name, role, region, unit or None), by
        )  # checks region and unit
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self.engine.clock.now()
        expires_at = (now + expires_in).isoformat() if expires_in is not None else None
        self.db.execute(  # one statement: a re-issued user is never missing, even for a moment
            f"INSERT INTO {self.table} (name, role, region, unit, token_hash, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET role = excluded.role,"
            " region = excluded.region, unit = excluded.unit, token_hash = excluded.token_hash,"
            " created_at = excluded.created_at, expires_at = excluded.expires_at, revoked_at = NULL",
            (name, role, region, unit or None, token_hash(token), now.isoformat(), expires_at),
        )
        return token

    def revoke(self, name: str) -> User:
        if self.get(name) is None:
            raise NotFound(f"no user {name!r}", resource="user", id=name)
        self.db.execute(
            f"UPDATE {self.table} SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
            (self.engine.clock.now().isoformat(), name),
        )
        return self.get(name)  # type: ignore[return-value]

    def get(self, name: str) -> User | None:
        rows = self.db.query(f"SELECT {USER_COLUMNS} FROM {self.table} WHERE name = ?", (name,))
        return _user(rows[0]) if rows else None

    def list(self) -> list[User]:
        rows = self.db.query(f"SELECT {USER_COLUMNS} FROM {self.table} ORDER BY name")
        return [_user(row) for row in rows]

    def authenticate(self, token: str) -> User | None:
        """The active, unexpired user holding this token, or None."""
        return self.authenticate_on_case(token, None)[0]

    def authenticate_on_case(
        self, token: str, case_id: UUID | None
    ) -> tuple[User | None, int | None]:
        """:meth:`authenticate`, and in the same query (one round trip) the last version
        ``case_id`` has in the store now (None: no such case, or no user). A request on a
        case reads this first: a cached copy of the case at that version is current
        (``Fengqiao.current_case``), so it need not look for newer events."""
        if not token or len(token) > 200:
            return None, None
        digest = token_hash(token)
        if case_id is None:
            sql = f"SELECT {USER_COLUMNS}, token_hash FROM {self.table} WHERE token_hash = ?"
            params: tuple[Any, ...] = (digest,)
        else:
            version, case_param = self.engine.recorder.last_version_subquery(case_id)
            sql = (
                f"SELECT {USER_COLUMNS}, token_hash, {version} AS case_version "
                f"FROM {self.table} WHERE token_hash = ?"
            )
            params = (case_param, digest)
        rows = self.db.query(sql, params)
        if not rows or not hmac.compare_digest(rows[0]["token_hash"], digest):
            return None, None
        user = _user(rows[0])
        if not user.active or user.expired(self.engine.clock.now()):
            return None, None
        return user, rows[0].get("case_version")

    def actor(self, user: User) -> Actor:
        """The actor a user's commands are recorded under (rank: their region's).

        Region ranks are read from the ladder at most every ``RANK_TTL`` seconds:
        a rank changes only when the region file is re-imported."""
        now = time.monotonic()
        cached = self._ranks.get(user.region)
        if cached is None or now - cached[1] > RANK_TTL:
            cached = (int(self.engine.region(user.region).rank), now)
            self._ranks[user.region] = cached
        return Actor(
            id=user.name, role=user.role, unit=user.unit, region=user.region, rank=cached[0]
        )

    def reachable(self) -> bool:
        for _attempt in range(
            2
        ):  # a connection a database restart dropped is replaced on the second try
            try:
                self.db.query("SELECT 1")
                return True
            except Exception:  # noqa: BLE001 - any failure means "not reachable"
                continue
        return False

    def writable(self) -> bool:
        """Would the database take a write now? Read from its state, never by writing
        (``/readyz`` is unauthenticated): PostgreSQL in recovery or read-only, or a SQLite
        file (or its folder, for the WAL) that cannot be written or whose disk is full, is not."""
        try:
            if self.db.is_postgres:
                row = self.db.one(
                    "SELECT pg_is_in_recovery() AS recovery, "
                    "current_setting('transaction_read_only') AS read_only"
                )
                assert row is not None  # a SELECT without FROM has its row
                return not row["recovery"] and row["read_only"] == "off"
            pool = self.db.datastore.pool
            if pool.is_sqlite_memory_mode:
                return True
            folder = os.path.dirname(os.path.abspath(pool.db_name))
            room = os.statvfs(folder)
            return (
                os.access(pool.db_name, os.W_OK)
                and os.access(folder, os.W_OK)
                and room.f_bavail * room.f_frsize >= MIN_FREE_BYTES
            )
        except Exception:  # noqa: BLE001 - any failure means "not writable"
            return False
