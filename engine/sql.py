"""The one SQL adapter for every side table: SQLite or PostgreSQL, one way to write SQL.

:class:`Database` is a database of its own (the read models, the workflows'
positions, webhook subscriptions: its own connections, pooled on PostgreSQL);
:class:`StoreDb` is the engine's store itself (the audit chain, checkpoints,
personal keys, API users), on the engine's own connections. Both run their
statements through :class:`Tx`, so they take the same SQL and give the same rows.

SQL is written once, SQLite-style: ``?`` or ``:name`` placeholders, ``TEXT``
timestamps (ISO 8601, UTC, so they sort), ``INTEGER`` booleans, JSON in ``TEXT``,
``INSERT … ON CONFLICT … DO UPDATE`` upserts (both databases speak these). The
only translation — placeholders and ``%`` for psycopg — lives in :func:`to_psycopg`;
the only other difference, row locking, is :attr:`Database.for_update`.

By default :class:`Database` lives beside the events: the same SQLite file, or the
same PostgreSQL schema. ``FENGQIAO_PROJECTIONS_URL`` (or ``url=``) puts them in a
separate database.
"""

from __future__ import annotations

import functools
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

from engine.settings import DEFAULTS, Settings
from engine.store import StoreConfig

Params = Sequence[Any] | Mapping[str, Any]

_TOKENS = re.compile(r"'(?:[^']|'')*'|::|:([A-Za-z_]\w*)|\?|%")


