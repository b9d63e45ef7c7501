"""The hash chain, signed checkpoints and verification, on both stores."""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import threading
import uuid
from datetime import timedelta

import pytest
from eventsourcing.persistence import StoredEvent
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.audit import merkle, verifier
from engine.audit.canonical import ZERO, entry_bytes, leaf_hash, link
from engine.audit.checkpoints import (
    Checkpoint,
    checkpoint,
    checkpoint_if_due,
    export,
    load,
    stored_checkpoints,
)
from engine.audit.proofs import consistency, inclusion
from engine.audit.verifier import node
from engine.audit.verify import verify_case, verify_log
from engine.service import Fengqiao
from engine.sql import StoreDb
from tests.audit_support import RawStore, busy_history
from tests.support import act, report


@pytest.fixture(autouse=True)
def signing_key(tmp_path, monkeypatch):
    monkeypatch.setenv("FENGQIAO_SIGNING_KEY", str(tmp_path / "signing-key.pem"))


@pytest.fixture
def raw(app):
    store = RawStore(app)
    yield store
    store.close()


def recompute_chain(raw: RawStore) -> None:
    """What an attacker who knows the algorithm does after editing events: rebuild the chain."""
    raw.sql(f"DELETE FROM {raw.chain}")
    running, heads = ZERO, {}
    for seq, (position, originator_id, version, topic, state) in enumerate(
        raw.events_rows(), start=1
    ):
        case_id = (
            str(originator_id) if raw.postgres else str(__import__("uuid").UUID(originator_id))
        )
        leaf = leaf_hash(case_id, version, position, topic, bytes(state))
        running = link(running, leaf)
        heads[case_id] = link(heads.get(case_id, ZERO), leaf)
        raw.sql(
            f"INSERT INTO {raw.chain} VALUES (?, ?, ?, ?, ?, ?, ?)",
            (position, seq, case_id, version, leaf.hex(), heads[case_id].hex(), running.hex()),
        )
    rebuild_tree(raw)


def rebuild_tree(raw: RawStore) -> None:
    """... and the Merkle tree over the rebuilt chain."""
    raw.sql(f"DELETE FROM {raw.merkle}")
    leaves = [bytes.fromhex(row[4]) for row in raw.chain_rows()]
    for key, value in merkle.append_rows(0, [], leaves):
        raw.sql(f"INSERT INTO {raw.merkle} (node, hash) VALUES (?, ?)", (key, value))


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162's MTH, from its definition."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node(mth(leaves[:k]), mth(leaves[k:]))


def test_entry_bytes_are_canonical_json():
    data = entry_bytes(
        "9dcf5a65-2441-5be2-a2e5-f121f013c412", 2, 31, "domain.cases:Dispute.Commented", b"{}"
    )
    assert data == (
        b'{"case":"9dcf5a65-2441-5be2-a2e5-f121f013c412","position":31,'
        b'"state_sha256":"44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",'
        b'"topic":"domain.cases:Dispute.Commented","version":2}'
    )


@given(
    case=st.text(max_size=40),
    topic=st.text(max_size=60),
    version=st.integers(0, 2**53 - 1),
    position=st.integers(0, 2**53 - 1),
    state=st.binary(max_size=64),
)
@settings(max_examples=200, deadline=None)
def test_entry_bytes_equal_sorted_compact_json(case, topic, version, position, state):
    # the hand-written bytes hash as the offline verifier's json.dumps of the entry does
    assert hashlib.sha256(
        b"\x00" + entry_bytes(case, version, position, topic, state)
    ).digest() == (verifier.leaf(case, version, position, topic, state))


def test_an_untampered_store_verifies_clean(app):
    cases = busy_history(app)
    result = verify_log(app)
    assert result.ok, result.finding
    assert result.entries == app.head_position() or result.entries > 0
    assert result.head_position == app.head_position()
    for case_id in cases:
        assert verify_case(app, case_id).ok


def test_chain_rows_link_every_event_in_order(app, raw):
    busy_history(app)
    events, chain = raw.events_rows(), raw.chain_rows()
    assert [e[0] for e in events] == [c[0] for c in chain]
    assert [c[1] for c in chain] == list(range(1, len(chain) + 1))


