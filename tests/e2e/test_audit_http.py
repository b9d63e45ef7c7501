"""The auditors' HTTP routes, on both stores."""

from __future__ import annotations

import uuid

import pytest

from engine.audit.checkpoints import Checkpoint
from engine.audit.verifier import check_consistency, inclusion_root, verify_bundle
from tests.audit_support import RawStore
from tests.test_api_support import DISPUTE, XUZHEN_GRID, Api


@pytest.fixture(autouse=True)
def signing_key(tmp_path, monkeypatch):
    monkeypatch.setenv("FENGQIAO_SIGNING_KEY", str(tmp_path / "signing-key.pem"))


def test_verify_checkpoint_and_case_file_over_http(api: Api):
    cid = api.report(DISPUTE, who="wang")["id"]
    api.act(cid, "assign", {"assignee": "zhao"}, who="li")

    verified = api.get("/v1/audit/verify", who="audit")
    assert verified.status_code == 200 and verified.json()["ok"]
    assert api.get(f"/v1/audit/verify?case={cid}", who="audit").json()["entries"] == 2
    assert api.get("/v1/audit/verify", who="wang").status_code == 403
    assert api.get("/v1/audit/verify", who=None).status_code == 401

    assert api.get("/v1/audit/checkpoints/latest", who="audit").status_code == 404
    assert api.post("/v1/audit/checkpoints", who="audit").status_code == 403
    signed = api.post("/v1/audit/checkpoints", who="root")
    assert signed.status_code == 201
    latest = api.get("/v1/audit/checkpoints/latest", who="audit").json()
    assert Checkpoint.from_dict(latest).signature_valid() and latest == signed.json()

    page = api.get(f"/v1/cases/{cid}/file", who="audit")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "案 件 卷 宗" in page.text and "张三" in page.text and "通过" in page.text
    masked = api.get(f"/v1/cases/{cid}/file", who="feed")
    assert masked.status_code == 200 and "张三" not in masked.text and "张*" in masked.text
    assert api.get(f"/v1/cases/{cid}/file", who="xu").status_code == 404  # out of region

    raw = RawStore(api.engine)
    try:
        position = api.engine.positions_of(__import__("uuid").UUID(cid))[2]
        raw.sql(f"UPDATE {raw.events} SET state = ? WHERE {raw.pos} = ?", (b"{}", position))
    finally:
        raw.close()
    failed = api.get("/v1/audit/verify", who="audit")
    assert failed.status_code == 409
    assert (failed.json()["finding"]["problem"], failed.json()["finding"]["position"]) == (
        "altered",
        position,
    )


def test_proofs_and_the_case_bundle_over_http_scoped_with_problems_out_of_range(api: Api):
    cid = api.report(DISPUTE, who="wang")["id"]
    api.act(cid, "assign", {"assignee": "zhao"}, who="li")
    away = api.report({**DISPUTE, "region": XUZHEN_GRID}, who="boss")["id"]
    assert (
        api.get("/v1/audit/proofs/inclusion?position=1", who="audit").status_code == 404
    )  # no head yet
    head = api.post("/v1/audit/checkpoints", who="root").json()
    position = api.engine.positions_of(uuid.UUID(cid))[2]
    got = api.get(
        f"/v1/audit/proofs/inclusion?position={position}&tree_size={head['size']}", who="audit"
    )
    assert got.status_code == 200
    proof = got.json()
    assert proof["tree_head"]["note"] == head["note"] and proof["case"] == cid
    assert inclusion_root(
        proof["leaf_index"],
        head["size"],
        bytes.fromhex(proof["leaf_hash"]),
        [bytes.fromhex(p) for p in proof["proof"]],
    ) == bytes.fromhex(head["root"])
    assert api.get(f"/v1/audit/proofs/inclusion?position={position}", who="wang").status_code == 403
    away_position = api.engine.positions_of(uuid.UUID(away))[1]
    assert (
        api.get(f"/v1/audit/proofs/inclusion?position={away_position}", who="audit").status_code
        == 404
    )
    assert (
        api.get(f"/v1/audit/proofs/inclusion?position={away_position}", who="boss").status_code
        == 200
    )
    for query in (
        f"position={position}&tree_size={head['size'] + 1}",
        f"position={position}&tree_size=1",
        "position=0",
    ):
        bad = api.get(f"/v1/audit/proofs/inclusion?{query}", who="audit")
        assert (
            bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
        ), query

    consistency = api.get(
        f"/v1/audit/proofs/consistency?from=2&to={head['size']}", who="audit"
    ).json()
    check_consistency(
        2,
        head["size"],
        bytes.fromhex(consistency["from_root"]),
        bytes.fromhex(head["root"]),
        [bytes.fromhex(p) for p in consistency["proof"]],
    )
    for query in (f"from={head['size'] + 1}", f"from=1&to={head['size'] + 5}", "from=0"):
        bad = api.get(f"/v1/audit/proofs/consistency?{query}", who="audit")
        assert (
            bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
        ), query

    pdf = api.get(f"/v1/cases/{cid}/file.pdf", who="audit")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert (
        pdf.content.startswith(b"%PDF-")
        and api.get(f"/v1/cases/{away}/file.pdf", who="audit").status_code == 404
    )
    bundle = api.get(f"/v1/cases/{cid}/bundle", who="audit")
    assert bundle.status_code == 200 and verify_bundle(bundle.content)["events"] == 2
    assert api.get(f"/v1/cases/{away}/bundle", who="audit").status_code == 404
    assert api.get(f"/v1/cases/{cid}/bundle", who="wang").status_code == 403
