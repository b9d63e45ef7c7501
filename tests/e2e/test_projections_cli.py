"""``fengqiao projections status|rebuild`` on both stores."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from api.cli import app as cli
from engine.logs import configure_logging
from tests.support import act, report


def test_status_and_rebuild(app, monkeypatch):
    monkeypatch.setenv("FENGQIAO_DATABASE_URL", app.store.url)
    configure_logging()  # bind log output here, not to the first invocation's captured stderr
    case_id = report(app).case_id
    act(app, case_id, "assign", "li", assignee="zhao")
    runner = CliRunner()
    before = runner.invoke(cli, ["projections", "status", "--json"])
    assert before.exit_code == 0, before.output
    status = {row["name"]: row for row in json.loads(before.stdout)}
    assert set(status) == {"cases", "search"}
    cases = status["cases"]
    assert (cases["name"], cases["position"], cases["lag"]) == ("cases", 0, app.head_position())

    rebuilt = runner.invoke(cli, ["projections", "rebuild", "cases", "--batch-size", "3"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "events/s" in rebuilt.output
    after = {
        row["name"]: row
        for row in json.loads(runner.invoke(cli, ["projections", "status", "--json"]).stdout)
    }
    assert (after["cases"]["generation"], after["cases"]["lag"]) == (2, 0)
    assert after["search"]["generation"] == 1  # rebuilding one projection leaves the other

    unknown = runner.invoke(cli, ["projections", "rebuild", "nope"])
    assert unknown.exit_code == 2
