"""Deployment keys kept in files beside the store, apart from the database's backups:
the webhook secrets' key (``FENGQIAO_WEBHOOK_KEY``) and the party search key
(``FENGQIAO_SEARCH_KEY``). Each is 256 random bits, made (mode 0600) on first use."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from engine.store import StoreConfig


def key_path(store: StoreConfig, configured: Path | None, name: str) -> Path:
    """``configured``, else ``name`` beside the SQLite file (``var/`` for PostgreSQL)."""
    if configured:
        return Path(configured)
    return Path("var") / name if store.is_postgres else store.sqlite_path.parent / name


def load_key(path: Path) -> bytes:
    """The 256-bit key in ``path``, made (mode 0600) on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = AESGCM.generate_key(bit_length=256)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return load_key(path)
        with os.fdopen(fd, "wb") as file:
            file.write(base64.b64encode(key))
        return key
    return base64.b64decode(path.read_bytes().strip())
