"""Each kind's happy path and each refused transition, by stable error code (both stores)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.errors import DomainError
from tests.support import act, photo, report


def refused(app, case_id, action, by, **body) -> str:
    before = app.case(case_id).version
    with pytest.raises(DomainError) as caught:
        act(app, case_id, action, by, **body)
    assert app.case(case_id).version == before, "a refused command must write nothing"
    return caught.value.code


def statuses(app, case_id) -> list[str]:
    return [type(h.event).__name__ for h in app.history(case_id)]


def test_dispute_happy_path(app):
    case_id = report(app, "dispute").case_id
    act(app, case_id, "assign", "li", assignee="wang")
    act(app, case_id, "accept", "wang")
    act(app, case_id, "mediate", "wang", outcome="adjourned", summary="双方情绪激动, 择期再调")
    act(
        app,
        case_id,
        "mediate",
        "wang",
        outcome="agreed",
        summary="达成协议",
        agreement="赔偿 500 元",
    )
    act(app, case_id, "court-confirmation", "wang", note="双方共同申请司法确认")
    act(app, case_id, "resolve", "wang", resolution="调解成功")
    act(app, case_id, "close", "li")
    case = app.case(case_id)
    assert (case.status, case.resolved_rank, case.agreement) == ("closed", 0, "赔偿 500 元")
    assert statuses(app, case_id) == [
        "Reported",
        "Assigned",
        "Accepted",
        "MediationHeld",
        "MediationHeld",
        "CourtConfirmationApplied",
        "Resolved",
        "Closed",
    ]


def test_hazard_happy_path_with_failed_reinspection(app, clock):
    case_id = report(app, "hazard", hazard_level="general").case_id
    act(app, case_id, "assign", "li", assignee="zhao")
    act(app, case_id, "accept", "zhao")
    deadline = (clock.now() + timedelta(days=3)).isoformat()
    act(app, case_id, "order-rectification", "zhao", deadline=deadline, measures="更换老化电线")
    act(app, case_id, "rectify", "zhao", note="已更换")
    act(app, case_id, "reinspect", "zhao", passed=False, note="仍有裸露线头")
    assert refused(app, case_id, "resolve", "zhao", resolution="销号") == "invalid_transition"
    act(app, case_id, "rectify", "zhao", note="已包扎")
    act(app, case_id, "reinspect", "zhao", passed=True, note="复查合格")
    act(app, case_id, "resolve", "zhao", resolution="销号")
    act(app, case_id, "close", "li")
    assert app.case(case_id).status == "closed"


def test_major_hazard_needs_a_rectification_plan(app, clock):
    case_id = report(app, "hazard", "major", hazard_level="major").case_id
    act(app, case_id, "assign", "li", assignee="zhao")
    act(app, case_id, "accept", "zhao")
    deadline = (clock.now() + timedelta(days=10)).isoformat()
    assert (
        refused(app, case_id, "order-rectification", "zhao", deadline=deadline, measures="加固")
        == "validation"
    )
    act(
        app,
        case_id,
        "order-rectification",
        "zhao",
        deadline=deadline,
        measures="加固",
        plan={"funds": "2 万元", "people": "村安全员 2 名", "interim_measures": "设置警戒线"},
    )
    assert app.case(case_id).rectification == "ordered"


def test_petition_happy_path_and_redo_after_dissatisfaction(app):
    case_id = report(app, "petition", "major", channel="hotline_12345").case_id
    act(app, case_id, "assign", "zhou", unit="ht-xfb")
    act(app, case_id, "accept", "sun")
    act(app, case_id, "reply", "sun", text="已联系供水公司")
    act(app, case_id, "resolve", "sun", resolution="恢复供水")
    assert refused(app, case_id, "close", "zhou") == "invalid_transition"  # no return visit yet
    act(app, case_id, "return-visit", "zhou", satisfaction="dissatisfied", note="水压仍低")
    case = app.case(case_id)
    assert (case.status, case.redone, case.replied) == ("in_progress", 1, False)  # 发回重办
    act(app, case_id, "reply", "sun", text="已更换加压泵")
    act(app, case_id, "resolve", "sun", resolution="水压恢复")
    act(app, case_id, "return-visit", "zhou", satisfaction="satisfied")
    act(app, case_id, "close", "zhou")
    assert app.case(case_id).status == "closed"


def test_send_back_returns_the_case_for_dispatch(app):
    case_id = report(app, "petition", "major").case_id
    act(app, case_id, "assign", "zhou", unit="ht-xfb")
    act(app, case_id, "send-back", "sun", reason="不属于本单位职责")
    case = app.case(case_id)
    # 首接负责: the first unit answered for the case until it handed it back, explicitly
    assert (case.status, case.unit, case.responsible_unit) == ("reported", None, None)
    assert refused(app, case_id, "send-back", "sun", reason="again") == "invalid_transition"
    act(app, case_id, "assign", "zhou", unit="ht-zzzx")
    act(
        app, case_id, "assign", "zhou", unit="ht-sfs"
    )  # a later reassignment keeps the first receiver
    assert app.case(case_id).responsible_unit == "ht-zzzx"


def test_common_actions(app):
    case_id = report(app, "dispute").case_id
    act(app, case_id, "assign", "li", assignee="zhao")
    act(app, case_id, "accept", "zhao")
    act(app, case_id, "whistle", "zhao", departments=["派出所", "司法所"], reason="涉及治安")
    act(app, case_id, "check-in", "sun", department="司法所")
    assert refused(app, case_id, "check-in", "sun", department="司法所") == "invalid_transition"
    assert refused(app, case_id, "check-in", "sun", department="消防") == "invalid_transition"
    act(app, case_id, "suspend", "li", reason="当事人外出务工")
    assert refused(app, case_id, "suspend", "li", reason="again") == "invalid_transition"
    assert (
        refused(app, case_id, "mediate", "zhao", outcome="agreed", summary="x", agreement="y")
        == "invalid_transition"
    )
    act(app, case_id, "resume", "li")
    assert refused(app, case_id, "resume", "li") == "invalid_transition"
    act(app, case_id, "extend", "li", days=5, reason="当事人返乡后再调")
    act(app, case_id, "comment", "wang", text="已走访", attachments=[photo(app)])
    act(app, case_id, "supervise", "zhou", note="请加快办理")
    case = app.case(case_id)
    assert case.whistled["司法所"] is not None and case.whistled["派出所"] is None
    assert case.extensions == [{"clock": "mediation", "days": 5, "due_at": None}]
    assert case.supervisions == 1 and not case.suspended


@pytest.mark.parametrize(
    ("action", "body", "code"),
    [
        ("accept", {}, "invalid_transition"),  # not assigned yet
        ("resolve", {"resolution": "x"}, "invalid_transition"),
        ("close", {}, "invalid_transition"),
        ("reopen", {"reason": "x"}, "invalid_transition"),
        ("rectify", {"note": "x"}, "invalid_transition"),  # not a hazard
        ("reply", {"text": "x"}, "invalid_transition"),  # not a petition
        ("resume", {}, "invalid_transition"),
        ("escalate", {"reason": "x", "to": "grid"}, "invalid_transition"),  # not upwards
        ("escalate", {"reason": "x", "to": "county"}, "escalation_ceiling"),
        ("reclassify", {"severity": "minor", "reason": "x"}, "invalid_transition"),  # unchanged
        ("assign", {"assignee": "nobody"}, "not_found"),
        ("assign", {}, "validation"),
        ("mediate", {"outcome": "agreed", "summary": "x"}, "invalid_transition"),  # not accepted
    ],
)
def test_refused_transitions_on_a_new_dispute(app, action, body, code):
    case_id = report(app, "dispute").case_id
    assert refused(app, case_id, action, "li", **body) == code


def test_agreement_needs_its_text_and_resolution_needs_a_concluded_mediation(app):
    case_id = report(app, "dispute").case_id
    act(app, case_id, "assign", "li", assignee="wang")
    act(app, case_id, "accept", "wang")
    assert refused(app, case_id, "mediate", "wang", outcome="agreed", summary="x") == "validation"
    assert refused(app, case_id, "resolve", "wang", resolution="x") == "invalid_transition"
    act(
        app,
        case_id,
        "mediate",
        "wang",
        outcome="failed",
        summary="一方明确拒绝调解, 已告知仲裁、诉讼途径",
    )
    act(app, case_id, "resolve", "wang", resolution="告知其他途径")
    act(app, case_id, "reopen", "li", reason="当事人要求再次调解")
    assert app.case(case_id).status == "in_progress"


def test_unknown_case_and_wrong_kind_of_id(app):
    from uuid import uuid4

    from domain.ladder import LADDER_ID
    from tests.support import envelope

    for case_id in (uuid4(), LADDER_ID):
        with pytest.raises(DomainError) as caught:
            app.do(case_id, "accept", {}, envelope("li", app))
        assert caught.value.code == "not_found"


def test_occurred_at_may_be_earlier_but_not_in_the_future(app, clock):
    from tests.support import envelope

    case_id = report(app, "dispute").case_id
    clock.advance(timedelta(hours=7))
    earlier = clock.now() - timedelta(
        hours=6
    )  # an offline grid worker syncs later (never before the report)
    app.do(case_id, "comment", {"text": "离线记录"}, envelope("wang", app, occurred_at=earlier))
    event = app.history(case_id)[-1].event
    assert event.occurred_at == earlier and event.timestamp == clock.now()
    with pytest.raises(DomainError) as caught:
        app.do(
            case_id,
            "comment",
            {"text": "x"},
            envelope("wang", app, occurred_at=clock.now() + timedelta(hours=1)),
        )
    assert caught.value.code == "validation"


def test_every_event_records_actor_times_command_and_policy_version(app):
    case_id = report(app, "dispute").case_id
    act(app, case_id, "assign", "li", assignee="zhao")
    for recorded in app.history(case_id):
        event = recorded.event
        assert event.actor.id and event.actor.role and event.command_id
        assert event.occurred_at.tzinfo and event.timestamp.tzinfo
        assert event.policy_version == 1
        assert recorded.position is not None
    assigned = app.history(case_id)[1].event
    assert (assigned.actor.id, assigned.actor.role, assigned.actor.unit) == (
        "li",
        "supervisor",
        "wz-cwh",
    )
