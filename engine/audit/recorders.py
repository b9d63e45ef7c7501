"""eventsourcing's application recorders, extended to write the hash chain.

Each batch of events gets its ``audit_chain`` rows in the SAME transaction as
the event rows, after the events have their positions:

* PostgreSQL: the transaction holds an EXCLUSIVE lock on the events table (as
  eventsourcing's recorder does), so the chain head read inside it is the true
  head. Per batch, whatever its size, ONE round trip on a connection kept for
  writing: the lock, ONE statement that inserts the events and their chain rows
  (hashed in SQL with PostgreSQL's ``sha256``: the same bytes as
  ``engine.audit.canonical``), and the ``COMMIT`` (see
  ``ChainedPostgresRecorder.insert_events``). Nothing runs in Python while the
  table is locked. The Merkle tree is appended after the commit, outside the
  lock (``ChainedPostgresRecorder.catch_up_tree``).
* SQLite: the first INSERT takes the database's write lock, so the head read
  after it is the true head. Per batch: one SELECT (the head and the first
  case's last per-case hash), one more per further case, one ``executemany``,
  and the tree's new nodes.

The recorders are chosen with eventsourcing's ``APPLICATION_RECORDER_TOPIC``
(see ``engine.store.StoreConfig.eventsourcing_env``).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import (
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    PersistenceError,
    ProgrammingError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore
from eventsourcing.utils import retry
from psycopg.generators import execute as psycopg_execute
from psycopg.pq import ExecStatus, TransactionStatus
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Literal

from engine.audit.canonical import ZERO, json_string, leaf_hash, link
from engine.audit.merkle import append_rows, frontier_keys, tree_size
from engine.audit.tables import CHAIN, MERKLE, table_statements

TUPLES_OK, FATAL_ERROR = ExecStatus.TUPLES_OK, ExecStatus.FATAL_ERROR


def _run_batch(conn: Any, text: str) -> list[int]:
    """A batch's text (``BEGIN; ...; SELECT audit_append(...) AS ids; COMMIT``) sent on the
    writing connection (autocommit: the text has its own transaction) as one simple query,
    and the positions its ``ids`` array holds.

    It is what ``Cursor.execute`` does for such a text (under the connection's lock, psycopg's
    own ``generators.execute`` waited on by ``Connection.wait``, the first failed statement's
    error raised as psycopg raises it), without the cursor: its transformer, query
    conversion, prepared-statement bookkeeping, result selection and row making cost more
    CPU than the rest of the write (tens of µs a batch), for one value read as text."""
    pgconn = conn.pgconn
    with conn.lock:
        if conn.closed:
            raise psycopg.OperationalError("the connection is closed")
        pgconn.send_query(text.encode())
        results = conn.wait(psycopg_execute(pgconn))
    ids = None
    for result in results:
        if result.status == FATAL_ERROR:
            raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)
        if result.status == TUPLES_OK:
            ids = result.get_value(0, 0)
    if not ids:
        raise psycopg.InternalError("the batch gave back no positions")
    return [int(position) for position in bytes(ids)[1:-1].split(b",")]


_ROLLBACK = SQL("ROLLBACK")
WRITER_POOL_MIN = 3
"""The smallest pool (its ``max_size``) the PostgreSQL writer keeps a connection of."""
TREE_CHUNK = 5000
"""Leaves a catch-up of the Merkle tree adds per transaction (PostgreSQL)."""
INSERT_CHAIN = (
    "INSERT INTO {chain} (position, seq, case_id, version, entry_hash, case_hash, chain_hash) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})"
)


INSERT_MERKLE = "INSERT INTO {merkle} (node, hash) VALUES ({p}, {p})"
SQLITE_STATEMENTS = 128
"""Compiled statements each SQLite connection of the library's keeps (the ``sqlite3`` default)."""


def last_case_hash_sql(chain: str, ph: str) -> str:
    return f"SELECT case_hash FROM {chain} WHERE case_id = {ph} ORDER BY version DESC LIMIT 1"


def head_sql(chain: str, ph: str) -> str:
    """The chain head (entry number, running hash) and one case's last per-case hash, in one query."""
    return (
        f"SELECT (SELECT seq FROM {chain} ORDER BY position DESC LIMIT 1) AS seq, "
        f"(SELECT chain_hash FROM {chain} ORDER BY position DESC LIMIT 1) AS chain_hash, "
        f"({last_case_hash_sql(chain, ph)}) AS case_hash"
    )


def chain_rows(
    head: Any,
    case_hash_of: Callable[[str], str | None],
    positions: Sequence[int],
    stored_events: Sequence[StoredEvent],
) -> list[tuple]:
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
        rows.append(
            (
                position,
                seq,
                case_id,
                event.originator_version,
                leaf.hex(),
                case_heads[case_id].hex(),
                running.hex(),
            )
        )
    return rows


