"""eventsourcing's application recorders, extended to write the hash chain.

Each batch of events gets its ``audit_chain`` rows in the SAME transaction as
the event rows, after the events have their positions:

* PostgreSQL: eventsourcing holds an EXCLUSIVE lock on the events table while it
  inserts, so the chain head read inside the transaction is the true head.
* SQLite: the first INSERT takes the database's write lock, so the head read
  after it is the true head.

Cost per batch: one SELECT (the head and the first case's last per-case hash),
one more per further case in the batch, one ``executemany`` INSERT.

The recorders are chosen with eventsourcing's ``APPLICATION_RECORDER_TOPIC``
(see ``engine.store.StoreConfig.eventsourcing_env``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL

from engine.audit.canonical import ZERO, leaf_hash, link
from engine.audit.db import CHAIN, table_statements


def chain_rows(
    fetch: Any, qualify: Any, ph: str, positions: Sequence[int], stored_events: Sequence[StoredEvent]
) -> list[tuple]:
    """The chain rows for a batch of freshly inserted events.

    ``fetch(sql, params)`` runs a query inside the inserting transaction and
    returns its first row (a mapping) or None.
    """
    chain = qualify(CHAIN)
    first_case = str(stored_events[0].originator_id)
    last_of_case = f"SELECT case_hash FROM {chain} WHERE case_id = {ph} ORDER BY version DESC LIMIT 1"
    head = fetch(  # the head and the first case's last hash in one round trip
        f"SELECT (SELECT seq FROM {chain} ORDER BY position DESC LIMIT 1) AS seq, "
        f"(SELECT chain_hash FROM {chain} ORDER BY position DESC LIMIT 1) AS chain_hash, "
        f"({last_of_case}) AS case_hash", (first_case,))
    seq = int(head["seq"]) if head["seq"] is not None else 0
    running = bytes.fromhex(head["chain_hash"]) if head["chain_hash"] else ZERO
    case_heads: dict[str, bytes] = {first_case: bytes.fromhex(head["case_hash"]) if head["case_hash"] else ZERO}
    rows = []
    for position, event in zip(positions, stored_events, strict=True):
        case_id = str(event.originator_id)
        if case_id not in case_heads:
            last = fetch(last_of_case, (case_id,))
            case_heads[case_id] = bytes.fromhex(last["case_hash"]) if last else ZERO
        leaf = leaf_hash(case_id, event.originator_version, position, event.topic, event.state)
        running = link(running, leaf)
        case_heads[case_id] = link(case_heads[case_id], leaf)
        seq += 1
        rows.append((position, seq, case_id, event.originator_version, leaf.hex(),
                     case_heads[case_id].hex(), running.hex()))
    return rows


INSERT_CHAIN = "INSERT INTO {chain} (position, seq, case_id, version, entry_hash, case_hash, chain_hash) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})"


def adopt_unchained(cursor: Any, fetch: Any, qualify: Any, ph: str, events_table: str, position: str) -> int:
    """Chain the events of a store that predates the chain (only when the chain
    table is empty); return how many were chained."""
    if fetch(f"SELECT COUNT(*) AS n FROM {qualify(CHAIN)}", ())["n"]:
        return 0
    cursor.execute(f"SELECT {position} AS position, originator_id, originator_version, topic, state "
                   f"FROM {events_table} ORDER BY {position}")
    found = cursor.fetchall()
    if not found:
        return 0
    positions = [row["position"] for row in found]
    events = [StoredEvent(_uuid_text(row["originator_id"]), row["originator_version"], row["topic"],
                          bytes(row["state"])) for row in found]
    rows = chain_rows(fetch, qualify, ph, positions, events)
    cursor.executemany(INSERT_CHAIN.format(chain=qualify(CHAIN), p=ph), rows)
    return len(rows)


def _uuid_text(value: Any) -> str:
    text = str(value)
    return str(UUID(text)) if len(text) == 32 else text


class ChainedSQLiteRecorder(SQLiteApplicationRecorder):
    """SQLite application recorder that also appends the hash chain."""

    def construct_create_table_statements(self) -> list[str]:
        return super().construct_create_table_statements() + table_statements(lambda name: name, "BLOB")

    def create_table(self) -> None:
        super().create_table()
        with self.datastore.transaction(commit=True) as c:
            def fetch(sql: str, params: Sequence[Any]) -> Any:
                c.execute(sql, params)
                return c.fetchone()

            adopt_unchained(c, fetch, lambda name: name, "?", self.events_table_name, "rowid")

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        positions = super()._insert_events(c, stored_events, **kwargs)
        if stored_events:
            def fetch(sql: str, params: Sequence[Any]) -> Any:
                c.execute(sql, params)
                return c.fetchone()

            rows = chain_rows(fetch, lambda name: name, "?", positions, stored_events)
            c.executemany(INSERT_CHAIN.format(chain=CHAIN, p="?"), rows)
        return positions


class ChainedPostgresRecorder(PostgresApplicationRecorder):
    """PostgreSQL application recorder that also appends the hash chain."""

    def __init__(self, datastore: Any, *, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        if datastore.enable_db_functions:
            raise ValueError("the hash chain needs POSTGRES_ENABLE_DB_FUNCTIONS off")
        for statement in table_statements(self._qualify, "BYTEA"):
            self.sql_create_statements.append(SQL(statement))  # type: ignore[arg-type]

    def _qualify(self, name: str) -> str:
        return f'"{self.datastore.schema}".{name}'

    def create_table(self) -> None:
        super().create_table()
        with self.datastore.transaction(commit=True) as curs:
            events = f"{self._qualify(self.events_table_name)}"
            curs.execute(SQL(f"LOCK TABLE {events} IN EXCLUSIVE MODE"))  # type: ignore[arg-type]

            def fetch(sql: str, params: Sequence[Any]) -> Any:
                curs.execute(SQL(sql), params)  # type: ignore[arg-type]
                return curs.fetchone()

            adopt_unchained(curs, fetch, self._qualify, "%s", events, "notification_id")

    def _fetch_ids_after_insert_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        positions = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        if stored_events and positions:
            def fetch(sql: str, params: Sequence[Any]) -> Any:
                curs.execute(SQL(sql), params)  # type: ignore[arg-type]
                return curs.fetchone()

            rows = chain_rows(fetch, self._qualify, "%s", positions, stored_events)
            curs.executemany(SQL(INSERT_CHAIN.format(chain=self._qualify(CHAIN), p="%s")), rows)  # type: ignore[arg-type]
        return positions