def test_a_batch_over_several_cases_chains_as_the_canonical_hashes(app, raw):
    """One insert of events of old and new cases, with topics that JSON must escape: the
    stored chain rows are exactly what engine.audit.canonical computes (on PostgreSQL
    the recorder hashes in SQL, so this is the check that both agree byte for byte)."""
    old = busy_history(app)
    new = uuid.uuid4()
    topics = ["domain.cases:Dispute.Commented", 'x:"引号"\\反斜杠', "x:\u0001\t控制", "x:é✓"]
    batch = [
        StoredEvent(case, version, topic, bytes([n]) * n)
        for n, (case, version, topic) in enumerate(
            [
                (old[0], app.case(old[0]).version + 1, topics[1]),
                (new, 1, topics[2]),
                (old[1], app.case(old[1]).version + 1, topics[0]),
                (old[0], app.case(old[0]).version + 2, topics[3]),
                (new, 2, topics[1]),
            ]
        )
    ]
    positions = app.recorder.insert_events(batch)
    assert list(positions) == sorted(positions) and len(set(positions)) == len(batch)
    expected_running, expected_heads = ZERO, {}
    chain = raw.chain_rows()
    for (position, originator_id, version, topic, state), row in zip(
        raw.events_rows(), chain, strict=True
    ):
        case_id = str(originator_id) if raw.postgres else str(uuid.UUID(originator_id))
        leaf = leaf_hash(case_id, version, position, topic, bytes(state))
        expected_running = link(expected_running, leaf)
        expected_heads[case_id] = link(expected_heads.get(case_id, ZERO), leaf)
        assert tuple(row) == (
            position,
            row[1],
            case_id,
            version,
            leaf.hex(),
            expected_heads[case_id].hex(),
            expected_running.hex(),
        )
    assert [row[0] for row in chain[-len(batch) :]] == list(positions)
    assert verify_log(app).ok and verify_case(app, new).ok and verify_case(app, old[0]).ok


def test_checkpoint_signs_the_head_and_exports(app, tmp_path):
    busy_history(app)
    signed = checkpoint(app)
    assert signed is not None and signed.signature_valid()
    leaves = [bytes.fromhex(row[4]) for row in RawStore(app).chain_rows()]
    assert signed.size == verify_log(app).entries == len(leaves)
    assert signed.root == mth(leaves).hex() and signed.note.startswith(
        f"{signed.origin}\n{signed.size}\n"
    )
    assert checkpoint(app) == signed  # unchanged size: the same checkpoint
    path = tmp_path / "cp.json"
    export(signed, path)
    assert set(json.loads(path.read_text())) >= {"size", "root", "time", "public_key", "note"}
    assert load(path) == signed
    assert verify_log(app, against=load(path)).ok


def test_a_forged_checkpoint_file_is_refused(app, tmp_path):
    busy_history(app)
    signed = checkpoint(app)
    forged = Checkpoint(**{**signed.as_dict(), "size": signed.size - 1})
    result = verify_log(app, against=forged)
    assert not result.ok and result.finding.problem == "bad_signature"


def test_checkpoint_policy_every_n_events_or_m_minutes(app, clock):
    busy_history(app)
    first = checkpoint_if_due(app, every_events=5, every=timedelta(minutes=10))
    assert first is not None
    assert (
        checkpoint_if_due(app, every_events=5, every=timedelta(minutes=10)) is None
    )  # nothing new
    case_id = busy_history(app)[0]
    assert (
        checkpoint_if_due(app, every_events=1000, every=timedelta(minutes=10)) is None
    )  # too soon, too few
    clock.advance(timedelta(minutes=11))
    act(app, case_id, "comment", "wang", text="再次回访")
    assert checkpoint_if_due(app, every_events=1000, every=timedelta(minutes=10)) is not None
    assert len(stored_checkpoints(app)) == 2


# -- tampering: each named problem, caught at the right position ---------------------------------


