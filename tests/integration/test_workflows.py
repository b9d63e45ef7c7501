"""Routing (派单) on both stores: responsible unit, 兜底 within the ceiling, 退单, 首接负责, 逐级上报."""

from __future__ import annotations

import pytest

from tests.support import act, report
from workflows.routing import Router


@pytest.fixture
def router(app):
    service = Router(app)
    yield service
    service.close()


def system_events(app, case_id, kind: str) -> list:
    return [
        r.event for r in app.history(case_id) if r.type == kind and r.event.actor.role == "system"
    ]


def test_a_new_case_goes_to_the_nearest_responsible_unit_within_its_ceiling(app, router):
    case_id = report(app, "dispute", "minor").case_id  # at a grid, which has no units
    assert router.run_once() >= 1
    case = app.case(case_id)
    assert (case.unit, case.rank, case.status) == ("wz-tjh", 1, "assigned")  # 王庄村调解委员会
    assert case.responsible_unit == "wz-tjh" and case.escalations == 0  # dispatch, not escalation


def test_no_unit_up_to_the_ceiling_raises_a_supervision_and_never_leaves_the_ceiling(app, router):
    case_id = report(
        app, "hazard", "minor", region="410928-009-001-01", by="chen"
    ).case_id  # urban: grid
    router.run_once()
    case = app.case(case_id)
    assert (case.status, case.rank, case.unit) == ("reported", 0, None)
    [notice] = system_events(app, case_id, "Supervised")
    assert notice.note.startswith("兜底") and "幸福社区一号楼" in notice.note


def test_a_send_back_is_re_dispatched_elsewhere_and_the_next_unit_becomes_responsible(app, router):
    major = report(app, "dispute", "major").case_id
    router.run_once()
    assert app.case(major).responsible_unit == "wz-tjh"
    act(app, major, "send-back", "zhao", reason="涉及土地承包，非调委会职责")
    router.run_once()
    case = app.case(major)
    # 首接负责 ended with the explicit hand-back: the unit dispatched next answers for the case
    assert (case.unit, case.rank, case.responsible_unit) == ("ht-sfs", 2, "ht-sfs")
    minor = report(app, "dispute", "minor").case_id
    router.run_once()
    act(app, minor, "send-back", "zhao", reason="非本单位职责")
    router.run_once()
    case = app.case(minor)
    assert (case.status, case.unit) == ("reported", None)  # the township is above a minor ceiling
    assert "王庄村" in system_events(app, minor, "Supervised")[0].note


def test_the_first_unit_stays_responsible_when_the_case_moves_on(app, router):
    case_id = report(app, "dispute", "major").case_id
    router.run_once()
    act(app, case_id, "assign", "zhou", unit="ht-zzzx")
    assert app.case(case_id).responsible_unit == "wz-tjh"


def test_critical_cases_are_reported_up_every_rank_at_once(app, router):
    case_id = report(app, "hazard", "critical", hazard_level="major").case_id
    router.run_once()
    assert app.case(case_id).unit == "wz-cwh"
    notes = [e.text.split(":")[0] for e in system_events(app, case_id, "Commented")]
    assert notes == [
        "逐级上报 → 王庄村 (village)",
        "逐级上报 → 海通乡 (township)",
        "逐级上报 → 濮阳县 (county)",
    ]


def test_a_village_without_units_sends_a_major_case_to_the_township(app, router):
    case_id = report(
        app, "dispute", "major", region="410928-002-001-01"
    ).case_id  # 徐镇村: no units
    router.run_once()
    assert (app.case(case_id).unit, app.case(case_id).rank) == ("xz-zzzx", 2)


def test_reading_the_log_again_records_nothing_twice(app, router):
    ids = [report(app, "dispute", "minor").case_id, report(app, "hazard", "critical").case_id]
    router.run_once()
    head = app.head_position()
    with router.db.transaction() as tx:  # as if the position had never been saved
        tx.execute("DELETE FROM workflow_positions")
    assert router.run_once() >= 2
    assert app.head_position() == head
    assert all(app.case(i).status == "assigned" for i in ids)
