"""The auditors' HTTP routes, on both stores."""

from __future__ import annotations

import pytest

from engine.audit.checkpoints import Checkpoint
from tests.audit_support import RawStore
from tests.test_api_support import DISPUTE, Api


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
