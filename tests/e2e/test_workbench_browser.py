"""The grid worker's workbench offline, in a real browser: Debian's chromium driven by
Playwright against uvicorn on 127.0.0.1 (a service worker needs http://127.0.0.1), on both
stores, on a 390 px phone viewport.

A grid worker signs in and looks at the two cases assigned to them; the connection drops
(``context.set_offline``); they report a case with a photo and sign for both cases. Meanwhile
a supervisor reassigns the second case. The browser is closed and opened again, still
offline: the outbox (IndexedDB) still holds the three. Back online, the photo is uploaded,
the report and the first sign-for land once each with ``occurred_at`` = when they were made
and the photo's hash in the report's event; the second comes back as a conflict the worker
can read. A report that lands with ``possible_duplicates`` leaves a notice on the queue
page, with links, until it is dismissed. Screenshots (390 px and desktop) go to ``test-artifacts/workbench/<store>/``;
docs/screenshots/work-*.png are copies of them.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from uuid import UUID

import pytest

from api.http.app import create_app
from domain.ladder import Person
from engine.service import Fengqiao
from engine.store import StoreConfig
from tests.browser_support import CHROMIUM, CHROMIUM_ARGS, require_browser
from tests.support import act, png, report, seed
from tests.test_api_support import GRID
from tests.test_dashboard_support import serving

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "workbench"
WORKER = "gw"
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def playwright() -> Iterator[object]:
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


def open_browser(playwright, profile: Path, offline: bool = False):
    """Chromium with a profile on disk: closing it and opening it again keeps IndexedDB and
    the service worker, as a phone's browser does."""
    context = playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_ARGS,
        viewport=PHONE,
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
        offline=offline,
    )
    context.set_default_timeout(15_000)
    return context


