"""A case bundle: one case's events as stored, an inclusion proof for each, the signed
tree head they are proved against and the public key — everything an outside auditor
needs to check the case with no store and no network (:mod:`engine.audit.verifier`).

The bundle is canonical JSON (RFC 8785: sorted keys, no whitespace), so that any
change to its bytes is a change to what it says::

    {"case": "<uuid>", "events": [{"leaf_index": i, "position": p, "proof": ["<hex>", …],
      "state": "<base64 of the stored state bytes>", "topic": "…", "version": v}, …],
     "format": "fengqiao-bundle-v1", "manifest": {"case": …, "leaves": ["<hex leaf>", …],
     "root": "<base64>", "tree_size": n}, "public_key": "<hex>",
     "signature": "<base64 Ed25519 over 'fengqiao-case-bundle-v1\\n' ‖ JCS(manifest)>",
     "tree_head": "<the C2SP checkpoint note>"}

The tree head proves each event is in the log; the signed manifest says which events
the case had at that size, so a dropped event (even the last) is caught.
"""

from __future__ import annotations

import base64
from typing import Any
from uuid import UUID

from domain.errors import NotFound
from engine.audit.checkpoints import checkpoint, default_key_path, load_signing_key
from engine.audit.merkle import Tree
from engine.audit.tables import CHAIN
from engine.audit.verifier import FORMAT, STATEMENT, jcs
from engine.sql import StoreDb


def case_bundle(app: Any, case_id: UUID) -> bytes:
    """The bundle's bytes for one case, proved against a tree head signed now."""
    db = StoreDb(app.recorder)
    rows = db.query(
        f"SELECT position, seq, version, entry_hash FROM {db.table(CHAIN)} WHERE case_id = ? "
        "ORDER BY version",
        (str(case_id),),
    )
    if not rows:
        raise NotFound(f"no case {case_id}", resource="case", id=str(case_id))
    stored = {e.originator_version: e for e in app.recorder.select_events(case_id)}
    head = checkpoint(app)
    assert head is not None  # the log holds this case's events
    tree = Tree(db)
    events: list[dict[str, Any]] = []
    for row in rows:
        version, index = int(row["version"]), int(row["seq"]) - 1
        event = stored.get(version)
        events.append(
            {
                "leaf_index": index,
                "position": int(row["position"]),
                "proof": [p.hex() for p in tree.inclusion(index, head.size)],
                "state": base64.b64encode(bytes(event.state) if event else b"").decode(),
                "topic": event.topic if event else "",
                "version": version,
            }
        )
    manifest = {
        "case": str(case_id),
        "leaves": [row["entry_hash"] for row in rows],
        "root": base64.b64encode(head.root_bytes).decode(),
        "tree_size": head.size,
    }
    key = load_signing_key(default_key_path(app))
    bundle = {
        "case": str(case_id),
        "events": events,
        "format": FORMAT,
        "manifest": manifest,
        "public_key": head.public_key,
        "signature": base64.b64encode(key.sign(STATEMENT + jcs(manifest))).decode(),
        "tree_head": head.note,
    }
    return jcs(bundle)
