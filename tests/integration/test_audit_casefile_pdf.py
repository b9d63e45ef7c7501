"""The PDF case file: CJK font embedded, page numbers, the tree head and every leaf hash
printed as a bundle made at the same moment has them; on both stores."""

from __future__ import annotations

import json
import re
import zlib

import pytest

from engine.audit.bundle import case_bundle
from engine.audit.verifier import verify_bundle
from engine.casefile import case_file_pdf
from tests.audit_support import ZHANG_SAN
from tests.support import act, report


@pytest.fixture(autouse=True)
def signing_key(tmp_path, monkeypatch):
    monkeypatch.setenv("FENGQIAO_SIGNING_KEY", str(tmp_path / "signing-key.pem"))


def page_texts(pdf: bytes) -> str:
    """The PDF's content streams, inflated (the hashes are in a standard font: plain text)."""
    streams = re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S)
    out = []
    for stream in streams:
        try:
            out.append(zlib.decompress(stream).decode("latin-1"))
        except zlib.error:
            continue
    return "\n".join(out)


def test_the_pdf_embeds_a_cjk_font_numbers_its_pages_and_prints_what_a_bundle_proves(app):
    case_id = report(app, "dispute", parties=[ZHANG_SAN]).case_id
    for n in range(13):  # more than one page
        act(app, case_id, "comment", "wang", text=f"第{n}次回访：邻里停车纠纷，双方继续协商。")
    pdf, data = case_file_pdf(app, case_id)
    assert pdf.startswith(b"%PDF-")
    assert re.search(rb"/FontFile2 \d+ 0 R", pdf) and re.search(rb"/BaseFont /[A-Z]{6}\+\w+", pdf)
    pages = len(re.findall(rb"/Type /Page\b", pdf))
    assert pages >= 2
    text = page_texts(pdf)
    bundle = json.loads(case_bundle(app, case_id))  # made now: the same tree head
    assert verify_bundle(case_bundle(app, case_id))["events"] == 14 == len(data["timeline"])
    head = data["checkpoint"]
    assert bundle["tree_head"] == head["note"] and f"Merkle root {head['root']}" in text
    for event, leaf in zip(bundle["events"], bundle["manifest"]["leaves"], strict=True):
        assert f"leaf {event['leaf_index']}  {leaf}" in text
    for page in range(1, pages + 1):
        assert f"page {page} / {pages}" in text
