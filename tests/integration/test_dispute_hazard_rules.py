"""Issue 17, items 2, 6, 9 and 10: how a dispute ends (settled or referred), the
People's Mediation Law on agreements and court confirmation, hazard level against
severity, and the sign-off clock (both stores)."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from domain.errors import DomainError
from engine.case_clocks import clocks_of
from engine.service import Fengqiao
from tests.support import act, report
from tests.test_api_support import DISPUTE, HAZARD, Api
from workflows.timers import TimerService

ROUTES = ["arbitration", "administrative", "court"]


def refused(app, case_id, action, by, **body) -> DomainError:
    before = app.case(case_id).version
    with pytest.raises(DomainError) as caught:
        act(app, case_id, action, by, **body)
    assert app.case(case_id).version == before, "a refused command must write nothing"
    return caught.value


def accepted_dispute(app):
    case_id = report(app, "dispute").case_id
    act(app, case_id, "assign", "li", assignee="zhao")
    act(app, case_id, "accept", "zhao")
    return case_id


def last(app, case_id, type_name: str):
    return [h.event for h in app.history(case_id) if type(h.event).__name__ == type_name][-1]


# -- item 2: a failed or refused mediation ends the case referred, not 化解 --------------------


def test_a_resolve_after_a_failed_mediation_ends_the_dispute_referred(app):
    case_id = accepted_dispute(app)
    act(
        app,
        case_id,
        "mediate",
        "zhao",
        outcome="failed",
        summary="分歧较大",
        routes=["arbitration", "court"],
    )
    assert last(app, case_id, "MediationHeld").routes == ["arbitration", "court"]
    act(app, case_id, "resolve", "zhao", resolution="告知其他途径")
    assert last(app, case_id, "Resolved").referred is True


def test_a_failed_mediation_records_the_three_routes_by_default(app):
    case_id = accepted_dispute(app)
    act(app, case_id, "mediate", "zhao", outcome="failed", summary="调解不成")
    assert last(app, case_id, "MediationHeld").routes == ROUTES
    assert (
        refused(
            app, case_id, "mediate", "zhao", outcome="adjourned", summary="x", routes=["court"]
        ).details["field"]
        == "routes"
    )


def test_a_partys_refusal_is_its_own_outcome_and_ends_the_dispute_referred(app):
    case_id = accepted_dispute(app)
    act(app, case_id, "refuse-mediation", "zhao", party="respondent", reason="被申请人明确拒绝调解")
    refusal = last(app, case_id, "MediationRefused")
    assert (refusal.party, refusal.routes) == ("respondent", ROUTES)
    case = app.case(case_id)
    assert case.mediations == [] and case.status == "in_progress"  # no made-up session
    act(app, case_id, "resolve", "zhao", resolution="告知仲裁、行政、诉讼途径")
    assert last(app, case_id, "Resolved").referred is True


def test_a_settled_dispute_and_other_kinds_are_not_referred(app, clock):
    case_id = accepted_dispute(app)
    act(app, case_id, "mediate", "zhao", outcome="failed", summary="村级调解不成")
    act(
        app,
        case_id,
        "mediate",
        "zhao",
        outcome="agreed",
        summary="再次调解",
        agreement="赔偿 500 元",
    )
    act(app, case_id, "resolve", "zhao", resolution="调解成功")
    assert last(app, case_id, "Resolved").referred is False

    petition = report(app, "petition", "major").case_id
    act(app, petition, "assign", "zhou", unit="ht-xfb")
    act(app, petition, "accept", "sun")
    act(app, petition, "reply", "sun", text="已处理")
    act(app, petition, "resolve", "sun", resolution="已办结")
    assert last(app, petition, "Resolved").referred is False


V2_FIELDS = {
    "Dispute.Resolved": ("referred",),
    "Dispute.MediationHeld": ("form", "routes", "effective", "confirm_by"),
}


def copy_as_v1(app, case_id):
    """A copy of the case's stored events under a new id, its v2 events as version 1 stored them."""
    transcoder, copy_id = app.mapper.transcoder, uuid4()
    copies = []
    for stored in app.recorder.select_events(case_id):
        state, qualname = stored.state, stored.topic.partition(":")[2]
        if qualname in V2_FIELDS:
            old = transcoder.decode(state)
            assert old.pop("class_version") == 2
            for name in V2_FIELDS[qualname]:
                old.pop(name)
            state = transcoder.encode(old)
        copies.append(StoredEvent(copy_id, stored.originator_version, stored.topic, state))
    app.recorder.insert_events(copies)
    return copy_id