@functools.lru_cache(maxsize=1024)
def to_psycopg(sql: str) -> str:
    """``?`` → ``%s``, ``:name`` → ``%(name)s``, ``%`` → ``%%`` (inside string literals
    too: psycopg reads ``%`` everywhere in a statement run with parameters, and
    :class:`Tx` always passes them); ``?`` and ``:name`` inside literals and ``::`` casts
    are left alone. Each statement's text is translated once (the texts are the code's own,
    a bounded set): the rewrite was 4.5% of a PostgreSQL comment's instructions."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token.startswith("'"):
            return token.replace("%", "%%")
        if token == "::":
            return token
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        return f"%({match.group(1)})s"

    return _TOKENS.sub(replace, sql)


_INSERT = re.compile(
    r"\s*INSERT\s+INTO\s+(\w+)\s*\(([\w\s,]+)\)\s*VALUES\s*\(([?\s,]+)\)(.*)", re.S | re.I
)
_CONFLICT = re.compile(r"\bON\s+CONFLICT\s*\(([\w\s,]+)\)", re.I)
BULK_ROWS = 50  # fewer rows than this are not worth a staging table


PING_AFTER_IDLE_SECONDS = 1.0
"""A pooled PostgreSQL connection idle this long is checked (one round trip) before use."""


def check_if_idle(connection: Any) -> None:
    """The pools' ``check`` (psycopg_pool calls it on each connection taken from the pool):
    the round trip of ``ConnectionPool.check_connection``, but only for a connection that
    sat in the pool for ``PING_AFTER_IDLE_SECONDS`` or more since it was opened or last
    went back (or carries neither stamp).

    A connection that broke while idle — a database restart, an idle timeout, a proxy that
    dropped it — is found and replaced before the request uses it, as before. One used a
    moment ago is not pinged: that was a second round trip on every pooled query (half of
    a case read's, issue 20). If the database went away within that moment, the query
    itself fails: psycopg_pool discards the broken connection when it comes back, a
    command is retried once on a fresh one (``Fengqiao._act``), a read answers 503."""
    returned = getattr(connection, "_fengqiao_returned_at", None)
    if (
        returned is None
        or returned <= _found_broken_at
        or time.monotonic() - returned >= PING_AFTER_IDLE_SECONDS
    ):
        from psycopg_pool import ConnectionPool

        ConnectionPool.check_connection(connection)


_found_broken_at = 0.0
"""When a pooled connection was last found broken (:func:`found_broken`)."""


def found_broken() -> None:
    """A pooled connection came back broken (the server restarted or terminated it,
    :func:`stamp_on_return`): every connection given back before now is checked before its
    next use however recently it went back, since the others in the pools most likely died
    with it. Without this, the first use of each after a restart failed once more (a
    readiness probe answered "projections unavailable" after the database had recovered)."""
    global _found_broken_at
    _found_broken_at = time.monotonic()


def stamp_returned(connection: Any) -> None:
    """When the connection went back (read by :func:`check_if_idle`; :func:`stamp_on_return`);
    also the pools' ``configure``: a connection just opened is as good as one just given
    back (a pool that grows in the background adds connections nobody has used yet)."""
    connection._fengqiao_returned_at = time.monotonic()


def stamp_on_return(pool: Any) -> None:
    """Stamp each connection as it goes back to ``pool``, in the thread that gives it back,
    and note one that comes back broken (:func:`found_broken`). Not as the pool's ``reset``: psycopg_pool hands every return to one of its worker
    threads when it has a reset function (a queue put and a thread woken per query: ~15%
    of a list's server-thread profile on PostgreSQL, issue 20), and the connection is back
    in the pool only once that thread has run; without one it is back at once."""
    assert getattr(pool, "_reset", None) is None, "the pool has a reset function"
    putconn = pool.putconn

    def returned(connection: Any) -> None:
        if connection.broken:
            found_broken()
        stamp_returned(connection)
        putconn(connection)

    pool.putconn = returned


def ping_when_idle(pool: Any) -> None:
    """Give a pool made elsewhere (the eventsourcing library's, which pings on every
    check-out with ``POSTGRES_PRE_PING``) the check of :func:`check_if_idle`."""
    pool._check = check_if_idle
    stamp_on_return(pool)
    configure = pool._configure

    def opened(connection: Any) -> None:
        if configure is not None:
            configure(connection)
        stamp_returned(connection)

    pool._configure = opened


class Tx:
    """One open transaction. Rows come back as dicts.

    A *bulk* transaction (:meth:`Database.transaction` with ``bulk=True``: a rebuild
    filling tables nobody reads yet) is cheaper on PostgreSQL: it commits without
    waiting for the WAL flush, and :meth:`executemany` of a plain ``INSERT … VALUES (?, …)``
    (with any ``ON CONFLICT`` clause) sends its rows with ``COPY`` into a temporary
    table and inserts them with one ``INSERT … SELECT`` — one statement instead of one
    per row. The rows written are the same.
    """

    def __init__(self, cursor: Any, postgres: bool, bulk: bool = False) -> None:
        self._cursor = cursor
        self._postgres = postgres
        self._bulk = bulk and postgres

    @property
    def is_postgres(self) -> bool:
        return self._postgres

    @property
    def key_type(self) -> str:
        """A text column compared byte by byte (region codes, ISO timestamps): ranges
        and prefixes on it can use a b-tree index on both databases."""
        return 'TEXT COLLATE "C"' if self._postgres else "TEXT"

    def _sql(self, sql: str) -> str:
        return to_psycopg(sql) if self._postgres else sql

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; return the number of rows it changed."""
        self._cursor.execute(self._sql(sql), params)
        return self._cursor.rowcount

    def serialize(self, key: str) -> None:
        """Hold a lock named ``key`` until this transaction ends (PostgreSQL advisory
        lock; on SQLite every write transaction is already exclusive)."""
        if self._postgres:
            self._cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        if rows and not (self._bulk and len(rows) >= BULK_ROWS and self._copy(sql, rows)):
            self._cursor.executemany(self._sql(sql), rows)

    def _copy(self, sql: str, rows: Sequence[Params]) -> bool:
        """``executemany`` of an INSERT as COPY + one INSERT … SELECT; False (nothing
        done) when the statement or the rows do not allow it."""
        match = _INSERT.fullmatch(sql)
        if match is None or not isinstance(rows[0], (tuple, list)):
            return False
        table, rest = match.group(1), match.group(4)
        columns = [c.strip() for c in match.group(2).split(",")]
        if match.group(3).count("?") != len(columns) or any(
            t in rest for t in ("?", ":", "RETURNING", "returning")
        ):
            return False
        conflict = _CONFLICT.search(rest)
        if (
            conflict
        ):  # one statement cannot touch a row twice: keys must be distinct, as they are in order
            at = [
                columns.index(c.strip())
                for c in conflict.group(1).split(",")
                if c.strip() in columns
            ]
            positional = cast(Sequence[Sequence[Any]], rows)  # the first row is a sequence: all are
            if len({tuple(row[i] for i in at) for row in positional}) != len(rows):
                return False
        names = ", ".join(columns)
        stage = f"bulk_{table}"[:63]
        cursor = self._cursor
        cursor.execute(
            f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {names} FROM {table} WITH NO DATA"
        )
        with cursor.copy(f"COPY {stage} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage}{rest}")
        cursor.execute(f"DROP TABLE {stage}")
        return True

    @property
    def description(self) -> Sequence[Any]:
        """The columns of the last statement's result."""
        return self._cursor.description or ()

    def query(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        self._cursor.execute(self._sql(sql), params)
        if self._postgres:
            return list(self._cursor.fetchall())
        names = [d[0] for d in self._cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in self._cursor.fetchall()]


class Database:
    """The read models' database: transactions and queries, thread-safe."""

    def __init__(self, url: str, pool_size: int = DEFAULTS.projections_pool_size) -> None:
        self.store = StoreConfig(url)
        self.url = url
        self.pool_size = (
            pool_size  # PostgreSQL connections at most (FENGQIAO_PROJECTIONS_POOL_SIZE)
        )
        self.is_postgres = self.store.is_postgres
        self.for_update = " FOR UPDATE" if self.is_postgres else ""
        self._local = threading.local()
        self._pool: Any = None
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self.store.prepare()

    @classmethod
    def for_store(
        cls, store: StoreConfig, url: str | None = None, settings: Settings = DEFAULTS
    ) -> Database:
        """Beside the events, unless ``url`` or ``FENGQIAO_PROJECTIONS_URL`` says otherwise."""
        return cls(url or settings.projections_url or store.url, settings.projections_pool_size)

    # -- connections -------------------------------------------------------------

    def _sqlite(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                str(self.store.sqlite_path),
                isolation_level=None,
                check_same_thread=False,
                timeout=30,
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA busy_timeout=30000")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def _postgres_pool(self) -> Any:
        with self._lock:
            if self._pool is None:
                from psycopg.rows import dict_row
                from psycopg_pool import ConnectionPool

                self._pool = ConnectionPool(
                    self.store.psycopg_url(),
                    min_size=1,
                    max_size=self.pool_size,
                    kwargs={
                        "row_factory": dict_row,
                        "autocommit": True,
                        # skewed parameters (a county is every row, a grid a few): plan with the values
                        "options": f"-c search_path={self.store.schema} -c plan_cache_mode=force_custom_plan",
                    },
                    check=check_if_idle,  # a connection a restart dropped is replaced
                    configure=stamp_returned,
                    open=True,
                )
                stamp_on_return(self._pool)
            return self._pool

    @contextmanager
    def transaction(self, bulk: bool = False) -> Iterator[Tx]:
        """One atomic transaction: committed if the block succeeds, rolled back if not.
        On SQLite it takes the write lock at once (``BEGIN IMMEDIATE``).

        ``bulk``: for filling tables no reader sees yet (a rebuild's new generation).
        On PostgreSQL the commit does not wait for the WAL flush (``synchronous_commit
        off`` for this transaction only): a crash may lose the last such commits — rows
        and position together, as if they never ran — never half of one. And
        ``executemany`` inserts through ``COPY`` (see :class:`Tx`)."""
        if self.is_postgres:
            with self._postgres_pool().connection() as connection:
                with connection.transaction(), connection.cursor() as cursor:
                    if bulk:
                        cursor.execute("SET LOCAL synchronous_commit TO off")
                    yield Tx(cursor, postgres=True, bulk=bulk)
            return
        with self._sqlite_tx("BEGIN IMMEDIATE", commit=True) as tx:
            yield tx

    def query(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        """A read on its own snapshot. On PostgreSQL a read whose connection fails at the
        connection level is tried once more, on a connection checked first
        (:func:`found_broken`): a restart ends every pooled connection, and one given back
        a moment before it is not pinged, so its first use after the restart fails."""
        try:
            return self._read(sql, params)
        except Exception as error:
            import psycopg

            if not (self.is_postgres and isinstance(error, psycopg.OperationalError)):
                raise
            return self._read(sql, params)

    def _read(self, sql: str, params: Params) -> list[dict[str, Any]]:
        with self.statement() as tx:
            return tx.query(sql, params)

    @contextmanager
    def statement(self) -> Iterator[Tx]:
        """For one read on its own snapshot, outside a transaction (no ``BEGIN`` and
        ``ROLLBACK``: two of a one-query read's three round trips on PostgreSQL). Each
        statement run on it sees its own state: several that must agree take :meth:`snapshot`."""
        if self.is_postgres:
            with self._postgres_pool().connection() as connection, connection.cursor() as cursor:
                yield Tx(cursor, postgres=True)
            return
        cursor = self._sqlite().cursor()
        try:
            yield Tx(cursor, postgres=False)
        finally:
            cursor.close()

    @contextmanager
    def snapshot(self) -> Iterator[Tx]:
        """Several reads that see one consistent state (a read-only transaction)."""
        if self.is_postgres:
            with self._postgres_pool().connection() as connection:
                connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                try:
                    with connection.cursor() as cursor:
                        yield Tx(cursor, postgres=True)
                finally:
                    connection.execute("ROLLBACK")
            return
        with self._sqlite_tx("BEGIN", commit=False) as tx:
            yield tx

    @contextmanager
    def _sqlite_tx(self, begin: str, *, commit: bool) -> Iterator[Tx]:
        """A SQLite transaction opened by ``begin``, committed at the end of the block if
        ``commit`` (a write), else rolled back (a read, or a block that raised)."""
        connection = self._sqlite()
        cursor = connection.cursor()
        cursor.execute(begin)
        try:
            yield Tx(cursor, postgres=False)
        except BaseException:
            connection.rollback()
            raise
        else:
            (connection.commit if commit else connection.rollback)()
        finally:
            cursor.close()

    def table_exists(self, name: str) -> bool:
        if self.is_postgres:
            sql = (
                "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() "
                "AND table_name = ?"
            )
        else:
            sql = "SELECT 1 FROM sqlite_master WHERE name = ?"
        return bool(self.query(sql, (name,)))

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()


class StoreDb:
    """Side tables in the engine's own store (same SQLite file, same PostgreSQL schema),
    on the recorder's connections: no pool or lock of its own. Rows are dicts."""

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder
        self.datastore = recorder.datastore
        self.is_postgres = hasattr(self.datastore, "schema")
        self.schema = getattr(self.datastore, "schema", "")

    def table(self, name: str) -> str:
        """``name`` qualified with the store's schema."""
        return f'"{self.schema}".{name}' if self.is_postgres else name

    @contextmanager
    def transaction(self, commit: bool = True) -> Iterator[Tx]:
        """One transaction on the store: committed if ``commit`` and the block succeeds."""
        with self.datastore.transaction(commit=commit) as cursor:
            yield Tx(getattr(cursor, "sqlite_cursor", cursor), postgres=self.is_postgres)

    @contextmanager
    def _statement(self, commit: bool) -> Iterator[Tx]:
        if (
            self.is_postgres
        ):  # one statement on an autocommit connection: no BEGIN and COMMIT round trips
            with self.datastore.get_connection() as connection, connection.cursor() as cursor:
                yield Tx(cursor, postgres=True)
            return
        if not commit:  # one read on an autocommit connection (the library's): its own snapshot
            with self.datastore.get_connection(commit=False) as connection:
                cursor = connection.cursor().sqlite_cursor
                try:
                    yield Tx(cursor, postgres=False)
                finally:
                    cursor.close()
            return
        with self.transaction(commit=commit) as tx:
            yield tx

    def query(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        with self._statement(commit=False) as tx:
            return tx.query(sql, params)

    def one(self, sql: str, params: Params = ()) -> dict[str, Any] | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement in its own transaction; return the rows it changed."""
        with self._statement(commit=True) as tx:
            return tx.execute(sql, params)

    def columns(self, table: str) -> list[str]:
        """The column names of ``table`` (qualified, as :meth:`table` gives it)."""
        with self._statement(commit=False) as tx:
            tx.execute(f"SELECT * FROM {table} WHERE 1 = 0")
            return [column[0] for column in tx.description]
