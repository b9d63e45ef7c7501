"""The eventsourcing library's own recorder contract, run against Fengqiao's recorders.

The library ships its recorder test cases (``eventsourcing.tests.persistence``); the
per-store cases its repository keeps beside them (``tests/persistence_tests/
test_sqlite.py`` and ``test_postgres.py``: the store set-ups, the subscription, pool
and error cases; its aggregate-recorder cases are for recorders without positions) are not in the wheel, so they are wired here the same way, on
:class:`~engine.audit.recorders.ChainedSQLiteRecorder` and
:class:`~engine.audit.recorders.ChainedPostgresRecorder`. Every PostgreSQL case gets a
schema of its own and, as the library's own cases do, a pool of ONE connection.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal
from unittest import TestCase
from urllib.parse import unquote, urlparse
from uuid import uuid4

import psycopg
from eventsourcing.persistence import (
    DataError,
    OperationalError,
    PersistenceError,
    ProgrammingError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore
from eventsourcing.tests.persistence import (
    ApplicationRecorderTestCase,
    NonInterleavingNotificationIDsBaseCase,
)

from engine.audit.recorders import SQLITE_STATEMENTS, ChainedPostgresRecorder, ChainedSQLiteRecorder
from engine.audit.tables import CHAIN
from engine.service import Fengqiao
from engine.settings import Settings
from engine.store import StoreConfig
from tests.conftest import POSTGRES_URL, drop_schema, require_postgres
from tests.support import report, seed


def stored_event(
    originator_id: object = None, version: int = 1, topic: str = "topic1"
) -> StoredEvent:
    return StoredEvent(
        originator_id=originator_id or uuid4(),
        originator_version=version,
        topic=topic,
        state=b"state",
    )


# --- SQLite ------------------------------------------------------------------------------


class SQLiteStore(TestCase):
    """A file store per test (``:memory:`` where a case says so), as the library's cases."""

    db_name = ""
    originator_id_type: Literal["uuid", "text"] = "uuid"

    def setUp(self) -> None:
        super().setUp()
        self._folder = tempfile.TemporaryDirectory()
        self.db_path = str(Path(self._folder.name) / "events.db")

    def tearDown(self) -> None:
        self._folder.cleanup()
        super().tearDown()

    def create_recorder(self) -> ChainedSQLiteRecorder:
        datastore = SQLiteDatastore(
            db_name=self.db_name or self.db_path,
            pool_size=100,
            originator_id_type=self.originator_id_type,
        )
        recorder = ChainedSQLiteRecorder(datastore)
        recorder.create_table()
        return recorder


class TestChainedSQLiteApplicationContract(
    SQLiteStore, ApplicationRecorderTestCase[ChainedSQLiteRecorder]
):
    def test_concurrent_no_conflicts_in_memory_db(self) -> None:
        self.db_name = "file::memory:?cache=shared"
        super().test_concurrent_no_conflicts()

    def test_concurrent_throughput_in_memory_db(self) -> None:
        self.db_name = "file::memory:?cache=shared"
        super().test_concurrent_throughput()


class TestChainedSQLiteApplicationContractInMemory(TestChainedSQLiteApplicationContract):
    db_name = ":memory:"

    def test_concurrent_no_conflicts(self, initial_position: int = 0) -> None:
        self.db_name = ""  # the library's case: concurrency on a file
        super().test_concurrent_no_conflicts()

    def test_concurrent_throughput(self) -> None:
        self.db_name = ""
        super().test_concurrent_throughput()


class TestChainedSQLiteTextOriginatorIds(TestChainedSQLiteApplicationContract):
    originator_id_type = "text"

    def new_originator_id(self) -> str:
        return "test-" + str(uuid4())


class TestChainedSQLiteNonInterleaving(SQLiteStore, NonInterleavingNotificationIDsBaseCase):
    pass


