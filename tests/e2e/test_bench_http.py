"""``fengqiao bench http`` runs end to end at a tiny size (no timing is asserted: hosts are noisy)."""

from __future__ import annotations

import pytest

from api.bench.bench_http import TARGETS, run
from api.bench.bench_scale import run as run_scale


def test_the_http_benchmark_runs_at_a_tiny_size() -> None:
    rows = run("sqlite", size=12, requests=3)
    assert [row["name"] for row in rows] == [f"{name} (sqlite)" for name in TARGETS]
    for row in rows:
        assert row["ms"] > 0 and row["figure"].endswith("x") and row["target"].startswith("<= ")
        assert row["long_events"] == 12 and row["load"] >= 0


@pytest.mark.slow  # ~35 s: four server processes start (serve --workers 2 is tested by default in test_serve_processes.py)
def test_the_scale_benchmark_runs_at_a_tiny_size() -> None:
    """``fengqiao bench scale``: serve --workers 1 and 2 under 16 clients, one short pair."""
    rows = run_scale("sqlite", size=1, pairs=1, warmup=0)
    assert [row["name"] for row in rows] == [
        "commands/s, serve --workers 2 vs 1 (sqlite)",
        "command p95 / p50, serve --workers 1 (sqlite)",
        "command p95 / p50, serve --workers 2 (sqlite)",
    ]
    assert rows[0]["errors"] == 0
    for row in rows:
        assert row["figure"].endswith("x") and row["target"][:2] in (">=", "<=")
        assert row["load"] >= 0 and row["clients"] == 16