def _id_text(originator_id: Any) -> str:
    """The id as the chain stores it (``str``), checked to be a UUID (else the library's
    ``DataError``, as its own recorder raises for a text id in a ``uuid`` column)."""
    text = str(originator_id)
    if type(originator_id) is not UUID:
        try:
            UUID(text)
        except ValueError:
            raise DataError(f"originator id {text!r} is not a UUID") from None
    return text


def _library_error(error: Exception) -> Exception:
    """The eventsourcing exception for a psycopg one, as ``PostgresDatastore.get_connection``
    translates it (``IntegrityError`` is the library's ``RecordConflictError``)."""
    for cls in type(error).__mro__:
        translated = _LIBRARY_ERRORS.get(cls.__name__)
        if translated is not None:
            return translated(str(error))
    return PersistenceError(str(error))


_LIBRARY_ERRORS = {
    cls.__name__: cls
    for cls in (
        InterfaceError,
        OperationalError,
        DataError,
        IntegrityError,
        InternalError,
        ProgrammingError,
        NotSupportedError,
        DatabaseError,
    )
}


def _uuid_text(value: Any) -> str:
    text = str(value)
    return str(UUID(text)) if len(text) == 32 else text


class _Chained:
    """What both recorders share: SQL text for their dialect and store, and the reads
    of the events table the library's recorder does not offer."""

    ph = "?"
    keep_tree = (
        True  # the Merkle tree beside the chain (off only in `fengqiao bench proofs`' baseline)
    )
    position = "rowid"  # the events' global position (the notification id)
    case_id_text = "originator_id"  # the case id as text (SQLite: 32 hex digits)

    def qualify(self, name: str) -> str:
        return name

    def read_rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """The rows of one read-only statement on the recorder's connections."""
        with self.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
            cursor.execute(sql, list(params))
            return cursor.fetchall()

    def positions_of(self, originator_id: UUID, version: int | None = None) -> dict[int, int]:
        """Global positions of an aggregate's stored events, by version."""
        sql = (
            f"SELECT originator_version, {self.position} FROM {self.qualify(self.events_table_name)} "  # type: ignore[attr-defined]
            f"WHERE originator_id = {self.ph}"
        )
        params: list[Any] = [self.id_param(originator_id)]
        if version is not None:
            sql += f" AND originator_version = {self.ph}"
            params.append(version)
        return {row[0]: row[1] for row in self.read_rows(sql, params)}

    def last_version_subquery(self, originator_id: UUID) -> tuple[str, Any]:
        """A scalar subquery of an aggregate's last stored version (NULL: none stored) and
        its one parameter, in the SQL adapter's ``?`` form (``engine.sql``): for another
        statement to read it in its own round trip (``UserStore.authenticate_on_case``)."""
        sql = (
            f"(SELECT max(originator_version) FROM {self.qualify(self.events_table_name)} "  # type: ignore[attr-defined]
            "WHERE originator_id = ?)"
        )
        return sql, self.id_param(originator_id)

    def id_param(self, originator_id: UUID) -> Any:
        """An aggregate's id as the events table keeps it: a uuid on PostgreSQL, 32 hex
        digits on SQLite."""
        return originator_id if self.ph == "%s" else originator_id.hex

    def event_rows(
        self,
        after: int,
        limit: int,
        *,
        upto: int | None = None,
        topics: Sequence[str] | None = None,
    ) -> list[tuple[int, str, int, str, bytes]]:
        """At most ``limit`` stored events after position ``after`` (up to ``upto``; of
        ``topics``), in position order, as ``(position, case id text, version, topic,
        state)``: one keyset range scan by position, no ``Notification`` or ``UUID`` per row."""
        where, params = [f"{self.position} > {self.ph}"], [after]
        if upto is not None:
            where.append(f"{self.position} <= {self.ph}")
            params.append(upto)
        if topics is not None:
            where.append(self.topics_clause(len(topics)))
            params += self.topics_params(topics)
        sql = (
            f"SELECT {self.position}, {self.case_id_text}, originator_version, topic, state "
            f"FROM {self.qualify(self.events_table_name)} WHERE {' AND '.join(where)} "  # type: ignore[attr-defined]
            f"ORDER BY {self.position} LIMIT {self.ph}"
        )
        return [self.event_row(row) for row in self.read_rows(sql, [*params, limit])]

    def topics_clause(self, count: int) -> str:
        return f"topic IN ({','.join('?' * count)})"

    def topics_params(self, topics: Sequence[str]) -> list[Any]:
        return list(topics)

    def event_row(self, row: Any) -> tuple[int, str, int, str, bytes]:
        case_id = row[1]
        if len(case_id) == 32:  # SQLite keeps UUIDs as hex
            case_id = (
                f"{case_id[:8]}-{case_id[8:12]}-{case_id[12:16]}-{case_id[16:20]}-{case_id[20:]}"
            )
        return row[0], case_id, row[2], row[3], row[4]

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
        cursor.execute(
            f"SELECT {position} AS position, originator_id, originator_version, topic, state "
            f"FROM {events_table} ORDER BY {position}"
        )
        found = cursor.fetchall()
        if not found:
            return 0
        events = [
            StoredEvent(
                _uuid_text(row["originator_id"]),
                row["originator_version"],
                row["topic"],
                bytes(row["state"]),
            )
            for row in found
        ]
        head = self.fetch_one(
            cursor, head_sql(self.qualify(CHAIN), self.ph), (str(events[0].originator_id),)
        )
        rows = chain_rows(
            head, self.case_hash_fetcher(cursor), [row["position"] for row in found], events
        )
        cursor.executemany(INSERT_CHAIN.format(chain=self.qualify(CHAIN), p=self.ph), rows)
        return len(rows)

    def tree_nodes(self, keys: Sequence[int]) -> list[Any]:
        """``(node, hash)`` of the stored subtrees ``keys`` (one statement)."""
        return self.read_rows(
            f"SELECT node, hash FROM {self.qualify(MERKLE)} WHERE {self.keys_clause(len(keys))}",
            self.keys_params(keys),
        )

    def keys_clause(self, count: int) -> str:
        return f"node IN ({','.join('?' * count)})"

    def keys_params(self, keys: Sequence[int]) -> list[Any]:
        return list(keys)

    def tree_frontier(self, cursor: Any, size: int) -> list[bytes]:
        """The hashes of the perfect subtrees that make up the stored tree of ``size``
        leaves (largest first): what the next leaves are folded into."""
        keys = frontier_keys(size)
        if not keys:
            return []
        cursor.execute(
            self.sql(
                f"SELECT node, hash FROM {self.qualify(MERKLE)} "
                f"WHERE {self.keys_clause(len(keys))} ORDER BY node"
            ),
            self.keys_params(keys),
        )  # placeholders, not the keys in the text: one compiled statement per count of keys
        rows = cursor.fetchall()
        if len(rows) != len(keys):
            raise IntegrityError(f"the Merkle tree is out of step with the chain at size {size}")
        return [bytes(row["hash"]) for row in rows]

    def sql(self, text: str) -> Any:
        return text

    def grow_tree(
        self,
        cursor: Any,
        size: int,
        leaves: Sequence[bytes],
        frontier: list[bytes] | None = None,
    ) -> None:
        """Add leaves to the stored tree of ``size`` leaves. ``frontier``: the tree's frontier
        at ``size``, if the caller has it (else read from the store); brought up to date."""
        if frontier is None:
            frontier = self.tree_frontier(cursor, size)
        rows = append_rows(size, frontier, leaves)
        cursor.executemany(INSERT_MERKLE.format(merkle=self.qualify(MERKLE), p=self.ph), rows)

    def catch_up_tree(self) -> int:
        """Bring the Merkle tree up to the chain's head; return how many leaves were added.
        Here (SQLite) the tree is written in the events' own transaction: nothing lags."""
        return 0

    def adopt_untreed(self, cursor: Any) -> int:
        """Build the tree over chain entries it lacks (a store from before the tree,
        opened for the first time); return how many leaves were added."""
        last = self.fetch_one(cursor, f"SELECT MAX(node) AS last FROM {self.qualify(MERKLE)}", ())
        size = 0 if last["last"] is None else tree_size(int(last["last"]))
        head = self.fetch_one(
            cursor, f"SELECT seq FROM {self.qualify(CHAIN)} ORDER BY position DESC LIMIT 1", ()
        )
        if head is None or int(head["seq"]) <= size:  # the usual open: nothing to scan
            return 0
        cursor.execute(
            self.sql(
                f"SELECT entry_hash FROM {self.qualify(CHAIN)} WHERE seq > {int(size)} ORDER BY position"
            )
        )
        leaves = [bytes.fromhex(row["entry_hash"]) for row in cursor.fetchall()]
        if leaves:
            self.grow_tree(cursor, size, leaves)
        return len(leaves)