def test_a_stored_v1_resolved_event_reads_back_as_not_referred(app, store, clock):
    """Old Resolved events lack ``referred``: the upcaster reads them as False."""
    case_id = accepted_dispute(app)
    act(app, case_id, "mediate", "zhao", outcome="failed", summary="调解不成")
    act(app, case_id, "resolve", "zhao", resolution="告知其他途径")
    assert last(app, case_id, "Resolved").referred is True
    copy_id = copy_as_v1(app, case_id)
    reader = Fengqiao(store, clock=clock)
    try:
        resolved = [
            h.event for h in reader.history(copy_id) if type(h.event).__name__ == "Resolved"
        ][-1]
        assert resolved.referred is False and resolved.resolution == "告知其他途径"
        held = [
            h.event for h in reader.history(copy_id) if type(h.event).__name__ == "MediationHeld"
        ][-1]
        assert (held.routes, held.form, held.effective) == ([], None, False)
        assert reader.case(copy_id).status == "resolved"
    finally:
        reader.close()


def test_a_stored_v1_agreement_reads_back_effective_with_its_window(app, store, clock):
    case_id = accepted_dispute(app)
    act(app, case_id, "mediate", "zhao", outcome="agreed", summary="达成协议", agreement="赔偿")
    copy_id = copy_as_v1(app, case_id)
    reader = Fengqiao(store, clock=clock)
    try:
        held = [
            h.event for h in reader.history(copy_id) if type(h.event).__name__ == "MediationHeld"
        ][-1]
        assert (held.form, held.effective, held.confirm_by) == (None, True, None)
        case = reader.case(copy_id)
        assert case.confirm_by == held.occurred_at + timedelta(days=30)
    finally:
        reader.close()


# -- item 10: written or oral agreements, court confirmation within 30 days ---------------------


def test_a_written_agreement_takes_effect_when_signed_and_sealed(app, clock):
    case_id = accepted_dispute(app)
    act(
        app,
        case_id,
        "mediate",
        "zhao",
        outcome="agreed",
        summary="达成协议",
        agreement="赔偿 500 元",
        form="written",
    )
    assert last(app, case_id, "MediationHeld").effective is False
    assert (
        refused(app, case_id, "court-confirmation", "zhao", note="x").code == "invalid_transition"
    )
    assert refused(app, case_id, "resolve", "zhao", resolution="x").code == "invalid_transition"
    assert "court_confirmation" not in {c.name for c in clocks_of(app, case_id)}
    act(app, case_id, "seal-agreement", "zhao")
    assert last(app, case_id, "AgreementSealed").committee == "wz-tjh"
    assert refused(app, case_id, "seal-agreement", "zhao").code == "invalid_transition"
    clock.advance(timedelta(days=2))
    act(app, case_id, "sign-agreement", "zhao")
    signed = last(app, case_id, "AgreementSigned")
    assert signed.effective is True and signed.confirm_by == signed.occurred_at + timedelta(days=30)
    case = app.case(case_id)
    assert (case.effective_at, case.confirm_by) == (signed.occurred_at, signed.confirm_by)
    window = {c.name: c for c in clocks_of(app, case_id)}["court_confirmation"]
    assert (window.started_at, window.due_at) == (signed.occurred_at, signed.confirm_by)
    act(app, case_id, "resolve", "zhao", resolution="调解成功")
    assert last(app, case_id, "Resolved").referred is False


def test_an_oral_agreement_is_effective_at_once_and_cannot_be_signed(app):
    case_id = accepted_dispute(app)
    act(
        app,
        case_id,
        "mediate",
        "zhao",
        outcome="agreed",
        summary="当面说开",
        agreement="互相道歉",
        form="oral",
    )
    held = last(app, case_id, "MediationHeld")
    assert (held.form, held.effective, held.confirm_by) == (
        "oral",
        True,
        held.occurred_at + timedelta(days=30),
    )
    assert refused(app, case_id, "sign-agreement", "zhao").code == "invalid_transition"
    assert (
        refused(app, case_id, "mediate", "zhao", outcome="failed", summary="x", form="oral").code
        == "invalid_transition"
    )  # already agreed


