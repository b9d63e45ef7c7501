"""``Fengqiao.case_view``: the one case view (with clocks) the HTTP API, the CLI and the
dashboard show — now, at a version, or as recorded at a moment."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from domain.errors import NotFound, ValidationFailed
from engine.case_clocks import clocks_of
from engine.views import case_fields
from tests.support import act, report


def test_the_case_now_carries_its_clocks_at_the_given_moment(app) -> None:
    case_id = report(app).case_id
    act(app, case_id, "assign", "li", assignee="zhao")
    later = app.clock.now() + timedelta(days=3)
    view = app.case_view(case_id, now=later)
    assert view == case_fields(app.case(case_id), clocks_of(app, case_id, later))
    assert view["clocks"]


def test_a_version_shows_its_clocks_when_it_was_recorded(app, clock) -> None:
    case_id = report(app).case_id
    clock.advance(timedelta(hours=5))
    act(app, case_id, "assign", "li", assignee="zhao")
    first = app.case(case_id, version=1)
    view = app.case_view(case_id, version=1)
    assert view["version"] == 1 and view["assignee"] is None
    assert view == app.case_view(case_id, version=1, now=first.modified_on)
    assert app.case_view(case_id, as_of=first.modified_on) == view


def test_refusals_for_a_missing_version_or_moment(app) -> None:
    case_id = report(app).case_id
    with pytest.raises(NotFound):
        app.case_view(case_id, version=5)
    with pytest.raises(NotFound):
        app.case_view(case_id, as_of=app.case(case_id).modified_on - timedelta(days=1))
    with pytest.raises(ValidationFailed):
        app.case_view(case_id, as_of=datetime(2026, 1, 1))
