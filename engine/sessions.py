"""Dashboard sessions: a random id in the cookie, only its SHA-256 stored.

Signing in with an API token opens a session: the cookie carries the session id, never
the token. The row keeps the hash of the id, the user and the hash of the token that
signed in, so a session ends when it is closed (sign-out), when it expires
(``SESSION_TTL``), and — checked on every use — when its user is revoked or expires,
or is re-issued a new token (the token that opened it is no longer theirs).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from engine.service import Fengqiao
from engine.sql import StoreDb
from engine.users import TABLE as USERS
from engine.users import USER_COLUMNS, User, _user, token_hash

TABLE = "fengqiao_ui_sessions"
SESSION_TTL = timedelta(hours=12)
SESSION_PREFIX = "fqs_"


def session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


class SessionStore:
    """Open, look up and close dashboard sessions."""

    def __init__(self, engine: Fengqiao) -> None:
        self.engine = engine
        self.db = StoreDb(engine.recorder)
        self.table, self.users = self.db.table(TABLE), self.db.table(USERS)
        self.db.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} ("
            " id_hash TEXT PRIMARY KEY, user_name TEXT NOT NULL, token_hash TEXT NOT NULL,"
            " created_at TEXT NOT NULL, expires_at TEXT NOT NULL)"
        )

    def open(self, user: User, token: str) -> str:
        """A new session for ``user``, who signed in with ``token``; returns its id (shown once)."""
        now = self.engine.clock.now()
        self.db.execute(f"DELETE FROM {self.table} WHERE expires_at <= ?", (now.isoformat(),))
        session_id = SESSION_PREFIX + secrets.token_urlsafe(32)
        self.db.execute(
            f"INSERT INTO {self.table} (id_hash, user_name, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
            (
                session_hash(session_id),
                user.name,
                token_hash(token),
                now.isoformat(),
                (now + SESSION_TTL).isoformat(),
            ),
        )
        return session_id

    def user(self, session_id: str) -> User | None:
        """The active, unexpired user of an open session, if it is still theirs; else None."""
        if not session_id or len(session_id) > 200:
            return None
        now = self.engine.clock.now()
        columns = ", ".join(f"u.{c}" for c in USER_COLUMNS.split(", "))
        rows = self.db.query(
            f"SELECT {columns} FROM {self.table} s JOIN {self.users} u"
            " ON u.name = s.user_name AND u.token_hash = s.token_hash"
            " WHERE s.id_hash = ? AND s.expires_at > ?",
            (session_hash(session_id), now.isoformat()),
        )
        if not rows:
            return None
        user = _user(rows[0])
        return user if user.active and not user.expired(now) else None

    def close(self, session_id: str) -> None:
        """Sign out: the session ends at once (closing an unknown one does nothing)."""
        self.db.execute(
            f"DELETE FROM {self.table} WHERE id_hash = ?", (session_hash(session_id or ""),)
        )

    def close_all(self, user_name: str) -> int:
        """End every session of a user; returns how many there were."""
        return self.db.execute(f"DELETE FROM {self.table} WHERE user_name = ?", (user_name,))
