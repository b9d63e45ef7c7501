"""Dashboard page times on a demo store, over real HTTP (uvicorn on 127.0.0.1, keep-alive client).

    fengqiao demo --no-serve --db var/demo.db        # the default county and season
    PYTHONPATH=. .venv/bin/python tests/bench/bench_dashboard.py --db var/demo.db [--runs 20]

Signs in as a county administrator and a township supervisor (two users it adds, named
``bench-admin`` and ``bench-township``) and fetches each page ``--runs`` times after one warm-up,
printing the median, 95th percentile and worst time per page in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from api.http.app import create_app
from domain.ladder import Rank
from engine.logs import configure_logging
from engine.service import Fengqiao
from engine.store import StoreConfig
from engine.users import UserStore
from projections.cases import OPEN_STATUSES
from tests.test_dashboard_support import serving, ui_session


def bench_users(engine: Fengqiao, users: UserStore) -> dict[str, str]:
    """Tokens for two users of the bench's own (the demo's printed tokens keep working):
    an administrator of the county and a supervisor of the first township."""
    tree = engine.ladder().tree
    county = tree.roots()[0]
    township = next(r for r in tree.children_of(county.code) if r.rank == Rank.TOWNSHIP)
    return {
        "admin": users.add("bench-admin", "admin", county.code, by="bench"),
        "township": users.add("bench-township", "supervisor", township.code, by="bench"),
    }


PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1360, "height": 900}


def _shoot(page: Any, folder: Path, name: str, full_page: bool = True) -> None:
    """The page at desktop width, and ``<name>-390.png`` as a 390 px phone shows it."""
    page.screenshot(path=folder / f"{name}.png", full_page=full_page)
    page.set_viewport_size(PHONE)
    page.screenshot(path=folder / f"{name}-390.png", full_page=full_page)
    width = page.evaluate("document.documentElement.scrollWidth")
    if width > PHONE["width"]:
        print(f"WIDER THAN THE PHONE: {name} is {width} px wide at 390 px")
    page.set_viewport_size(DESKTOP)


def screenshots(base: str, tokens: dict[str, str], folder: Path) -> None:
    """The pages as docs/dashboard.md shows them, at desktop width and 390 px: the township
    supervisor's day, the county's view."""
    from playwright.sync_api import sync_playwright

    from tests.browser_support import CHROMIUM, CHROMIUM_ARGS

    folder.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport=DESKTOP, locale="zh-CN")
        page.goto(f"{base}/ui/login")
        _shoot(page, folder, "login", full_page=False)
        page.fill("input[name=token]", tokens["township"])
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/ui/board")
        _shoot(page, folder, "board")
        page.locator("#overdue a.case-link").first.click()
        page.wait_for_url(f"{base}/ui/cases/*")
        _shoot(page, folder, "case")
        page.locator("#timeline a.version-link").nth(1).click()
        page.wait_for_url("**?version=2")
        _shoot(page, folder, "case-as-of")
        page.goto(f"{base}/ui/approvals")
        _shoot(page, folder, "approvals")
        page.goto(f"{base}/ui/compliance")
        _shoot(page, folder, "compliance-township")
        page.goto(f"{base}/ui/rates")
        _shoot(page, folder, "rates-township")
        page.context.clear_cookies()
        page.goto(f"{base}/ui/login")
        page.fill("input[name=token]", tokens["admin"])
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/ui/board")
        _shoot(page, folder, "board-county")
        page.goto(f"{base}/ui/compliance")
        _shoot(
            page, folder, "compliance-county", full_page=False
        )  # the first screen: 212 villages follow
        page.goto(f"{base}/ui/rates")
        _shoot(page, folder, "rates-county")
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", type=Path, default=Path("var/demo.db"))
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--screenshots",
        type=Path,
        default=None,
        help="also save a screenshot of each page here (Playwright and /usr/bin/chromium)",
    )
    args = parser.parse_args()
    configure_logging(level="WARNING")
    engine = Fengqiao(StoreConfig(f"sqlite:///{args.db.resolve()}"))
    http = create_app(engine)
    svc = http.state.services
    users = UserStore(engine)
    tokens = bench_users(engine, users)
    models = svc.read_models
    township = users.get("bench-township").region
    overdue = (
        models.list_cases(region=township, status=list(OPEN_STATUSES), overdue=True, limit=1)[0]
        or models.list_cases(status=list(OPEN_STATUSES), overdue=True, limit=1)[0]
    )
    recent = models.list_cases(region=township, limit=500)[0]
    longest = max(recent, key=lambda r: r["version"])
    case_of = {"overdue": overdue[0]["case_id"], "longest": longest["case_id"]}
    pages = [
        ("admin", "/ui/board"),
        ("admin", "/ui/compliance"),
        ("admin", "/ui/rates"),
        ("township", "/ui/board"),
        ("township", "/ui/compliance"),
        ("township", "/ui/rates"),
        ("township", "/ui/approvals"),
        ("admin", "/ui/approvals"),
        ("admin", f"/ui/cases/{case_of['overdue']}"),
        ("township", f"/ui/cases/{case_of['longest']}"),
        ("township", f"/ui/cases/{case_of['longest']}?version=2"),
    ]
    print(
        f"store {args.db}: {sum(1 for _ in engine.case_ids())} cases; township {township}; "
        f"longest case has {longest['version']} events; {args.runs} runs per page"
    )
    print(f"{'who':<9} {'page':<62} {'median':>7} {'p95':>7} {'max':>7}  bytes")
    with serving(http) as base:
        for who, path in pages:
            with httpx.Client(
                base_url=base, cookies={"fengqiao_ui": ui_session(base, tokens[who])}, timeout=30
            ) as client:
                client.get(path).raise_for_status()  # warm-up
                times = []
                for _ in range(args.runs):
                    started = time.perf_counter()
                    response = client.get(path)
                    times.append((time.perf_counter() - started) * 1000)
                    response.raise_for_status()
            times.sort()
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            shown = path if len(path) < 60 else path[:26] + "…" + path[-33:]
            print(
                f"{who:<9} {shown:<62} {statistics.median(times):7.1f} {p95:7.1f} {times[-1]:7.1f}  "
                f"{len(response.content)}"
            )
        if args.screenshots is not None:
            screenshots(base, tokens, args.screenshots)
    if svc.runner is not None:
        svc.runner.close()
    engine.close()


if __name__ == "__main__":
    main()
