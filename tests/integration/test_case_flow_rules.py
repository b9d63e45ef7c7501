"""Issue 17, items 4, 5, 7 and 8, on both stores: 延期 and 挂起 asked for before the due
time and approved by a covering supervisor, the 退单 window from dispatch, 逐级上报 on
reclassification, and 吹哨报到 again. Through the engine, the HTTP API and the CLI."""

from __future__ import annotations

import json
from datetime import timedelta
from itertools import count

import pytest

from api.cli.common import cli_actor
from domain.clocks import send_back_window_closes
from domain.commands import Envelope
from domain.errors import DomainError
from domain.ladder import Person
from engine.case_clocks import clocks_of
from engine.service import Fengqiao
from tests.e2e.test_cli import cli_in_process as cli
from tests.support import report, seed
from tests.test_api_support import GRID, PETITION, Api
from workflows.routing import Router

XU_VILLAGE = "410928-002-001"  # 徐镇村: outside 王庄村 and 海通乡
_ids = count(1)


def act(app, case_id, action, by, **body):
    """As tests.support.act, for any person of the ladder (the outsiders added here too)."""
    return app.do(
        case_id, action, body, Envelope(actor=cli_actor(app, by), command_id=f"flow-{next(_ids)}")
    )


def refusal(app, case_id, action, by, **body) -> DomainError:
    before = app.case(case_id).version
    with pytest.raises(DomainError) as caught:
        act(app, case_id, action, by, **body)
    assert app.case(case_id).version == before, "a refused command must write nothing"
    return caught.value


def clock_named(app, case_id, name):
    return next(c for c in clocks_of(app, case_id) if c.name == name)


def events(app, case_id, kind: str) -> list:
    return [r.event for r in app.history(case_id) if r.type == kind]


def with_outsiders(app: Fengqiao) -> Fengqiao:
    app.add_person(
        Person("xu", "supervisor", "410928-002", "xz-zzzx"), "admin"
    )  # 徐镇镇 supervisor
    app.add_person(Person("xv", "supervisor", XU_VILLAGE, None), "admin")  # 徐镇村 supervisor
    return app


def accepted_dispute(app) -> str:
    """A minor dispute signed for by 王庄村调解委员会 (zhao): the mediation clock runs (30 d)."""
    case_id = report(app, "dispute").case_id
    act(app, case_id, "assign", "li", unit="wz-tjh")
    act(app, case_id, "accept", "zhao")
    return case_id


def accepted_petition(app) -> str:
    """A minor petition at 王庄村: the reply clock runs (5 wd, at most 10 wd more)."""
    case_id = report(app, "petition").case_id
    act(app, case_id, "assign", "li", unit="wz-tjh")
    act(app, case_id, "accept", "zhao")
    return case_id


# -- item 4: 延期 ---------------------------------------------------------------------


def test_an_extension_after_the_due_time_is_refused_and_the_case_stays_overdue(app, clock):
    case_id = accepted_petition(app)
    reply = next(c for c in clocks_of(app, case_id) if c.name == "reply")
    clock.set(reply.due_at + timedelta(minutes=1))
    for action, by in (("extend", "li"), ("request-extension", "zhao")):
        error = refusal(app, case_id, action, by, days=3, reason="需等待鉴定")
        assert (error.code, error.details["rule"], error.details["clock"]) == (
            "invalid_transition",
            "before_due_time",
            "reply",
        )
        assert error.details["due_at"] == reply.due_at.isoformat()
    assert next(c for c in clocks_of(app, case_id) if c.name == "reply").overdue


