"""Re-read the events, recompute every hash, report the first entry that differs.

What each finding means (``problem``):

* ``altered`` — the event at this position no longer hashes to what was recorded
  when it was written (its topic or state bytes changed).
* ``inserted`` — an event with no chain entry (added behind the engine's back).
* ``deleted`` — a chain entry whose event is gone.
* ``moved`` — the event at this position is not the one the chain recorded there
  (events swapped or renumbered).
* ``chain_broken`` — the chain table itself was edited (a running hash or entry
  number does not follow from the entries before it).
* ``checkpoint_mismatch`` — the Merkle root of the first N entries, recomputed, is not
  the root a signed tree head states: history before it was rewritten and the chain
  recomputed; the change lies between ``after`` and ``position``.
* ``not_extended`` — (``--against`` an older tree head) the consistency proof from the
  older head to today's fails: the log was rewritten, not extended.
* ``tree_broken`` — the stored Merkle tree's root is not the root of the entries (the
  tree table was edited): proofs served from it would not verify.
* ``checkpoint_beyond_log`` — a checkpoint covers more entries than remain.
* ``bad_signature`` — a stored or given checkpoint's signature does not verify.
* ``untrusted_key`` — a stored checkpoint is signed by a key that is not trusted.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.persistence import PersistenceError

from domain.errors import NotFound
from engine.audit.canonical import ZERO, leaf_hash, link
from engine.audit.checkpoints import Checkpoint, checkpoint, stored_checkpoints
from engine.audit.merkle import Tree, append_rows, fold, push, tree_size
from engine.audit.tables import CHAIN, MERKLE
from engine.audit.verifier import Invalid, check_consistency
from engine.sql import StoreDb

BATCH = 10_000


@dataclass(frozen=True)
class Finding:
    """The first difference found."""

    problem: str
    position: int | None
    message: str
    after: int | None = None  # the last position known good
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Verification:
    """The outcome of one verification run."""

    ok: bool
    scope: str  # "log" or "case <id>"
    entries: int
    head_position: int | None
    head: str | None
    checkpoints_checked: int
    seconds: float
    finding: Finding | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def events_per_second(self) -> float:
        return self.entries / self.seconds if self.seconds > 0 else float("inf")


def _events(app: Any, stop: int) -> Iterator[tuple[int, str, int, str, bytes]]:
    """(position, case id, version, topic, state) of every stored event up to ``stop``."""
    start = 0
    while True:
        rows = app.recorder.event_rows(start, BATCH, upto=stop)
        yield from rows
        if len(rows) < BATCH:
            return
        start = rows[-1][0]


def _chain(db: StoreDb, stop: int) -> Iterator[Any]:
    start = 0
    sql = (
        f"SELECT position, seq, case_id, version, entry_hash, case_hash, chain_hash FROM {db.table(CHAIN)} "
        "WHERE position > ? AND position <= ? ORDER BY position LIMIT ?"
    )
    while True:
        rows = db.query(sql, (start, stop, BATCH))
        yield from rows
        if len(rows) < BATCH:
            return
        start = rows[-1]["position"]


def _merged(
    events: Iterator[tuple], chain: Iterator[Any]
) -> Iterator[tuple[int, tuple | None, Any]]:
    """Pairs of (event, chain row) by position; either may be missing."""
    event, row = next(events, None), next(chain, None)
    while event is not None or row is not None:
        if row is None or (event is not None and event[0] < row["position"]):
            assert event is not None  # the loop runs while one of the two is left
            yield event[0], event, None
            event = next(events, None)
        elif event is None or row["position"] < event[0]:
            yield row["position"], None, row
            row = next(chain, None)
        else:
            yield event[0], event, row
            event, row = next(events, None), next(chain, None)


def _bad_signatures(checkpoints: list[Checkpoint]) -> Finding | None:
    for cp in checkpoints:
        if not cp.signature_valid():
            return Finding(
                "bad_signature",
                cp.position,
                f"the tree head of size {cp.size} ({cp.time}) has an "
                "invalid signature: it was edited or forged",
                details={"size": cp.size},
            )
    return None


def _untrusted(
    checkpoints: list[Checkpoint], trusted_keys: Collection[str] | None
) -> Finding | None:
    if trusted_keys is None:
        return None
    for cp in checkpoints:
        if cp.key_id not in trusted_keys:
            return Finding(
                "untrusted_key",
                cp.position,
                f"the tree head of size {cp.size} ({cp.time}) is signed by "
                f"key {cp.key_id}, which is not a trusted signing key",
                details={"size": cp.size, "key_id": cp.key_id, "trusted": sorted(trusted_keys)},
            )
    return None


def _altered(
    leaf: bytes, row: Any, position: int, what: str, last_good: int | None, **details: Any
) -> Finding | None:
    """``altered`` if the event's leaf hash is not the one its chain entry recorded."""
    if leaf.hex() == row["entry_hash"]:
        return None
    return Finding(
        "altered",
        position,
        f"{what} was altered: its bytes no longer match the hash recorded when it was written",
        last_good,
        {**details, "expected": row["entry_hash"], "actual": leaf.hex()},
    )


