"""Search (issue 24): Chinese substrings, region scope, a party's number, erasure (both stores)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.errors import ValidationFailed
from engine.audit.tables import PARTY_INDEX
from engine.intake import intake_of
from engine.privacy import erase, persons_with_number
from engine.sql import StoreDb
from projections import queries
from tests.integration import test_projections_read_models as read_models
from tests.support import act, report

GRID = "410928-001-007-03"  # 王庄村第三网格 (海通乡)
ELSEWHERE = "410928-002-001-01"  # 徐镇村第一网格 (徐镇镇: another township)
PHONE = "13812345678"
runner, models = read_models.runner, read_models.models  # the same fixtures


def ids(rows) -> set[str]:
    return {r["case_id"] for r in rows}


def test_chinese_words_of_two_and_three_characters(app, runner, models):
    water = report(app, "petition", category="utilities", title="村里水费又涨了").case_id
    noise = report(app, description="广场舞噪音扰民，晚上十点还不停").case_id
    commented = report(app).case_id
    act(app, commented, "comment", "wang", text="邻居说水费单据丢了")
    runner.run_once()
    hits = lambda q: ids(models.list_cases(region="410928-001", q=q)[0])  # noqa: E731
    assert hits("水费") == {str(water), str(commented)}  # two characters, title and comment
    assert hits("噪音") == {str(noise)}  # two characters, description
    assert hits("水费又") == {str(water)}  # three characters
    assert hits("广场舞噪音") == {str(noise)}
    assert hits("水费 丢了") == {str(commented)}  # every word
    assert hits("暖气") == set()


def test_a_rebuilt_index_finds_the_same(app, runner, models):
    report(app, title="村里水费又涨了")
    runner.run_once()
    before = models.list_cases(region=GRID, q="水费")[0]
    runner.rebuild("search")
    assert models.list_cases(region=GRID, q="水费")[0] == before != []


def test_search_pages_with_the_cursor(app, runner, models):
    made = {str(report(app, title=f"漏水 第{i}户").case_id) for i in range(5)}
    runner.run_once()
    seen: list[str] = []
    cursor = None
    while True:
        rows, cursor = models.list_cases(region=GRID, q="漏水", limit=2, cursor=cursor)
        seen += [r["case_id"] for r in rows]
        if cursor is None:
            break
    assert sorted(seen) == sorted(made) and len(seen) == 5


def test_a_title_match_ranks_above_a_newer_match_elsewhere(app, runner, models, clock):
    in_title = report(app, title="自来水停水三天").case_id
    clock.advance(timedelta(hours=1))
    described = report(app, title="反映情况", description="村东头又停水了").case_id  # newer
    clock.advance(timedelta(hours=1))
    commented = report(app, title="路面塌陷").case_id  # newer still
    act(app, commented, "comment", "wang", text="施工导致停水")
    runner.run_once()
    rows, _ = models.list_cases(region=GRID, q="停水")  # two characters: the bigram index
    assert [r["case_id"] for r in rows] == [str(in_title), str(commented), str(described)]
    rows, _ = models.list_cases(region=GRID, q="停水三天 自来")  # a phrase and a word
    assert [r["case_id"] for r in rows] == [str(in_title)]
    rows, _ = models.list_cases(region=GRID, q="停水 村东头")  # the title holds one word only
    assert [r["case_id"] for r in rows] == [str(described)]


def test_paging_across_the_ranks_returns_every_match_once_in_scope(app, runner, models, clock):
    made = []
    for i in range(7):  # alternating: a title match, a description-only match
        title, description = (f"漏水 第{i}户", "") if i % 2 else (f"报修 第{i}户", "厨房漏水")
        made.append(str(report(app, title=title, description=description).case_id))
        clock.advance(timedelta(minutes=i % 3))  # some reported at the same moment
    report(app, title="漏水", region=ELSEWHERE, by="wang")  # another township's
    runner.run_once()
    newest = [r["case_id"] for r in models.list_cases(region=GRID)[0]]
    titled = {c for i, c in enumerate(made) if i % 2}
    others = set(made) - titled
    for limit in (1, 2, 3, 4, 10):
        seen: list[str] = []
        cursor = None
        while True:
            rows, cursor = models.list_cases(
                region="410928-001", q="漏水", limit=limit, cursor=cursor
            )
            seen += [r["case_id"] for r in rows]
            if cursor is None:
                break
        assert seen == [c for c in newest if c in titled] + [c for c in newest if c in others]


def test_a_ranked_cursor_is_opaque_and_checked(app, runner, models):
    report(app, title="漏水 一")
    for _ in range(2):
        report(app, title="报修", description="漏水")
    runner.run_once()
    _, cursor = models.list_cases(region=GRID, q="漏水", limit=1)
    _, later = models.list_cases(region=GRID, q="漏水", limit=1, cursor=cursor)
    assert later is not None and "漏水" not in later
    with pytest.raises(ValidationFailed):  # a search's second tier means nothing to the list
        models.list_cases(region=GRID, cursor=later)
    for bad in ("", "bm90IGpzb24", "WzksIngiLCJ5Il0", "WyIwIiwieCIsInkiXQ"):
        with pytest.raises(ValidationFailed):
            models.list_cases(region=GRID, q="漏水", cursor=bad)


def test_another_townships_case_never_appears(app, runner, models):
    mine = report(app, title="水费纠纷").case_id
    report(app, title="水费纠纷", region=ELSEWHERE, by="wang")
    runner.run_once()
    rows, cursor = models.list_cases(region="410928-001", q="水费")
    assert ids(rows) == {str(mine)} and cursor is None


def test_one_character_is_refused(models):
    with pytest.raises(ValidationFailed):
        models.list_cases(region=GRID, q="水")


def test_a_phone_finds_its_cases_without_being_stored(app, runner, models):
    party = {"name": "张桂英", "role": "petitioner", "phone": "+86 138-1234-5678"}
    case_id = report(app, "petition", parties=[party], title=f"反映 {PHONE} 停水").case_id
    report(app, title="无关")
    runner.run_once()
    persons = persons_with_number(app, PHONE)
    rows, _ = models.list_cases(region=GRID, persons=persons)
    assert ids(rows) == {str(case_id)}
    assert models.list_cases(region=GRID, q="停水")[0]  # the number in the title is not indexed
    for table, db in (("search_text", runner.db), ("search_parties", runner.db)):
        assert not any(
            PHONE in str(v) for row in db.query(f"SELECT * FROM {table}") for v in row.values()
        )
    store = StoreDb(app.recorder)
    dumped = str(store.query(f"SELECT * FROM {store.table(PARTY_INDEX)}"))
    assert PHONE not in dumped and "5678" not in dumped
    erase(app, persons[0], by="test")
    assert persons_with_number(app, PHONE) == []
    assert models.list_cases(region=GRID, persons=[])[0] == []


VILLAGE_GRID = GRID  # 王庄村第三网格
OTHER_VILLAGE = "410928-001-008-01"  # 李庄村第一网格 (same township, another village)


def offered(app, models, case_id) -> dict[str, list[str]]:
    intake, area, rule = intake_of(app, case_id)
    found = models.possible_duplicates(intake, area, None, rule)
    return {d["case_id"]: [w["signal"] for w in d["why"]] for d in found}


def test_duplicates_by_party_text_and_place_in_the_village_only(app, runner, models):
    party = {"name": "张桂英", "role": "petitioner", "phone": PHONE}
    by_party = report(app, "petition", parties=[party], title="路灯坏了").case_id
    by_text = report(app, "petition", title="村东头自来水停水三天").case_id
    point = {"lat": 35.70810, "long": 115.02620}
    by_place = report(app, "hazard", title="电线杆倾斜", **point).case_id
    far = report(app, "hazard", title="电线杆倾斜", lat=35.70900, long=115.02620).case_id
    other_village = report(
        app, "petition", parties=[party], title="村东头自来水停水三天", region=OTHER_VILLAGE
    ).case_id
    runner.run_once()
    again = {"name": "张桂英", "role": "petitioner", "phone": "+86 138 1234 5678"}
    new = report(app, "petition", parties=[again], title="自来水停水三天了").case_id
    hazard = report(app, "hazard", title="隐患", lat=35.70815, long=115.02625).case_id
    found = offered(app, models, new)
    assert found == {str(by_party): ["party"], str(by_text): ["text"]}
    assert offered(app, models, hazard) == {str(by_place): ["nearby"]}  # ~7 m; ~100 m is not
    assert str(other_village) not in found and str(far) not in offered(app, models, hazard)


def test_a_busy_village_compares_its_newest_open_cases_and_every_shared_party(
    app, runner, models, clock, monkeypatch
):
    monkeypatch.setattr(queries, "CANDIDATES", 2)  # the bound, made small
    party = {"name": "张桂英", "role": "petitioner", "phone": PHONE}
    oldest_shared = report(app, "petition", parties=[party], title="自来水停水三天").case_id
    clock.advance(timedelta(hours=1))
    oldest = report(app, "petition", title="自来水停水三天").case_id
    newer = []
    for _ in range(2):
        clock.advance(timedelta(hours=1))
        newer.append(str(report(app, "petition", title="自来水停水三天").case_id))
    runner.run_once()
    clock.advance(timedelta(hours=1))
    new = report(app, "petition", parties=[party], title="自来水停水三天了").case_id
    found = offered(app, models, new)
    assert set(found) == {*newer, str(oldest_shared)} and str(oldest) not in found
    assert found[str(oldest_shared)] == ["party", "text"]


def test_a_township_list_follows_where_the_case_is_handled_now(app, runner, models):
    case_id = report(app, "dispute", "major", title="宅基地边界纠纷").case_id
    elsewhere = report(app, title="宅基地边界纠纷", region=ELSEWHERE, by="wang").case_id
    act(app, case_id, "escalate", "wang", reason="网格化解不了")
    act(app, case_id, "escalate", "li", reason="村里也调不了")
    runner.run_once()
    assert models.get_case(case_id)["region"] == "410928-001"
    for q in (None, "宅基地"):
        assert ids(models.list_cases(region="410928-001", q=q)[0]) == {str(case_id)}
        assert ids(models.list_cases(region="410928-002", q=q)[0]) == {str(elsewhere)}
        assert ids(models.list_cases(region="410928", q=q)[0]) == {str(case_id), str(elsewhere)}
    assert "region_township" not in models.get_case(case_id)  # an index's, not the API's