def _pick(raw: RawStore, rng: random.Random, last: bool = False) -> tuple:
    rows = raw.events_rows()
    return rows[-1] if last else rng.choice(rows[:-1])


def tamper_alter_state(raw, rng):
    position, *_, state = _pick(raw, rng)
    changed = bytes(state).replace(b'"', b"'", 1) if rng.random() < 0.5 else bytes(state) + b" "
    raw.sql(f"UPDATE {raw.events} SET state = ? WHERE {raw.pos} = ?", (changed, position))
    return "altered", position


def tamper_alter_topic(raw, rng):
    position, _, _, topic, _ = _pick(raw, rng)
    raw.sql(f"UPDATE {raw.events} SET topic = ? WHERE {raw.pos} = ?", (topic + "X", position))
    return "altered", position


def tamper_delete(raw, rng):
    position = _pick(raw, rng, last=rng.random() < 0.2)[0]
    raw.sql(f"DELETE FROM {raw.events} WHERE {raw.pos} = ?", (position,))
    return "deleted", position


def tamper_swap(raw, rng):
    rows = raw.events_rows()
    a, b = sorted(rng.sample([r[0] for r in rows], 2))
    raw.sql(f"UPDATE {raw.events} SET {raw.pos} = ? WHERE {raw.pos} = ?", (-1, a))
    raw.sql(f"UPDATE {raw.events} SET {raw.pos} = ? WHERE {raw.pos} = ?", (a, b))
    raw.sql(f"UPDATE {raw.events} SET {raw.pos} = ? WHERE {raw.pos} = ?", (b, -1))
    return "moved", a


def tamper_swap_states(raw, rng):
    rows = raw.events_rows()
    a, b = sorted(rng.sample(rows, 2), key=lambda r: r[0])
    raw.sql(f"UPDATE {raw.events} SET state = ? WHERE {raw.pos} = ?", (b[4], a[0]))
    raw.sql(f"UPDATE {raw.events} SET state = ? WHERE {raw.pos} = ?", (a[4], b[0]))
    return "altered", a[0]


def tamper_insert(raw, rng):
    position, originator_id, version, topic, state = _pick(raw, rng)
    top = raw.sql(
        f"SELECT MAX(originator_version) FROM {raw.events} WHERE originator_id = ?",
        (originator_id,),
    )[0][0]
    new_position = raw.events_rows()[-1][0] + 1
    raw.sql(
        f"INSERT INTO {raw.events} ({raw.pos}, originator_id, originator_version, topic, state) "
        "VALUES (?, ?, ?, ?, ?)",
        (new_position, originator_id, top + 1, topic, state),
    )
    return "inserted", new_position


def tamper_renumber(raw, rng):
    position, originator_id, *_ = _pick(raw, rng)
    raw.sql(
        f"UPDATE {raw.events} SET originator_version = originator_version + 1000 WHERE {raw.pos} = ?",
        (position,),
    )
    return "moved", position


def tamper_reassign_case(raw, rng):
    rows = raw.events_rows()
    a = rng.choice(rows)
    other = rng.choice([r for r in rows if r[1] != a[1]])
    raw.sql(
        f"UPDATE {raw.events} SET originator_id = ?, originator_version = ? WHERE {raw.pos} = ?",
        (other[1], other[2] + 5000, a[0]),
    )
    return "moved", a[0]


TAMPERINGS = [
    tamper_alter_state,
    tamper_alter_topic,
    tamper_delete,
    tamper_swap,
    tamper_swap_states,
    tamper_insert,
    tamper_renumber,
    tamper_reassign_case,
]


def test_random_tampering_is_always_caught_at_the_right_position(app, raw):
    busy_history(app)
    clean = raw.snapshot()
    rng = random.Random(7)
    caught = 0
    for round_ in range(48):
        tamper = TAMPERINGS[round_ % len(TAMPERINGS)]
        problem, position = tamper(raw, rng)
        result = verify_log(app)
        assert not result.ok, (tamper.__name__, position)
        assert (result.finding.problem, result.finding.position) == (problem, position), (
            tamper.__name__,
            result.finding,
        )
        caught += 1
        raw.restore(clean)
        assert verify_log(app).ok
    assert caught == 48


