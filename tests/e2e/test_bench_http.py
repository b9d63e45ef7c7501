"""``fengqiao bench http`` runs end to end at a tiny size (no timing is asserted: hosts are noisy)."""

from __future__ import annotations

from api.bench.bench_http import TARGETS, run


def test_the_http_benchmark_runs_at_a_tiny_size() -> None:
    rows = run("sqlite", size=12, requests=3)
    assert [row["name"] for row in rows] == [f"{name} (sqlite)" for name in TARGETS]
    for row in rows:
        assert row["ms"] > 0 and row["figure"].endswith("x") and row["target"].startswith("<= ")
        assert row["long_events"] == 12 and row["load"] >= 0
