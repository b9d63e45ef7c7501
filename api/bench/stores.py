"""The benchmarks' throw-away stores: a SQLite file or a fresh PostgreSQL schema, and dropping it."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from engine.store import StoreConfig

POSTGRES_URL = os.environ.get(
    "FENGQIAO_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def bench_store(kind: str, folder: Path, tag: str, *, prefix: str = "bench") -> StoreConfig:
    """``folder/<tag>.db`` for SQLite, else a new schema ``<prefix>_<tag>_<random>`` at ``POSTGRES_URL``."""
    if kind == "sqlite":
        return StoreConfig(f"sqlite:///{folder / f'{tag}.db'}")
    return StoreConfig(f"{POSTGRES_URL}?schema={prefix}_{tag}_{uuid.uuid4().hex[:8]}")


def drop_schema(store: StoreConfig) -> None:
    """Drop a PostgreSQL store's schema (a SQLite store is left alone)."""
    if store.is_postgres:
        import psycopg

        with psycopg.connect(store.psycopg_url(), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{store.schema}" CASCADE')
