"""Pooled PostgreSQL connections are pinged before use only after sitting idle (issue 20):
one used a moment ago goes straight to its query (the ping was half of a case read's
round trips); one whose session ended while idle is still found and replaced."""

from __future__ import annotations

import time

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from engine.service import Fengqiao
from engine.sql import PING_AFTER_IDLE_SECONDS
from tests.conftest import POSTGRES_URL, drop_schema, require_postgres
from tests.support import report, seed


def test_a_connection_used_a_moment_ago_is_not_pinged_and_an_idle_dead_one_is_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require_postgres()
    from engine.store import StoreConfig

    schema = f"t_pool_{time.monotonic_ns() % 10**9}"
    app = seed(Fengqiao(StoreConfig(f"{POSTGRES_URL}?schema={schema}")))
    try:
        case_id = report(app, "dispute").case_id
        pool = app.recorder.datastore.pool
        pings: list[object] = []
        ping = ConnectionPool.check_connection
        monkeypatch.setattr(
            ConnectionPool, "check_connection", lambda conn: pings.append(conn) or ping(conn)
        )
        for _ in range(pool.get_stats()["pool_size"] + 1):  # each pooled connection used once
            app.case(case_id)
        pings.clear()
        for _ in range(3):
            app.case(case_id)
        assert pings == []  # each connection taken had been returned a moment ago

        # every pooled session ends while idle, as in a database restart
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            pids = [c.info.backend_pid for c in pool._pool]
            admin.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))
        time.sleep(
            PING_AFTER_IDLE_SECONDS + 0.1
        )  # idle long enough to be checked (a bound, not a timing test)
        assert app.case(case_id).id == case_id  # the dead connection found and replaced
        assert pings
    finally:
        app.close()
        drop_schema(schema)


def test_a_connection_the_pool_just_opened_is_not_pinged_before_its_first_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pool that grows in the background adds connections nobody has used yet: opened a
    moment ago, they are as good as one given back a moment ago (CI found the first use
    of such a connection pinged, a flaky extra round trip)."""
    require_postgres()
    from engine.sql import check_if_idle
    from engine.store import StoreConfig

    schema = f"t_pool_{time.monotonic_ns() % 10**9}"
    app = seed(Fengqiao(StoreConfig(f"{POSTGRES_URL}?schema={schema}")))
    try:
        pool = app.recorder.datastore.pool
        pool.wait(timeout=30)
        before = {id(conn) for conn in pool._pool}
        size = pool.get_stats()["pool_size"]
        pool.resize(min_size=size + 2, max_size=max(pool.max_size, size + 2))
        pool.wait(timeout=30)
        opened = [conn for conn in pool._pool if id(conn) not in before]
        assert opened  # the pool grew
        pings: list[object] = []
        monkeypatch.setattr(ConnectionPool, "check_connection", lambda conn: pings.append(conn))
        for conn in opened:
            check_if_idle(conn)
        assert pings == []
        time.sleep(PING_AFTER_IDLE_SECONDS + 0.1)  # idle long enough to be checked
        check_if_idle(opened[0])
        assert pings == [opened[0]]
    finally:
        app.close()
        drop_schema(schema)


def test_a_connection_goes_back_to_its_pool_in_the_thread_that_used_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Giving a connection back hands no task to the pool's worker threads (psycopg_pool
    does when the pool has a reset function: a thread woken per query), on the store's
    pool and the read models'; it is stamped all the same (read by the idle check)."""
    require_postgres()
    from engine.sql import Database
    from engine.store import StoreConfig

    schema = f"t_pool_{time.monotonic_ns() % 10**9}"
    url = f"{POSTGRES_URL}?schema={schema}"
    app = seed(Fengqiao(StoreConfig(url)))
    db = Database(url)
    try:
        case_id = report(app, "dispute").case_id
        app.case(case_id)
        db.query("SELECT 1 AS one")
        tasks: list[object] = []
        run_task = ConnectionPool.run_task
        monkeypatch.setattr(
            ConnectionPool,
            "run_task",
            lambda self, task: tasks.append(task) or run_task(self, task),
        )
        before = time.monotonic()
        for _ in range(3):
            app.case(case_id)
            assert db.query("SELECT 1 AS one") == [{"one": 1}]
        assert tasks == []
        for pool in (app.recorder.datastore.pool, db._pool):
            assert any(c._fengqiao_returned_at >= before for c in pool._pool)
    finally:
        db.close()
        app.close()
        drop_schema(schema)
