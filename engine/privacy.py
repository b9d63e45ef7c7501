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
* **Numbers typed into free text.** The mapper (:class:`SealingMapper`) seals each
  personal number found in a free-text field of a new event (title, description,
  comment, reasons, notes: ``domain.permissions.FREE_TEXT_FIELDS``; the numbers as
  ``domain.permissions.replace_numbers`` finds them) into a :class:`SealedText`: under
  the key of the person whose ID number or phone it is (a phone finds its person
  through a copy of their key under the phone's lookup, erased with them), else under
  the case's own key (a
  ``person_keys`` row whose lookup is the case's). :class:`SealedTextAsStr` reads it back
  as the plain string, ``[erased]`` in place of a number whose key is gone.
* **Found by a number.** Beside the sealed value, :func:`protect` keeps a keyed hash
  (HMAC-SHA256 under the deployment's search key, ``FENGQIAO_SEARCH_KEY``) of each
  party's phone and ID number, normalised (``domain.permissions.normalised_number``),
  with the person's id (``party_index``): :func:`persons_with_number` finds the persons
  a number belongs to, never storing the number in clear.
* **Erase (crypto-shredding).** :func:`erase` destroys the person's key and
  lookup, and their ``party_index`` rows (the number finds them no more). History still replays; the fields read ``[erased]``; the chain still
  verifies because the ciphertext is unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import Mapper, StoredEvent, Transcoding

from domain.errors import NotFound, ValidationFailed
from domain.permissions import (
    FREE_TEXT_FIELDS,
    MASKED_ROLES,
    PERSONAL_FIELDS,
    mask_parties,
    normalised_number,
    replace_numbers,
)
from engine.audit.tables import PARTY_INDEX, PERSON_KEYS
from engine.keyfiles import key_path, load_key
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


def phone_lookup(phone: str) -> str:
    """The lookup of a phone number alone (its digits), for numbers typed into free text."""
    digits = "".join(ch for ch in unicodedata.normalize("NFKC", str(phone)) if ch.isdigit())
    return hashlib.sha256(b"fengqiao-phone-v1\x00" + digits.encode()).hexdigest()


def phone_alias(person_id: str, phone: str) -> str:
    """The ``person_keys`` row that holds a copy of a person's key under their phone's
    lookup (erased with the person: its id starts with theirs)."""
    return f"{person_id}:{phone_lookup(phone)[:16]}"


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
        self.cache_size = (
            cache_size  # persons whose key a process keeps (the least recently read go first)
        )
        self._cache: dict[str, tuple[bytes | None, float]] = {}
        self._lock = threading.Lock()

    @property
    def db(self) -> StoreDb:
        return StoreDb(self.app.recorder)

    def known(self, lookup: str) -> tuple[str, bytes] | None:
        """The person id and key behind ``lookup``, if such a person was ever recorded (and not erased)."""
        row = self.db.one(
            f"SELECT person_id, key_bytes FROM {self.db.table(PERSON_KEYS)} WHERE lookup = ?",
            (lookup,),
        )
        return (
            (row["person_id"], bytes(row["key_bytes"]))
            if row is not None and row["key_bytes"]
            else None
        )

    def for_lookup(self, lookup: str | None, *, absent: bool = False) -> tuple[str, bytes]:
        """The person id and key behind ``lookup`` (None: a new one each time), created on
        first sight (``absent``: just read as not there, as :meth:`known_party` reads it)."""
        db = self.db
        table = db.table(PERSON_KEYS)
        if lookup is not None and not absent:
            row = db.one(f"SELECT person_id, key_bytes FROM {table} WHERE lookup = ?", (lookup,))
            if row is not None and row["key_bytes"] is not None:
                return row["person_id"], bytes(row["key_bytes"])
        person_id, key = "p-" + secrets.token_hex(10), AESGCM.generate_key(bit_length=256)
        db.execute(
            f"INSERT INTO {table} (person_id, lookup, key_bytes, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (person_id, lookup, key, self.app.clock.now().isoformat()),
        )
        if lookup is None:
            return person_id, key
        row = db.one(
            f"SELECT person_id, key_bytes FROM {table} WHERE lookup = ?", (lookup,)
        )  # a racing writer may have won
        assert row is not None  # the insert found the lookup taken
        return row["person_id"], bytes(row["key_bytes"])

    def known_party(
        self, lookup: str, phone: str | None, digests: list[str]
    ) -> tuple[tuple[str, bytes] | None, bool, set[str]]:
        """What :func:`protect` reads of a party, in ONE statement (one round trip): the
        person id and key behind ``lookup`` (None: no such person, or erased), whether
        ``phone``'s lookup is taken (False without a phone), and which of ``digests`` the
        person's index already has."""
        db = self.db
        keys, index = db.table(PERSON_KEYS), db.table(PARTY_INDEX)
        columns = ["k.person_id", "k.key_bytes"]
        params: list[Any] = []
        if phone is not None:
            columns.append(f"(SELECT 1 FROM {keys} WHERE lookup = ?) AS phone_taken")
            params.append(phone_lookup(phone))
        for i, digest in enumerate(digests):
            columns.append(
                f"(SELECT 1 FROM {index} WHERE digest = ? AND person_id = k.person_id) AS d{i}"
            )
            params.append(digest)
        row = db.one(
            f"SELECT {', '.join(columns)} FROM (SELECT 1 AS one) AS one "
            f"LEFT JOIN {keys} k ON k.lookup = ?",
            (*params, lookup),
        )
        assert row is not None  # a left join from one row has one row
        taken = phone is not None and row["phone_taken"] is not None
        if row["key_bytes"] is None:
            return None, taken, set()
        known = {digest for i, digest in enumerate(digests) if row[f"d{i}"] is not None}
        return (row["person_id"], bytes(row["key_bytes"])), taken, known

    def add_phone(
        self, person_id: str, key: bytes, phone: str, *, taken: bool | None = None
    ) -> None:
        """Let a number typed into free text find the person by their phone alone (the
        first person recorded with a phone keeps it). Read first, on a reader (unless
        ``taken`` says, as :meth:`known_party` read it): a phone seen before takes no write
        (the store's one writer is the command path's)."""
        table = self.db.table(PERSON_KEYS)
        if taken is None:
            taken = (
                self.db.one(
                    f"SELECT 1 AS taken FROM {table} WHERE lookup = ?", (phone_lookup(phone),)
                )
                is not None
            )
        if taken:
            return
        self.db.execute(
            f"INSERT INTO {table} (person_id, lookup, key_bytes, created_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                phone_alias(person_id, phone),
                phone_lookup(phone),
                key,
                self.app.clock.now().isoformat(),
            ),
        )

    def key(self, person_id: str) -> bytes | None:
        """The person's key, or None once erased (or never known)."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(person_id)
        if cached is not None and now - cached[1] < KEY_CACHE_SECONDS:
            return cached[0]
        row = self.db.one(
            f"SELECT key_bytes FROM {self.db.table(PERSON_KEYS)} WHERE person_id = ?", (person_id,)
        )
        key = bytes(row["key_bytes"]) if row is not None and row["key_bytes"] is not None else None
        with self._lock:
            self._cache.pop(
                person_id, None
            )  # to the end: the dict's order is least recently read first
            self._cache[person_id] = (key, now)
            while len(self._cache) > self.cache_size:
                del self._cache[next(iter(self._cache))]
        return key

    def forget(self, person_id: str) -> None:
        with self._lock:
            for cached in [
                k for k in self._cache if k == person_id or k.startswith(person_id + ":")
            ]:
                del self._cache[cached]


def person_keys(app: Any) -> PersonKeys:
    """The key table of this engine instance (one cache per instance)."""
    keys = app.__dict__.get("_person_keys")
    if keys is None:
        keys = app.__dict__.setdefault("_person_keys", PersonKeys(app, app.settings.key_cache))
    return keys


SEARCH_KEY_FILE = "search-key"
NUMBER_FIELDS = ("phone", "id_number")


def search_key(app: Any) -> bytes:
    """The deployment's key for the keyed hashes of parties' numbers (read once per engine)."""
    key = app.__dict__.get("_search_key")
    if key is None:
        path = key_path(app.store, app.settings.search_key, SEARCH_KEY_FILE)
        key = app.__dict__.setdefault("_search_key", load_key(path))
    return key


def number_digest(app: Any, number: str) -> str | None:
    """The keyed hash of a phone or ID number (None: not one)."""
    plain = normalised_number(number)
    if plain is None:
        return None
    return hmac.new(
        search_key(app), b"fengqiao-party-v1\x00" + plain.encode(), "sha256"
    ).hexdigest()


def party_digests(app: Any, party: dict[str, Any]) -> set[str]:
    """The keyed hashes of a party's phone and ID number."""
    found = (number_digest(app, str(party[name])) for name in NUMBER_FIELDS if party.get(name))
    return {d for d in found if d is not None}


def _index_party(
    app: Any, person_id: str, digests: set[str], known: set[str] | None = None
) -> None:
    """Record the person's numbers' hashes; read first (unless ``known`` gives those the
    index has, as :meth:`PersonKeys.known_party` read them): a number already known to
    this person takes no write (the store's one writer is the command path's)."""
    db = StoreDb(app.recorder)
    table = db.table(PARTY_INDEX)
    for digest in digests:
        if known is not None:
            if digest in known:
                continue
        elif db.one(
            f"SELECT 1 AS known FROM {table} WHERE digest = ? AND person_id = ?",
            (digest, person_id),
        ):
            continue
        db.execute(
            f"INSERT INTO {table} (digest, person_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (digest, person_id),
        )


def persons_with_number(app: Any, number: str) -> list[str]:
    """The persons (not erased) whose phone or ID number ``number`` is."""
    digest = number_digest(app, number)
    if digest is None:
        raise ValidationFailed("not a phone or ID number", field="party")
    return _persons(app, {digest})


def _persons(app: Any, digests: set[str]) -> list[str]:
    if not digests:
        return []
    db = StoreDb(app.recorder)
    marks = ", ".join("?" for _ in digests)
    rows = db.query(
        f"SELECT DISTINCT person_id FROM {db.table(PARTY_INDEX)} WHERE digest IN ({marks})",
        sorted(digests),
    )
    return sorted(row["person_id"] for row in rows)


def persons_of(app: Any, parties: list[Any]) -> frozenset[str]:
    """The persons of a case's parties (as stored, or opened), and every person who shares
    a phone or ID number with one (found by its keyed hash)."""
    opened = [open_party(app, p) if isinstance(p, SealedParty) else p for p in parties]
    found = {str(p["person"]) for p in opened if isinstance(p, dict) and p.get("person")}
    digests: set[str] = set()
    for party in opened:
        if isinstance(party, dict):
            digests |= party_digests(app, party)
    return frozenset(found | set(_persons(app, digests)))


def protect(app: Any, parties: list[dict[str, Any]]) -> list[SealedParty]:
    """Parties as they are to be stored: personal fields encrypted per person, their
    numbers' keyed hashes indexed."""
    sealed_parties = []
    keys = person_keys(app)
    for party in parties:
        lookup = identity_lookup(party)
        phone = str(party["phone"]) if party.get("phone") else None
        digests = party_digests(app, party)
        if lookup is None:  # a bare name: a new person each time
            person_id, key = keys.for_lookup(None)
            if phone is not None:
                keys.add_phone(person_id, key, phone)
            _index_party(app, person_id, digests)
        else:  # the person, their phone's lookup and their index read in one round trip
            person, taken, known = keys.known_party(lookup, phone, sorted(digests))
            person_id, key = person or keys.for_lookup(lookup, absent=True)
            if phone is not None:
                keys.add_phone(person_id, key, phone, taken=taken)
            _index_party(app, person_id, digests, known if person is not None else set())
        sealed = {
            name: seal(key, person_id, name, str(party[name]))
            for name in PERSONAL_FIELDS
            if party.get(name)
        }
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


@dataclass(frozen=True)
class SealedText:
    """A free-text field as stored: its plain parts, and each personal number typed into
    it as ``(person id, ciphertext)`` — under the key of the person whose ID number it
    is, else under the case's own key — so erasing the key shreds the number too."""

    parts: tuple[str | tuple[str, str], ...]


TEXT_FIELD = "text"  # the associated data's field name of a sealed number


def case_lookup(case_id: Any) -> str:
    """The lookup of a case's own key (for numbers typed into it that are no known person's)."""
    return hashlib.sha256(b"fengqiao-case-v1\x00" + str(case_id).encode()).hexdigest()


def number_key(app: Any, case_id: Any, number: str) -> tuple[str, bytes]:
    """The key a number typed into a case's text is sealed under: the person's whose ID
    number or phone it is, if one was recorded; else the case's own."""
    keys = person_keys(app)
    plain = "".join(
        ch
        for ch in unicodedata.normalize("NFKC", number)  # １３８… as an input method types it
        if ch.isdigit() or ch in "Xx"
    )  # without the separators typed between the digits
    if len(plain) in (13, 15) and plain.startswith(("86", "0086")):
        plain = plain[-11:]  # a mobile number with its country code
    identity = identity_lookup({"id_number": plain})
    return (
        (keys.known(identity) if identity is not None else None)
        or keys.known(phone_lookup(plain))
        or keys.for_lookup(case_lookup(case_id))
    )


def seal_text(app: Any, case_id: Any, text: str) -> str | SealedText:
    """``text`` as it is to be stored: unchanged without a personal number in it, else
    a :class:`SealedText` (the numbers found as :func:`domain.permissions.replace_numbers` finds them)."""
    numbers: list[str] = []

    def found(number: str) -> str:
        numbers.append(number)
        return "\x00"

    marked = replace_numbers(text, found)
    if not numbers:
        return text
    parts: list[str | tuple[str, str]] = []
    for plain, number in zip(marked.split("\x00"), [*numbers, None], strict=True):
        if plain:
            parts.append(plain)
        if number is not None:
            person_id, key = number_key(app, case_id, number)
            parts.append((person_id, seal(key, person_id, TEXT_FIELD, number)))
    return SealedText(tuple(parts))


def open_text(app: Any, text: SealedText) -> str:
    """The text in clear, with ``[erased]`` for each number whose key is gone."""
    opened = []
    for part in text.parts:
        if isinstance(part, str):
            opened.append(part)
            continue
        person_id, sealed = part
        key = person_keys(app).key(person_id)
        try:
            opened.append(ERASED if key is None else unseal(key, person_id, TEXT_FIELD, sealed))
        except (InvalidTag, ValueError):
            opened.append("[unreadable]")
    return "".join(opened)


def sees_personal_data(role: str) -> bool:
    return role not in MASKED_ROLES


def reveal(parties: list[dict[str, Any]], role: str) -> list[dict[str, Any]]:
    """Decoded parties as ``role`` may see them: masked for integrators."""
    if sees_personal_data(role):
        return [dict(p) for p in parties]
    masked = mask_parties([{k: v for k, v in p.items() if v != ERASED} for p in parties])
    return [
        {**m, **{k: ERASED for k, v in p.items() if v == ERASED}}
        for m, p in zip(masked, parties, strict=True)
    ]


def find_person(
    app: Any, *, id_number: str | None = None, name: str | None = None, phone: str | None = None
) -> str:
    """The person id for an ID number (or a name with a phone), for erasure requests."""
    lookup = identity_lookup({"id_number": id_number, "name": name or "", "phone": phone})
    if lookup is None:
        raise ValidationFailed(
            "give an ID number, or a name with a phone number", field="id_number"
        )
    db = StoreDb(app.recorder)
    row = db.one(f"SELECT person_id FROM {db.table(PERSON_KEYS)} WHERE lookup = ?", (lookup,))
    if row is None:
        raise NotFound(
            "no person with that identity (never recorded, or already erased)", resource="person"
        )
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
        tx.execute(
            f"UPDATE {table} SET key_bytes = NULL, lookup = NULL, erased_at = ?, erased_by = ? "
            "WHERE (person_id = ? OR person_id LIKE ?) AND erased_at IS NULL",
            [erased_at, by, person_id, person_id + ":%"],
        )  # the person and their phones' copies
        tx.execute(f"DELETE FROM {db.table(PARTY_INDEX)} WHERE person_id = ?", [person_id])
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
        return open_party(
            self.app, SealedParty(data["person"], data.get("role"), dict(data.get("sealed") or {}))
        )


class SealedTextAsStr(Transcoding):
    """Stores a :class:`SealedText`; reads it back as the plain string (``[erased]``
    in place of each number whose key is destroyed)."""

    type = SealedText
    name = "sealed_text"

    def __init__(self, app: Any) -> None:
        self.app = app

    def encode(self, obj: SealedText) -> list[Any]:
        return [
            part if isinstance(part, str) else {"person": part[0], "sealed": part[1]}
            for part in obj.parts
        ]

    def decode(self, data: list[Any]) -> str:
        return open_stored_text(self.app, data)


def open_stored_text(app: Any, data: list[Any]) -> str:
    """A stored :class:`SealedText` (its ``_data_``) in clear, as the transcoding reads it."""
    return open_text(
        app,
        SealedText(tuple(p if isinstance(p, str) else (p["person"], p["sealed"]) for p in data)),
    )


class SealingMapper(Mapper):
    """eventsourcing's mapper, with the free-text fields of each new event
    (:data:`~domain.permissions.FREE_TEXT_FIELDS`) sealed by :func:`seal_text` on the
    way to the store: the stored bytes (and so the hash chain) hold ciphertext only, and
    the event in memory keeps its plain text. ``app`` is the engine (set after construction)."""

    app: Any = None

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        state = vars(domain_event)
        if self.app is None:
            return super().to_stored_event(domain_event)
        sealed = {
            name: seal_text(self.app, state.get("originator_id"), state[name])
            for name in FREE_TEXT_FIELDS
            if isinstance(state.get(name), str) and state[name]
        }
        sealed = {name: value for name, value in sealed.items() if isinstance(value, SealedText)}
        if not sealed:
            return super().to_stored_event(domain_event)
        copy = object.__new__(type(domain_event))
        object.__setattr__(copy, "__dict__", {**state, **sealed})
        return super().to_stored_event(copy)


def erased_at(app: Any, person_id: str) -> datetime | None:
    db = StoreDb(app.recorder)
    row = db.one(f"SELECT erased_at FROM {db.table(PERSON_KEYS)} WHERE person_id = ?", (person_id,))
    return datetime.fromisoformat(row["erased_at"]) if row and row["erased_at"] else None
