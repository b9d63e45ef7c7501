"""The Merkle tree over the global log (RFC 9162 §2.1), kept as events are saved.

Leaf ``i`` (0-based) is the ``entry_hash`` of the chain's entry number ``i + 1``:
SHA-256(0x00 ‖ the entry's canonical bytes, see :mod:`engine.audit.canonical`); a node
is SHA-256(0x01 ‖ left ‖ right). Only *perfect* subtrees are stored (table
``audit_merkle``: ``node`` key, 32-byte ``hash``), each once, when its last leaf is
written — on SQLite in the same transaction as the events and the chain, on PostgreSQL
after their commit, outside their lock (``catch_up_tree`` in :mod:`engine.audit.recorders`;
the :class:`Tree` catches it up before it reads). That is 2n − popcount(n) rows for n leaves (≈ 2 per
event), and the rows are keyed in the order they are completed (post-order), so every
insert appends at the end of the index:

    key(level, index) = 2(m − 1) − popcount(m − 1) + level,   m = (index + 1) · 2^level

(the tree of m − 1 leaves has 2(m − 1) − popcount(m − 1) nodes; leaf m − 1 comes next,
then its parents, level by level).

The root of the tree at any size n, and every inclusion or consistency proof of a
tree of size n, fold O(log n) stored subtrees (one indexed read); nothing is
recomputed from the leaves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from engine.audit.tables import MERKLE
from engine.audit.verifier import node
from engine.sql import StoreDb

Subtree = tuple[int, int]  # (level, index): leaves [index·2^level, (index+1)·2^level)


def key(level: int, index: int) -> int:
    """The stored key of a perfect subtree (its post-order number)."""
    return next_key(((index + 1) << level) - 1) + level


def next_key(size: int) -> int:
    """The key the next completed subtree gets in a tree of ``size`` leaves."""
    return 2 * size - size.bit_count()


def tree_size(last_key: int) -> int:
    """The number of leaves of a tree whose last stored key is ``last_key``."""
    size = (last_key + 1) // 2  # the n with next_key(n) = last_key + 1 (next_key grows with n)
    while next_key(size) < last_key + 1:
        size += 1
    return size


def subtrees(start: int, end: int) -> list[Subtree]:
    """The perfect subtrees that make up leaves [start, end), largest first (``start``
    aligned as RFC 9162's recursion leaves it)."""
    out = []
    while start < end:
        level = (end - start).bit_length() - 1
        out.append((level, start >> level))
        start += 1 << level
    return out


def fold(hashes: Sequence[bytes]) -> bytes:
    """MTH of a range from its perfect subtrees' hashes (largest first)."""
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node(left, result)
    return result


def _split(n: int) -> int:
    """The largest power of two below ``n`` (RFC 9162's k)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_path(index: int, size: int) -> list[list[Subtree]]:
    """RFC 9162 PATH(index, D[0:size]), leaf side first, each element as the subtrees it folds."""
    path, lo, hi = [], 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(subtrees(lo + k, hi))
            hi = lo + k
        else:
            path.append(subtrees(lo, lo + k))
            lo += k
    return path[::-1]


def consistency_path(first: int, second: int) -> list[list[Subtree]]:
    """RFC 9162 PROOF(first, D[0:second]), as :func:`inclusion_path` gives it."""
    path: list[list[Subtree]] = []
    if not 0 < first < second:
        return path
    lo, hi, m, whole = 0, second, first, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            path.append(subtrees(lo + k, hi))
            hi = lo + k
        else:
            path.append(subtrees(lo, lo + k))
            m, lo, whole = m - k, lo + k, False
    if not whole:
        path.append(subtrees(lo, hi))
    return path[::-1]


def frontier_keys(size: int) -> list[int]:
    """Keys of the perfect subtrees that make up a tree of ``size`` (largest first)."""
    return [key(level, index) for level, index in subtrees(0, size)]


def append_rows(
    size: int, frontier: list[bytes], leaves: Iterable[bytes]
) -> list[tuple[int, bytes]]:
    """The rows new leaves add to a tree of ``size``; ``frontier`` (the hashes of
    :func:`frontier_keys`) is brought up to date in place."""
    rows, next_node = [], next_key(size)
    for leaf in leaves:
        rows.append((next_node, leaf))
        next_node += 1
        merged, m = leaf, size
        while m & 1:
            merged = node(frontier.pop(), merged)
            rows.append((next_node, merged))
            next_node += 1
            m >>= 1
        frontier.append(merged)
        size += 1
    return rows


def push(frontier: list[bytes], index: int, leaf: bytes) -> None:
    """Fold leaf ``index`` into ``frontier`` (the hashes of :func:`frontier_keys`)."""
    while index & 1:
        leaf = node(frontier.pop(), leaf)
        index >>= 1
    frontier.append(leaf)


class Tree:
    """Reads of the stored tree (one indexed query per root or proof). On PostgreSQL the
    tree follows the chain after each commit (``catch_up_tree`` in
    :mod:`engine.audit.recorders`): its size is read after catching it up, and a root or
    proof that needs subtrees not stored yet catches it up before reading them again."""

    def __init__(self, db: StoreDb) -> None:
        self.db = db
        self.table = db.table(MERKLE)

    def hashes(self, keys: Iterable[int]) -> dict[int, bytes]:
        """The stored subtrees ``keys``: one prepared statement on the recorder's connections
        (:meth:`engine.audit.recorders._Chained.tree_nodes`)."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        found = {int(node): bytes(value) for node, value in self.db.recorder.tree_nodes(wanted)}
        if len(found) != len(wanted) and self.db.recorder.catch_up_tree():
            found = {int(node): bytes(v) for node, v in self.db.recorder.tree_nodes(wanted)}
        if len(found) != len(wanted):
            raise LookupError(f"the Merkle tree lacks nodes {sorted(set(wanted) - set(found))}")
        return found

    def size(self) -> int:
        """How many leaves the stored tree has, caught up with the chain first."""
        self.db.recorder.catch_up_tree()
        row = self.db.one(f"SELECT MAX(node) AS last FROM {self.table}")
        last = row["last"] if row else None
        return 0 if last is None else tree_size(int(last))

    def _folded(self, groups: list[list[Subtree]]) -> list[bytes]:
        found = self.hashes(key(*s) for group in groups for s in group)
        return [fold([found[key(*s)] for s in group]) for group in groups]

    def root(self, size: int) -> bytes:
        """MTH(D[0:size]) (SHA-256 of nothing for an empty tree, as RFC 9162 says)."""
        if size == 0:
            return hashlib.sha256(b"").digest()
        return self._folded([subtrees(0, size)])[0]

    def inclusion(self, index: int, size: int) -> list[bytes]:
        return self._folded(inclusion_path(index, size))

    def consistency(self, first: int, second: int) -> list[bytes]:
        return self._folded(consistency_path(first, second))
