"""``GET /v1/cases?q=``: words and numbers, scope and roles (issue 24)."""

from __future__ import annotations

from tests.test_api_support import DISPUTE, XUZHEN_GRID, Api


def test_search_by_words_and_by_number(api: Api):
    mine = api.report(DISPUTE)
    other = api.report({**DISPUTE, "region": XUZHEN_GRID}, who="xu")
    api.http.state.services.runner.run_once()
    for q in ("噪音", "邻里噪音", "138 1234 5678", "+8613812345678", "410928199001011234"):
        found = api.get(f"/v1/cases?q={q}", who="zhou").json()
        assert [c["case_id"] for c in found["items"]] == [mine["id"]], q
        assert found["next_cursor"] is None  # the other township's case: not even a page more
    xu = api.get("/v1/cases?q=噪音", who="xu").json()
    assert [c["case_id"] for c in xu["items"]] == [other["id"]]


def test_integrators_cannot_search_by_a_personal_number(api: Api):
    api.report(DISPUTE)
    refused = api.get("/v1/cases?q=13812345678", who="feed")
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert api.get("/v1/cases?q=噪音", who="feed").status_code == 200


def test_a_one_character_word_is_a_clear_problem(api: Api):
    response = api.get("/v1/cases?q=水", who="zhou")
    assert response.status_code == 422
    assert response.json()["field"] == "q"


def test_a_report_answers_with_its_possible_duplicates(api: Api):
    first = api.report(DISPUTE)
    assert first["possible_duplicates"] == []
    api.http.state.services.runner.run_once()
    second = api.report(DISPUTE)  # the same party, the same words: offered, never refused
    offered = second["possible_duplicates"]
    assert [d["case_id"] for d in offered] == [first["id"]]
    assert [w["signal"] for w in offered[0]["why"]] == ["party", "text"]
    elsewhere = api.report({**DISPUTE, "region": XUZHEN_GRID}, who="xu")
    assert elsewhere["possible_duplicates"] == []  # another township's village