class _KeepingStatements:
    """``sqlite3`` as eventsourcing's SQLite module calls it, with a real statement cache: the
    library opens its connections with ``cached_statements=True``, a cache of ONE compiled
    statement, so every command recompiled each of its ~8 statements (the insert, the chain's
    head, the chain and tree rows, the commit, the snapshot…: ~8% of a comment's instructions)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(sqlite3, name)

    @staticmethod
    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        return sqlite3.connect(*args, **{**kwargs, "cached_statements": SQLITE_STATEMENTS})


def keep_statements() -> None:
    """Give the library's SQLite connections opened from now on a statement cache."""
    import eventsourcing.sqlite

    eventsourcing.sqlite.sqlite3 = _KeepingStatements()  # type: ignore[assignment]


class ChainedSQLiteRecorder(_Chained, SQLiteApplicationRecorder):
    """SQLite application recorder that also appends the hash chain."""

    def __init__(self, datastore: SQLiteDatastore, **kwargs: Any) -> None:
        keep_statements()  # before the pool opens its first connection
        super().__init__(datastore, **kwargs)
        self._frontier: tuple[tuple[int, str], tuple[bytes, ...]] | None = None
        """The tree's frontier as this recorder's last batch left it, under the chain's
        (entry number, running hash) then: see :meth:`_tree_frontier`."""

    def construct_create_table_statements(self) -> list[str]:
        return super().construct_create_table_statements() + table_statements(
            self.qualify, "BLOB", "INTEGER"
        )

    def create_table(self) -> None:
        super().create_table()
        with self.datastore.transaction(commit=True) as cursor:
            self.adopt_unchained(cursor, self.events_table_name, "rowid")
            self.adopt_untreed(cursor)

    def _insert_events(
        self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        positions = super()._insert_events(c, stored_events, **kwargs)
        if stored_events:
            head = self.fetch_one(c, head_sql(CHAIN, "?"), (str(stored_events[0].originator_id),))
            assert positions is not None  # an application recorder returns the new positions
            rows = chain_rows(head, self.case_hash_fetcher(c), positions, stored_events)
            c.executemany(INSERT_CHAIN.format(chain=CHAIN, p="?"), rows)
            if self.keep_tree:
                size = rows[0][1] - 1
                frontier = self._tree_frontier(c, size, head["chain_hash"])
                self.grow_tree(c, size, [bytes.fromhex(row[4]) for row in rows], frontier)
                self._frontier = ((rows[-1][1], rows[-1][6]), tuple(frontier))
        return positions

    def _tree_frontier(self, cursor: Any, size: int, chain_hash: str | None) -> list[bytes]:
        """The tree's frontier at ``size`` leaves, whose last chain entry's running hash is
        ``chain_hash`` (as the batch's transaction read the chain's head): the one this
        recorder's last batch left, if that batch ended the chain there, else read from the
        store (:meth:`tree_frontier`). The running hash covers every entry before it, so
        the kept frontier is the stored one: no other writer (another process) appended
        since, and a batch that was rolled back ended a chain that is not there."""
        kept = self._frontier
        if kept is not None and kept[0] == (size, chain_hash):
            return list(kept[1])
        return self.tree_frontier(cursor, size)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """As the library's, but ``None`` for no events, as its recorder contract says."""
        positions = super().insert_events(stored_events, **kwargs)
        return positions if stored_events else None


@retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)  # as the library's insert
def insert_snapshot(recorder: Any, stored: StoredEvent) -> None:
    """Write one snapshot with the snapshot store's ``recorder``. On PostgreSQL, one prepared
    single-row ``INSERT`` on an autocommit connection: the library's insert adapts an array of
    a composite type in Python (~3 M instructions a snapshot, 8 % of a comment's at one
    snapshot in ten). A snapshot already stored raises the library's ``IntegrityError``
    (a ``RecordConflictError``), as its own insert does."""
    if not isinstance(recorder, PostgresAggregateRecorder):
        recorder.insert_events([stored])
        return
    datastore = recorder.datastore
    with datastore.get_connection() as conn, conn.cursor() as cursor:  # errors translated
        cursor.execute(
            f'INSERT INTO "{datastore.schema}"."{recorder.events_table_name}" '
            "(originator_id, originator_version, topic, state) VALUES (%s, %s, %s, %s)",
            (stored.originator_id, stored.originator_version, stored.topic, stored.state),
            prepare=True,
        )