def wait_until(page, script: str, timeout: float = 15.0) -> None:
    """Poll ``script`` (a function) with ``evaluate`` until it is true: ``wait_for_function``
    compiles its predicate with eval, which the workbench's CSP rightly forbids."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(script):
        if time.monotonic() > deadline:
            shown = page.evaluate("() => document.querySelector('main').innerText")
            raise AssertionError(f"still false after {timeout} s: {script}\n{shown}")
        page.wait_for_timeout(100)


def outbox(page) -> list[dict]:
    return page.evaluate(
        "() => window.fengqiaoOutbox.all().then(items => items.map(i => ({key: i.key, "
        "url: i.url, made_at: i.made_at, state: i.state, detail: i.detail})))"
    )


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_grid_worker_works_offline_and_the_outbox_lands_once(
    playwright, store: StoreConfig, tmp_path
):
    engine = seed(Fengqiao(store))  # the system clock: the browser's times are real times
    engine.add_person(Person(WORKER, "handler", GRID, None), "test")
    first = report(engine, "dispute", "minor", title="王庄三组邻里噪音").case_id
    second = report(engine, "dispute", "minor", title="宅基地边界纠纷").case_id
    for case_id in (first, second):
        act(engine, case_id, "assign", "li", assignee=WORKER)
    http = create_app(engine)
    svc = http.state.services
    svc.runner.run_once()
    token = svc.users.add(WORKER, "handler", GRID, None, by="test")
    photo = png(width=64, height=48, shade=200)
    profile = tmp_path / "profile"
    shots = ARTIFACTS / ("postgres" if store.is_postgres else "sqlite")
    shots.mkdir(parents=True, exist_ok=True)
    try:
        with serving(http) as base:
            context = open_browser(playwright, profile)
            page = context.new_page()
            page.goto(f"{base}/ui/work")
            assert "/ui/login" in page.url  # signs in as dashboard users do
            page.fill("input[name=token]", token)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/ui/work")
            wait_until(page, "() => navigator.serviceWorker.controller !== null")
            assert page.locator("#queue li").count() == 2
            assert "签收 sign-for 时限" in page.inner_text("#queue li >> nth=0")  # the next clock
            for case_id in (first, second):  # looked at while online: kept for offline
                page.goto(f"{base}/ui/work/cases/{case_id}")
                assert page.locator("#accept").is_visible()
            page.goto(f"{base}/ui/work")
            page.screenshot(path=shots / "work-queue-390.png", full_page=True)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"the queue is {width} px wide on a 390 px phone"

            context.set_offline(True)
            page.goto(f"{base}/ui/work/report")  # from the service worker's cache
            page.select_option("#kind", "hazard")  # the categories follow the kind
            assert "消防 fire" in page.inner_text("#category")
            page.select_option("#kind", "dispute")
            page.select_option("#category", "property")
            page.fill("input[name=title]", "村口排水沟堵塞积水")
            page.fill("textarea[name=description]", "雨后积水，老人出行不便")
            page.fill("input[name='parties.0.name']", "王五")
            page.set_input_files(
                "input[name=photos]",
                files=[{"name": "scene.png", "mimeType": "image/png", "buffer": photo}],
            )
            page.screenshot(path=shots / "work-report-390.png", full_page=True)
            page.click("#report-form button[type=submit]")
            page.wait_for_url(f"{base}/ui/work")
            for case_id in (first, second):
                page.goto(f"{base}/ui/work/cases/{case_id}")
                page.click("#accept")
                page.wait_for_selector("text=联网后发送")
            # meanwhile, the supervisor gives the second case to the village mediator
            act(engine, second, "assign", "li", assignee="zhao")
            page.goto(f"{base}/ui/work")
            # the outbox list is drawn from IndexedDB after the page loads: wait for it
            wait_until(
                page, "() => document.querySelectorAll('#outbox-items li.queued').length >= 3"
            )
            assert page.locator("#outbox-items li.queued").count() == 3
            assert "离线" in page.inner_text("#net")
            page.screenshot(path=shots / "work-outbox-offline-390.png", full_page=True)
            assert engine.case(first).version == 2  # nothing was sent while offline
            context.close()  # the browser is closed, the phone put away

            context = open_browser(playwright, profile, offline=True)
            page = context.new_page()
            page.goto(f"{base}/ui/work")  # still offline: the shell and the outbox survive
            page.wait_for_selector("#outbox-items li.queued")
            items = outbox(page)
            assert [i["state"] for i in items] == ["queued"] * 3
            made = {i["url"]: moment(i["made_at"]) for i in items}

            context.set_offline(False)  # back online: the outbox sends itself
            wait_until(
                page,
                "() => document.querySelectorAll('#outbox-items li').length === 1"
                " && document.querySelector('#outbox-items li.conflict') !== null",
            )
            conflict = page.inner_text("#outbox-items li.conflict")
            assert "宅基地边界纠纷" in conflict and "改派" in conflict
            page.screenshot(path=shots / "work-conflict-390.png", full_page=True)

            reports = [
                e
                for e in (engine.history(c)[0].event for c in engine.case_ids())
                if e.actor.id == WORKER
            ]
            assert len(reports) == 1, "the report landed once"
            reported = reports[0]
            assert reported.title == "村口排水沟堵塞积水" and reported.category == "property"
            assert reported.occurred_at == made["/ui/work/report"]
            assert reported.attachments == [
                {
                    "sha256": hashlib.sha256(photo).hexdigest(),
                    "media_type": "image/png",
                    "size": len(photo),
                }
            ]
            signed = [
                e
                for e in (r.event for r in engine.history(first))
                if type(e).__name__ == "Accepted"
            ]
            assert len(signed) == 1 and signed[0].actor.id == WORKER
            assert signed[0].occurred_at == made[f"/ui/work/cases/{first}/accept"]
            assert not any(type(r.event).__name__ == "Accepted" for r in engine.history(second))

            case_id = reported.originator_id
            svc.runner.run_once()  # the projection worker's step: the queue follows
            page.goto(f"{base}/ui/work/cases/{case_id}")
            wait_until(page, "() => document.querySelector('img.thumb').naturalWidth === 64")
            page.screenshot(path=shots / "work-case-390.png", full_page=True)
            page.set_viewport_size({"width": 1280, "height": 900})
            page.screenshot(path=shots / "work-case-desktop.png", full_page=True)
            page.goto(f"{base}/ui/work")
            assert page.locator("#queue li").count() == 1  # the second case went to zhao
            page.screenshot(path=shots / "work-queue-desktop.png", full_page=True)
            context.close()
        assert isinstance(case_id, UUID)
    finally:
        svc.runner.close()
        engine.close()


def test_a_report_that_lands_shows_its_possible_duplicates(
    playwright, store: StoreConfig, tmp_path
):
    """The report's answer names the open cases it may repeat: the queue page shows them, in
    words and with links, until the worker has read them (390 px and desktop)."""
    engine = seed(Fengqiao(store))
    engine.add_person(Person(WORKER, "handler", GRID, None), "test")
    earlier = report(engine, "dispute", "minor", category="property", title="村口排水沟堵塞积水")
    http = create_app(engine)
    svc = http.state.services
    svc.runner.run_once()
    token = svc.users.add(WORKER, "handler", GRID, None, by="test")
    shots = ARTIFACTS / ("postgres" if store.is_postgres else "sqlite")
    shots.mkdir(parents=True, exist_ok=True)
    try:
        with serving(http) as base:
            context = open_browser(playwright, tmp_path / "profile")
            page = context.new_page()
            page.goto(f"{base}/ui/work")
            page.fill("input[name=token]", token)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/ui/work")
            assert page.locator("#duplicates").is_hidden()
            page.goto(f"{base}/ui/work/report")
            page.select_option("#kind", "dispute")
            page.select_option("#category", "property")
            page.fill("input[name=title]", "村口排水沟堵塞积水了")
            page.fill("textarea[name=description]", "又堵了")
            page.click("#report-form button[type=submit]")
            page.wait_for_url(f"{base}/ui/work")
            wait_until(
                page,
                "() => document.querySelectorAll('#duplicate-items li.duplicates').length === 1",
            )
            notice = page.inner_text("#duplicate-items li.duplicates")
            assert "可能重复" in notice and "村口排水沟堵塞积水了" in notice  # the report
            assert "村口排水沟堵塞积水\n" in notice and "内容相近 similar text" in notice
            links = page.locator("#duplicate-items a").evaluate_all(
                "els => els.map(a => a.pathname)"
            )
            mine = [c for c in engine.case_ids() if c != earlier.case_id]
            assert links == [f"/ui/work/cases/{mine[0]}", f"/ui/work/cases/{earlier.case_id}"]
            assert page.locator("#outbox").is_hidden()  # nothing left to send
            page.screenshot(path=shots / "work-duplicates-390.png", full_page=True)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"the notice is {width} px wide on a 390 px phone"
            page.set_viewport_size({"width": 1280, "height": 900})
            page.screenshot(path=shots / "work-duplicates-desktop.png", full_page=True)
            page.click("#duplicate-items button")  # read: gone, after a reload too
            wait_until(page, "() => document.getElementById('duplicates').hidden")
            page.reload()
            page.wait_for_selector("#queue-count")
            page.wait_for_timeout(300)
            assert page.locator("#duplicates").is_hidden() and outbox(page) == []
            context.close()
    finally:
        svc.runner.close()
        engine.close()