def test_an_extension_names_a_clock_of_the_case_and_stays_within_the_policy_cap(app):
    case_id = accepted_petition(app)
    error = refusal(app, case_id, "extend", "li", days=3, reason="x", clock="no_such_clock")
    assert (error.code, error.details["field"]) == ("validation", "clock")
    error = refusal(
        app, case_id, "extend", "li", days=3, reason="x", clock="mediation"
    )  # a dispute's clock
    assert (error.code, error.details["field"]) == ("validation", "clock")
    error = refusal(app, case_id, "extend", "li", days=200, reason="x")
    assert (error.code, error.details["field"], error.details["max_extension"]) == (
        "validation",
        "days",
        10,
    )
    before = clock_named(app, case_id, "reply").due_at
    act(app, case_id, "extend", "li", days=6, reason="情况复杂")
    assert clock_named(app, case_id, "reply").due_at > before
    error = refusal(app, case_id, "request-extension", "zhao", days=5, reason="还需时间")
    assert (error.details["granted"], error.details["max_extension"]) == (6, 10)
    act(
        app, case_id, "extend", "li", days=4, reason="最后一次"
    )  # 10 working days in all (Shandong)
    error = refusal(
        app, case_id, "extend", "li", days=3, reason="x", clock="sign_for"
    )  # met: not running
    assert error.code in ("invalid_transition", "validation")


def test_an_extension_is_requested_by_the_handler_and_approved_by_a_covering_supervisor(app):
    with_outsiders(app)
    case_id = accepted_dispute(app)
    before = clock_named(app, case_id, "mediation").due_at
    act(app, case_id, "request-extension", "zhao", days=10, reason="当事人外出务工，春节返乡后再调")
    assert clock_named(app, case_id, "mediation").due_at == before  # asked for, not yet granted
    assert (
        refusal(app, case_id, "request-extension", "zhao", days=1, reason="again").code
        == "invalid_transition"
    )
    outside = refusal(app, case_id, "approve-extension", "xu", note="同意")
    assert outside.code == "forbidden"
    act(app, case_id, "approve-extension", "li", note="同意延期")
    [extended] = events(app, case_id, "Extended")
    assert (extended.clock, extended.days, extended.approver, extended.requested_by) == (
        "mediation",
        10,
        "li",
        "zhao",
    )
    assert extended.reason.startswith("当事人外出务工") and extended.note == "同意延期"
    assert clock_named(app, case_id, "mediation").due_at == before + timedelta(days=10)
    assert (
        refusal(app, case_id, "approve-extension", "li").code == "invalid_transition"
    )  # nothing pending

    act(app, case_id, "request-extension", "zhao", days=5, reason="再等鉴定")
    assert refusal(app, case_id, "refuse-extension", "li", reason=" ").code == "validation"
    act(app, case_id, "refuse-extension", "li", reason="可在时限内调结")
    [refused] = events(app, case_id, "ExtensionRefused")
    assert (refused.clock, refused.requested_by, refused.actor.id) == ("mediation", "zhao", "li")
    assert len(events(app, case_id, "Extended")) == 1


# -- item 4: 挂起 ---------------------------------------------------------------------


def test_a_suspension_is_requested_and_approved_and_never_granted_after_the_due_time(app, clock):
    with_outsiders(app)
    case_id = accepted_petition(app)
    act(app, case_id, "request-suspension", "zhao", reason="等待供水公司检修")
    assert not app.case(case_id).suspended
    assert refusal(app, case_id, "approve-suspension", "xu").code == "forbidden"
    act(app, case_id, "approve-suspension", "li", note="同意")
    [suspended] = events(app, case_id, "Suspended")
    assert (suspended.approver, suspended.requested_by, suspended.reason) == (
        "li",
        "zhao",
        "等待供水公司检修",
    )
    assert clock_named(app, case_id, "reply").state == "paused"
    act(app, case_id, "resume", "li")

    act(app, case_id, "request-suspension", "zhao", reason="再次挂起")
    act(app, case_id, "refuse-suspension", "li", reason="不需要")
    assert [e.requested_by for e in events(app, case_id, "SuspensionRefused")] == ["zhao"]

    reply = clock_named(app, case_id, "reply")
    clock.set(reply.due_at + timedelta(hours=1))
    for action, by in (("suspend", "li"), ("request-suspension", "zhao")):
        error = refusal(app, case_id, action, by, reason="补办挂起")
        assert (error.code, error.details["rule"], error.details["due_at"]) == (
            "invalid_transition",
            "before_due_time",
            reply.due_at.isoformat(),
        )
    assert clock_named(app, case_id, "reply").overdue


# -- item 4 over HTTP and the CLI: the same rights --------------------------------------


