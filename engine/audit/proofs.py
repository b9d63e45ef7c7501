"""Inclusion and consistency proofs as the API serves them (hex hashes), with their
range checks: a size beyond the log, or an event outside the tree asked for, is a
:class:`~domain.errors.ValidationFailed` naming the bounds."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from domain.errors import NotFound, ValidationFailed
from engine.audit.checkpoints import latest_checkpoint
from engine.audit.merkle import Tree
from engine.audit.tables import CHAIN, CHECKPOINTS
from engine.sql import StoreDb


def _entry(app: Any, position: int) -> dict[str, Any]:
    db = StoreDb(app.recorder)
    row = db.one(
        f"SELECT seq, case_id, version, entry_hash FROM {db.table(CHAIN)} WHERE position = ?",
        (position,),
    )
    if row is None:
        raise NotFound(f"no event at position {position}", resource="event", id=str(position))
    return row


def case_at(app: Any, position: int) -> UUID:
    """The case whose event sits at ``position``."""
    return UUID(_entry(app, position)["case_id"])


def _size(app: Any, size: int | None, field: str) -> tuple[int, dict[str, Any] | None]:
    """The tree size asked for (default: the latest signed head's), checked against the
    log, and the signed tree head stored at that size, if any."""
    db = StoreDb(app.recorder)
    current = Tree(db).size()
    if size is None:
        latest = latest_checkpoint(app)
        if latest is None:
            raise NotFound("no tree head has been signed yet", resource="checkpoint")
        size = latest.size
    if not 1 <= size <= current:
        raise ValidationFailed(
            f"{field} {size} is outside the log: its tree has 1 to {current} entries", field=field
        )
    head = db.one(f"SELECT note, public_key FROM {db.table(CHECKPOINTS)} WHERE size = ?", (size,))
    return size, head


def inclusion(app: Any, position: int, tree_size: int | None = None) -> dict[str, Any]:
    entry = _entry(app, position)
    size, head = _size(app, tree_size, "tree_size")
    index = int(entry["seq"]) - 1
    if index >= size:
        raise ValidationFailed(
            f"the event at position {position} is entry {index + 1}, after the tree of {size}",
            field="tree_size",
        )
    tree = Tree(StoreDb(app.recorder))
    return {
        "position": position,
        "case": entry["case_id"],
        "version": int(entry["version"]),
        "leaf_index": index,
        "leaf_hash": entry["entry_hash"],
        "tree_size": size,
        "root": tree.root(size).hex(),
        "proof": [p.hex() for p in tree.inclusion(index, size)],
        "tree_head": head,
    }


def consistency(app: Any, first: int, second: int | None = None) -> dict[str, Any]:
    size, head = _size(app, second, "to")
    if not 1 <= first <= size:
        raise ValidationFailed(f"from {first} must be between 1 and to ({size})", field="from")
    tree = Tree(StoreDb(app.recorder))
    return {
        "from": first,
        "to": size,
        "from_root": tree.root(first).hex(),
        "to_root": tree.root(size).hex(),
        "proof": [p.hex() for p in tree.consistency(first, size)],
        "tree_head": head,
    }
