"""Evidence: photos and documents, stored content-addressed beside the events.

An upload is checked before it is kept: at most ``FENGQIAO_EVIDENCE_MAX_BYTES`` and, by
its content (magic bytes, the ``filetype`` package: never the name or the declared
type), one of :data:`MEDIA_TYPES`. It is stored once under its SHA-256 in a side table
of the engine's own store (``fengqiao_evidence``, :class:`engine.sql.StoreDb`; the bytes
in a BLOB on SQLite, a bytea on PostgreSQL): the same bytes uploaded twice are one row.

A command refers to evidence by hash (``attachments`` of a report or a comment); the
engine looks each hash up here (:meth:`EvidenceStore.describe`: 422 for one never
uploaded) and the event carries ``{sha256, media_type, size}`` of each, so the audit
chain, which hashes every event, covers the files too. Who may read a file is who may
read a case whose events name it (:func:`attached_to`): a hash never attached is read by
no one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import filetype
import structlog

from domain.errors import (
    EvidenceAltered,
    EvidenceTooLarge,
    EvidenceType,
    NotFound,
    ValidationFailed,
)
from engine.sql import StoreDb

log = structlog.get_logger("fengqiao.evidence")

TABLE = "fengqiao_evidence"
MEDIA_TYPES = ("image/jpeg", "image/png", "image/webp", "application/pdf")
"""What may be kept, as its content says it is."""
IMAGES = frozenset(t for t in MEDIA_TYPES if t.startswith("image/"))
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def sniff(content: bytes) -> str | None:
    """The media type the content's magic bytes say (``None``: not one the package knows)."""
    kind = filetype.guess(content[:8192])
    return kind.mime if kind is not None else None


def attachment(sha256: str, media_type: str, size: int) -> dict[str, Any]:
    """An attachment as events carry it."""
    return {"sha256": sha256, "media_type": media_type, "size": size}


class EvidenceStore:
    """The side table of evidence files: put, describe, read."""

    def __init__(self, recorder: Any, max_bytes: int) -> None:
        self.db = StoreDb(recorder)
        self.table = self.db.table(TABLE)
        self.max_bytes = max_bytes
        blob = "BYTEA" if self.db.is_postgres else "BLOB"
        self.db.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} (sha256 TEXT PRIMARY KEY,"
            f" media_type TEXT NOT NULL, size BIGINT NOT NULL, content {blob} NOT NULL,"
            " uploaded_by TEXT NOT NULL, uploaded_at TEXT NOT NULL)"
        )

    def check(self, content: bytes) -> str:
        """The content's media type, if it may be kept; else 413 or 415."""
        if len(content) > self.max_bytes:
            raise EvidenceTooLarge(
                f"the file is larger than {self.max_bytes} bytes",
                limit=self.max_bytes,
                size=len(content),
            )
        media_type = sniff(content) if content else None
        if media_type not in MEDIA_TYPES:
            raise EvidenceType(
                "the file is not a JPEG, PNG, WebP or PDF (judged by its content)",
                field="body",
                detected=media_type,
                allowed=list(MEDIA_TYPES),
            )
        return media_type

    def put(self, content: bytes, uploaded_by: str, now: datetime) -> dict[str, Any]:
        """Keep ``content`` (once per hash); its ``{sha256, media_type, size}``."""
        media_type = self.check(content)
        digest = hashlib.sha256(content).hexdigest()
        self.db.execute(
            f"INSERT INTO {self.table} (sha256, media_type, size, content, uploaded_by,"
            " uploaded_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING",
            (digest, media_type, len(content), content, uploaded_by, now.isoformat()),
        )
        return attachment(digest, media_type, len(content))

    def describe(self, hashes: Sequence[str], field: str = "attachments") -> list[dict[str, Any]]:
        """Each hash as an event carries it, in the order given; 422 naming the first one
        never uploaded."""
        if not hashes:
            return []
        wanted = list(dict.fromkeys(hashes))
        rows = self.db.query(
            f"SELECT sha256, media_type, size FROM {self.table} WHERE sha256 IN"
            f" ({', '.join('?' for _ in wanted)})",
            wanted,
        )
        known = {
            r["sha256"]: attachment(r["sha256"], r["media_type"], int(r["size"])) for r in rows
        }
        for index, digest in enumerate(hashes):
            if digest not in known:
                raise ValidationFailed(
                    f"{field}.{index}: no evidence {digest} was uploaded (POST /v1/evidence first)",
                    field=f"{field}.{index}",
                    sha256=digest,
                )
        return [known[d] for d in wanted]

    def read(self, sha256: str) -> tuple[str, bytes]:
        """(media type, bytes) of a stored file; NotFound if none; EvidenceAltered (never
        served) if its bytes no longer hash to the SHA-256 its events carry."""
        row = self.db.one(
            f"SELECT media_type, content FROM {self.table} WHERE sha256 = ?", (sha256,)
        )
        if row is None:
            raise NotFound(f"no evidence {sha256}", resource="evidence", id=sha256)
        content = bytes(row["content"])
        if hashlib.sha256(content).hexdigest() != sha256:
            log.error("evidence altered", sha256=sha256)
            raise EvidenceAltered(
                f"the stored file {sha256} no longer matches its hash: not served", sha256=sha256
            )
        return str(row["media_type"]), content


def hashes_in(events: Iterable[Any]) -> list[dict[str, Any]]:
    """Every attachment the events carry (reports and comments), first mention first, with
    the version of the event that named it."""
    found: dict[str, dict[str, Any]] = {}
    for event in events:
        for item in getattr(event, "attachments", None) or ():
            digest = item.get("sha256") if isinstance(item, dict) else None
            if digest and digest not in found:
                found[digest] = {**item, "version": event.originator_version}
    return list(found.values())


def attached_to(engine: Any, case_id: UUID, sha256: str) -> bool:
    """Does an event of the case name this file?"""
    return any(a["sha256"] == sha256 for a in hashes_in(engine.events.get(case_id)))
