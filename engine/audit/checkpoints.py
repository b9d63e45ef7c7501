"""Signed tree heads: "the Merkle tree of the log's first N entries has root R".

A tree head is a C2SP checkpoint (https://c2sp.org/tlog-checkpoint), a signed note
(https://c2sp.org/signed-note) that existing transparency-log tooling reads::

    fengqiao.example/haitong-audit
    1200
    <base64 root hash>
    time 2026-09-28T01:00:00+00:00

    — fengqiao.example/haitong-audit <base64: 4-byte key hash ‖ Ed25519 signature>

The origin (first line, also the key name) is ``FENGQIAO_LOG_ORIGIN``; the time is an
extension line. The root is RFC 9162's MTH over the chain's entries (see
:mod:`engine.audit.merkle`), so an auditor holding an older head gets a consistency
proof that today's log extends it, and an inclusion proof for any event.

Tree heads are stored in ``audit_tree_heads`` and exported as a small JSON file (the
note, the public key and the fields read from the note) that an auditor keeps outside
the database.

The key comes from the PEM file named by ``FENGQIAO_SIGNING_KEY``; without it,
from ``signing-key.pem`` beside the SQLite file (or in ``var/`` for PostgreSQL),
generated on first use.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from domain.errors import ValidationFailed
from engine.audit.merkle import Tree
from engine.audit.tables import CHAIN, CHECKPOINTS
from engine.audit.verifier import Invalid, open_note
from engine.sql import StoreDb

KEY_VARIABLE = "FENGQIAO_SIGNING_KEY"
TIME_PREFIX = "time "


@dataclass(frozen=True)
class Checkpoint:
    """A signed tree head: the note, and what it says (``root`` in hex)."""

    size: int
    position: int  # the last entry's global position (not signed: the root binds it)
    root: str
    time: str
    origin: str
    key_id: str
    public_key: str
    note: str

    def signature_valid(self, public_key_hex: str | None = None) -> bool:
        """Whether the note is signed by the given key (default: the key it names) and
        says what the fields say."""
        key_hex = public_key_hex or self.public_key
        try:
            origin, size, root, extensions = open_note(self.note, bytes.fromhex(key_hex))
        except (Invalid, ValueError):
            return False
        return (origin, size, root.hex(), extensions) == (
            self.origin,
            self.size,
            self.root,
            [TIME_PREFIX + self.time],
        ) and key_id(bytes.fromhex(key_hex)) == self.key_id

    @property
    def root_bytes(self) -> bytes:
        return bytes.fromhex(self.root)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Checkpoint:
        try:
            return cls(**{name: type_(data[name]) for name, type_ in FIELDS.items()})
        except (KeyError, TypeError, ValueError) as error:
            raise ValidationFailed(f"not a tree head: {error}", field="checkpoint") from None


FIELDS = {
    "size": int,
    "position": int,
    "root": str,
    "time": str,
    "origin": str,
    "key_id": str,
    "public_key": str,
    "note": str,
}


def note_key_hash(origin: str, public_key: bytes) -> bytes:
    """The signed note's 4-byte key ID: SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ public key)[:4]."""
    return hashlib.sha256(origin.encode() + b"\n\x01" + public_key).digest()[:4]


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


def signature_line(key: Ed25519PrivateKey, name: str, text: str) -> str:
    """A signed note's Ed25519 signature line: ``— <name> base64(key ID ‖ signature)``."""
    key_hash = note_key_hash(name, raw_public_key(key))
    return f"\u2014 {name} {base64.b64encode(key_hash + key.sign(text.encode())).decode()}\n"


def sign(
    key: Ed25519PrivateKey, origin: str, size: int, position: int, root: bytes, time: datetime
) -> Checkpoint:
    """A signed tree head for the tree of ``size`` entries."""
    public = raw_public_key(key)
    text = f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n{TIME_PREFIX}{time.isoformat()}\n"
    return Checkpoint(
        size=size,
        position=position,
        root=root.hex(),
        time=time.isoformat(),
        origin=origin,
        key_id=key_id(public),
        public_key=public.hex(),
        note=f"{text}\n{signature_line(key, origin, text)}",
    )


def _row_to_checkpoint(row: Any) -> Checkpoint:
    return Checkpoint(**{name: type_(row[name]) for name, type_ in FIELDS.items()})


def stored_checkpoints(app: Any) -> list[Checkpoint]:
    """Every stored tree head, smallest first."""
    db = StoreDb(app.recorder)
    rows = db.query(f"SELECT * FROM {db.table(CHECKPOINTS)} ORDER BY size")
    return [_row_to_checkpoint(row) for row in rows]


def latest_checkpoint(app: Any) -> Checkpoint | None:
    db = StoreDb(app.recorder)
    row = db.one(f"SELECT * FROM {db.table(CHECKPOINTS)} ORDER BY size DESC LIMIT 1")
    return _row_to_checkpoint(row) if row else None


def checkpoint(app: Any, key: Ed25519PrivateKey | None = None) -> Checkpoint | None:
    """Sign and store the tree head at the current size (None for an empty log).

    At an unchanged size the tree head already stored for it is returned.
    """
    db = StoreDb(app.recorder)
    head = db.one(f"SELECT seq, position FROM {db.table(CHAIN)} ORDER BY position DESC LIMIT 1")
    if head is None:
        return None
    size = int(head["seq"])
    existing = db.one(f"SELECT * FROM {db.table(CHECKPOINTS)} WHERE size = ?", (size,))
    if existing is not None:
        return _row_to_checkpoint(existing)
    key = key or load_signing_key(default_key_path(app))
    root = Tree(db).root(size)
    signed = sign(key, app.settings.log_origin, size, int(head["position"]), root, app.clock.now())
    db.execute(
        f"INSERT INTO {db.table(CHECKPOINTS)} ({', '.join(FIELDS)}) "
        f"VALUES ({', '.join('?' * len(FIELDS))}) ON CONFLICT (size) DO NOTHING",
        tuple(getattr(signed, name) for name in FIELDS),
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