def verify_log(
    app: Any, against: Checkpoint | None = None, trusted_keys: Collection[str] | None = None
) -> Verification:
    """Verify the whole log: every event, the chain, every signed checkpoint.

    With ``trusted_keys`` (key ids), a stored checkpoint signed by any other key
    is a finding: someone with database access could otherwise replace the real
    checkpoints with ones signed by a key of their own. (The ``against`` file is
    the auditor's own; its key is theirs to check.)
    """
    started = time.perf_counter()
    db = StoreDb(app.recorder)
    stored = stored_checkpoints(app)
    checkpoints = stored + ([against] if against else [])
    by_size: dict[int, list[Checkpoint]] = {}
    for cp in checkpoints:
        by_size.setdefault(cp.size, []).append(cp)
    chain_head = db.one(f"SELECT MAX(position) AS position FROM {db.table(CHAIN)}")
    assert chain_head is not None  # an aggregate query has a row
    stop = max(app.recorder.max_notification_id() or 0, int(chain_head["position"] or 0))
    try:  # after `stop`: the tree then covers every entry checked
        app.recorder.catch_up_tree()
    except PersistenceError:  # a tree the edited chain cannot extend: the checks below say where
        pass

    entries, running, last_good, checked = 0, ZERO, None, 0
    good_checkpoint_position: int | None = None
    case_heads: dict[str, bytes] = {}
    frontier: list[bytes] = []
    tree_check = _TreeCheck(db)

    def result(finding: Finding | None) -> Verification:
        return Verification(
            ok=finding is None,
            scope="log",
            entries=entries,
            head_position=last_good,
            head=running.hex() if entries else None,
            checkpoints_checked=checked,
            seconds=time.perf_counter() - started,
            finding=finding,
        )

    bad = _bad_signatures(checkpoints) or _untrusted(stored, trusted_keys)
    if bad:
        return result(bad)
    for position, event, row in _merged(_events(app, stop), _chain(db, stop)):
        if row is None:
            assert event is not None  # _merged yields at least one of the two
            return result(
                Finding(
                    "inserted",
                    position,
                    f"the event at position {position} (case {event[1]} "
                    f"version {event[2]}) has no chain entry: it was added behind the engine's back",
                    last_good,
                    {"case": event[1], "version": event[2], "topic": event[3]},
                )
            )
        if event is None:
            return result(
                Finding(
                    "deleted",
                    position,
                    f"the event recorded at position {position} (case "
                    f"{row['case_id']} version {row['version']}) is missing",
                    last_good,
                    {"case": row["case_id"], "version": row["version"]},
                )
            )
        _, case_id, version, topic, state = event
        if (case_id, version) != (row["case_id"], int(row["version"])):
            return result(
                Finding(
                    "moved",
                    position,
                    f"position {position} holds case {case_id} version {version}, "
                    f"but the chain recorded case {row['case_id']} version {row['version']} there",
                    last_good,
                    {
                        "case": case_id,
                        "version": version,
                        "recorded_case": row["case_id"],
                        "recorded_version": row["version"],
                    },
                )
            )
        leaf = leaf_hash(case_id, version, position, topic, state)
        what = f"the event at position {position} (case {case_id} version {version}, {topic.rpartition('.')[2]})"
        if altered := _altered(leaf, row, position, what, last_good, case=case_id, version=version):
            return result(altered)
        entries += 1
        running = link(running, leaf)
        case_head = link(case_heads.get(case_id, ZERO), leaf)
        if (
            int(row["seq"]) != entries
            or running.hex() != row["chain_hash"]
            or case_head.hex() != row["case_hash"]
        ):
            return result(
                Finding(
                    "chain_broken",
                    position,
                    f"the chain entry at position {position} does not "
                    "follow from the entries before it: an earlier entry was removed or the chain "
                    "table was edited",
                    last_good,
                    {"entry_number": entries, "recorded_entry_number": int(row["seq"])},
                )
            )
        case_heads[case_id] = case_head
        push(frontier, entries - 1, leaf)
        broken = tree_check.add(position, leaf)
        if broken:
            return result(broken)
        for cp in by_size.get(entries, ()):
            checked += 1
            root = fold(frontier).hex()
            if cp.root != root:
                return result(
                    Finding(
                        "checkpoint_mismatch",
                        position,
                        f"the tree head signed at {cp.time} says the root of the first "
                        f"{cp.size} entries is {cp.root}; recomputed it is "
                        f"{root}: history up to position {position} was rewritten "
                        f"(after position {good_checkpoint_position or 0})",
                        good_checkpoint_position,
                        {
                            "size": cp.size,
                            "signed_root": cp.root,
                            "root": root,
                            "key_id": cp.key_id,
                        },
                    )
                )
            good_checkpoint_position = position
        last_good = position
    beyond = [cp for cp in checkpoints if cp.size > entries]
    if beyond:
        cp = min(beyond, key=lambda c: c.size)
        return result(
            Finding(
                "checkpoint_beyond_log",
                cp.position,
                f"a tree head signed at {cp.time} covers "
                f"{cp.size} entries but the log has only {entries}: entries were removed",
                last_good,
                {"size": cp.size, "entries": entries},
            )
        )
    return result(tree_check.flush())


