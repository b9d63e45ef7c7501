"""Personal data: parties' names, phones and ID numbers, encrypted per person.

* **Who is a person.** A party with an ID number is the same person wherever the
  number appears; without one, a name with a phone number is; a bare name is a
  new person each time (two 张伟 must not share a key). The link from that
  identity to the person id is a SHA-256 ``lookup`` in ``person_keys``; the
  person id itself is random (``p-`` and 20 hex digits), so nothing in the
  events can be traced back to an ID number once the lookup is gone.
* **Protect on write.** :func:`protect` turns each party into a
  :class:`SealedParty`: the role in clear, the personal fields encrypted with
  the person's own AES-256-GCM key (a fresh 96-bit nonce per field, the person id
  and field name as associated data). The stored event holds only ciphertext,
  so the hash chain covers ciphertext.
* **Reveal on read.** Stored sealed parties are decoded by a transcoding
  (:class:`SealedPartyAsDict`) into plain dicts (``person``, ``role``, ``name``,
  ``phone``, ``id_number``); every reader (history, feed, case file, replay) sees
  plaintext, or ``[erased]`` once the key is gone. Masking for integrators is
  ``domain.permissions.mask_parties``; :func:`reveal` applies it by role.
* **Erase (crypto-shredding).** :func:`erase` destroys the person's key and
  lookup. History still replays; the fields read ``[erased]``; the chain still
  verifies because the ciphertext is unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import Transcoding

from domain.errors import NotFound, ValidationFailed
from domain.permissions import MASKED_ROLES, PERSONAL_FIELDS, mask_parties
from engine.audit.tables import PERSON_KEYS
from engine.settings import DEFAULTS
from engine.sql import StoreDb

ERASED = "[erased]"
SEALED = "enc:v1:"
KEY_CACHE_SECONDS = 30.0


@dataclass(frozen=True)
class SealedParty:
    """A party as stored: the person id, the role, the personal fields as ciphertext."""

    person: str
    role: str | None
    sealed: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Erasure:
    person_id: str
    erased_at: str
    erased_by: str
    already: bool = False


def identity_lookup(party: dict[str, Any]) -> str | None:
    """The lookup hash of a party's identity (None for a bare name)."""
    if party.get("id_number"):
        identity = "id:" + str(party["id_number"]).strip().upper()
    elif party.get("phone"):
        digits = "".join(ch for ch in str(party["phone"]) if ch.isdigit())
        identity = "np:" + str(party["name"]).strip() + "\x1f" + digits
    else:
        return None
    return hashlib.sha256(b"fengqiao-person-v1\x00" + identity.encode("utf-8")).hexdigest()


def _aad(person_id: str, field_name: str) -> bytes:
    return f"{person_id}:{field_name}".encode()


def seal(key: bytes, person_id: str, field_name: str, value: str) -> str:
    nonce = os.urandom(12)
    ciphertext = AESGCM(key).encrypt(nonce, value.encode("utf-8"), _aad(person_id, field_name))
    return SEALED + base64.urlsafe_b64encode(nonce + ciphertext).decode("ascii")


def unseal(key: bytes, person_id: str, field_name: str, sealed: str) -> str:
    blob = base64.urlsafe_b64decode(sealed.removeprefix(SEALED))
    return AESGCM(key).decrypt(blob[:12], blob[12:], _aad(person_id, field_name)).decode("utf-8")


