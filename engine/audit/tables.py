"""The audit and privacy tables beside the events, on SQLite or PostgreSQL (read and
written through :class:`engine.sql.StoreDb`).

The tables live in the same SQLite file or PostgreSQL schema as the events and
are created with them (by the chained recorders in :mod:`engine.audit.recorders`):

* ``audit_chain`` — one row per stored event: global position, entry number
  (``seq``), case id, version, the entry's leaf hash, the per-case running hash
  and the global running hash (hex).
* ``audit_merkle`` — the Merkle tree over the chain's entries: one row per perfect
  subtree (see :mod:`engine.audit.merkle`).
* ``audit_tree_heads`` — signed tree heads (C2SP checkpoints: origin, size, root, time).
  (Stores from before the tree keep their old ``audit_checkpoints`` table, unused.)
* ``person_keys`` — per-person AES keys for personal fields (see engine.privacy).
* ``party_index`` — a keyed hash (HMAC-SHA256) of each party's phone and ID number
  beside the person's id: how a number finds its person (and so their cases) (erased with the person).
"""

from __future__ import annotations

CHAIN = "audit_chain"
CHECKPOINTS = "audit_tree_heads"
MERKLE = "audit_merkle"
PERSON_KEYS = "person_keys"
PARTY_INDEX = "party_index"


def table_statements(qualify, blob: str, position_key: str) -> list[str]:
    """``CREATE`` statements for the audit and privacy tables (``qualify`` names a
    table; ``position_key`` is SQLite's rowid alias or PostgreSQL's BIGINT key)."""
    chain, checkpoints, keys = qualify(CHAIN), qualify(CHECKPOINTS), qualify(PERSON_KEYS)
    merkle, parties = qualify(MERKLE), qualify(PARTY_INDEX)
    return [
        f"CREATE TABLE IF NOT EXISTS {chain} ("
        f"position {position_key} PRIMARY KEY, seq BIGINT NOT NULL, case_id TEXT NOT NULL, "
        "version BIGINT NOT NULL, entry_hash TEXT NOT NULL, case_hash TEXT NOT NULL, "
        "chain_hash TEXT NOT NULL)",
        f"CREATE UNIQUE INDEX IF NOT EXISTS audit_chain_case_idx ON {chain} (case_id, version)",
        f"CREATE TABLE IF NOT EXISTS {merkle} (node {position_key} PRIMARY KEY, hash {blob} NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {checkpoints} ("
        "size BIGINT PRIMARY KEY, position BIGINT NOT NULL, root TEXT NOT NULL, "
        "time TEXT NOT NULL, origin TEXT NOT NULL, key_id TEXT NOT NULL, public_key TEXT NOT NULL, "
        "note TEXT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {keys} ("
        "person_id TEXT PRIMARY KEY, lookup TEXT UNIQUE, key_bytes "
        f"{blob}, created_at TEXT NOT NULL, erased_at TEXT, erased_by TEXT)",
        f"CREATE TABLE IF NOT EXISTS {parties} (digest TEXT NOT NULL, "
        "person_id TEXT NOT NULL, PRIMARY KEY (digest, person_id))",
        f"CREATE INDEX IF NOT EXISTS party_index_person_idx ON {parties} (person_id)",
    ]