def test_court_confirmation_after_30_days_is_refused_naming_the_window(app, clock):
    case_id = accepted_dispute(app)
    act(
        app, case_id, "mediate", "zhao", outcome="agreed", summary="达成协议", agreement="赔偿"
    )  # oral
    clock.advance(timedelta(days=30, minutes=1))
    error = refused(app, case_id, "court-confirmation", "zhao", note="双方共同申请")
    assert error.code == "invalid_transition"
    assert (error.details["clock"], error.details["window"]) == ("court_confirmation", "30d")


def test_court_confirmation_within_30_days_is_recorded(app, clock):
    case_id = accepted_dispute(app)
    act(
        app, case_id, "mediate", "zhao", outcome="agreed", summary="达成协议", agreement="赔偿"
    )  # oral
    clock.advance(timedelta(days=29, hours=23))
    act(app, case_id, "court-confirmation", "zhao", note="双方共同申请")
    states = {c.name: str(c.state) for c in clocks_of(app, case_id)}
    assert states["court_confirmation"] == "met"


def test_the_court_confirmation_clock_is_cancelled_when_the_case_closes(app, clock):
    case_id = accepted_dispute(app)
    act(
        app, case_id, "mediate", "zhao", outcome="agreed", summary="达成协议", agreement="赔偿"
    )  # oral
    act(app, case_id, "resolve", "zhao", resolution="调解成功")
    act(app, case_id, "close", "li")
    timers = TimerService(app)
    try:
        timers.run_until(clock, clock.now() + timedelta(days=40))
    finally:
        timers.close()
    fired = [
        h.event.clock
        for h in app.history(case_id)
        if type(h.event).__name__ in ("ClockWarned", "ClockBreached")
    ]
    assert "court_confirmation" not in fired
    assert {c.name: str(c.state) for c in clocks_of(app, case_id)}[
        "court_confirmation"
    ] == "cancelled"


# -- item 6: hazard level and severity ------------------------------------------------------------


@pytest.mark.parametrize(("severity", "level"), [("minor", "major"), ("critical", "general")])
def test_hazard_level_must_match_severity(app, severity, level):
    with pytest.raises(DomainError) as caught:
        report(app, "hazard", severity, hazard_level=level)
    assert (caught.value.code, caught.value.details["field"]) == ("validation", "hazard_level")


def test_a_critical_hazard_is_major_and_needs_its_plan(app, clock):
    case_id = report(app, "hazard", "critical").case_id
    assert app.case(case_id).details["hazard_level"] == "major"
    act(app, case_id, "assign", "li", assignee="zhao")
    act(app, case_id, "accept", "zhao")
    deadline = (clock.now() + timedelta(hours=12)).isoformat()
    error = refused(app, case_id, "order-rectification", "zhao", deadline=deadline, measures="断电")
    assert error.details["field"].startswith("plan.")


def test_a_major_hazard_is_not_reclassified_minor(app):
    case_id = report(app, "hazard", "major", hazard_level="major").case_id
    error = refused(app, case_id, "reclassify", "zhou", severity="minor", reason="定性为小事")
    assert (error.code, error.details["field"]) == ("validation", "severity")
    general = report(app, "hazard", "major", hazard_level="general").case_id
    act(app, general, "reclassify", "zhou", severity="critical", reason="威胁生命")
    assert app.case(general).level == "major"


# -- item 9: sign-off within 10 days of the deadline; a new notice after a failed 复查 --------------


def rectification_ordered(app, clock, days: int = 3):
    case_id = report(app, "hazard", hazard_level="general").case_id
    act(app, case_id, "assign", "li", assignee="zhao")
    act(app, case_id, "accept", "zhao")
    deadline = clock.now() + timedelta(days=days)
    act(
        app,
        case_id,
        "order-rectification",
        "zhao",
        deadline=deadline.isoformat(),
        measures="清理通道",
    )
    return case_id, deadline


def test_the_signoff_clock_runs_from_the_deadline_not_the_rectification(app, clock):
    case_id, deadline = rectification_ordered(app, clock)
    clock.advance(timedelta(days=1))
    act(app, case_id, "rectify", "zhao", note="已清理")
    signoff = {c.name: c for c in clocks_of(app, case_id)}["signoff"]
    assert (signoff.started_at, signoff.due_at) == (deadline, deadline + timedelta(days=10))
    assert str(signoff.state) == "running"


