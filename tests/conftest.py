"""Every store-backed test runs twice: on SQLite and on PostgreSQL.

PostgreSQL comes from ``FENGQIAO_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``); each test gets a schema of its
own, dropped afterwards. With ``CI=true`` an unreachable PostgreSQL fails the
run; elsewhere the PostgreSQL half skips, saying why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from api.bench.county import USERS
from api.http.app import create_app
from engine.service import Fengqiao
from engine.store import StoreConfig
from engine.time_source import SimulatedClock
from tests.support import seed
from tests.test_api_support import Api

# Each engine keeps this many PostgreSQL connections open; tests open many engines.
os.environ.setdefault("FENGQIAO_POOL_SIZE", "1")

POSTGRES_URL = os.environ.get(
    "FENGQIAO_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

_postgres_problem: str | None = None
_postgres_checked = False


def postgres_unavailable() -> str | None:
    """None if PostgreSQL answers, else the reason it does not (checked once)."""
    global _postgres_checked, _postgres_problem
    if not _postgres_checked:
        _postgres_checked = True
        try:
            import psycopg

            with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
        except Exception as error:  # noqa: BLE001 - any failure means "not reachable"
            _postgres_problem = f"PostgreSQL at {POSTGRES_URL} is not reachable: {error}"
    return _postgres_problem


def require_postgres() -> None:
    problem = postgres_unavailable()
    if problem:
        if ON_CI:
            pytest.fail(f"CI=true but {problem}", pytrace=False)
        pytest.skip(problem)


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[StoreConfig]:
    """A fresh, empty store of each kind."""
    if request.param == "sqlite":
        yield StoreConfig(f"sqlite:///{tmp_path / 'fengqiao.db'}")
        return
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield StoreConfig(f"{POSTGRES_URL}?schema={schema}")
    drop_schema(schema)


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(datetime(2026, 9, 28, 1, 0, tzinfo=UTC))  # Monday 09:00 in Beijing


@pytest.fixture
def app(store: StoreConfig, clock: SimulatedClock) -> Iterator[Fengqiao]:
    """The engine on a fresh store, seeded with a small county and the default policy."""
    application = seed(Fengqiao(store, clock=clock))
    yield application
    application.close()


@pytest.fixture
def api(app: Fengqiao) -> Iterator[Api]:
    """The HTTP app over ``app``, a user of every role, and a client that speaks as one."""
    http = create_app(app)
    svc = http.state.services
    tokens = {
        name: svc.users.add(name, role, region, unit, by="test")
        for name, role, region, unit in USERS
    }
    with TestClient(http, raise_server_exceptions=False) as client:
        yield Api(http, client, app, tokens)
    if svc.runner is not None:
        svc.runner.close()