def test_tampering_is_caught_by_the_case_alone(app, raw):
    cases = busy_history(app)
    positions = app.positions_of(cases[0])
    position = positions[2]
    raw.sql(f"UPDATE {raw.events} SET state = ? WHERE {raw.pos} = ?", (b"{}", position))
    result = verify_case(app, cases[0])
    assert not result.ok and (result.finding.problem, result.finding.position) == (
        "altered",
        position,
    )
    assert verify_case(app, cases[1]).ok


def test_editing_the_chain_table_is_caught(app, raw):
    busy_history(app)
    position = raw.chain_rows()[10][0]
    raw.sql(f"UPDATE {raw.chain} SET chain_hash = ? WHERE position = ?", ("00" * 32, position))
    result = verify_log(app)
    assert (result.finding.problem, result.finding.position) == ("chain_broken", position)


def test_deleting_an_event_and_its_chain_entry_is_caught_at_the_next_entry(app, raw):
    busy_history(app)
    rows = raw.chain_rows()
    victim, following = rows[5][0], rows[6][0]
    raw.sql(f"DELETE FROM {raw.events} WHERE {raw.pos} = ?", (victim,))
    raw.sql(f"DELETE FROM {raw.chain} WHERE position = ?", (victim,))
    result = verify_log(app)
    assert (result.finding.problem, result.finding.position, result.finding.after) == (
        "chain_broken",
        following,
        rows[4][0],
    )


@pytest.mark.parametrize("stored_checkpoints_deleted", [False, True])
def test_rewriting_history_before_a_checkpoint_and_recomputing_the_chain_is_caught(
    app, raw, tmp_path, stored_checkpoints_deleted
):
    cases = busy_history(app)
    early = checkpoint(app)
    act(app, cases[1], "comment", "wang", text="补充材料")
    signed = checkpoint(app)
    export(signed, tmp_path / "cp.json")
    act(app, cases[2], "comment", "wang", text="之后的事件")
    victim = raw.events_rows()[early.size + 0][0]  # the first entry after the early checkpoint
    state = bytes(raw.sql(f"SELECT state FROM {raw.events} WHERE {raw.pos} = ?", (victim,))[0][0])
    raw.sql(
        f"UPDATE {raw.events} SET state = ? WHERE {raw.pos} = ?",
        (state.replace("补充".encode(), "删除".encode()), victim),
    )
    recompute_chain(raw)
    if stored_checkpoints_deleted:
        raw.sql(f"DELETE FROM {raw.checkpoints}")
    result = verify_log(app, against=load(tmp_path / "cp.json"))
    assert not result.ok
    assert result.finding.problem == "checkpoint_mismatch"
    assert result.finding.position == signed.position
    assert result.finding.after == (None if stored_checkpoints_deleted else early.position)
    assert result.finding.after is None or result.finding.after < victim <= result.finding.position
    # without any checkpoint, a full recomputation is invisible: that is what checkpoints are for
    raw.sql(f"DELETE FROM {raw.checkpoints}")
    assert verify_log(app).ok


def test_truncating_the_log_below_a_checkpoint_is_caught(app, raw):
    busy_history(app)
    signed = checkpoint(app)
    last = raw.events_rows()[-1][0]
    raw.sql(f"DELETE FROM {raw.events} WHERE {raw.pos} = ?", (last,))
    raw.sql(f"DELETE FROM {raw.chain} WHERE position = ?", (last,))
    result = verify_log(app)
    assert (
        result.finding.problem == "checkpoint_beyond_log"
        and result.finding.position == signed.position
    )


def test_editing_a_stored_checkpoint_is_caught(app, raw):
    busy_history(app)
    checkpoint(app)
    raw.sql(f"UPDATE {raw.checkpoints} SET root = ?", ("11" * 32,))
    assert verify_log(app).finding.problem == "bad_signature"


