"""SQL beside the events: the audit and privacy tables, on SQLite or PostgreSQL.

The tables live in the same SQLite file or PostgreSQL schema as the events and
are created with them (by the chained recorders in :mod:`engine.audit.recorders`):

* ``audit_chain`` — one row per stored event: global position, entry number
  (``seq``), case id, version, the entry's leaf hash, the per-case running hash
  and the global running hash (hex).
* ``audit_checkpoints`` — signed (size, position, head, time) statements.
* ``person_keys`` — per-person AES keys for personal fields (see engine.privacy).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

CHAIN = "audit_chain"
CHECKPOINTS = "audit_checkpoints"
PERSON_KEYS = "person_keys"


def table_statements(qualify, blob: str, position_key: str) -> list[str]:
    """``CREATE`` statements for the audit and privacy tables (``qualify`` names a
    table; ``position_key`` is SQLite's rowid alias or PostgreSQL's BIGINT key)."""
    chain, checkpoints, keys = qualify(CHAIN), qualify(CHECKPOINTS), qualify(PERSON_KEYS)
    return [
        f"CREATE TABLE IF NOT EXISTS {chain} ("
        f"position {position_key} PRIMARY KEY, seq BIGINT NOT NULL, case_id TEXT NOT NULL, "
        "version BIGINT NOT NULL, entry_hash TEXT NOT NULL, case_hash TEXT NOT NULL, "
        "chain_hash TEXT NOT NULL)",
        f"CREATE UNIQUE INDEX IF NOT EXISTS audit_chain_case_idx ON {chain} (case_id, version)",
        f"CREATE TABLE IF NOT EXISTS {checkpoints} ("
        "size BIGINT PRIMARY KEY, position BIGINT NOT NULL, head TEXT NOT NULL, "
        "time TEXT NOT NULL, key_id TEXT NOT NULL, public_key TEXT NOT NULL, signature TEXT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {keys} ("
        "person_id TEXT PRIMARY KEY, lookup TEXT UNIQUE, key_bytes "
        f"{blob}, created_at TEXT NOT NULL, erased_at TEXT, erased_by TEXT)",
    ]


class AuditDb:
    """Plain SQL on the engine's store, written once with ``?`` placeholders."""

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder
        self.datastore = recorder.datastore
        self.postgres = hasattr(self.datastore, "schema")
        self.schema = getattr(self.datastore, "schema", "")

    def table(self, name: str) -> str:
        return f'"{self.schema}".{name}' if self.postgres else name

    @property
    def events_table(self) -> str:
        return self.table(self.recorder.events_table_name)

    @property
    def position_column(self) -> str:
        return "notification_id" if self.postgres else "rowid"

    def sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.postgres else text

    @contextmanager
    def cursor(self, *, commit: bool) -> Iterator[Any]:
        with self.datastore.transaction(commit=commit) as cursor:
            yield cursor

    def rows(self, text: str, params: Sequence[Any] = ()) -> list[Any]:
        if self.postgres:  # one statement on an autocommit connection: no BEGIN and ROLLBACK round trips
            with self.datastore.get_connection() as conn:
                return conn.execute(self.sql(text), list(params)).fetchall()
        with self.cursor(commit=False) as cursor:
            cursor.execute(self.sql(text), list(params))
            return cursor.fetchall()

    def columns(self, table: str) -> list[str]:
        """The column names of ``table`` (qualified, as :meth:`table` gives it)."""
        if self.postgres:
            with self.datastore.get_connection() as conn:
                return [column.name for column in conn.execute(f"SELECT * FROM {table} WHERE 1 = 0").description]
        with self.cursor(commit=False) as cursor:
            cursor.execute(f"SELECT * FROM {table} WHERE 1 = 0")
            return [column[0] for column in getattr(cursor, "sqlite_cursor", cursor).description]

    def one(self, text: str, params: Sequence[Any] = ()) -> Any | None:
        rows = self.rows(text, params)
        return rows[0] if rows else None

    def execute(self, text: str, params: Sequence[Any] = ()) -> int:
        """Run one statement in its own transaction; return the rows it touched."""
        if self.postgres:  # autocommit: the one statement is its own transaction
            with self.datastore.get_connection() as conn:
                return conn.execute(self.sql(text), list(params)).rowcount
        with self.cursor(commit=True) as cursor:
            cursor.execute(self.sql(text), list(params))
            raw = getattr(cursor, "sqlite_cursor", cursor)
            return raw.rowcount
