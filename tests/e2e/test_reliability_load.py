"""The bounded version of api/bench/load.py: a real server, clients ramping 4 → 16 for
20 s mixing commands and queries; 0 errors other than the deliberate conflicts.

The 5-minute run (16 → 64 clients) is ``python -m api.bench.load``; its last figures
are in docs/reliability.md."""

from __future__ import annotations

import uuid

import pytest

from api.bench.load import run
from tests.conftest import POSTGRES_URL, drop_schema, require_postgres


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_short_loopback_load_has_no_errors(kind, tmp_path):
    url = f"sqlite:///{tmp_path / 'load.db'}"
    if kind == "postgres":
        require_postgres()
        schema = f"t_{uuid.uuid4().hex[:12]}"
        url = f"{POSTGRES_URL}?schema={schema}"
    try:
        result = run(seconds=20, start=4, end=16, url=url)
    finally:
        if kind == "postgres":
            drop_schema(schema)
    assert result["errors"] == 0, result["first_errors"]
    assert result["deliberate_conflicts"] > 0  # the conflicts were sent and refused with 412
    assert result["latency_ms"]["report"]["n"] > 20 and result["requests"] > 200