def test_http_extensions_refusals_are_problems_and_rights_follow_the_table(api: Api, clock):
    cid = api.report(PETITION, who="wang")["id"]
    api.act(cid, "assign", {"unit": "wz-tjh"}, "li")
    api.act(cid, "accept", None, "zhao")
    api.act(cid, "request-extension", {"days": 3, "reason": "x"}, "wang", status=403)  # a reporter
    api.act(cid, "approve-extension", None, "zhao", status=403)  # a handler does not approve
    api.act(cid, "extend", {"days": 3, "reason": "x"}, "xu", status=404)  # outside 徐镇镇's region
    unknown = api.act(
        cid, "request-extension", {"days": 3, "reason": "x", "clock": "nope"}, "zhao", status=422
    )
    assert unknown["type"] == "/problems/validation"
    api.act(cid, "request-extension", {"days": 3, "reason": "需要现场勘查"}, "zhao")
    body = api.act(cid, "approve-extension", {"note": "同意"}, "li")
    reply = next(c for c in body["clocks"] if c["name"] == "reply")
    assert reply["extensions"] == 1
    clock.set(clock.now() + timedelta(days=60))
    late = api.post(f"/v1/cases/{cid}/extend", {"days": 1, "reason": "补办"}, "li")
    assert late.status_code == 409 and late.headers["content-type"].startswith(
        "application/problem+json"
    )
    assert (late.json()["type"], late.json()["clock"], late.json()["due_at"]) == (
        "/problems/invalid-transition",
        "reply",
        reply["due_at"],
    )


def test_the_cli_as_enforces_the_http_rights(store):
    with_outsiders(seed(Fengqiao(store))).close()
    reported = json.loads(
        cli(
            store,
            "case",
            "report",
            "--kind",
            "petition",
            "--category",
            "utilities",
            "--region",
            GRID,
            "--title",
            "停水",
            "--as",
            "wang",
        ).stdout
    )
    case_id = reported["case"]["id"]

    def refused(*args: str) -> dict:
        done = cli(store, "case", *args, ok=False)
        return json.loads(done.stderr.strip().splitlines()[-1])["error"]

    assert refused("extend", case_id, "days=200", "reason=x", "--as", "wang")["code"] == "forbidden"
    assert (
        refused("assign", case_id, "unit=wz-tjh", "--as", "xu")["code"] == "not_found"
    )  # outside the region
    cli(store, "case", "assign", case_id, "unit=wz-tjh", "--as", "li")
    assert refused("accept", case_id, "--as", "sun")["code"] == "forbidden"  # not his unit's case
    cli(store, "case", "accept", case_id, "--as", "zhao")
    assert (
        refused(
            "report",
            "--kind",
            "petition",
            "--category",
            "utilities",
            "--region",
            "410928-002-001-01",
            "--title",
            "x",
            "--as",
            "wang",
        )["code"]
        == "not_found"
    )
    cli(store, "case", "request-extension", case_id, "days=2", "reason=需要勘查", "--as", "zhao")
    cli(store, "case", "approve-extension", case_id, "--as", "li")
    history = json.loads(cli(store, "case", "history", case_id).stdout)
    assert history[-1]["type"] == "Extended" and history[-1]["data"]["approver"] == "li"


# -- item 5: the send-back window --------------------------------------------------------


def test_a_send_back_is_allowed_after_signing_for_within_two_working_days_of_dispatch(app, clock):
    case_id = report(app, "petition", "major").case_id  # Mon 28 Sep 2026 09:00
    act(app, case_id, "assign", "zhou", unit="ht-xfb")
    act(app, case_id, "accept", "sun")
    clock.advance(timedelta(days=1))
    act(
        app, case_id, "send-back", "sun", reason="不属于本单位职责"
    )  # signed for, still within the window
    assert app.case(case_id).status == "reported"