def test_a_store_that_predates_the_chain_is_adopted_once(store, clock):
    from engine.service import Fengqiao
    from tests.support import seed

    unchained = seed(Fengqiao(store, clock=clock, env={"APPLICATION_RECORDER_TOPIC": ""}))
    head = unchained.head_position()
    unchained.close()
    adopted = Fengqiao(store, clock=clock)
    try:
        result = verify_log(adopted)
        assert result.ok and result.head_position == head
        case_id = busy_history(adopted)[0]
        assert verify_log(adopted).ok and verify_case(adopted, case_id).ok
    finally:
        adopted.close()


def test_whole_store_encryption_keeps_the_chain_verifiable(store, clock):
    from eventsourcing.cryptography import AESCipher

    from engine.service import Fengqiao
    from tests.support import seed

    env = {
        "CIPHER_TOPIC": "eventsourcing.cryptography:AESCipher",
        "CIPHER_KEY": AESCipher.create_key(32),
    }
    app = seed(Fengqiao(store, clock=clock, env=env))
    try:
        case_id = busy_history(app)[0]
        raw = RawStore(app)
        try:
            stored = b"".join(bytes(row[4]) for row in raw.events_rows())
        finally:
            raw.close()
        assert "已上门了解情况".encode() not in stored and b"wang" not in stored
        assert app.case(case_id).title == "dispute test"
        assert verify_log(app).ok and verify_case(app, case_id).ok
    finally:
        app.close()


def test_concurrent_writers_keep_one_consistent_chain(app):
    from concurrent.futures import ThreadPoolExecutor

    def work(n: int) -> None:
        case_id = busy_history(app)[n % 3]
        act(app, case_id, "comment", "wang", text=f"并发 {n}")

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(work, range(8)))
    result = verify_log(app)
    assert result.ok, result.finding
    assert result.head_position == app.head_position()


def test_checkpoints_replaced_with_a_foreign_key_are_caught(app, raw):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from engine.audit.checkpoints import trusted_key_ids

    busy_history(app)
    checkpoint(app)
    victim = raw.events_rows()[4][0]
    state = bytes(raw.sql(f"SELECT state FROM {raw.events} WHERE {raw.pos} = ?", (victim,))[0][0])
    raw.sql(f"UPDATE {raw.events} SET state = ? WHERE {raw.pos} = ?", (state + b" ", victim))
    recompute_chain(raw)
    raw.sql(f"DELETE FROM {raw.checkpoints}")
    checkpoint(app, key=Ed25519PrivateKey.generate())  # the attacker signs the rewritten history
    assert verify_log(app).ok  # self-consistent ...
    result = verify_log(
        app, trusted_keys=trusted_key_ids(app)
    )  # ... but not signed by the engine's key
    assert not result.ok and result.finding.problem == "untrusted_key"


def test_the_checkpoints_worker_signs_by_policy_and_stops(app):
    import threading

    from api.workers import load_workers
    from engine.audit.worker import run_checkpoints

    assert load_workers()["checkpoints"] is run_checkpoints
    busy_history(app)
    stop = threading.Event()
    thread = threading.Thread(target=run_checkpoints, args=(app, stop))
    thread.start()
    try:
        for _ in range(100):
            if stored_checkpoints(app):
                break
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert stored_checkpoints(app)[-1].size == verify_log(app).entries


def test_the_stored_tree_is_the_merkle_tree_of_the_chain_at_every_size(app, raw):
    cases = busy_history(app)
    app.recorder.insert_events(  # one batch over several cases, as group commit writes
        [
            StoredEvent(uuid.uuid4(), 1, "domain.cases:Dispute.Commented", b'{"n": %d}' % i)
            for i in range(13)
        ]
    )
    act(app, cases[0], "comment", "wang", text="再补充")
    leaves = [bytes.fromhex(row[4]) for row in raw.chain_rows()]
    tree = merkle.Tree(StoreDb(app.recorder))
    assert tree.size() == len(leaves)
    for size in range(1, len(leaves) + 1):
        assert tree.root(size) == mth(leaves[:size])
    rows = raw.sql(f"SELECT node FROM {raw.merkle} ORDER BY node")
    assert [r[0] for r in rows] == list(range(merkle.next_key(len(leaves))))