class ChainedPostgresRecorder(_Chained, PostgresApplicationRecorder):
    """PostgreSQL application recorder that also appends the hash chain."""

    ph = "%s"
    position = "notification_id"
    case_id_text = "originator_id::text"  # no UUID object per row

    def read_rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """One statement on an autocommit connection (no BEGIN and ROLLBACK round trips),
        prepared, rows as plain tuples."""
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as cursor:
            cursor.execute(sql, list(params), prepare=True)
            return cursor.fetchall()

    def topics_clause(self, count: int) -> str:
        return "topic = ANY(%s)"

    def keys_clause(self, count: int) -> str:
        return "node = ANY(%s)"

    def keys_params(self, keys: Sequence[int]) -> list[Any]:
        return [list(keys)]

    def topics_params(self, topics: Sequence[str]) -> list[Any]:
        return [list(topics)]

    def event_row(self, row: Any) -> tuple[int, str, int, str, bytes]:
        return row if type(row[4]) is bytes else (*row[:4], bytes(row[4]))

    @retry(
        (InterfaceError, OperationalError), max_attempts=10, wait=0.2
    )  # as the library's own read
    def notification_rows(self, after: int, limit: int) -> list[tuple[int, UUID, int, str, bytes]]:
        """The library's ``select_notifications`` query, rows as plain tuples
        ``(id, originator_id, originator_version, topic, state)``: its per-row dict and
        frozen ``Notification`` cost ~1/3 of a projection runner's read."""
        return self.read_rows(
            f"SELECT notification_id, originator_id, originator_version, topic, state "
            f"FROM {self.qualify(self.events_table_name)} WHERE notification_id > %s "
            "ORDER BY notification_id LIMIT %s",
            (after, limit),
        )

    def __init__(self, datastore: Any, *, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        if datastore.enable_db_functions:
            raise ValueError("the hash chain needs POSTGRES_ENABLE_DB_FUNCTIONS off")
        for statement in table_statements(self.qualify, "BYTEA", "BIGINT"):
            self.sql_create_statements.append(SQL(statement))  # type: ignore[arg-type]
        chain, events = self.qualify(CHAIN), self.qualify(events_table_name)
        merkle = self.qualify(MERKLE)
        link_fn, fold, append, grow = (
            self.qualify("audit_link"),
            self.qualify("audit_fold"),
            self.qualify("audit_append"),
            self.qualify("audit_grow"),
        )
        tree_lock = "'" + datastore.schema.replace("'", "''") + "'"
        zero = "decode(repeat('00', 32), 'hex')"
        tree_sql = (
            # The Merkle tree (engine.audit.merkle.append_rows, in plpgsql): the stored
            # subtrees of the tree of `v_size` leaves, then each leaf of `v_leaves` and the
            # parents it completes.
            "FOR v_b IN REVERSE 62..0 LOOP IF (v_size >> v_b) & 1 = 1 THEN v_c := v_c + (1::bigint << v_b); "
            "v_keys := v_keys || (2 * (v_c - 1) - bit_count((v_c - 1)::bit(64)) + v_b); END IF; END LOOP;\n"
            f"SELECT coalesce(array_agg(hash ORDER BY node), '{{}}') INTO v_stack FROM {merkle} "
            "WHERE node = ANY(v_keys);\n"
            "v_top := coalesce(array_length(v_stack, 1), 0);\n"
            "IF v_top <> coalesce(array_length(v_keys, 1), 0) THEN RAISE EXCEPTION "
            "'the Merkle tree is out of step with the chain at size %', v_size; END IF;\n"
            "v_keys := '{}'; v_k := 2 * v_size - bit_count(v_size::bit(64));\n"
            "FOREACH v_h IN ARRAY v_leaves LOOP v_keys := v_keys || v_k; v_hashes := v_hashes || v_h; v_k := v_k + 1; "
            "v_m := v_size; WHILE v_m & 1 = 1 LOOP v_h := sha256('\\x01'::bytea || v_stack[v_top] || v_h); "
            "v_top := v_top - 1; v_keys := v_keys || v_k; v_hashes := v_hashes || v_h; v_k := v_k + 1; v_m := v_m >> 1; "
            "END LOOP; v_top := v_top + 1; v_stack[v_top] := v_h; v_size := v_size + 1; END LOOP;\n"
            f"INSERT INTO {merkle} (node, hash) SELECT * FROM unnest(v_keys, v_hashes);\n"
        )
        functions: list[Any] = [
            SQL(statement)
            for statement in (  # SQL; the library's list says Composed
                # link(previous, leaf) = SHA-256(0x01 || previous || leaf), as engine.audit.canonical.link;
                # strict with no initial state, the fold starts from its first input: the head
                f"CREATE OR REPLACE FUNCTION {link_fn}(previous bytea, leaf bytea) RETURNS bytea "
                "LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS "
                "$$BEGIN RETURN sha256('\\x01'::bytea || previous || leaf); END$$",
                f"CREATE OR REPLACE AGGREGATE {fold}(bytea) (SFUNC = {link_fn}, STYPE = bytea)",
                # One batch: lock, insert the events, chain them, return their positions in the
                # batch's order. Each entry's bytes are engine.audit.canonical.entry_bytes written
                # in SQL (the topics come JSON-quoted by Python's encoder). The running hash folds
                # the leaves from the chain head; each case's hash folds its leaves from the case's
                # last hash (rows with a NULL version are those starting points). A function, so
                # its plan is made once per connection, not per batch.
                f"CREATE OR REPLACE FUNCTION {append}(case_ids uuid[], versions bigint[], topics text[], "
                "states text[], json_topics text[]) RETURNS bigint[] LANGUAGE plpgsql AS $$\n"
                "DECLARE positions bigint[];\n"
                f"BEGIN\nLOCK TABLE {events} IN EXCLUSIVE MODE;\n"
                "WITH batch AS (SELECT * FROM unnest(case_ids, versions, topics, states, json_topics) "
                "WITH ORDINALITY AS b(o, v, t, s, tq, n)), "
                f"inserted AS (INSERT INTO {events} (originator_id, originator_version, topic, state) "
                "SELECT o, v, t, decode(s, 'hex') FROM batch ORDER BY n "
                "RETURNING notification_id, originator_id, originator_version), "
                "entries AS (SELECT i.notification_id AS position, b.o::text AS case_id, b.v AS version, b.n, "
                "sha256('\\x00'::bytea || convert_to('{\"case\":\"' || b.o || '\",\"position\":' || i.notification_id "
                "|| ',\"state_sha256\":\"' || encode(sha256(decode(b.s, 'hex')), 'hex') || '\",\"topic\":' || b.tq "
                "|| ',\"version\":' || b.v || '}', 'UTF8')) AS leaf "
                "FROM inserted i JOIN batch b ON b.o = i.originator_id AND b.v = i.originator_version), "
                f"head AS (SELECT seq, decode(chain_hash, 'hex') AS h FROM {chain} ORDER BY position DESC LIMIT 1), "
                "starts AS (SELECT NULL::text AS case_id, "
                f"coalesce((SELECT h FROM head), {zero}) AS h "
                "UNION ALL SELECT d.case_id, coalesce((SELECT decode(c.case_hash, 'hex') FROM "
                f"{chain} c WHERE c.case_id = d.case_id ORDER BY c.version DESC LIMIT 1), {zero}) "
                "FROM (SELECT DISTINCT case_id FROM entries) d), "
                "links AS (SELECT position, case_id, version, leaf, "
                f"{fold}(x) FILTER (WHERE case_id IS NULL OR version IS NOT NULL) OVER (ORDER BY position) AS running, "
                f"{fold}(x) FILTER (WHERE case_id IS NOT NULL) OVER (PARTITION BY case_id ORDER BY position) AS case_hash "
                "FROM (SELECT 0::bigint AS position, case_id, NULL::bigint AS version, NULL::bytea AS leaf, h AS x "
                "FROM starts UNION ALL SELECT position, case_id, version, leaf, leaf FROM entries) chain_input), "
                f"chained AS (INSERT INTO {chain} (position, seq, case_id, version, entry_hash, case_hash, chain_hash) "
                "SELECT position, coalesce((SELECT seq FROM head), 0) + row_number() OVER (ORDER BY position), "
                "case_id, version, encode(leaf, 'hex'), encode(case_hash, 'hex'), encode(running, 'hex') "
                "FROM links WHERE version IS NOT NULL) "
                "SELECT array_agg(position ORDER BY n) INTO positions FROM entries;\n"
                "RETURN positions;\nEND$$",
                # The Merkle tree's next leaves, after the events' commit and outside their lock
                # (see catch_up_tree). Under a lock of the tree's own: the tree's size from its
                # last node, then up to `max_leaves` chain entries after it, read after
                # `after_position` (a hint: the position of the tree's last leaf) when that gives
                # the next entry, else as the last (head - size) entries by position, in ONE
                # statement (one snapshot: the committed chain is a prefix of its entry numbers).
                # Returns {leaves added, position of the tree's last leaf}. Asynchronous commit:
                # the tree is derived from the chain, and WAL order keeps whatever of it
                # survives a crash a prefix of it (a signed tree head's own commit flushes it).
                f"CREATE OR REPLACE FUNCTION {grow}(after_position bigint, max_leaves int) "
                "RETURNS bigint[] LANGUAGE plpgsql AS $$\n"
                "DECLARE v_last bigint; v_size bigint := 0; v_leaves bytea[]; v_first bigint; "
                "v_end bigint; v_stack bytea[]; v_top int; v_keys bigint[] := '{}'; "
                "v_hashes bytea[] := '{}'; v_k bigint; v_h bytea; v_m bigint; v_c bigint := 0;\n"
                "BEGIN\nPERFORM set_config('synchronous_commit', 'off', true);\n"
                f"PERFORM pg_advisory_xact_lock(hashtext('fengqiao.audit_tree'), hashtext({tree_lock}));\n"
                f"SELECT max(node) INTO v_last FROM {merkle};\n"
                "IF v_last IS NOT NULL THEN v_size := (v_last + 1) / 2; WHILE 2 * v_size - "
                "bit_count(v_size::bit(64)) < v_last + 1 LOOP v_size := v_size + 1; END LOOP; END IF;\n"
                "IF after_position IS NOT NULL THEN SELECT array_agg(decode(entry_hash, 'hex') "
                "ORDER BY position), min(seq), max(position) INTO v_leaves, v_first, v_end FROM "
                f"(SELECT position, seq, entry_hash FROM {chain} WHERE position > after_position "
                "ORDER BY position LIMIT max_leaves) t; END IF;\n"
                "IF v_first IS DISTINCT FROM v_size + 1 THEN SELECT array_agg(decode(entry_hash, 'hex') "
                "ORDER BY position), min(seq), max(position) INTO v_leaves, v_first, v_end FROM "
                f"(SELECT position, seq, entry_hash FROM (SELECT position, seq, entry_hash FROM {chain} "
                "ORDER BY position DESC LIMIT greatest(0, coalesce((SELECT seq FROM "
                f"{chain} ORDER BY position DESC LIMIT 1), 0) - v_size)) pending "
                "ORDER BY position LIMIT max_leaves) t; END IF;\n"
                "IF v_first IS NULL THEN RETURN ARRAY[0, after_position]; END IF;\n"
                "IF v_first <> v_size + 1 THEN RAISE EXCEPTION 'the Merkle tree of % leaves is out "
                "of step with the chain (next entry %)', v_size, v_first; END IF;\n"
                + tree_sql
                + "RETURN ARRAY[array_length(v_leaves, 1)::bigint, v_end];\nEND$$",
            )
        ]
        self.sql_create_statements += functions
        # The library's subscriptions LISTEN on channel_name: one channel per schema, so a
        # county's listeners are not woken by another county's commits on the same server.
        self.channel_name = f"{datastore.schema}_{events_table_name}".replace(".", "_")
        channel = '"' + self.channel_name.replace('"', '""') + '"'
        # The batch's query, its values written in as literals (see _batch_sql); the NOTIFY
        # is delivered at COMMIT, still in the batch's one round trip.
        self._insert_head = f"BEGIN; SET LOCAL lock_timeout = '{int(datastore.lock_timeout)}s'; NOTIFY {channel}; SELECT {append}("
        self._insert_tail = ") AS ids; COMMIT"
        self._topics: dict[str, tuple[str, str]] = {}
        self._grow_sql = SQL(f"SELECT {grow}(%s, %s)")
        self._tree_position: int | None = None  # where the tree's last leaf sits: a hint
        self._writer_lock = threading.Lock()
        self._held: Any = None
        close = datastore.close

        def close_releasing_writer() -> None:
            self.release_writer()
            close()

        datastore.close = close_releasing_writer

    def qualify(self, name: str) -> str:
        return f'"{self.datastore.schema}".{name}'

    def fetch_one(self, cursor: Any, sql: str, params: Sequence[Any]) -> Any:
        cursor.execute(SQL(sql), params)
        return cursor.fetchone()

    def sql(self, text: str) -> Any:
        return SQL(text)  # text built here, no values in it

    def create_table(self) -> None:
        # one process at a time: two starting at once (two `fengqiao worker`s) would race on
        # CREATE TYPE / CREATE OR REPLACE FUNCTION and one fail ("tuple concurrently updated")
        kwargs = self.datastore.pool.kwargs
        assert isinstance(
            kwargs, dict
        )  # the library's pool is built with a dict of connection options
        options = {k: v for k, v in kwargs.items() if k != "row_factory"}
        with psycopg.connect(autocommit=True, **options) as ddl_lock:
            ddl_lock.execute(
                "SELECT pg_advisory_lock(hashtext('fengqiao.ddl'), hashtext(%s))",
                (self.datastore.schema,),
            )
            super().create_table()
        events = self.qualify(self.events_table_name)
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(SQL(f"LOCK TABLE {events} IN EXCLUSIVE MODE"))
            self.adopt_unchained(cursor, events, "notification_id")
        self.catch_up_tree()  # a store from before the tree, or one left behind by a crash

    def catch_up_tree(self) -> int:
        """Bring the Merkle tree up to the chain's head as committed now; return how many
        leaves were added (``audit_grow``, in chunks of ``TREE_CHUNK`` leaves, one round
        trip each, under the tree's own advisory lock: never the events' table lock).

        On PostgreSQL the tree is not written in the events' transaction: that
        transaction holds the events table's lock through its commit, and the tree's
        upkeep made it longer for every writer. The tree follows the chain instead: the
        audit worker's every poll and every read of the tree (:class:`engine.audit.merkle.Tree`)
        catch it up first, so a root or a proof is always of a tree the chain has, never
        of a partial one. The tree can lag the chain; it never leads it.
        """
        if not self.keep_tree:
            return 0
        added = 0
        while True:
            with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as cur:
                cur.execute(self._grow_sql, (self._tree_position, TREE_CHUNK), prepare=True)
                row = cur.fetchone()
            assert row is not None  # a function call has a row
            count, self._tree_position = int(row[0][0]), row[0][1]
            added += count
            if count < TREE_CHUNK:
                return added

    def _notify_channel(self, curs: Any) -> None:
        """Nothing here: the batch's own text sends the ``NOTIFY`` (see ``_insert_tail``)."""

    def _batch_sql(self, conn: Any, stored_events: Sequence[StoredEvent]) -> str:
        """The batch's SQL, with its values as literals: building the text is ~10x
        cheaper than psycopg's adaptation of parameter arrays, and nothing in it needs
        escaping: ids are UUIDs (checked unless they are ``UUID``s), versions integers,
        states hex, topics quoted by psycopg once per topic."""
        ids = ",".join(f"'{_id_text(e.originator_id)}'" for e in stored_events)
        versions = ",".join(str(int(e.originator_version)) for e in stored_events)
        quoted = [
            self._topics.get(e.topic) or self._quote_topic(conn, e.topic) for e in stored_events
        ]
        topics = ",".join(topic for topic, _ in quoted)
        json_topics = ",".join(json for _, json in quoted)
        states = ",".join(f"'{e.state.hex()}'" for e in stored_events)
        return (
            f"{self._insert_head}ARRAY[{ids}]::uuid[], ARRAY[{versions}]::bigint[], ARRAY[{topics}]::text[], "
            f"ARRAY[{states}]::text[], ARRAY[{json_topics}]::text[]{self._insert_tail}"
        )

    def _quote_topic(self, conn: Any, topic: str) -> tuple[str, str]:
        """The topic as an SQL literal, and its JSON string (as the entry bytes have it) as one."""
        self._topics[topic] = quoted = (
            Literal(topic).as_string(conn),
            Literal(json_string(topic)).as_string(conn),
        )
        return quoted

    def _keeps_writer(self) -> bool:
        """Whether the pool can spare a connection kept for writing: only if at least two
        others remain (a subscription's LISTEN and its reads). A smaller pool (one
        connection, as behind PgBouncer) writes each batch on a pooled connection."""
        if self.datastore.pool.max_size >= WRITER_POOL_MIN:
            return True
        if self._held is not None:
            self.release_writer()
        return False

    @contextmanager
    def _writer(self) -> Iterator[Any]:
        """The connection batches are written on: one kept out of the pool for writing
        (batches are written one at a time: see engine.group_commit), so a batch costs
        no pool check-out and no pre-ping round trip. A connection that broke goes
        back to the pool (which checks it); the next batch takes a fresh one. A second
        concurrent writer, or any writer when the pool is too small to spare one
        (:meth:`_keeps_writer`), uses a pooled connection."""
        if not self._keeps_writer() or not self._writer_lock.acquire(blocking=False):
            with self.datastore.get_connection() as conn:
                yield conn
            return
        try:
            pool = self.datastore.pool
            if self._held is None or self._held.closed:
                with self.datastore.get_connection():  # opens the pool and checks its connections
                    pass
                self._held = pool.getconn()
            conn = self._held
            try:
                yield conn
            except (psycopg.Error, PersistenceError) as error:
                if (
                    conn.broken
                    or conn.closed
                    or conn.info.transaction_status != TransactionStatus.IDLE
                ):
                    self._held = None
                    pool.putconn(conn)
                if isinstance(error, PersistenceError):
                    raise
                raise _library_error(error) from error
            except BaseException:
                self._held = None
                pool.putconn(conn)
                raise
        finally:
            self._writer_lock.release()

    def release_writer(self) -> None:
        """Give the writing connection back to the pool (before it closes)."""
        with self._writer_lock:
            held, self._held = self._held, None
            if held is not None:
                with suppress(Exception):
                    self.datastore.pool.putconn(held)

    @retry(
        (InterfaceError, OperationalError), max_attempts=10, wait=0.2
    )  # as the library's insert_events
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """One batch in one transaction of ONE round trip, whatever its size:
        ``BEGIN``, the table lock, ONE statement that inserts the events, chains them
        (in SQL, from the chain head and the batch's cases' last hashes) and returns
        their positions, and ``COMMIT``.

        It is one simple-protocol query of several statements, its values written in
        as literals (see :meth:`_batch_sql`). The library sends six statements and an
        ``executemany`` in psycopg's pipeline mode instead; every round trip and every
        poll of the socket costs the writing thread a wake-up (and, while the table is
        locked, a wait for the GIL), and on this kind of host each costs tens to
        hundreds of µs (see docs/performance-log.md, *Write throughput*).
        """
        if not stored_events:
            return None
        with self._writer() as conn:
            try:
                positions = _run_batch(
                    conn, self._batch_sql(conn, stored_events)
                )  # a version conflict raises here
            except BaseException:
                if conn.info.transaction_status != TransactionStatus.IDLE:
                    with suppress(Exception):
                        conn.execute(_ROLLBACK)
                raise
        return positions