def test_sqlite_connections_keep_compiled_statements(tmp_path, monkeypatch) -> None:
    """The library opens its SQLite connections with ``cached_statements=True``, a cache of
    one compiled statement, so each command recompiled every statement it ran. Every
    connection a Fengqiao opens on SQLite keeps ``SQLITE_STATEMENTS`` (sqlite3's default)."""
    kept: list[int] = []
    connect = sqlite3.connect

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        kept.append(int(kwargs.get("cached_statements", 128)))
        return connect(*args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", counting)
    app = seed(Fengqiao(StoreConfig(f"sqlite:///{tmp_path / 'events.db'}")))
    try:
        report(app)
    finally:
        app.close()
    assert kept and min(kept) >= SQLITE_STATEMENTS, kept


class TestChainedSQLiteErrors(SQLiteStore):
    def bare_recorder(self) -> ChainedSQLiteRecorder:
        return ChainedSQLiteRecorder(SQLiteDatastore(":memory:"))

    def test_insert_raises_operational_error_if_table_not_created(self) -> None:
        with self.assertRaises(OperationalError):
            self.bare_recorder().insert_events([stored_event()])

    def test_select_raises_operational_error_if_table_not_created(self) -> None:
        recorder = self.bare_recorder()
        for read in (
            lambda: recorder.select_events(uuid4()),
            lambda: recorder.select_notifications(start=1, limit=1),
            recorder.max_notification_id,
        ):
            with self.assertRaises(OperationalError):
                read()

    def test_subscribe_raises_not_implemented_error(self) -> None:
        with self.assertRaises(NotImplementedError):
            self.bare_recorder().subscribe(0)

    def test_the_chain_holds_after_the_contract_writes(self) -> None:
        recorder = self.create_recorder()
        recorder.insert_events([stored_event(version=v) for v in (1, 2)])
        self.assertIsNone(recorder.insert_events([]))
        rows = recorder.read_rows(f"SELECT seq FROM {CHAIN} ORDER BY position", [])
        self.assertEqual([1, 2], [row[0] for row in rows])


# --- PostgreSQL --------------------------------------------------------------------------


def _datastore_options() -> dict[str, str]:
    parsed = urlparse(POSTGRES_URL)
    return {
        "dbname": unquote(parsed.path.lstrip("/")),
        "host": parsed.hostname or "127.0.0.1",
        "port": str(parsed.port or 5432),
        "user": unquote(parsed.username or "postgres"),
        "password": unquote(parsed.password or ""),
    }


def close_connections_of(recorder: ChainedPostgresRecorder) -> None:
    """Terminate, on the server, this recorder's connections only, its pool's and the one
    it keeps for writing (the library's helper terminates every backend of the server,
    other tests' included)."""
    held = [recorder._held] if recorder._held is not None else []  # noqa: SLF001 - the test's look inside
    pids = [conn.info.backend_pid for conn in [*recorder.datastore.pool._pool, *held]]  # noqa: SLF001
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))


class PostgresStore(TestCase):
    """A schema of its own per test; a pool of one connection (the library's set-up)."""

    pool_size = 1
    max_overflow = 0
    max_waiting = 0

    def setUp(self) -> None:
        require_postgres()
        super().setUp()
        self.schema = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{self.schema}"')
        options = _datastore_options()
        self.datastore = PostgresDatastore(
            options["dbname"],
            options["host"],
            options["port"],
            options["user"],
            options["password"],
            pool_size=self.pool_size,
            max_overflow=self.max_overflow,
            max_waiting=self.max_waiting,
            schema=self.schema,
            originator_id_type="uuid",
        )

    def tearDown(self) -> None:
        self.datastore.close()
        drop_schema(self.schema)
        super().tearDown()

    def create_recorder(self) -> ChainedPostgresRecorder:
        recorder = ChainedPostgresRecorder(self.datastore)
        recorder.create_table()
        return recorder

    def resize(self, size: int) -> None:
        self.datastore.pool.open()
        self.datastore.pool.resize(size, size)


