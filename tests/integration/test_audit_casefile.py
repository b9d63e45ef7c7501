"""The printable case file: timeline, clocks, parties as the reader may see them, hashes, verification."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine import privacy
from engine.audit.checkpoints import checkpoint
from engine.casefile import case_file, render_case_file
from tests.audit_support import RawStore
from tests.support import ZHANG_SAN, act, report

ZHANG = ZHANG_SAN


@pytest.fixture(autouse=True)
def signing_key(tmp_path, monkeypatch):
    monkeypatch.setenv("FENGQIAO_SIGNING_KEY", str(tmp_path / "signing-key.pem"))


def mediated_case(app, clock):
    case_id = report(app, parties=[ZHANG]).case_id
    act(app, case_id, "assign", "li", assignee="zhao")
    clock.advance(timedelta(minutes=30))
    act(app, case_id, "accept", "zhao")
    act(app, case_id, "mediate", "zhao", outcome="adjourned", summary="双方情绪激动, 择期再调")
    return case_id


def test_the_case_file_shows_the_whole_timeline_clocks_and_a_clean_verification(app, clock):
    case_id = mediated_case(app, clock)
    signed = checkpoint(app)
    data = case_file(app, case_id)
    assert [e["label"] for e in data["timeline"]] == ["上报", "派单", "签收", "调解"]
    assert (
        data["timeline"][1]["unit_name"] == "王庄村委会"
        and data["timeline"][2]["unit_name"] == "王庄村调解委员会"
    )
    assert all(e["entry_hash"] and e["case_hash"] for e in data["timeline"])
    assert data["verification"]["ok"] and data["checkpoint"]["root"] == signed.root
    assert data["clocks"] and data["clocks"][0]["state_label"]
    html = render_case_file(data)
    for text in (
        "案 件 卷 宗",
        "张三",
        "41092819800101127X",
        "双方情绪激动",
        "规则第1版",
        "办理时限",
        "通过",
        data["timeline"][-1]["case_hash"],
        "2026-09-28 09:00:00",
    ):
        assert text in html, text


def test_integrators_get_masked_parties_and_erased_people_read_erased(app, clock):
    case_id = mediated_case(app, clock)
    html = render_case_file(case_file(app, case_id, role="integrator"))
    assert "张三" not in html and "张*" in html and "410928********127X" in html
    privacy.erase(app, privacy.find_person(app, id_number=ZHANG["id_number"]), "cli:admin")
    data = case_file(app, case_id)
    assert data["parties"][0]["name"] == privacy.ERASED and data["verification"]["ok"]


def test_a_tampered_case_file_says_so(app, clock):
    case_id = mediated_case(app, clock)
    position = app.positions_of(case_id)[3]
    raw = RawStore(app)
    try:
        state = raw.sql(f"SELECT state FROM {raw.events} WHERE {raw.pos} = ?", (position,))[0][0]
        raw.sql(
            f"UPDATE {raw.events} SET state = ? WHERE {raw.pos} = ?",
            (bytes(state) + b" ", position),
        )
    finally:
        raw.close()
    html = render_case_file(case_file(app, case_id))
    assert "未通过" in html and f"位置 {position}" in html