class PersonKeys:
    """The ``person_keys`` table, with a short in-process cache for readers."""

    def __init__(self, app: Any, cache_size: int = DEFAULTS.key_cache) -> None:
        self.app = app
        self.cache_size = cache_size  # persons whose key a process keeps (the least recently read go first)
        self._cache: dict[str, tuple[bytes | None, float]] = {}
        self._lock = threading.Lock()

    @property
    def db(self) -> StoreDb:
        return StoreDb(self.app.recorder)

    def for_party(self, party: dict[str, Any]) -> tuple[str, bytes]:
        """The person id and key for a party, created on first sight."""
        db, lookup = self.db, identity_lookup(party)
        table = db.table(PERSON_KEYS)
        if lookup is not None:
            row = db.one(f"SELECT person_id, key_bytes FROM {table} WHERE lookup = ?", (lookup,))
            if row is not None and row["key_bytes"] is not None:
                return row["person_id"], bytes(row["key_bytes"])
        person_id, key = "p-" + secrets.token_hex(10), AESGCM.generate_key(bit_length=256)
        db.execute(f"INSERT INTO {table} (person_id, lookup, key_bytes, created_at) VALUES (?, ?, ?, ?) "
                   "ON CONFLICT DO NOTHING", (person_id, lookup, key, self.app.clock.now().isoformat()))
        if lookup is None:
            return person_id, key
        row = db.one(f"SELECT person_id, key_bytes FROM {table} WHERE lookup = ?", (lookup,))  # a racing writer may have won
        assert row is not None  # the insert found the lookup taken
        return row["person_id"], bytes(row["key_bytes"])

    def key(self, person_id: str) -> bytes | None:
        """The person's key, or None once erased (or never known)."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(person_id)
        if cached is not None and now - cached[1] < KEY_CACHE_SECONDS:
            return cached[0]
        row = self.db.one(f"SELECT key_bytes FROM {self.db.table(PERSON_KEYS)} WHERE person_id = ?", (person_id,))
        key = bytes(row["key_bytes"]) if row is not None and row["key_bytes"] is not None else None
        with self._lock:
            self._cache.pop(person_id, None)  # to the end: the dict's order is least recently read first
            self._cache[person_id] = (key, now)
            while len(self._cache) > self.cache_size:
                del self._cache[next(iter(self._cache))]
        return key

    def forget(self, person_id: str) -> None:
        with self._lock:
            self._cache.pop(person_id, None)


def person_keys(app: Any) -> PersonKeys:
    """The key table of this engine instance (one cache per instance)."""
    keys = app.__dict__.get("_person_keys")
    if keys is None:
        keys = app.__dict__.setdefault("_person_keys", PersonKeys(app, app.settings.key_cache))
    return keys


def protect(app: Any, parties: list[dict[str, Any]]) -> list[SealedParty]:
    """Parties as they are to be stored: personal fields encrypted per person."""
    sealed_parties = []
    keys = person_keys(app)
    for party in parties:
        person_id, key = keys.for_party(party)
        sealed = {name: seal(key, person_id, name, str(party[name])) for name in PERSONAL_FIELDS if party.get(name)}
        sealed_parties.append(SealedParty(person_id, party.get("role"), sealed))
    return sealed_parties


def open_party(app: Any, party: SealedParty) -> dict[str, Any]:
    """A sealed party in clear, or with ``[erased]`` fields once the key is gone."""
    key = person_keys(app).key(party.person)
    opened: dict[str, Any] = {"person": party.person, "role": party.role}
    for name, sealed in party.sealed.items():
        if key is None:
            opened[name] = ERASED
            continue
        try:
            opened[name] = unseal(key, party.person, name, sealed)
        except (InvalidTag, ValueError):
            opened[name] = "[unreadable]"
    return opened


def sees_personal_data(role: str) -> bool:
    return role not in MASKED_ROLES


def reveal(parties: list[dict[str, Any]], role: str) -> list[dict[str, Any]]:
    """Decoded parties as ``role`` may see them: masked for integrators."""
    if sees_personal_data(role):
        return [dict(p) for p in parties]
    masked = mask_parties([{k: v for k, v in p.items() if v != ERASED} for p in parties])
    return [{**m, **{k: ERASED for k, v in p.items() if v == ERASED}} for m, p in zip(masked, parties, strict=True)]


def find_person(app: Any, *, id_number: str | None = None, name: str | None = None,
                phone: str | None = None) -> str:
    """The person id for an ID number (or a name with a phone), for erasure requests."""
    lookup = identity_lookup({"id_number": id_number, "name": name or "", "phone": phone})
    if lookup is None:
        raise ValidationFailed("give an ID number, or a name with a phone number", field="id_number")
    db = StoreDb(app.recorder)
    row = db.one(f"SELECT person_id FROM {db.table(PERSON_KEYS)} WHERE lookup = ?", (lookup,))
    if row is None:
        raise NotFound("no person with that identity (never recorded, or already erased)", resource="person")
    return row["person_id"]


def erase(app: Any, person_id: str, by: str) -> Erasure:
    """Destroy a person's key and identity lookup (idempotent)."""
    db = StoreDb(app.recorder)
    table = db.table(PERSON_KEYS)
    row = db.one(f"SELECT erased_at, erased_by FROM {table} WHERE person_id = ?", (person_id,))
    if row is None:
        raise NotFound(f"no person {person_id}", resource="person", id=person_id)
    if row["erased_at"] is not None:
        return Erasure(person_id, row["erased_at"], row["erased_by"], already=True)
    erased_at = app.clock.now().isoformat()
    with db.transaction() as tx:
        if not db.is_postgres:
            tx.execute("PRAGMA secure_delete = ON")  # overwrite the freed key bytes in the file
        tx.execute(f"UPDATE {table} SET key_bytes = NULL, lookup = NULL, erased_at = ?, erased_by = ? "
                   "WHERE person_id = ? AND erased_at IS NULL", [erased_at, by, person_id])
    _purge_old_copies(app, db, table)
    person_keys(app).forget(person_id)
    return Erasure(person_id, erased_at, by)


def _purge_old_copies(app: Any, db: StoreDb, table: str) -> None:
    """Best effort: push the old key bytes out of the WAL (SQLite) or the dead
    tuples (PostgreSQL). Backups still hold them: see docs/operations.md."""
    if db.is_postgres:
        db.execute(f"VACUUM FULL {table}")  # one statement on an autocommit connection
    else:
        with sqlite3.connect(app.store.sqlite_path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


class SealedPartyAsDict(Transcoding):
    """Stores a :class:`SealedParty`; reads it back as a plain party dict, opened
    with the person's key (``[erased]`` once the key is destroyed)."""

    type = SealedParty
    name = "sealed_party"

    def __init__(self, app: Any) -> None:
        self.app = app

    def encode(self, obj: SealedParty) -> dict[str, Any]:
        return {"person": obj.person, "role": obj.role, "sealed": obj.sealed}

    def decode(self, data: dict[str, Any]) -> dict[str, Any]:
        return open_party(self.app, SealedParty(data["person"], data.get("role"), dict(data.get("sealed") or {})))


def erased_at(app: Any, person_id: str) -> datetime | None:
    db = StoreDb(app.recorder)
    row = db.one(f"SELECT erased_at FROM {db.table(PERSON_KEYS)} WHERE person_id = ?", (person_id,))
    return datetime.fromisoformat(row["erased_at"]) if row and row["erased_at"] else None
