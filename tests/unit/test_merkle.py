"""The Merkle tree's math against RFC 9162's definitions, and the offline verifier's checks."""

from __future__ import annotations

import hashlib

import pytest

from engine.audit import merkle
from engine.audit.verifier import Invalid, check_consistency, inclusion_root, node


def leaves(n: int) -> list[bytes]:
    return [hashlib.sha256(b"\x00" + str(i).encode()).digest() for i in range(n)]


def mth(d: list[bytes]) -> bytes:  # RFC 9162 §2.1.1, literally
    if len(d) == 1:
        return d[0]
    k = merkle._split(len(d))
    return node(mth(d[:k]), mth(d[k:]))


def path(m: int, d: list[bytes]) -> list[bytes]:  # §2.1.3.1
    if len(d) == 1:
        return []
    k = merkle._split(len(d))
    return path(m, d[:k]) + [mth(d[k:])] if m < k else path(m - k, d[k:]) + [mth(d[:k])]


def subproof(m: int, d: list[bytes], whole: bool) -> list[bytes]:  # §2.1.4.1
    if m == len(d):
        return [] if whole else [mth(d)]
    k = merkle._split(len(d))
    if m <= k:
        return subproof(m, d[:k], whole) + [mth(d[k:])]
    return subproof(m - k, d[k:], False) + [mth(d[:k])]


class MemoryTree(merkle.Tree):
    def __init__(self, n: int) -> None:
        self.frontier: list[bytes] = []
        self.nodes = dict(merkle.append_rows(0, self.frontier, leaves(n)))

    def hashes(self, keys):
        return {k: self.nodes[k] for k in keys}


def test_stored_subtrees_give_the_rfc_root_and_proofs_at_every_size():
    tree = MemoryTree(33)
    assert len(tree.nodes) == merkle.next_key(33)
    data = leaves(33)
    for n in range(1, 34):
        root = tree.root(n)
        assert (
            root == mth(data[:n]) == merkle.fold(tree.frontier)
            if n == 33
            else root == mth(data[:n])
        )
        for m in range(n):
            proof = tree.inclusion(m, n)
            assert proof == path(m, data[:n])
            assert inclusion_root(m, n, data[m], proof) == root
        for m in range(1, n):
            proof = tree.consistency(m, n)
            assert proof == subproof(m, data[:n], True)
            check_consistency(m, n, mth(data[:m]), root, proof)


def test_appending_in_batches_is_appending_one_by_one():
    frontier: list[bytes] = []
    rows = []
    data = leaves(20)
    for start, end in ((0, 3), (3, 4), (4, 13), (13, 20)):
        rows += merkle.append_rows(start, frontier, data[start:end])
    assert dict(rows) == MemoryTree(20).nodes
    assert [k for k, _ in rows] == list(range(len(rows)))  # keys append, in order


def test_a_wrong_proof_or_a_rewritten_history_fails():
    tree, data = MemoryTree(11), leaves(11)
    proof = tree.inclusion(5, 11)
    with pytest.raises(Invalid):
        check_consistency(4, 11, mth(data[:3] + [data[0]]), tree.root(11), tree.consistency(4, 11))
    assert inclusion_root(5, 11, data[6], proof) != tree.root(11)
    with pytest.raises(Invalid, match="too short"):
        inclusion_root(5, 11, data[5], proof[:-1])
    with pytest.raises(Invalid, match="too long"):
        inclusion_root(5, 11, data[5], [*proof, data[0]])
    with pytest.raises(Invalid, match="outside"):
        inclusion_root(11, 11, data[5], proof)


def test_signature_lines_match_the_go_sumdb_note_known_answer():
    """golang.org/x/mod/sumdb/note's example (the signed-note format's reference code):
    the same key gives the same key ID and, Ed25519 being deterministic, the same line."""
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from engine.audit.checkpoints import note_key_hash, raw_public_key, signature_line

    seed = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
    public = base64.b64decode("ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")[1:]
    key = Ed25519PrivateKey.from_private_bytes(seed)
    assert raw_public_key(key) == public
    assert note_key_hash("PeterNeumann", public).hex() == "c74f20a3"
    text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
    assert signature_line(key, "PeterNeumann", text) == (
        "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
    )