def test_after_two_working_days_from_dispatch_a_send_back_is_refused_signed_for_or_not(app, clock):
    for sign in (False, True):
        case_id = report(app, "petition", "major").case_id
        act(app, case_id, "assign", "zhou", unit="ht-xfb")
        dispatched = app.case(case_id).dispatched_at
        closes = send_back_window_closes(app.policy(), dispatched)  # 2 working days on
        if sign:
            act(app, case_id, "accept", "sun")
        clock.set(closes)  # no timer runs: the rule needs none
        error = refusal(app, case_id, "send-back", "sun", reason="不属于本单位职责")
        assert (error.code, error.details["rule"]) == ("invalid_transition", "send_back_window")
        assert error.details["window_closes_at"] == closes.isoformat()
        act(app, case_id, "assign", "zhou", unit="ht-zzzx")  # a new dispatch opens a new window
        act(app, case_id, "send-back", "sun", reason="应由信访办办理")
        clock.set(clock.now() + timedelta(minutes=1))


# -- item 7: 逐级上报 on reclassification -----------------------------------------------------


def test_reclassifying_to_critical_reports_the_case_up_at_once(app):
    router = Router(app)
    try:
        case_id = report(app, "dispute", "major").case_id  # ceiling: the township
        router.run_once()
        assert app.case(case_id).unit == "wz-tjh"
        act(
            app,
            case_id,
            "reclassify",
            "zhou",
            severity="critical",
            reason="群体性事件苗头，涉及 40 户",
        )
        router.run_once()
        notes = [
            e.text.split(":")[0]
            for e in events(app, case_id, "Commented")
            if e.actor.role == "system"
        ]
        assert notes == [
            "逐级上报 → 王庄村 (village)",
            "逐级上报 → 海通乡 (township)",
            "逐级上报 → 濮阳县 (county)",
        ]
        router.run_once()  # read again: nothing twice
        assert len(events(app, case_id, "Commented")) == 3
    finally:
        router.close()


def test_a_critical_case_is_downgraded_only_at_the_critical_ceiling_rank(app):
    case_id = report(app, "dispute", "critical").case_id
    act(app, case_id, "assign", "zhou", unit="ht-sfs")  # handled at the township
    error = refusal(app, case_id, "reclassify", "zhou", severity="major", reason="事态平息")
    assert (error.code, error.details["ceiling"]) == ("forbidden", "county")
    act(app, case_id, "reclassify", "wu", severity="major", reason="事态平息，降为大事")
    assert app.case(case_id).severity == "major"


def test_the_domain_checks_that_the_reclassifying_actor_covers_the_case(app):
    with_outsiders(app)
    case_id = report(app, "dispute").case_id  # 王庄村第三网格; ceiling: the village
    error = refusal(
        app, case_id, "reclassify", "xv", severity="major", reason="涉及多户"
    )  # 徐镇村, rank 1
    assert (error.code, error.details["region"]) == ("forbidden", XU_VILLAGE)
    act(app, case_id, "reclassify", "li", severity="major", reason="涉及多户")


# -- item 8: 吹哨报到 again -----------------------------------------------------------------


def test_whistling_again_keeps_every_summoned_department_and_clocks_only_the_new(app, clock):
    case_id = accepted_dispute(app)
    act(app, case_id, "whistle", "zhao", departments=["派出所", "司法所"], reason="涉及治安")
    clock.advance(timedelta(hours=1))
    act(app, case_id, "check-in", "zhao", department="派出所")
    checked_in = app.case(case_id).whistled["派出所"]
    before = {c.name: c for c in clocks_of(app, case_id) if c.clock == "check_in"}
    clock.advance(timedelta(hours=1))
    act(
        app,
        case_id,
        "whistle",
        "zhao",
        departments=["派出所", "司法所", "城管局"],
        reason="再次吹哨",
    )
    assert app.case(case_id).whistled["派出所"] == checked_in
    after = {c.name: c for c in clocks_of(app, case_id) if c.clock == "check_in"}
    assert set(after) == {"check_in:派出所", "check_in:司法所", "check_in:城管局"}
    for name in ("check_in:派出所", "check_in:司法所"):
        assert (after[name].state, after[name].cycle, after[name].due_at) == (
            before[name].state,
            before[name].cycle,
            before[name].due_at,
        )
    assert after["check_in:派出所"].state == "met"
    assert after["check_in:城管局"].started_at == clock.now()
    assert events(app, case_id, "Whistled")[-1].departments == ["城管局"]
    assert (
        refusal(app, case_id, "whistle", "zhao", departments=["司法所"], reason="again").code
        == "invalid_transition"
    )