def test_two_processes_writing_in_turn_and_a_rolled_back_batch_keep_the_tree_the_chain_s(
    app, raw, store, clock, monkeypatch
):
    """SQLite: a recorder keeps the tree's frontier its last batch left and reads it again
    only when the chain's head is not where that batch ended it: another process (here a
    second engine on the same store) appended since, or the batch was rolled back (a
    conflict) and another one of the same size took its place."""
    other = Fengqiao(store, clock=clock)
    try:
        first = report(app).case_id
        for n in range(3):
            act(app, first, "comment", "wang", text=f"甲{n}")
            act(other, first, "comment", "wang", text=f"乙{n}")  # the first's frontier: stale
            act(other, first, "comment", "wang", text=f"丙{n}")
        [stored] = app.recorder.select_events(first, limit=1)
        written = type(app.recorder)._insert_events

        def then_fails(recorder, *args, **kwargs):  # as a commit that fails would
            written(recorder, *args, **kwargs)
            raise sqlite3.OperationalError("disk I/O error")

        if not store.is_postgres:
            monkeypatch.setattr(type(app.recorder), "_insert_events", then_fails)
            with pytest.raises(Exception, match="disk I/O"):
                app.recorder.insert_events(  # a leaf folded into the frontier, rolled back
                    [StoredEvent(uuid.uuid4(), 1, stored.topic, b'{"n": 1}')]
                )
            monkeypatch.undo()
        other.recorder.insert_events(  # the same size reached by another leaf
            [StoredEvent(uuid.uuid4(), 1, stored.topic, b'{"n": 2}')]
        )
        act(app, first, "comment", "wang", text="丁")
        leaves = chain_leaves(raw)
        tree = merkle.Tree(StoreDb(app.recorder))
        for size in range(1, len(leaves) + 1):
            assert tree.root(size) == mth(leaves[:size])
        assert stored_nodes(raw) == list(range(merkle.next_key(len(leaves))))
        assert verify_log(app).ok
    finally:
        other.close()


def test_a_store_from_before_the_tree_gets_its_tree_on_open_and_an_edited_tree_is_caught(
    app, raw, store, clock
):
    from engine.service import Fengqiao

    busy_history(app)
    leaves = [bytes.fromhex(row[4]) for row in raw.chain_rows()]
    raw.sql(f"DELETE FROM {raw.merkle}")  # as a store from before the tree has it
    reopened = Fengqiao(store, clock=clock)
    try:
        assert merkle.Tree(StoreDb(reopened.recorder)).root(len(leaves)) == mth(leaves)
        busy_history(reopened)  # and the write path goes on from there
        assert verify_log(reopened).ok
        raw.sql(f"UPDATE {raw.merkle} SET hash = ? WHERE node = ?", (bytes(32), 3))
        result = verify_log(reopened)
        assert not result.ok and result.finding.problem == "tree_broken"
    finally:
        reopened.close()


# -- the tree follows the chain (engine.audit.recorders.catch_up_tree): on PostgreSQL it is
# appended after the events' commit, outside their table lock; every read of the tree, the
# audit worker and verification catch it up first, so a root, a proof or a tree head is
# always of a tree the chain has. Checked with many writers at once, and left behind.

WRITERS = 16


def stored_nodes(raw: RawStore) -> list[int]:
    return [row[0] for row in raw.sql(f"SELECT node FROM {raw.merkle} ORDER BY node")]


def chain_leaves(raw: RawStore) -> list[bytes]:
    return [bytes.fromhex(row[4]) for row in raw.chain_rows()]


