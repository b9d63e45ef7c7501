"""eventsourcing's application recorders, extended to write the hash chain.

Each batch of events gets its ``audit_chain`` rows in the SAME transaction as
the event rows, after the events have their positions:

* PostgreSQL: eventsourcing holds an EXCLUSIVE lock on the events table while it
  inserts, so the chain head read inside the transaction is the true head.
* SQLite: the first INSERT takes the database's write lock, so the head read
  after it is the true head.

Cost per batch: one SELECT of the head, one SELECT per distinct case in the
batch (its last per-case hash), one ``executemany`` INSERT.

The recorders are chosen with eventsourcing's ``APPLICATION_RECORDER_TOPIC``
(see ``engine.store.StoreConfig.eventsourcing_env``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
    head = fetch(f"SELECT seq, chain_hash FROM {chain} ORDER BY position DESC LIMIT 1", ())
    seq = int(head["seq"]) if head else 0
    running = bytes.fromhex(head["chain_hash"]) if head else ZERO
    case_heads: dict[str, bytes] = {}
    rows = []
    for position, event in zip(positions, stored_events, strict=True):
        case_id = str(event.originator_id)
        if case_id not in case_heads:
            last = fetch(
                f"SELECT case_hash FROM {chain} WHERE case_id = {ph} ORDER BY version DESC LIMIT 1",
                (case_id,),
            )
            case_heads[case_id] = bytes.fromhex(last["case_hash"]) if last else ZERO
        leaf = leaf_hash(case_id, event.originator_version, position, event.topic, event.state)
        running = link(running, leaf)
        case_heads[case_id] = link(case_heads[case_id], leaf)
        seq += 1
        rows.append((position, seq, case_id, event.originator_version, leaf.hex(),
                     case_heads[case_id].hex(), running.hex()))
    return rows


INSERT_CHAIN = "INSERT INTO {chain} (position, seq, case_id, version, entry_hash, case_hash, chain_hash) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})"


class ChainedSQLiteRecorder(SQLiteApplicationRecorder):
    """SQLite application recorder that also appends the hash chain."""

    def construct_create_table_statements(self) -> list[str]:
        return super().construct_create_table_statements() + table_statements(lambda name: name, "BLOB")

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
        for statement in table_statements(self._qualify, "BYTEA"):
            self.sql_create_statements.append(SQL(statement))  # type: ignore[arg-type]

    def _qualify(self, name: str) -> str:
        return f'"{self.datastore.schema}".{name}'

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
