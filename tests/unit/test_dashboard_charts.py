"""The dashboard's inline SVG charts and its formatting filters (pure, no store)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from api.http.ui.charts import line_chart, rate_bar, stacked_bar
from api.http.ui.data import week_starts
from api.http.ui.render import beijing, lateness, pct


def widths(svg: str) -> list[float]:
    return [float(w) for w in re.findall(r'<rect x="[\d.]+" y="0" width="([\d.]+)"', svg)]


def test_stacked_bar_splits_the_width_by_rank_and_skips_empty_ranks():
    svg = str(stacked_bar({"grid": 3, "village": 1, "township": 0, "county": 0}, width=200))
    assert widths(svg) == [150.0, 50.0]
    assert "网格 3 (75%)" in svg and "村 1 (25%)" in svg
    empty = str(stacked_bar({"grid": 0, "village": 0}))
    assert 'aria-label="尚无化解 none resolved"' in empty


def test_rate_bar_colours_and_clamps():
    assert 'fill="#2e7d32"' in str(rate_bar(0.95)) and 'fill="#e53935"' in str(rate_bar(0.2))
    assert 'width="160.00"' in str(rate_bar(1.7))  # never wider than the bar
    assert "无数据" in str(rate_bar(None))


def test_line_chart_leaves_gaps_and_escapes_labels():
    svg = str(line_chart([("<w1>", 0.5), ("w2", None), ("w3", 1.0), ("w4", 0.9)]))
    assert "<w1>" not in svg and "&lt;w1&gt;" in svg
    assert svg.count("<circle") == 3 and svg.count("<polyline") == 1  # w1 alone; w3–w4 joined
    assert 'aria-label="4 periods, latest 90.0%"' in svg
    assert "<polyline" not in str(line_chart([("a", None), ("b", None)]))


def test_filters_and_weeks():
    assert beijing("2026-09-28T01:00:00+00:00") == "2026-09-28 09:00" and beijing(None) == "–"
    assert pct(0.8571) == "85.7%" and pct(None) == "–"
    assert (
        lateness(timedelta(days=3, hours=4, minutes=59)) == "3天4小时"
        and lateness(timedelta(hours=-2)) == "0小时"
    )
    weeks = week_starts(
        datetime(2026, 10, 1, 20, 0, tzinfo=UTC), weeks=3
    )  # Friday 04:00 in Beijing
    assert [f"{w:%Y-%m-%d %H:%M %a}" for w in weeks] == [
        "2026-09-14 00:00 Mon",
        "2026-09-21 00:00 Mon",
        "2026-09-28 00:00 Mon",
    ]
