"""Case bundles and proofs an outsider checks offline (issue 23), on both stores."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine import privacy
from engine.audit import proofs
from engine.audit.bundle import case_bundle
from engine.audit.checkpoints import checkpoint, sign
from engine.audit.verifier import Invalid, check_consistency, inclusion_root, jcs, verify_bundle
from engine.audit.verify import verify_against
from engine.casefile import case_file
from tests.audit_support import ZHANG_SAN, RawStore, busy_history
from tests.integration.test_audit import recompute_chain
from tests.support import act, report


@pytest.fixture(autouse=True)
def signing_key(tmp_path, monkeypatch):
    monkeypatch.setenv("FENGQIAO_SIGNING_KEY", str(tmp_path / "signing-key.pem"))


def edited(bundle: bytes, change) -> bytes:
    data = json.loads(bundle)
    change(data)
    return jcs(data)


def failure(data: bytes, key_id: str | None = None) -> str:
    with pytest.raises(Invalid) as caught:
        verify_bundle(data, key_id)
    return str(caught.value)


def test_every_single_byte_change_to_a_bundle_fails_verification(app):
    busy_history(app)
    case_id = report(app, "petition").case_id  # a small bundle: one event, a 5-hash proof
    bundle = case_bundle(app, case_id)
    summary = verify_bundle(bundle)
    assert summary["case"] == str(case_id) and summary["events"] == 1
    messages = set()
    for at in range(len(bundle)):
        changed = bytearray(bundle)
        changed[at] ^= 0x01
        messages.add(failure(bytes(changed)).split(":")[0])
    assert len(messages) > 5  # the messages say what was wrong, not one blanket refusal


def test_dropped_reordered_or_altered_events_and_forged_tree_heads_are_named(app):
    busy_history(app)
    case_id = report(app, "dispute").case_id
    for text in ("一", "二", "三"):
        act(app, case_id, "comment", "wang", text=text)
    bundle = case_bundle(app, case_id)
    key_id = verify_bundle(bundle)["key_id"]
    for dropped in range(4):
        message = failure(edited(bundle, lambda d, i=dropped: d["events"].pop(i)))
        assert "dropped" in message
    swapped = edited(bundle, lambda d: d["events"].insert(1, d["events"].pop(2)))
    assert "event 2 (version 3" in failure(swapped) and "reordered" in failure(swapped)

    def alter(d):
        d["events"][2]["state"] = base64.b64encode(
            base64.b64decode(d["events"][2]["state"]) + b" "
        ).decode()

    assert "event 3 (version 3" in failure(edited(bundle, alter)) and "altered" in failure(
        edited(bundle, alter)
    )

    def forge_root(d):  # the real key's name and id, another root: the signature fails
        text, _, signature = d["tree_head"].rpartition("\n\n")
        lines = text.split("\n")
        lines[2] = base64.b64encode(bytes(32)).decode()
        d["tree_head"] = "\n".join(lines) + "\n\n" + signature

    assert "forged" in failure(edited(bundle, forge_root))
    head = checkpoint(app)
    forger = Ed25519PrivateKey.generate()
    fake = sign(forger, head.origin, head.size, head.position, bytes(32), app.clock.now())

    def own_key(d):  # a tree head of the forger's own, with their key in the bundle
        d["tree_head"], d["public_key"] = fake.note, fake.public_key

    assert "not signed by the bundle's key" not in failure(edited(bundle, own_key))
    assert f"not by the expected {key_id}" in failure(edited(bundle, own_key), key_id)


def test_proofs_check_against_signed_tree_heads_and_a_rewritten_history_does_not(app):
    cases = busy_history(app)
    old = checkpoint(app)
    act(app, cases[1], "comment", "wang", text="补充材料")
    new = checkpoint(app)
    position = app.positions_of(cases[0])[2]
    proof = proofs.inclusion(app, position, new.size)
    assert proof["tree_head"]["note"] == new.note and proof["root"] == new.root
    root = inclusion_root(
        proof["leaf_index"],
        new.size,
        bytes.fromhex(proof["leaf_hash"]),
        [bytes.fromhex(p) for p in proof["proof"]],
    )
    assert root == new.root_bytes
    consistency = proofs.consistency(app, old.size, new.size)
    check_consistency(
        old.size,
        new.size,
        old.root_bytes,
        new.root_bytes,
        [bytes.fromhex(p) for p in consistency["proof"]],
    )
    assert verify_against(app, old).ok

    raw = RawStore(app)
    try:  # an event before the old head changed, and everything after it recomputed
        victim, *_, state = raw.events_rows()[2]
        raw.sql(
            f"UPDATE {raw.events} SET state = ? WHERE {raw.pos} = ?", (bytes(state) + b" ", victim)
        )
        recompute_chain(raw)
        raw.sql(f"DELETE FROM {raw.checkpoints}")
    finally:
        raw.close()
    act(app, cases[2], "comment", "wang", text="之后")
    result = verify_against(app, old)
    assert not result.ok and result.finding.problem == "not_extended"
    assert "does not extend the older tree head" in result.finding.message
    forged = type(old)(**{**old.as_dict(), "size": old.size - 1})
    assert verify_against(app, forged).finding.problem == "bad_signature"


def test_erasure_keeps_every_proof_valid(app):
    case_id = report(app, "dispute", parties=[ZHANG_SAN]).case_id
    act(app, case_id, "comment", "wang", text="已上门")
    before = case_bundle(app, case_id)
    head = checkpoint(app)
    privacy.erase(app, privacy.find_person(app, id_number="41092819800101127X"), by="admin")
    after = case_bundle(app, case_id)
    assert verify_bundle(before)["events"] == verify_bundle(after)["events"] == 2
    assert json.loads(before)["manifest"]["leaves"] == json.loads(after)["manifest"]["leaves"]
    assert [e["state"] for e in json.loads(before)["events"]] == [
        e["state"] for e in json.loads(after)["events"]
    ]
    assert verify_against(app, head).ok
    assert "[erased]" in json.dumps(case_file(app, case_id)["parties"], ensure_ascii=False)
