"""A township supervisor's day in a real browser (Debian's chromium, Playwright), acting
from the dashboard on the small demo county (SQLite; the forms' rules are tested on both
stores over HTTP in ``test_dashboard_actions.py``): 督办 an overdue case from the board and
find the row in its timeline; approve an extension from 待审批; a stale page refused with
what changed; a double click recorded once; and no page wider than a 390 px phone.

One browser and one page for the module. Screenshots (desktop and 390 px) go to
``test-artifacts/dashboard/actions/``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest

from api.http.app import create_app
from domain.actors import Actor
from domain.commands import Envelope, ReportCase
from engine.store import StoreConfig
from tests.browser_support import ARTIFACTS, launched
from tests.test_dashboard_support import SmallDemo, serving, small_demo

SHOTS = ARTIFACTS / "actions"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1360, "height": 900}
OPEN = ["reported", "assigned", "accepted", "in_progress"]


@dataclass
class Day:
    demo: SmallDemo
    svc: Any
    base: str
    token: str
    township: Any
    asked: UUID  # a case whose handler asked for an extension


def command(engine: Any, actor: Actor, case_id: UUID, name: str, body: dict, n: int) -> None:
    envelope = Envelope(actor=actor, command_id=f"browser-day:{case_id}:{n}")
    engine.do(case_id, name, body, envelope)


def extension_asked(demo: SmallDemo, township: Any) -> UUID:
    """A dispute on a grid of the township, dispatched to its grid worker (the ceiling of a
    小事 on either profile allows it), who signs for it and asks for five more days."""
    village = township.villages[0]
    grid = village.grids[0]
    mediator = grid.workers[0]
    reporter = (grid.assistants or grid.workers)[0]
    body = ReportCase(
        kind="dispute",
        category="neighbours",
        severity="minor",
        region=grid.region.code,
        title="宅基地界墙纠纷",
    )
    case_id = demo.engine.report(
        body, Envelope(actor=reporter, command_id="browser-day:report")
    ).case_id
    command(demo.engine, township.supervisor, case_id, "assign", {"assignee": mediator.id}, 1)
    command(demo.engine, mediator, case_id, "accept", {}, 2)
    reason = {"days": 5, "reason": "一方在外务工，下周返乡"}
    command(demo.engine, mediator, case_id, "request-extension", reason, 3)
    return case_id


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    with launched() as chromium:
        tab = chromium.new_page(viewport=DESKTOP, locale="zh-CN")
        tab.set_default_timeout(15_000)
        yield tab


@pytest.fixture(scope="module")
def day(tmp_path_factory) -> Iterator[Day]:
    store = StoreConfig(f"sqlite:///{tmp_path_factory.mktemp('day') / 'fengqiao.db'}")
    demo = small_demo(store, scale=0.25)  # a few overdue cases are all the day needs
    http = create_app(demo.engine)
    svc = http.state.services
    late, _ = svc.read_models.list_cases(overdue=True, status=OPEN, limit=500)
    busiest, count = Counter(row["township"] for row in late).most_common(1)[0]
    assert count >= 2, "the day needs two overdue cases in one township"
    township = next(t for t in demo.county.townships if t.region.code == busiest)
    asked = extension_asked(demo, township)
    svc.runner.run_once()
    person = township.supervisor
    token = svc.users.add(person.id, person.role, person.region, person.unit, by="test")
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        with serving(http) as base:
            yield Day(demo, svc, base, token, township, asked)
    finally:
        svc.runner.close()
        demo.engine.close()


def shoot(page: Any, name: str) -> None:
    """The page at desktop width and at 390 px, and nothing wider than the phone."""
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=SHOTS / f"{name}.png", full_page=True)
    page.set_viewport_size(PHONE)
    width = page.evaluate("document.documentElement.scrollWidth")
    page.screenshot(path=SHOTS / f"{name}-390.png", full_page=True)
    page.set_viewport_size(DESKTOP)
    assert width <= PHONE["width"], f"{name} is {width} px wide on a 390 px phone"


def timeline(page: Any) -> str:
    return page.inner_text("#timeline")


def sign_in(page: Any, day: Day) -> None:
    page.goto(f"{day.base}/ui/board")
    if "/ui/login" in page.url:
        page.fill("input[name=token]", day.token)
        page.click("button[type=submit]")
        page.wait_for_url(f"{day.base}/ui/board")


def test_a_supervisors_day_from_the_board(page, day: Day):
    base = day.base
    page.goto(f"{base}/ui/login")
    shoot(page, "login")
    sign_in(page, day)
    shoot(page, "board")

    # 督办 the two most overdue cases from the board: one command each
    rows = page.locator("#overdue tbody tr")
    title = rows.first.locator("a.case-link").inner_text()
    for row in (rows.nth(0), rows.nth(1)):
        row.locator("input[name=case]").check()
    page.fill("#bulk-supervise textarea[name=note]", "请今日内办结并反馈")
    page.click("#bulk-supervise button[type=submit]")
    page.wait_for_url(f"{base}/ui/board/supervise")
    assert page.inner_text("#outcomes").count("✔ 已督办") == 2
    shoot(page, "outcomes")
    page.click(f"#outcomes a.case-link:has-text('{title}')")
    page.wait_for_url(f"{base}/ui/cases/*")
    rows = page.locator("#timeline tbody tr", has_text="督办 supervised")
    mine = rows.filter(has_text="请今日内办结并反馈")
    assert mine.count() == 1 and day.township.supervisor.id in mine.inner_text()
    shoot(page, "case")

    # a double click on 督办 records once
    case_url = page.url
    page.fill("#form-supervise textarea[name=note]", "第二次督办：明日上午前回复")
    page.dblclick("#form-supervise button[type=submit]")
    page.wait_for_url("**done=supervise**")
    assert page.locator("#timeline tbody tr", has_text="第二次督办").count() == 1

    # a stale page: someone else acts after it was loaded
    page.goto(case_url)
    case_id = UUID(case_url.rsplit("/", 1)[-1].split("?")[0])
    other = day.township.handlers[next(iter(day.township.handlers))]
    command(day.demo.engine, other, case_id, "comment", {"text": "已与双方电话沟通"}, 99)
    page.fill("#form-supervise textarea[name=note]", "过时页面上的督办")
    page.click("#form-supervise button[type=submit]")
    page.wait_for_selector("#refusal")
    assert "案件已有新的变化" in page.inner_text("#refusal")
    assert "已与双方电话沟通" in page.inner_text("#since")
    shoot(page, "refused-stale")
    page.click("#reload")
    page.wait_for_url(f"{base}/ui/cases/*")
    assert "过时页面上的督办" not in timeline(page) and "已与双方电话沟通" in timeline(page)

    # approve the extension from the queue, on a phone
    page.goto(f"{base}/ui/approvals")
    shoot(page, "approvals")
    page.set_viewport_size(PHONE)
    request = page.locator("#approvals tbody tr", has_text="一方在外务工")
    request.locator("form.approve input[name=note]").fill("同意延期五天")
    request.locator("form.approve button[type=submit]").click()
    page.wait_for_url("**/ui/approvals?**done=approve-extension**")
    assert "批准延期" in page.inner_text("#done")
    page.set_viewport_size(DESKTOP)
    page.goto(f"{base}/ui/cases/{day.asked}")
    extended = page.locator("#timeline tbody tr", has_text="延期 extended")
    assert extended.count() == 1 and "同意延期五天" in extended.inner_text()
    day.svc.runner.run_once()
    page.goto(f"{base}/ui/approvals")
    assert page.locator("#approvals tbody tr", has_text="一方在外务工").count() == 0


def test_no_page_is_wider_than_a_phone(page, day: Day):
    base = day.base
    sign_in(page, day)
    models = day.svc.read_models
    region = day.township.region.code
    case_id = models.list_cases(region=region, overdue=True, status=OPEN, limit=1)[0][0]["case_id"]
    for name, path in (
        ("compliance", "/ui/compliance"),
        ("rates", "/ui/rates"),
        ("case-as-of", f"/ui/cases/{case_id}?version=2"),
        ("village-board", f"/ui/board?region={day.township.villages[0].region.code}"),
        ("not-found", f"/ui/cases/{UUID(int=0)}"),
    ):
        page.goto(f"{base}{path}")
        shoot(page, name)