def test_a_late_rectification_leaves_the_signoff_due_10_days_after_the_deadline(app, clock):
    case_id, deadline = rectification_ordered(app, clock)
    clock.advance(timedelta(days=8))  # 5 days late
    act(app, case_id, "rectify", "zhao", note="已清理")
    assert {c.name: c.due_at for c in clocks_of(app, case_id)}["signoff"] == deadline + timedelta(
        days=10
    )


def test_after_a_failed_reinspection_a_supervisor_issues_a_new_notice(app, clock):
    case_id, deadline = rectification_ordered(app, clock)
    act(app, case_id, "rectify", "zhao", note="已清理")
    act(app, case_id, "reinspect", "zhao", passed=False, note="仍有杂物")
    new_deadline = clock.now() + timedelta(days=7)
    body = {"deadline": new_deadline.isoformat(), "measures": "彻底清理"}
    assert refused(app, case_id, "order-rectification", "zhao", **body).code == "forbidden"
    act(app, case_id, "order-rectification", "li", **body)
    assert app.case(case_id).deadline == new_deadline
    rectification = {c.name: c for c in clocks_of(app, case_id)}["rectification"]
    assert (rectification.due_at, rectification.cycle, str(rectification.state)) == (
        new_deadline,
        3,
        "running",
    )
    assert refused(app, case_id, "order-rectification", "li", **body).code == "invalid_transition"
    act(app, case_id, "rectify", "zhao", note="已彻底清理")
    assert {c.name: c.due_at for c in clocks_of(app, case_id)}[
        "signoff"
    ] == new_deadline + timedelta(days=10)


# -- over HTTP: the status codes and the fields the problems name ---------------------------------


def test_http_hazard_level_mismatch_is_422_naming_the_field(api: Api):
    response = api.post("/v1/cases", {**HAZARD, "hazard_level": "major"}, "wang")  # a minor hazard
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "hazard_level"


def test_http_late_court_confirmation_is_409_naming_the_window(api: Api, clock):
    case_id = api.report(DISPUTE)["id"]
    api.act(case_id, "assign", {"assignee": "zhao"}, "li")
    api.act(case_id, "accept", who="zhao")
    api.act(
        case_id,
        "mediate",
        {"outcome": "agreed", "summary": "协商", "agreement": "停止施工", "form": "written"},
        "zhao",
    )
    api.act(case_id, "sign-agreement", who="zhao")
    api.act(case_id, "seal-agreement", who="zhao")
    clock.advance(timedelta(days=31))
    response = api.post(f"/v1/cases/{case_id}/court-confirmation", {"note": "共同申请"}, "zhao")
    assert response.status_code == 409, response.text
    problem = response.json()
    assert (problem["code"], problem["clock"], problem["window"]) == (
        "invalid_transition",
        "court_confirmation",
        "30d",
    )
    api.act(
        case_id, "refuse-mediation", {"party": "respondent", "reason": "x"}, "zhao", status=409
    )  # agreed
    api.act(case_id, "refuse-mediation", {"party": "nobody", "reason": "x"}, "zhao", status=422)


def test_a_suspension_before_the_deadline_does_not_move_the_signoff_due_time(app, clock):
    case_id, deadline = rectification_ordered(app, clock)
    clock.advance(timedelta(days=1))
    act(app, case_id, "rectify", "zhao", note="已清理")
    act(app, case_id, "suspend", "li", reason="等待复查人员")
    assert {c.name: c.due_at for c in clocks_of(app, case_id)}["signoff"] == deadline + timedelta(
        days=10
    )
    clock.advance(timedelta(days=1))
    act(app, case_id, "resume", "li")  # still before the deadline: nothing was used
    assert {c.name: c.due_at for c in clocks_of(app, case_id)}["signoff"] == deadline + timedelta(
        days=10
    )
    clock.advance(timedelta(days=2))  # a day past the deadline
    act(app, case_id, "suspend", "li", reason="再次挂起")
    clock.advance(timedelta(days=1))
    act(app, case_id, "resume", "li")
    assert {c.name: c.due_at for c in clocks_of(app, case_id)}["signoff"] == deadline + timedelta(
        days=11
    )
