"""eventsourcing's application recorders, extended to write the hash chain.

Each batch of events gets its ``audit_chain`` rows in the SAME transaction as
the event rows, after the events have their positions:

* PostgreSQL: eventsourcing holds an EXCLUSIVE lock on the events table while it
  inserts, so the chain head read inside the transaction is the true head. The
  head query is queued in the same pipeline as the insert, so it costs no extra
  round trip; the chain rows go with the commit.
* SQLite: the first INSERT takes the database's write lock, so the head read
  after it is the true head.

Cost per batch: one SELECT (the head and the first case's last per-case hash),
one more per further case in the batch, one ``executemany`` INSERT.

The recorders are chosen with eventsourcing's ``APPLICATION_RECORDER_TOPIC``
(see ``engine.store.StoreConfig.eventsourcing_env``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL

from engine.audit.canonical import ZERO, leaf_hash, link
from engine.audit.db import CHAIN, table_statements

INSERT_CHAIN = ("INSERT INTO {chain} (position, seq, case_id, version, entry_hash, case_hash, chain_hash) "
                "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})")


def last_case_hash_sql(chain: str, ph: str) -> str:
    return f"SELECT case_hash FROM {chain} WHERE case_id = {ph} ORDER BY version DESC LIMIT 1"


def head_sql(chain: str, ph: str) -> str:
    """The chain head (entry number, running hash) and one case's last per-case hash, in one query."""
    return (f"SELECT (SELECT seq FROM {chain} ORDER BY position DESC LIMIT 1) AS seq, "
            f"(SELECT chain_hash FROM {chain} ORDER BY position DESC LIMIT 1) AS chain_hash, "
            f"({last_case_hash_sql(chain, ph)}) AS case_hash")


def chain_rows(head: Any, case_hash_of: Callable[[str], str | None], positions: Sequence[int],
               stored_events: Sequence[StoredEvent]) -> list[tuple]:
    """The chain rows for a batch of freshly inserted events.

    ``head`` is the row of :func:`head_sql` for the batch's first case;
    ``case_hash_of(case_id)`` gives another case's last per-case hash (or None).
    """
    seq = int(head["seq"]) if head["seq"] is not None else 0
    running = bytes.fromhex(head["chain_hash"]) if head["chain_hash"] else ZERO
    first_case = str(stored_events[0].originator_id)
    case_heads = {first_case: bytes.fromhex(head["case_hash"]) if head["case_hash"] else ZERO}
    rows = []
    for position, event in zip(positions, stored_events, strict=True):
        case_id = str(event.originator_id)
        if case_id not in case_heads:
            last = case_hash_of(case_id)
            case_heads[case_id] = bytes.fromhex(last) if last else ZERO
        leaf = leaf_hash(case_id, event.originator_version, position, event.topic, event.state)
        running = link(running, leaf)
        case_heads[case_id] = link(case_heads[case_id], leaf)
        seq += 1
        rows.append((position, seq, case_id, event.originator_version, leaf.hex(),
                     case_heads[case_id].hex(), running.hex()))
    return rows


def _uuid_text(value: Any) -> str:
    text = str(value)
    return str(UUID(text)) if len(text) == 32 else text


class _Chained:
    """What both recorders share: SQL text for their dialect and store."""

    ph = "?"

    def qualify(self, name: str) -> str:
        return name

    def fetch_one(self, cursor: Any, sql: str, params: Sequence[Any]) -> Any:
        cursor.execute(sql, params)
        return cursor.fetchone()

    def case_hash_fetcher(self, cursor: Any) -> Callable[[str], str | None]:
        sql = last_case_hash_sql(self.qualify(CHAIN), self.ph)

        def case_hash_of(case_id: str) -> str | None:
            row = self.fetch_one(cursor, sql, (case_id,))
            return row["case_hash"] if row else None

        return case_hash_of

    def adopt_unchained(self, cursor: Any, events_table: str, position: str) -> int:
        """Chain the events of a store that predates the chain (only when the
        chain table is empty); return how many were chained."""
        if self.fetch_one(cursor, f"SELECT COUNT(*) AS n FROM {self.qualify(CHAIN)}", ())["n"]:
            return 0
        cursor.execute(f"SELECT {position} AS position, originator_id, originator_version, topic, state "
                       f"FROM {events_table} ORDER BY {position}")
        found = cursor.fetchall()
        if not found:
            return 0
        events = [StoredEvent(_uuid_text(row["originator_id"]), row["originator_version"], row["topic"],
                              bytes(row["state"])) for row in found]
        head = self.fetch_one(cursor, head_sql(self.qualify(CHAIN), self.ph), (str(events[0].originator_id),))
        rows = chain_rows(head, self.case_hash_fetcher(cursor), [row["position"] for row in found], events)
        cursor.executemany(INSERT_CHAIN.format(chain=self.qualify(CHAIN), p=self.ph), rows)
        return len(rows)


