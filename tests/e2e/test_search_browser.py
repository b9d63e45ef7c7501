"""Searching from the dashboard in a real browser (chromium via Playwright, issue 24), on
both stores: a township supervisor types a two-character word into the search box and
opens the case found; the board shows the repeat rate. Screenshots at desktop width and
at 390 px under ``test-artifacts/dashboard/<store>/``."""

from __future__ import annotations

from api.http.app import create_app
from tests.browser_support import ARTIFACTS
from tests.support import report
from tests.test_dashboard_support import serving


def test_a_supervisor_searches_from_the_dashboard(browser, app, store):
    water = report(app, "petition", category="utilities", title="村里水费又涨了").case_id
    report(app, title="广场舞噪音扰民")
    report(app, title="水费纠纷", region="410928-002-001-01")  # another township: never shown
    http = create_app(app)
    svc = http.state.services
    svc.runner.run_once()
    token = svc.users.add("zhou", "supervisor", "410928-001", "ht-zzzx", by="test")
    shots = ARTIFACTS / ("postgres" if store.is_postgres else "sqlite")
    shots.mkdir(parents=True, exist_ok=True)
    with serving(http) as base:
        for width, name in ((1360, "search.png"), (390, "search-390.png")):
            page = browser.new_page(viewport={"width": width, "height": 900}, locale="zh-CN")
            page.set_default_timeout(15_000)
            page.goto(f"{base}/ui/login")
            page.fill("input[name=token]", token)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/ui/board")
            assert page.locator("#repeat-rate").count() == 1
            page.click("nav a[href^='/ui/search']")
            page.wait_for_url(f"{base}/ui/search*")
            page.fill("#search input[name=q]", "水费")
            page.click("#search button[type=submit]")
            page.wait_for_url("**q=*")
            links = page.locator("#results a.case-link")
            assert links.count() == 1  # 徐镇镇's 水费纠纷 is another township's
            assert links.first.inner_text() == "村里水费又涨了"
            page.screenshot(path=shots / name, full_page=True)
            links.first.click()
            page.wait_for_url(f"{base}/ui/cases/{water}")
            page.close()
