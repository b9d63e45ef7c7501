"""The dashboard in a real browser: Debian's chromium driven by Playwright (no browser
download) against uvicorn on 127.0.0.1 serving a small demo county, on both stores.

A township supervisor signs in, opens the SLA board, follows an overdue case, views
it as of its first event, and finds a case of another township unreachable. Each
page is saved as a screenshot under ``test-artifacts/dashboard/<store>/``.

``tests/setup.sh`` installs chromium and the ``playwright`` package. Where either is
missing the test skips saying why; with ``CI=true`` it fails instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from api.http.app import create_app
from engine.store import StoreConfig
from tests.browser_support import ARTIFACTS
from tests.test_dashboard_support import SmallDemo, serving, small_demo


@pytest.fixture
def demo(store: StoreConfig) -> Iterator[SmallDemo]:
    built = small_demo(store)
    yield built
    built.engine.close()


def test_a_township_supervisor_works_the_board_in_a_browser(browser, demo: SmallDemo, store):
    http = create_app(demo.engine)
    svc = http.state.services
    models = svc.read_models
    late, _ = models.list_cases(
        overdue=True, status=["reported", "assigned", "accepted", "in_progress"], limit=50
    )
    assert late, "the small demo season leaves some cases overdue"
    township = next(t for t in demo.county.townships if t.region.code == late[0]["township"])
    other = next(t for t in demo.county.townships if t is not township)
    elsewhere = models.list_cases(region=other.region.code, limit=1)[0][0]["case_id"]
    person = township.supervisor
    token = svc.users.add(person.id, person.role, person.region, person.unit, by="test")
    shots = ARTIFACTS / ("postgres" if store.is_postgres else "sqlite")
    shots.mkdir(parents=True, exist_ok=True)
    try:
        with serving(http) as base:
            page = browser.new_page(viewport={"width": 1360, "height": 900}, locale="zh-CN")
            page.set_default_timeout(15_000)

            page.goto(f"{base}/ui/")  # not signed in: the sign-in form
            assert page.url.startswith(f"{base}/ui/login")
            page.screenshot(path=shots / "login.png", full_page=True)
            page.fill("input[name=token]", token)
            page.click("button[type=submit]")

            page.wait_for_url(f"{base}/ui/board")
            assert township.region.name in page.locator(".trail").inner_text()
            assert int(page.inner_text("#overdue-count")) >= 1
            page.screenshot(path=shots / "board.png", full_page=True)
            cookies = {c["name"]: c for c in page.context.cookies()}
            assert (
                cookies["fengqiao_ui"]["httpOnly"]
                and cookies["fengqiao_ui"]["sameSite"] == "Strict"
            )
            assert page.evaluate("document.cookie") == ""  # not readable by scripts

            first = page.locator("#overdue a.case-link").first
            title = first.inner_text()
            first.click()
            page.wait_for_url(f"{base}/ui/cases/*")
            assert title in page.locator("h1").inner_text()
            assert page.locator("#timeline tbody tr").count() >= 3
            assert "校验通过" in page.inner_text("#chain-result")
            page.screenshot(path=shots / "case.png", full_page=True)

            page.locator("#timeline a.version-link").first.click()  # as of the report
            page.wait_for_url("**?version=1")
            assert "第 1 版" in page.inner_text("#as-of")
            assert page.inner_text("#case-status").startswith("已上报")
            assert page.locator("#timeline tr.future").count() >= 2
            page.screenshot(path=shots / "case-as-of-report.png", full_page=True)

            page.select_option(
                "#version-pick", "2"
            )  # the control: a script-free form, submitted on change
            page.wait_for_url("**?version=2")
            assert "第 2 版" in page.inner_text("#as-of")

            page.click("text=小事不出村")
            page.wait_for_url(f"{base}/ui/compliance*")
            villages = page.locator("#compliance-village tbody tr").count()
            assert 1 <= villages <= len(township.villages)
            assert (
                page.locator("svg.chart").count() >= villages + 2
            )  # a bar per row, the total, the weeks
            page.screenshot(path=shots / "compliance.png", full_page=True)

            page.click("text=三率")
            page.wait_for_url(f"{base}/ui/rates*")
            assert page.locator("#rates tbody tr").count() == 1 + len(township.villages)
            page.screenshot(path=shots / "rates.png", full_page=True)

            response = page.goto(f"{base}/ui/cases/{elsewhere}")  # another township's case
            assert response is not None and response.status == 404
            assert "404" in page.locator("h1").inner_text()
            page.screenshot(path=shots / "not-found.png", full_page=True)
            response = page.goto(f"{base}/ui/board?region={other.region.code}")
            assert response is not None and response.status == 404
            page.close()
    finally:
        if svc.runner is not None:
            svc.runner.close()
