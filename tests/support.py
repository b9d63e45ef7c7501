"""Shared test data: the county the benchmarks use too (``api/bench/county.py``)."""

from api.bench.county import (  # noqa: F401
    COUNTY_CSV,
    DEFAULT_POLICY,
    PEOPLE,
    RANKS,
    UNITS,
    act,
    actor,
    envelope,
    report,
    seed,
)
