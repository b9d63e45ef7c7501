"""Evidence over HTTP, on both stores: uploaded content-addressed, checked by size and by
content, named by hash in reports and comments (the event carries hash, type and size, so
the audit chain covers them), served only to those who may read the case."""

from __future__ import annotations

import hashlib
from uuid import UUID

from engine.audit.verify import verify_case
from engine.casefile import case_file
from tests.support import png
from tests.test_api_support import DISPUTE, Api

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def upload(api: Api, content: bytes, who: str = "wang", content_type: str = "image/png"):
    return api.client.post(
        "/v1/evidence",
        content=content,
        headers={**api.headers(who), "Content-Type": content_type},
    )


def test_evidence_is_kept_by_hash_named_in_events_and_served_in_scope(api: Api):
    photo, document = png(shade=1), PDF
    first = upload(api, photo)
    assert first.status_code == 201, first.text
    assert first.json() == {
        "sha256": hashlib.sha256(photo).hexdigest(),
        "media_type": "image/png",
        "size": len(photo),
    }
    # the same bytes again, declared as something else: the same row, typed by content
    again = upload(api, photo, who="zhao", content_type="application/octet-stream")
    assert again.status_code == 201 and again.json() == first.json()
    pdf = upload(api, document, who="zhao", content_type="application/pdf").json()
    assert pdf["media_type"] == "application/pdf"

    case = api.report({**DISPUTE, "attachments": [first.json()["sha256"]]})
    case_id = case["id"]
    api.act(
        case_id, "comment", {"text": "协议书扫描件", "attachments": [pdf["sha256"]]}, who="wang"
    )
    events = api.get(f"/v1/cases/{case_id}/history", who="audit").json()
    assert events[0]["data"]["attachments"] == [first.json()]
    assert events[-1]["data"]["attachments"] == [pdf]
    assert verify_case(api.engine, UUID(case_id)).ok  # the chain covers the events naming them
    filed = str(case_file(api.engine, UUID(case_id)))  # the auditors' case file names each file
    assert f"sha256: {first.json()['sha256']}" in filed and f"sha256: {pdf['sha256']}" in filed

    served = api.get(f"/v1/cases/{case_id}/evidence/{first.json()['sha256']}", who="li")
    assert served.status_code == 200 and served.content == photo
    assert served.headers["content-type"] == "image/png"
    assert "sandbox" in served.headers["content-security-policy"]
    got_pdf = api.get(f"/v1/cases/{case_id}/evidence/{pdf['sha256']}", who="wang")
    assert got_pdf.content == document

    # outside the case's region: the same 404 as a missing case
    outside = api.get(f"/v1/cases/{case_id}/evidence/{first.json()['sha256']}", who="xu")
    assert outside.status_code == 404
    assert outside.headers["content-type"] == "application/problem+json"
    # a file kept but not named by this case: 404 too
    stray = upload(api, png(shade=9)).json()["sha256"]
    assert api.get(f"/v1/cases/{case_id}/evidence/{stray}", who="li").status_code == 404


def test_bad_uploads_and_unknown_attachments_are_refused_as_problems(api: Api):
    limit = api.engine.settings.evidence_max_bytes
    too_big = upload(api, png() + b"\x00" * limit)
    assert too_big.status_code == 413
    assert too_big.json()["type"] == "/problems/payload-too-large"
    # a script named a photo is judged by its content
    script = upload(api, b"<script>alert(1)</script>", content_type="image/jpeg")
    assert script.status_code == 415
    assert script.json()["type"] == "/problems/unsupported-media-type"
    assert script.json()["allowed"] == ["image/jpeg", "image/png", "image/webp", "application/pdf"]
    assert upload(api, b"").status_code == 415
    gif = upload(api, b"GIF89a" + b"\x00" * 20, content_type="image/gif")
    assert gif.status_code == 415 and gif.json()["detected"] == "image/gif"
    assert upload(api, png(), who=None).status_code == 401
    assert upload(api, png(), who="audit").status_code == 403  # an auditor writes nothing

    never = hashlib.sha256(b"never uploaded").hexdigest()
    refused = api.post("/v1/cases", {**DISPUTE, "attachments": [never]}, who="wang")
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == "attachments.0"
    case_id = api.report()["id"]
    bad = api.post(f"/v1/cases/{case_id}/comment", {"text": "x", "attachments": ["a.jpg"]}, "wang")
    assert bad.status_code == 422 and bad.json()["field"] == "attachments.0"
    missing = api.post(
        f"/v1/cases/{case_id}/comment", {"text": "x", "attachments": [never]}, "wang"
    )
    assert missing.status_code == 422 and missing.json()["sha256"] == never
    assert api.get(f"/v1/cases/{case_id}", who="li").json()["version"] == 1  # nothing written


def test_old_comment_events_read_back_with_their_references():
    from domain.cases import Case

    state = {"text": "已走访", "attachments": ["photo-1.jpg"]}
    Case.Commented.upcast_v1_v2(state)
    assert state["attachments"] == [{"ref": "photo-1.jpg"}]
    report: dict = {"title": "x"}  # version 1: neither 重复件 nor evidence
    Case.Reported.upcast_v1_v2(report)
    Case.Reported.upcast_v2_v3(report)
    assert report["attachments"] == [] and report["repeat_of"] == []
    # a version 2 of the workbench's branch (before the merge with 重复件): evidence only
    early = {"title": "x", "attachments": [{"sha256": "a" * 64}]}
    Case.Reported.upcast_v2_v3(early)
    assert early["attachments"] == [{"sha256": "a" * 64}] and early["repeat_of"] == []


def test_a_file_altered_in_the_table_is_refused_not_served(api: Api):
    from engine.evidence import TABLE
    from engine.sql import StoreDb

    photo = upload(api, png(shade=7)).json()["sha256"]
    case_id = api.report({**DISPUTE, "attachments": [photo]})["id"]
    db = StoreDb(api.engine.recorder)
    db.execute(f"UPDATE {db.table(TABLE)} SET content = ? WHERE sha256 = ?", (png(shade=8), photo))
    altered = api.get(f"/v1/cases/{case_id}/evidence/{photo}", who="li")
    assert altered.status_code == 500 and altered.json()["code"] == "evidence_altered"
    assert altered.content.find(png(shade=8)) == -1
