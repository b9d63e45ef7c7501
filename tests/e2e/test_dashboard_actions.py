"""Supervisors act from the dashboard (``api.http.ui.actions``), over plain HTTP on both
stores: each form records once per key, at the version the page showed; a stale page
is refused with what changed; refusals are pages in words; the approvals queue and the
board's 督办 of several cases go through the API's command path."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from uuid import UUID

import pytest

from tests.test_api_support import DISPUTE, ORIGIN, XUZHEN_GRID, Api, tick_timers, ui_sign_in


def form_of(text: str, action: str) -> dict[str, str]:
    """The hidden fields of the first form posting to ``…/act/<action>`` in a page."""
    start = text.index(f'/act/{action}"')
    chunk = text[start : text.index("</form>", start)]
    return {
        name: html.unescape(value)
        for name, value in re.findall(r'type="hidden" name="([a-z]+)" value="([^"]*)"', chunk)
    }


def post(api: Api, path: str, fields: dict, status: int = 303, origin: bool = True):
    response = api.client.post(
        path, data=fields, headers=ORIGIN if origin else {}, follow_redirects=False
    )
    assert response.status_code == status, (
        path,
        response.status_code,
        re.sub(r"(?s).*<main>", "", response.text)[:200].replace(chr(10), " ")[-500:]
        + re.sub(r"<[^>]+>", "", response.text)[-1200:-600],
    )
    return response


def events(api: Api, case_id: str, kind: str) -> list:
    return [r.event for r in api.engine.history(UUID(case_id)) if type(r.event).__name__ == kind]


@pytest.fixture
def assigned(api: Api) -> str:
    case_id = api.report()["id"]
    api.act(case_id, "assign", {"assignee": "zhao"}, "li")
    return case_id


def test_supervise_from_the_case_page_records_once_per_form(api: Api, assigned: str):
    ui_sign_in(api, "zhou")
    page = api.client.get(f"/ui/cases/{assigned}").text
    form = form_of(page, "supervise")
    assert form["version"] == "2" and form["key"].startswith("ui-")
    fields = {**form, "note": "请今日内联系双方"}
    path = f"/ui/cases/{assigned}/act/supervise"
    post(api, path, fields, status=403, origin=False)  # the session's Origin check stays
    first = post(api, path, fields)
    again = post(api, path, fields)  # a double click: the same form twice
    assert first.headers["location"].startswith(f"/ui/cases/{assigned}?done=supervise")
    assert "repeated=1" in again.headers["location"]
    supervised = events(api, assigned, "Supervised")
    assert len(supervised) == 1 and supervised[0].note == "请今日内联系双方"
    assert supervised[0].actor.id == "zhou" and supervised[0].actor.role == "supervisor"
    shown = api.client.get(again.headers["location"]).text
    assert 'id="done"' in shown and "督办 supervision notice" in shown


def test_a_stale_page_is_refused_and_says_what_changed(api: Api, assigned: str):
    ui_sign_in(api, "zhou")
    form = form_of(api.client.get(f"/ui/cases/{assigned}").text, "supervise")
    api.act(assigned, "comment", {"text": "当事人已到场"}, "li")  # someone acts meanwhile
    refused = post(api, f"/ui/cases/{assigned}/act/supervise", {**form, "note": "督办"}, 412)
    text = refused.text
    assert "案件已有新的变化" in text and "第 2 版" in text
    assert "v3 备注 comment" in text and "当事人已到场" in text and " li " in text
    assert f'href="/ui/cases/{assigned}"' in text and 'id="reload"' in text
    assert "Traceback" not in text and not events(api, assigned, "Supervised")


def test_refusals_are_pages_in_words(api: Api, assigned: str):
    ui_sign_in(api, "zhou")
    page = api.client.get(f"/ui/cases/{assigned}").text
    form = form_of(page, "reclassify")
    empty = post(api, f"/ui/cases/{assigned}/act/reclassify", {**form, "severity": "major"}, 422)
    assert "请检查填写的内容" in empty.text and "reason" in empty.text
    closing = {**form, "key": "ui-close-1"}
    early = post(api, f"/ui/cases/{assigned}/act/close", closing, 409)  # not resolved yet
    assert "案件当前的状态不允许此操作" in early.text and "Traceback" not in early.text
    unkeyed = post(api, f"/ui/cases/{assigned}/act/supervise", {"version": "2", "note": "x"}, 422)
    assert "reload the page" in unkeyed.text
    post(api, f"/ui/cases/{assigned}/act/escalate", {**form, "reason": "x"}, 404)  # not offered
    ui_sign_in(api, "audit")  # an auditor reads the board but may not act
    assert 'id="actions"' not in api.client.get(f"/ui/cases/{assigned}").text
    words = post(api, f"/ui/cases/{assigned}/act/supervise", {**form, "note": "x"}, 403)
    assert "您无权执行此操作" in words.text
    assert not events(api, assigned, "Supervised") and not events(api, assigned, "Closed")


def test_dispatch_from_the_picker_of_units_and_people(api: Api, assigned: str):
    ui_sign_in(api, "zhou")
    page = api.client.get(f"/ui/cases/{assigned}").text
    assert 'value="unit:ht-sfs"' in page and 'value="person:zhao' in page
    assert "unit:xz-zzzx" not in page  # another township's unit is not offered
    form = form_of(page, "assign")
    above = post(api, f"/ui/cases/{assigned}/act/assign", {**form, "to": "unit:ht-sfs"}, 422)
    assert "超出该程度案件的处理上限" in above.text  # a 小事 stays in the village
    post(api, f"/ui/cases/{assigned}/act/assign", {**form, "to": "unit:wz-tjh"})
    assert events(api, assigned, "Assigned")[-1].unit == "wz-tjh"
    nobody = {**form_of(api.client.get(f"/ui/cases/{assigned}").text, "assign"), "to": ""}
    assert (
        "choose a unit or a person"
        in post(api, f"/ui/cases/{assigned}/act/assign", nobody, 422).text
    )


def test_approvals_queue_approves_and_refuses(api: Api, assigned: str):
    other = api.report()["id"]
    api.act(other, "assign", {"assignee": "zhao"}, "li")
    for case_id in (assigned, other):
        api.act(case_id, "accept", None, "zhao")
    api.act(assigned, "request-extension", {"days": 5, "reason": "双方外出务工"}, "zhao")
    api.act(other, "request-suspension", {"reason": "等待司法鉴定"}, "zhao")
    runner = api.http.state.services.runner
    runner.run_once()
    ui_sign_in(api, "zhou")
    queue = api.client.get("/ui/approvals").text
    assert "双方外出务工" in queue and "等待司法鉴定" in queue and "5 天" in queue
    approve = form_of(queue, "approve-extension")
    assert approve["clock"] and approve["back"] == "/ui/approvals?region=410928-001"
    done = post(api, f"/ui/cases/{assigned}/act/approve-extension", {**approve, "note": "同意"})
    assert done.headers["location"].startswith("/ui/approvals?region=410928-001&done=")
    refuse = form_of(queue, "refuse-suspension")
    post(api, f"/ui/cases/{other}/act/refuse-suspension", {**refuse, "reason": "鉴定不需挂起"})
    extended = events(api, assigned, "Extended")
    assert len(extended) == 1 and extended[0].approver == "zhou" and extended[0].note == "同意"
    assert events(api, other, "SuspensionRefused")[0].reason == "鉴定不需挂起"
    runner.run_once()
    assert 'id="no-approvals"' in api.client.get("/ui/approvals").text
    ui_sign_in(api, "xu")  # another township's supervisor sees none of it
    assert "双方外出务工" not in api.client.get("/ui/approvals").text


def test_board_supervises_several_overdue_cases_each_its_own_command(api: Api):
    late = [api.report()["id"] for _ in range(3)]
    for case_id in late:
        api.act(case_id, "assign", {"assignee": "zhao"}, "li")
    api.engine.clock.advance(timedelta(days=5))
    tick_timers(api.engine)
    runner = api.http.state.services.runner
    runner.run_once()
    ui_sign_in(api, "zhou")
    board = api.client.get("/ui/board").text
    ticks = re.findall(r'name="case" value="([^"]+)"', board)
    assert {t.split(":")[0] for t in ticks} >= set(late)
    key = re.search(
        r'id="bulk-supervise">\s*<input type="hidden" name="key" value="([^"]+)"', board
    )
    assert key
    api.act(late[2], "comment", {"text": "已电话催办"}, "li")  # the third moves on meanwhile
    elsewhere = api.report(
        {**DISPUTE, "severity": "major", "region": XUZHEN_GRID, "title": "徐镇的纠纷"}, who="boss"
    )["id"]
    picked = [t for t in ticks if t.split(":")[0] in late]
    fields = {"key": key.group(1), "note": "限今日办结", "case": picked, "back": "/ui/board"}
    post(api, "/ui/board/supervise", fields, status=403, origin=False)  # the Origin check
    outside = {**fields, "key": "ui-outside", "case": [f"{elsewhere}:1"]}
    refused = post(api, "/ui/board/supervise", outside, status=200)  # another township's case
    assert "徐镇的纠纷" not in refused.text and "✔" not in refused.text
    outcome = post(api, "/ui/board/supervise", fields, status=200)
    assert outcome.text.count("✔ 已督办") == 2 and "案件已有新的变化" in outcome.text
    again = post(api, "/ui/board/supervise", fields, status=200)  # sent twice: recorded once
    assert again.text.count("只记录一次") == 2
    mine = [[e for e in events(api, c, "Supervised") if e.actor.id == "zhou"] for c in late]
    assert [len(m) for m in mine] == [1, 1, 0]  # (the timers' urging notices are not zhou's)
    assert not events(api, elsewhere, "Supervised")
    empty = post(api, "/ui/board/supervise", {**fields, "case": []}, status=422)
    assert "tick at least one case" in empty.text