class TestChainedPostgresApplicationContract(
    PostgresStore, ApplicationRecorderTestCase[ChainedPostgresRecorder]
):
    def test_retry_insert_events_after_closing_connection(self) -> None:
        recorder = self.create_recorder()
        recorder.insert_events([stored_event()])
        close_connections_of(recorder)
        self.assertEqual([2], recorder.insert_events([stored_event()]))

    def test_insert_subscribe(self) -> None:
        self.resize(2)
        self.optional_test_insert_subscribe()

    def test_subscribe_delivers_a_live_event_at_once(self) -> None:
        """The subscription is woken by the writer's NOTIFY, not by a poll."""
        self.resize(2)
        recorder = self.create_recorder()
        recorder.insert_events([stored_event()])
        with recorder.subscribe(gt=1) as subscription:
            time.sleep(0.3)  # the subscription has caught up and waits
            written = time.monotonic()
            recorder.insert_events([stored_event()])
            notification = next(subscription)
            self.assertEqual(2, notification.id)
            self.assertLess(time.monotonic() - written, 2.0)

    def test_subscribe_concurrent_reading_and_writing(self) -> None:
        self.resize(2)
        recorder = self.create_recorder()
        batches, size = 20, 100

        def read(after: int | None) -> int:
            with recorder.subscribe(after) as subscription:
                for count, _ in enumerate(subscription, start=1):
                    if count == batches * size:
                        return count
            return 0

        def write() -> None:
            for _ in range(batches):
                recorder.insert_events([stored_event() for _ in range(size)])

        with ThreadPoolExecutor(max_workers=2) as pool:
            reading = pool.submit(read, recorder.max_notification_id())
            pool.submit(write).result()
            self.assertEqual(batches * size, reading.result(timeout=60))

    def test_concurrent_no_conflicts(self, initial_position: int = 0) -> None:
        self.resize(12)
        super().test_concurrent_no_conflicts()

    def test_concurrent_throughput(self) -> None:
        self.resize(10)
        super().test_concurrent_throughput()

    def test_writes_with_a_pool_of_one_connection_do_not_wait(self) -> None:
        recorder = self.create_recorder()
        started = time.monotonic()
        for _ in range(5):
            recorder.insert_events([stored_event()])
        self.assertLess(time.monotonic() - started, 5.0)  # a PoolTimeout waits 30 s
        self.assertEqual(5, recorder.max_notification_id())

    def test_retry_select_notifications_after_closing_connection(self) -> None:
        recorder = self.create_recorder()
        recorder.insert_events([stored_event()])
        close_connections_of(recorder)
        self.assertEqual(1, len(recorder.select_notifications(start=1, limit=1)))

    def test_retry_max_notification_id_after_closing_connection(self) -> None:
        recorder = self.create_recorder()
        recorder.insert_events([stored_event()])
        close_connections_of(recorder)
        self.assertEqual(1, recorder.max_notification_id())

    def test_a_text_originator_id_is_a_persistence_error(self) -> None:
        recorder = self.create_recorder()
        with self.assertRaises(DataError):
            recorder.insert_events([stored_event("test-" + str(uuid4()))])
        self.assertEqual(
            [1], recorder.insert_events([stored_event()])
        )  # the writer is still usable


class TestChainedPostgresApplicationContractLargePool(TestChainedPostgresApplicationContract):
    """The same contract with the engine's kind of pool, where the writer keeps a connection."""

    pool_size = 4
    max_overflow = 4


class TestChainedPostgresNonInterleaving(PostgresStore, NonInterleavingNotificationIDsBaseCase):
    def test(self) -> None:
        self.resize(3)
        super().test()


class TestChainedPostgresErrors(PostgresStore):
    def bare_recorder(self) -> ChainedPostgresRecorder:
        return ChainedPostgresRecorder(self.datastore)

    def test_reads_raise_programming_error_when_table_not_created(self) -> None:
        recorder = self.bare_recorder()
        for read in (
            lambda: recorder.select_notifications(start=1, limit=1),
            recorder.max_notification_id,
            lambda: recorder.select_events(uuid4()),
        ):
            with self.assertRaises(ProgrammingError):
                read()

    def test_insert_raises_programming_error_when_table_not_created(self) -> None:
        with self.assertRaises(ProgrammingError):
            self.bare_recorder().insert_events([stored_event()])

    def test_every_error_is_a_persistence_error(self) -> None:
        recorder = self.create_recorder()
        recorder.insert_events([stored_event(originator_id=(same := uuid4()))])
        with self.assertRaises(PersistenceError):
            recorder.insert_events([stored_event(originator_id=same)])  # a version conflict
        with self.assertRaises(PersistenceError):
            recorder.insert_events([stored_event(originator_id=12345)])


# --- the engine on a pool of one connection ------------------------------------------------


def test_the_engine_writes_on_a_pool_of_one_connection(store, clock):
    """``FENGQIAO_POOL_SIZE=1 FENGQIAO_POOL_OVERFLOW=0 fengqiao init`` waited out a
    PoolTimeout per write (103 s): the writer kept the pool's one connection."""
    started = time.monotonic()
    engine = seed(Fengqiao(store, clock=clock, settings=Settings(pool_size=1, pool_overflow=0)))
    try:
        result = report(engine)
        assert engine.case(result.case_id).version == 1
    finally:
        engine.close()
    assert time.monotonic() - started < 20  # one PoolTimeout alone is 30 s
