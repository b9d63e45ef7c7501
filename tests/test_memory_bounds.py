"""The server's per-process caches stay within their bounds after more entries than the
bound pass through them (object counts, not RSS; the RSS run is tests/bench/bench_memory.py).

* the case cache (``FENGQIAO_CASE_CACHE``): aggregates the engine last wrote;
* the feed's whereabouts cache (``engine.feed.REGION_CACHE_SIZE``): where each case is;
* the personal-data key cache (``engine.privacy.KEY_CACHE_SIZE``): one key a person read.

Each bound is made small here so that a few dozen cases pass it; the code path is the
one a server runs.
"""

from __future__ import annotations

from engine import feed as feed_module
from engine import privacy
from engine.feed import Feed
from engine.privacy import open_party, protect
from tests.support import act, report

BOUND = 8
PASSING = 3 * BOUND


def test_the_case_cache_keeps_at_most_its_bound(app) -> None:
    app.case_cache.size = BOUND
    ids = [report(app).case_id for _ in range(PASSING)]
    for case_id in ids:
        act(app, case_id, "comment", "wang", text="回访")
    held = list(app.case_cache._entries)
    assert len(held) == BOUND  # full, not more
    assert held == ids[-BOUND:]  # the most recently written, oldest first
    assert app.case_cache.take(ids[-1]).version == 2  # as saved by the last command


def test_the_feed_whereabouts_cache_keeps_at_most_its_bound(app, monkeypatch) -> None:
    monkeypatch.setattr(feed_module, "REGION_CACHE_SIZE", BOUND)
    for _ in range(PASSING):
        report(app)
    feed = Feed(app)
    page = feed.page(0, 500)
    assert len({event["subject"] for event in page.events}) >= PASSING
    assert len(feed._whereabouts.entries) == BOUND


def test_the_person_key_cache_keeps_at_most_its_bound(app, monkeypatch) -> None:
    monkeypatch.setattr(privacy, "KEY_CACHE_SIZE", BOUND)
    parties = protect(app, [{"name": f"当事人{n}", "role": "applicant", "id_number": f"4109281990010{n:05d}"}
                            for n in range(PASSING)])
    opened = [open_party(app, party) for party in parties]
    assert [party["name"] for party in opened] == [f"当事人{n}" for n in range(PASSING)]
    cache = privacy.person_keys(app)._cache
    assert len(cache) == BOUND
    assert list(cache) == [party.person for party in parties[-BOUND:]]  # the most recently read
