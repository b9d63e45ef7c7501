"""The exact bytes that are hashed: one chain entry, and how entries are linked.

An entry is the JCS (RFC 8785) form of::

    {"case": "<originator id>", "position": <global position>,
     "state_sha256": "<hex SHA-256 of the stored state bytes>",
     "topic": "<stored topic>", "version": <originator version>}

Every value is an ASCII string (UUID, topic, hex) or an integer below 2**53, so
the JCS form is exactly ``json.dumps(..., sort_keys=True, separators=(",", ":"))``.
The stored state bytes already carry the recorded time, the actor, the time the
event occurred, the policy version and the data (encrypted personal fields stay
encrypted: the ciphertext is what is hashed).

Hashing is domain-separated as in RFC 9162: ``0x00`` before a leaf, ``0x01``
before a link of two hashes.
"""

from __future__ import annotations

import hashlib
from json.encoder import encode_basestring as json_string  # non-ASCII kept as is (as JCS)
from uuid import UUID

LEAF = b"\x00"
NODE = b"\x01"
ZERO = bytes(32)
HASH_SIZE = 32


def entry_bytes(
    case_id: UUID | str, version: int, position: int, topic: str, state: bytes
) -> bytes:
    """The canonical (JCS) bytes of one stored event.

    Written out by hand for speed; equal to ``json.dumps(entry, sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)`` (the tests check it).
    """
    return (
        f'{{"case":{json_string(str(case_id))},"position":{int(position)},'
        f'"state_sha256":"{hashlib.sha256(state).hexdigest()}","topic":{json_string(topic)},'
        f'"version":{int(version)}}}'
    ).encode()


def leaf_hash(case_id: UUID | str, version: int, position: int, topic: str, state: bytes) -> bytes:
    """SHA-256(0x00 || entry bytes)."""
    return hashlib.sha256(LEAF + entry_bytes(case_id, version, position, topic, state)).digest()


def link(previous: bytes, leaf: bytes) -> bytes:
    """SHA-256(0x01 || previous || leaf): the running hash after one more entry."""
    return hashlib.sha256(NODE + previous + leaf).digest()