class _TreeCheck:
    """Recompute the Merkle tree's stored subtrees from the leaves, a batch at a time, and
    compare them with ``audit_merkle`` (one range read per batch)."""

    def __init__(self, db: StoreDb) -> None:
        self.db, self.table = db, db.table(MERKLE)
        self.frontier: list[bytes] = []
        self.size = 0
        self.pending: list[tuple[int, bytes]] = []  # (position, leaf)

    def add(self, position: int, leaf: bytes) -> Finding | None:
        self.pending.append((position, leaf))
        return self.flush() if len(self.pending) >= BATCH else None

    def flush(self) -> Finding | None:
        if not self.pending:
            return None
        first = self.size
        rows = append_rows(first, self.frontier, [leaf for _, leaf in self.pending])
        stored = {
            int(row["node"]): bytes(row["hash"])
            for row in self.db.query(
                f"SELECT node, hash FROM {self.table} WHERE node >= ? AND node <= ?",
                (rows[0][0], rows[-1][0]),
            )
        }
        self.size += len(self.pending)
        positions, self.pending = [p for p, _ in self.pending], []
        for key, value in rows:
            if stored.get(key) != value:
                leaves_before = tree_size(key)  # the subtree's last leaf is entry leaves_before
                position = positions[min(max(leaves_before - first - 1, 0), len(positions) - 1)]
                return Finding(
                    "tree_broken",
                    position,
                    f"the stored Merkle tree's node {key} (completed with the entry at position "
                    f"{position}) is not the hash of the entries: the tree table was edited, and "
                    "proofs that use it will fail",
                    details={
                        "node": key,
                        "stored": (stored.get(key) or b"").hex(),
                        "expected": value.hex(),
                    },
                )
        return None


