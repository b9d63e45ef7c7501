"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser_support import launched
from tests.test_reliability_support import PrivatePostgres


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster of the tests' own (initdb + pg_ctl on a free port), to stop and restart."""
    cluster = PrivatePostgres()
    yield cluster
    cluster.destroy()


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's chromium, headless (skipped saying why where it is missing; failed on CI)."""
    with launched() as chromium:
        yield chromium
