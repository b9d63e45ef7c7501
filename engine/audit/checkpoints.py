"""Signed checkpoints: "after N entries, ending at position P, the chain head was H".

A checkpoint is signed with Ed25519 over the JCS bytes of::

    {"head": "<hex>", "log": "fengqiao-audit-v1", "position": P, "size": N, "time": "<RFC 3339>"}

Checkpoints are stored in ``audit_checkpoints`` and can be exported as a small
JSON file that an auditor keeps outside the database: anyone who rewrites
history and recomputes the chain cannot produce the same head at that size.

The key comes from the PEM file named by ``FENGQIAO_SIGNING_KEY``; without it,
from ``signing-key.pem`` beside the SQLite file (or in ``var/`` for PostgreSQL),
generated on first use.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from domain.errors import ValidationFailed
from engine.audit.tables import CHAIN, CHECKPOINTS
from engine.sql import StoreDb

LOG_NAME = "fengqiao-audit-v1"
KEY_VARIABLE = "FENGQIAO_SIGNING_KEY"


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement of the chain head after ``size`` entries."""

    size: int
    position: int
    head: str
    time: str
    key_id: str
    public_key: str
    signature: str
    log: str = LOG_NAME

    def message(self) -> bytes:
        """The exact bytes that are signed (JCS of the five fields)."""
        body = {
            "head": self.head,
            "log": self.log,
            "position": self.position,
            "size": self.size,
            "time": self.time,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8"
        )

    def signature_valid(self, public_key_hex: str | None = None) -> bool:
        """Whether the signature verifies with the given key (default: the key it names)."""
        key_hex = public_key_hex or self.public_key
        try:
            key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(key_hex))
            key.verify(bytes.fromhex(self.signature), self.message())
        except (InvalidSignature, ValueError):
            return False
        return key_id(bytes.fromhex(key_hex)) == self.key_id

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Checkpoint:
        try:
            return cls(
                size=int(data["size"]),
                position=int(data["position"]),
                head=str(data["head"]),
                time=str(data["time"]),
                key_id=str(data["key_id"]),
                public_key=str(data["public_key"]),
                signature=str(data["signature"]),
                log=str(data.get("log", LOG_NAME)),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValidationFailed(f"not a checkpoint: {error}", field="checkpoint") from None


def key_id(public_key: bytes) -> str:
    """The key's fingerprint: the first 16 hex digits of SHA-256 of the raw public key."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def default_key_path(app: Any) -> Path:
    configured = app.settings.signing_key
    if configured:
        return Path(configured)
    if app.store.is_postgres:
        return Path("var") / "signing-key.pem"
    return app.store.sqlite_path.parent / "signing-key.pem"


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 key in ``path`` (PKCS#8 PEM), generated there (mode 0600) if absent."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(pem)
        return key
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValidationFailed(f"{path} is not an Ed25519 private key", field=KEY_VARIABLE)
    return loaded


def raw_public_key(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def sign(key: Ed25519PrivateKey, size: int, position: int, head: str, time: datetime) -> Checkpoint:
    public = raw_public_key(key)
    unsigned = Checkpoint(
        size=size,
        position=position,
        head=head,
        time=time.isoformat(),
        key_id=key_id(public),
        public_key=public.hex(),
        signature="",
    )
    signature = key.sign(unsigned.message()).hex()
    return Checkpoint(**{**unsigned.as_dict(), "signature": signature})


def _row_to_checkpoint(row: Any) -> Checkpoint:
    return Checkpoint(
        size=int(row["size"]),
        position=int(row["position"]),
        head=row["head"],
        time=row["time"],
        key_id=row["key_id"],
        public_key=row["public_key"],
        signature=row["signature"],
    )


def stored_checkpoints(app: Any) -> list[Checkpoint]:
    """Every stored checkpoint, smallest first."""
    db = StoreDb(app.recorder)
    rows = db.query(f"SELECT * FROM {db.table(CHECKPOINTS)} ORDER BY size")
    return [_row_to_checkpoint(row) for row in rows]


def latest_checkpoint(app: Any) -> Checkpoint | None:
    db = StoreDb(app.recorder)
    row = db.one(f"SELECT * FROM {db.table(CHECKPOINTS)} ORDER BY size DESC LIMIT 1")
    return _row_to_checkpoint(row) if row else None


def checkpoint(app: Any, key: Ed25519PrivateKey | None = None) -> Checkpoint | None:
    """Sign and store the current head (None for an empty chain).

    At an unchanged size the checkpoint already stored for it is returned.
    """
    db = StoreDb(app.recorder)
    head = db.one(
        f"SELECT seq, position, chain_hash FROM {db.table(CHAIN)} ORDER BY position DESC LIMIT 1"
    )
    if head is None:
        return None
    size = int(head["seq"])
    existing = db.one(f"SELECT * FROM {db.table(CHECKPOINTS)} WHERE size = ?", (size,))
    if existing is not None:
        return _row_to_checkpoint(existing)
    key = key or load_signing_key(default_key_path(app))
    signed = sign(key, size, int(head["position"]), head["chain_hash"], app.clock.now())
    db.execute(
        f"INSERT INTO {db.table(CHECKPOINTS)} (size, position, head, time, key_id, public_key, signature) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (size) DO NOTHING",
        (
            signed.size,
            signed.position,
            signed.head,
            signed.time,
            signed.key_id,
            signed.public_key,
            signed.signature,
        ),
    )
    return signed


def checkpoint_if_due(
    app: Any,
    every_events: int | None = None,
    every: timedelta | None = None,
    key: Ed25519PrivateKey | None = None,
) -> Checkpoint | None:
    """The checkpoint policy, for a worker to call now and then: sign when
    ``every_events`` entries or ``every`` time have passed since the last one
    (default: the engine's ``FENGQIAO_CHECKPOINT_EVERY_EVENTS`` / ``_EVERY_MINUTES``)."""
    if every_events is None:
        every_events = app.settings.checkpoint_every_events
    if every is None:
        every = timedelta(minutes=app.settings.checkpoint_every_minutes)
    db = StoreDb(app.recorder)
    head = db.one(f"SELECT seq FROM {db.table(CHAIN)} ORDER BY position DESC LIMIT 1")
    if head is None:
        return None
    last = latest_checkpoint(app)
    if last is not None:
        grown = int(head["seq"]) - last.size
        if grown <= 0:
            return None
        if grown < every_events and app.clock.now() - datetime.fromisoformat(last.time) < every:
            return None
    return checkpoint(app, key)


def export(checkpoint: Checkpoint, path: Path) -> None:
    path.write_text(json.dumps(checkpoint.as_dict(), indent=2) + "\n", encoding="utf-8")


def load(path: Path) -> Checkpoint:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValidationFailed(
            f"cannot read checkpoint file {path}: {error}", field="against"
        ) from None
    return Checkpoint.from_dict(data)


def public_key_hex(app: Any) -> str:
    return raw_public_key(load_signing_key(default_key_path(app))).hex()


def trusted_key_ids(app: Any) -> set[str]:
    """The engine's own key id, plus earlier keys listed (comma-separated) in
    ``FENGQIAO_TRUSTED_KEY_IDS`` after a key rotation."""
    return {key_id(bytes.fromhex(public_key_hex(app)))} | app.settings.trusted_keys()