def verify_against(app: Any, old: Checkpoint) -> Verification:
    """Prove that today's log extends an older signed tree head (the auditor's own file),
    with a consistency proof to a tree head signed now: O(log n) hashes, no rehashing."""
    started = time.perf_counter()
    finding: Finding | None = _bad_signatures([old])
    new = checkpoint(app)
    size = new.size if new else 0
    if finding is None and size < old.size:
        finding = Finding(
            "checkpoint_beyond_log",
            old.position,
            f"the tree head signed at {old.time} covers {old.size} entries but the log has "
            f"only {size}: entries were removed",
            details={"size": old.size, "entries": size},
        )
    if finding is None and new is not None:
        try:
            proof = Tree(StoreDb(app.recorder)).consistency(old.size, new.size)
            check_consistency(old.size, new.size, old.root_bytes, new.root_bytes, proof)
        except (Invalid, LookupError) as failure:
            finding = Finding(
                "not_extended",
                old.position,
                f"{failure} (tree head of {old.time}, size {old.size}; today's, size {size})",
                details={"size": old.size, "root": old.root, "new_size": size},
            )
    return Verification(
        ok=finding is None,
        scope=f"consistency {old.size} -> {size}",
        entries=size,
        head_position=new.position if new else None,
        head=new.root if new else None,
        checkpoints_checked=1,
        seconds=time.perf_counter() - started,
        finding=finding,
    )


def verify_case(app: Any, case_id: UUID) -> Verification:
    """Verify one case alone: its events, its per-case chain, and each entry's
    link into the global chain. (Only :func:`verify_log` checks checkpoints.)"""
    started = time.perf_counter()
    db = StoreDb(app.recorder)
    key = str(case_id)
    events = {e.originator_version: e for e in app.recorder.select_events(case_id)}
    positions = app.positions_of(case_id)
    rows = {
        int(r["version"]): r
        for r in db.query(
            f"SELECT position, seq, case_id, version, entry_hash, case_hash, chain_hash FROM {db.table(CHAIN)} "
            "WHERE case_id = ? ORDER BY version",
            (key,),
        )
    }
    if not events and not rows:
        raise NotFound(f"no case {case_id}", resource="case", id=key)
    entries, case_head, last_good = 0, ZERO, None
    scope = f"case {key}"

    def result(finding: Finding | None) -> Verification:
        return Verification(
            ok=finding is None,
            scope=scope,
            entries=entries,
            head_position=last_good,
            head=case_head.hex() if entries else None,
            checkpoints_checked=0,
            seconds=time.perf_counter() - started,
            finding=finding,
        )

    for version in sorted(set(events) | set(rows)):
        event, row = events.get(version), rows.get(version)
        position = (
            positions.get(version) if event is not None or row is None else int(row["position"])
        )
        if row is None:
            return result(
                Finding(
                    "inserted",
                    position,
                    f"version {version} (position {position}) has no chain "
                    "entry: it was added behind the engine's back",
                    last_good,
                    {"version": version},
                )
            )
        if event is None:
            return result(
                Finding(
                    "deleted",
                    position,
                    f"version {version}, recorded at position {position}, is missing",
                    last_good,
                    {"version": version},
                )
            )
        if position != int(row["position"]):
            return result(
                Finding(
                    "moved",
                    position,
                    f"version {version} is at position {position} but was "
                    f"recorded at position {row['position']}",
                    last_good,
                    {"version": version},
                )
            )
        leaf = leaf_hash(key, version, position, event.topic, bytes(event.state))
        what = f"version {version} (position {position})"
        if altered := _altered(leaf, row, position, what, last_good, version=version):
            return result(altered)
        case_head = link(case_head, leaf)
        entries += 1
        previous = db.one(
            f"SELECT chain_hash FROM {db.table(CHAIN)} WHERE position < ? ORDER BY position DESC "
            "LIMIT 1",
            (position,),
        )
        global_link = link(bytes.fromhex(previous["chain_hash"]) if previous else ZERO, leaf)
        if case_head.hex() != row["case_hash"] or global_link.hex() != row["chain_hash"]:
            return result(
                Finding(
                    "chain_broken",
                    position,
                    f"the chain entry of version {version} does not follow "
                    "from the entries before it",
                    last_good,
                    {"version": version},
                )
            )
        last_good = position
    return result(None)