class ChainedSQLiteRecorder(_Chained, SQLiteApplicationRecorder):
    """SQLite application recorder that also appends the hash chain."""

    def construct_create_table_statements(self) -> list[str]:
        return super().construct_create_table_statements() + table_statements(self.qualify, "BLOB", "INTEGER")

    def create_table(self) -> None:
        super().create_table()
        with self.datastore.transaction(commit=True) as cursor:
            self.adopt_unchained(cursor, self.events_table_name, "rowid")

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        positions = super()._insert_events(c, stored_events, **kwargs)
        if stored_events:
            head = self.fetch_one(c, head_sql(CHAIN, "?"), (str(stored_events[0].originator_id),))
            rows = chain_rows(head, self.case_hash_fetcher(c), positions, stored_events)
            c.executemany(INSERT_CHAIN.format(chain=CHAIN, p="?"), rows)
        return positions


class ChainedPostgresRecorder(_Chained, PostgresApplicationRecorder):
    """PostgreSQL application recorder that also appends the hash chain."""

    ph = "%s"

    def __init__(self, datastore: Any, *, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        if datastore.enable_db_functions:
            raise ValueError("the hash chain needs POSTGRES_ENABLE_DB_FUNCTIONS off")
        for statement in table_statements(self.qualify, "BYTEA", "BIGINT"):
            self.sql_create_statements.append(SQL(statement))  # type: ignore[arg-type]
        self._head_sql = SQL(head_sql(self.qualify(CHAIN), "%s"))  # type: ignore[arg-type]
        self._insert_chain_sql = SQL(INSERT_CHAIN.format(chain=self.qualify(CHAIN), p="%s"))  # type: ignore[arg-type]
        self._case_heads_sql = SQL(  # type: ignore[arg-type]
            f"SELECT DISTINCT ON (case_id) case_id, case_hash FROM {self.qualify(CHAIN)} "
            "WHERE case_id = ANY(%s) ORDER BY case_id, version DESC")
        self._pending = threading.local()

    def qualify(self, name: str) -> str:
        return f'"{self.datastore.schema}".{name}'

    def fetch_one(self, cursor: Any, sql: str, params: Sequence[Any]) -> Any:
        cursor.execute(SQL(sql), params)  # type: ignore[arg-type]
        return cursor.fetchone()

    def create_table(self) -> None:
        super().create_table()
        events = self.qualify(self.events_table_name)
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(SQL(f"LOCK TABLE {events} IN EXCLUSIVE MODE"))  # type: ignore[arg-type]
            self.adopt_unchained(cursor, events, "notification_id")

    def _notify_channel(self, curs: Any) -> None:
        """No ``NOTIFY``: nothing LISTENs (the feed and the workers poll by position), and
        a notifying transaction takes the cluster-wide notify-queue lock at commit, which
        would serialise the commits of every county schema on one server."""

    def _insert_stored_events(self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        super()._insert_stored_events(curs, stored_events, **kwargs)  # takes the lock, queues the insert
        head_cursor = curs.connection.cursor()  # queued behind them in the same pipeline
        head_cursor.execute(self._head_sql, (str(stored_events[0].originator_id),), prepare=True)
        self._pending.head_cursor = head_cursor
        others = list(dict.fromkeys(str(e.originator_id) for e in stored_events[1:]))
        self._pending.cases_cursor = None
        if others:  # a grouped batch (engine.group_commit): the other cases' heads, queued too
            self._pending.cases_cursor = curs.connection.cursor()
            self._pending.cases_cursor.execute(self._case_heads_sql, (others,), prepare=True)

    def _fetch_ids_after_insert_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        positions = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        head_cursor = self._pending.__dict__.pop("head_cursor", None)
        cases_cursor = self._pending.__dict__.pop("cases_cursor", None)
        if stored_events and positions and head_cursor is not None:
            head = head_cursor.fetchone()
            head_cursor.close()
            case_hash_of = self.case_hash_fetcher(curs)
            if cases_cursor is not None:
                case_hash_of = {row["case_id"]: row["case_hash"] for row in cases_cursor.fetchall()}.get
                cases_cursor.close()
            rows = chain_rows(head, case_hash_of, positions, stored_events)
            curs.executemany(self._insert_chain_sql, rows)
        return positions
