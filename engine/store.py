"""Where events live: one URL chooses the store.

* ``sqlite:///path/to/file.db`` (the embedded default, zero set-up), or
* ``postgresql://user:pass@host:5432/db?schema=name`` (production; psycopg 3, pooled).

Both are eventsourcing's own recorders; this module turns the URL into the
library's environment and answers the few questions the library's recorder
interface does not (which global position an event got, the head of the log).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from engine.settings import DEFAULTS, Settings

DEFAULT_SQLITE_PATH = Path("var") / "fengqiao.db"
URL_VARIABLE = "FENGQIAO_DATABASE_URL"


@dataclass(frozen=True)
class StoreConfig:
    url: str

    @property
    def is_postgres(self) -> bool:
        return self.url.startswith(("postgresql://", "postgres://"))

    @property
    def kind(self) -> str:
        return "postgres" if self.is_postgres else "sqlite"

    @property
    def sqlite_path(self) -> Path:
        """``sqlite:///var/x.db`` is relative, ``sqlite:////tmp/x.db`` absolute."""
        return Path(unquote(self.url.removeprefix("sqlite:///")))

    @property
    def schema(self) -> str:
        if not self.is_postgres:
            return ""
        return parse_qs(urlparse(self.url).query).get("schema", ["public"])[0]

    def eventsourcing_env(self, settings: Settings = DEFAULTS) -> dict[str, str]:
        """The eventsourcing library's settings for this store (``settings``: the pool's size)."""
        if self.is_postgres:
            parsed = urlparse(self.url)
            return {
                "PERSISTENCE_MODULE": "eventsourcing.postgres",
                "POSTGRES_DBNAME": unquote(parsed.path.lstrip("/")) or "postgres",
                "POSTGRES_HOST": parsed.hostname or "127.0.0.1",
                "POSTGRES_PORT": str(parsed.port or 5432),
                "POSTGRES_USER": unquote(parsed.username or "postgres"),
                "POSTGRES_PASSWORD": unquote(parsed.password or ""),
                "POSTGRES_SCHEMA": self.schema,
                "POSTGRES_POOL_SIZE": str(settings.pool_size),  # kept open
                "POSTGRES_MAX_OVERFLOW": str(settings.pool_overflow),  # opened on demand
                "POSTGRES_CONN_MAX_AGE": "600",
                "POSTGRES_PRE_PING": "y",
                "POSTGRES_LOCK_TIMEOUT": "10",
                "POSTGRES_CONNECT_TIMEOUT": "10",
                "ORIGINATOR_ID_TYPE": "uuid",
                "APPLICATION_RECORDER_TOPIC": "engine.audit.recorders:ChainedPostgresRecorder",
            }
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(self.sqlite_path),
            "SQLITE_LOCK_TIMEOUT": "30",
            "APPLICATION_RECORDER_TOPIC": "engine.audit.recorders:ChainedSQLiteRecorder",
        }

    def prepare(self) -> None:
        """Make sure the place exists: the SQLite file's folder or the PG schema."""
        if self.is_postgres:
            import psycopg

            with psycopg.connect(self.psycopg_url(), autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        else:
            self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            self.private_files()

    def private_files(self) -> None:
        """The SQLite file holds per-person keys: make it 0600 before SQLite first opens
        it (its ``-wal`` and ``-shm`` take the file's mode), and bring an older store's
        files down to 0600 too."""
        path = self.sqlite_path
        if str(path) == ":memory:" or "mode=memory" in str(path):
            return
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            with contextlib.suppress(
                FileNotFoundError, PermissionError
            ):  # not ours: the owner sees to it
                if name.stat().st_mode & 0o077:
                    name.chmod(0o600)

    def psycopg_url(self) -> str:
        """The URL without our own ``schema`` parameter, for psycopg."""
        parsed = urlparse(self.url)
        return parsed._replace(query="", scheme="postgresql").geturl()


def store_from_settings(settings: Settings, default_path: Path | None = None) -> StoreConfig:
    """The store ``FENGQIAO_DATABASE_URL`` names (default: the SQLite file ``default_path``)."""
    url = settings.database_url
    if not url:
        url = f"sqlite:///{(default_path or DEFAULT_SQLITE_PATH)}"
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ValueError(f"{URL_VARIABLE} must be a sqlite:/// or postgresql:// URL, not {url!r}")
    return StoreConfig(url)