def test_on_postgres_the_tree_is_appended_after_the_commit_and_reads_catch_it_up(app, raw):
    busy_history(app)
    leaves = chain_leaves(raw)
    if app.store.is_postgres:  # the locked append wrote the events and the chain only
        assert len(stored_nodes(raw)) < merkle.next_key(len(leaves))
    else:  # SQLite's one writer keeps the tree in the events' transaction
        assert stored_nodes(raw) == list(range(merkle.next_key(len(leaves))))
    head = checkpoint(app)  # signs the chain's head: the tree is caught up to it first
    assert head is not None and head.size == len(leaves)
    assert stored_nodes(raw) == list(range(merkle.next_key(len(leaves))))
    assert app.recorder.catch_up_tree() == 0  # nothing left behind
    case_id = busy_history(app)[0]
    act(app, case_id, "comment", "wang", text="再补充")
    leaves = chain_leaves(raw)
    tree = merkle.Tree(StoreDb(app.recorder))
    assert tree.size() == len(leaves)  # the size is read after catching up
    proof = inclusion(app, raw.chain_rows()[-1][0], len(leaves))
    assert proof["leaf_index"] == len(leaves) - 1
    root = verifier.inclusion_root(
        len(leaves) - 1, len(leaves), leaves[-1], [bytes.fromhex(p) for p in proof["proof"]]
    )
    assert root.hex() == proof["root"]
    assert verify_log(app).ok


def test_a_tree_left_behind_by_a_crash_is_caught_up_by_the_next_process(app, raw, store, clock):
    busy_history(app)
    if app.store.is_postgres:
        # what a kill -9 between the events' commit and the tree's catch-up leaves
        raw.sql(f"DELETE FROM {raw.merkle} WHERE node >= ?", (5,))
    reopened = Fengqiao(store, clock=clock)
    try:
        leaves = chain_leaves(raw)
        assert stored_nodes(raw) == list(range(merkle.next_key(len(leaves))))
        assert verify_log(reopened).ok
    finally:
        reopened.close()


def test_many_writers_and_a_tree_reader_at_once_give_one_chain_tree_and_valid_proofs(
    app, raw, store, clock
):
    """16 writers on two engines (on SQLite both share the one file's lock; on PostgreSQL
    they are two groups committing on one table), while a third thread signs tree heads
    (each catching up the tree) as fast as it can; then the chain verifies, the tree is the
    Merkle tree of the chain, and every proof served checks offline."""
    other = Fengqiao(store, clock=clock)
    engines = [app, other]
    cases = [report(engines[i % 2]).case_id for i in range(WRITERS)]
    stop = threading.Event()
    failures: list[BaseException] = []

    def write(i: int) -> None:
        try:
            for n in range(6):
                act(engines[i % 2], cases[i], "comment", "wang", text=f"{i}-{n}")
        except BaseException as error:  # noqa: BLE001 - reported by the test
            failures.append(error)

    def sign() -> None:
        try:
            while not stop.is_set():
                checkpoint(other)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            failures.append(error)

    signer = threading.Thread(target=sign)
    writers = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
    signer.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    signer.join()
    other.close()
    assert not failures, failures
    result = verify_log(app)
    assert result.ok, result.finding
    assert result.head_position == app.head_position()
    rows = raw.chain_rows()
    assert [row[1] for row in rows] == list(range(1, len(rows) + 1))  # each event once, in order
    assert sorted(row[0] for row in rows) == [row[0] for row in rows]
    last = checkpoint(app)
    assert last is not None and last.size == len(rows)
    leaves = [bytes.fromhex(row[4]) for row in rows]
    assert stored_nodes(raw) == list(range(merkle.next_key(len(leaves))))
    heads = stored_checkpoints(app)
    assert len(heads) >= 2
    for head in heads:  # every head signed while the writers wrote is a root of the chain
        assert head.root == mth(leaves[: head.size]).hex()
    for earlier, later in zip(heads, heads[1:], strict=False):
        proof = consistency(app, earlier.size, later.size)
        verifier.check_consistency(
            earlier.size,
            later.size,
            earlier.root_bytes,
            later.root_bytes,
            [bytes.fromhex(p) for p in proof["proof"]],
        )
    for index in random.Random(7).sample(range(len(rows)), 25):
        proof = inclusion(app, rows[index][0], last.size)
        root = verifier.inclusion_root(
            index, last.size, leaves[index], [bytes.fromhex(p) for p in proof["proof"]]
        )
        assert root == last.root_bytes
