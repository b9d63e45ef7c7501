"""The dashboard's pages over plain HTTP, on both stores: sign-in by cookie, each
page with real content, region scoping (out of region is the same 404 as missing),
time travel on the case page, and refusals as pages."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest

from api.http.ui.session import COOKIE
from tests.test_api_support import (
    DISPUTE,
    ORIGIN,
    PETITION,
    XUZHEN_GRID,
    Api,
    tick_timers,
    ui_sign_in,
)


def sign_in(api: Api, who: str) -> str:
    return ui_sign_in(api, who)


def page(api: Api, path: str, status: int = 200) -> str:
    response = api.client.get(path, follow_redirects=False)
    assert response.status_code == status, (path, response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("text/html")
    return response.text


@pytest.fixture
def county(api: Api):
    """An overdue dispute in 海通乡, a resolved one, an overdue water petition, and an overdue
    case in 徐镇镇."""
    late = api.report()["id"]
    api.act(late, "assign", {"assignee": "zhao"}, "li")
    done = api.report()["id"]
    api.act(done, "assign", {"assignee": "zhao"}, "li")
    api.act(done, "accept", None, "zhao")
    api.act(
        done, "mediate", {"outcome": "agreed", "summary": "握手言和", "agreement": "协议"}, "zhao"
    )
    api.act(done, "resolve", {"resolution": "当场化解"}, "zhao")
    petition = api.report(PETITION)["id"]
    elsewhere = api.report(
        {**DISPUTE, "severity": "major", "region": XUZHEN_GRID, "title": "徐镇的纠纷"}, who="boss"
    )["id"]
    api.act(elsewhere, "assign", {"assignee": "xuh"}, "xu")
    api.engine.clock.advance(timedelta(days=5))
    tick_timers(api.engine)
    api.http.state.services.runner.run_once()
    return {"late": late, "done": done, "petition": petition, "elsewhere": elsewhere}


def test_sign_in_keeps_a_session_in_a_strict_httponly_cookie(api: Api):
    response = api.client.get("/ui/board", follow_redirects=False)
    assert (
        response.status_code == 303
        and response.headers["location"] == "/ui/login?next=%2Fui%2Fboard"
    )
    assert "令牌" in page(api, "/ui/login?next=/ui/board")
    refused = api.client.post(
        "/ui/login", data={"token": "fq_nonsense"}, headers=ORIGIN, follow_redirects=False
    )
    assert (
        refused.status_code == 401 and "令牌无效" in refused.text and COOKIE not in refused.cookies
    )
    empty = api.client.post("/ui/login", data={"token": ""}, headers=ORIGIN, follow_redirects=False)
    assert empty.status_code == 401 and "请输入令牌" in empty.text
    accepted = api.client.post(
        "/ui/login",
        data={"token": api.tokens["zhou"], "next": "https://evil.example/"},
        headers=ORIGIN,
        follow_redirects=False,
    )
    assert accepted.status_code == 303 and accepted.headers["location"] == "/ui/board"
    cookie = accepted.headers["set-cookie"]
    assert (
        cookie.startswith(f"{COOKIE}=fqs_") and api.tokens["zhou"] not in cookie
    )  # a session, not the token
    for attribute in ("HttpOnly", "Path=/ui", "SameSite=strict"):
        assert attribute.lower() in cookie.lower()
    api.client.cookies.set(COOKIE, cookie.split(";")[0].split("=", 1)[1], path="/ui")
    assert "SLA 看板" in page(api, "/ui/board")
    out = api.client.post("/ui/logout", headers=ORIGIN, follow_redirects=False)
    assert out.status_code == 303 and f'{COOKIE}=""' in out.headers["set-cookie"]


def test_a_revoked_or_unknown_cookie_goes_back_to_sign_in(api: Api):
    api.client.cookies.set(COOKIE, "fq_unknown", path="/ui")
    response = api.client.get("/ui/rates", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith(
        "/ui/login?next="
    )


def test_roles_without_boards_are_refused_with_a_page(api: Api):
    for who in ("zhao", "wang", "feed"):  # a handler, a reporter, an integrator
        sign_in(api, who)
        assert "supervisors, auditors and administrators" in page(api, "/ui/board", 403)
    sign_in(api, "audit")  # auditors read boards
    assert "SLA 看板" in page(api, "/ui/board")


def test_every_page_answers_down_to_a_grid(api: Api, county):
    sign_in(api, "zhou")
    for path in ("/ui/board", "/ui/compliance", "/ui/rates"):
        for region in ("410928-001", "410928-001-007", "410928-001-007-03", "410928-001-008"):
            assert "<h1>" in page(api, f"{path}?region={region}")


def test_sla_board_lists_overdue_cases_of_the_region_only(api: Api, county):
    sign_in(api, "zhou")  # 海通乡 supervisor
    text = page(api, "/ui/board")
    # the late dispute, and the water petition unreplied after 5 days (utilities: 24 h)
    assert re.search(r'id="overdue-count">2<', text)
    assert f"/ui/cases/{county['late']}" in text and county["elsewhere"] not in text
    assert f"/ui/cases/{county['petition']}" in text
    assert "邻里噪音纠纷" in text and "sign_for" in text  # the breached clock
    assert 'href="?region=410928"' not in text  # the breadcrumb starts at their own region
    village = page(api, "/ui/board?region=410928-001-007")
    assert f"/ui/cases/{county['late']}" in village
    assert village.index('href="?region=410928-001"') < village.index(
        'href="?region=410928-001-007"'
    )
    outside = page(api, "/ui/board?region=410928-002", 404)  # 徐镇镇: not theirs, same page as none
    assert outside.replace("410928-002", "X") == page(
        api, "/ui/board?region=410928-404", 404
    ).replace("410928-404", "X")
    sign_in(api, "xu")  # 徐镇镇 supervisor sees their own
    text = page(api, "/ui/board")
    assert f"/ui/cases/{county['elsewhere']}" in text and county["late"] not in text


def test_compliance_page_shows_rates_ranks_and_weeks(api: Api, county):
    sign_in(api, "wu")  # county supervisor: townships and villages
    text = page(api, "/ui/compliance")
    assert 'id="compliance-township"' in text and 'id="compliance-village"' in text
    assert "海通乡" in text and "<svg" in text and "<circle" in text  # this week's rate, a point
    assert re.search(r'id="within-rate">100\.0%<', text)  # the one resolved case, at the village
    sign_in(api, "zhou")
    township = page(api, "/ui/compliance")
    assert 'id="compliance-township"' not in township and 'id="compliance-village"' in township
    assert "王庄村" in township
    page(api, "/ui/compliance?region=410928-002", 404)


def test_three_rates_per_region(api: Api, county):
    sign_in(api, "zhou")
    text = page(api, "/ui/rates")
    assert 'id="rates"' in text and "响应率" in text and "海通乡 合计" in text
    assert "王庄村" in text  # a child region's row
    page(api, "/ui/rates?region=410928-002", 404)


def test_case_page_timeline_time_travel_and_chain(api: Api, county):
    sign_in(api, "zhou")
    text = page(api, f"/ui/cases/{county['late']}")
    assert "上报 reported" in text and "派单 assigned" in text and "超时 clock breached" in text
    assert 'class="version-link"' in text and 'id="chain-result"' in text and "校验通过" in text
    assert 'id="as-of"' not in text
    first = page(api, f"/ui/cases/{county['late']}?version=1")
    assert 'id="as-of"' in first and "已上报" in first  # status as reported, before the assignment
    assert re.search(r'class="[^"]*\bshown\b[^"]*" id="v1"', first)
    assert re.search(r'class="[^"]*\bfuture\b[^"]*" id="v2"', first)
    done = page(api, f"/ui/cases/{county['done']}")
    assert "当场化解" in done and "已化解" in done
    page(api, f"/ui/cases/{county['late']}?version=99", 404)
    assert "version" in page(api, f"/ui/cases/{county['late']}?version=0", 422)


def test_a_case_outside_the_region_is_the_same_404_as_a_missing_one(api: Api, county):
    sign_in(api, "zhou")
    outside = page(api, f"/ui/cases/{county['elsewhere']}", 404)
    missing = page(api, f"/ui/cases/{uuid.uuid4()}", 404)
    assert outside.replace(county["elsewhere"], "ID") == re.sub(
        r"no case [0-9a-f-]{36}", "no case ID", missing
    )
    assert "徐镇的纠纷" not in outside
    sign_in(api, "boss")  # the county admin reaches both
    assert "徐镇的纠纷" in page(api, f"/ui/cases/{county['elsewhere']}")


def test_static_files_and_the_home_redirect(api: Api):
    assert api.client.get("/ui/static/ui.css").headers["content-type"].startswith("text/css")
    assert api.client.get("/ui/static/ui.js").status_code == 200
    assert api.client.get("/ui/static/secret.py").status_code == 404
    home = api.client.get("/ui/", follow_redirects=False)
    assert home.status_code == 303 and home.headers["location"] == "/ui/board"
