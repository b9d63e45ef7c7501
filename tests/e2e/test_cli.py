"""Drive a case end to end through the real `fengqiao` CLI, on both stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import COUNTY_CSV

ROOT = Path(__file__).resolve().parents[2]


def cli(store, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "FENGQIAO_DATABASE_URL": store.url, "FENGQIAO_LOG_FORMAT": "json"}
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert (done.returncode == 0) == ok, (done.returncode, done.stdout, done.stderr)
    return done


def cli_in_process(store, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    """As :func:`cli`, but in this process (typer's ``CliRunner``, the same ``fengqiao`` app
    and environment): for tests of what a command does rather than of the process, without
    a Python start-up and the CLI's imports (~1 s of CPU) per command."""
    from typer.testing import CliRunner

    from api.cli import app

    env = {"FENGQIAO_DATABASE_URL": store.url, "FENGQIAO_LOG_FORMAT": "json"}
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    done = subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)
    assert (done.returncode == 0) == ok, (done.returncode, done.stdout, done.stderr)
    return done


def out(done: subprocess.CompletedProcess):
    return json.loads(done.stdout)


def test_a_case_end_to_end_from_the_shell(store, tmp_path):
    regions = tmp_path / "regions.csv"
    regions.write_text(COUNTY_CSV, encoding="utf-8")
    assert out(cli(store, "init"))["policy_version"] == 1
    assert out(cli(store, "regions", "import", str(regions)))["changed"] == 12
    assert out(cli(store, "regions", "import", str(regions)))["changed"] == 0
    cli(
        store,
        "units",
        "add",
        "wz-tjh",
        "--name",
        "王庄村调解委员会",
        "--region",
        "410928-001-007",
        "--kind",
        "mediation_committee",
    )
    cli(
        store, "people", "add", "wang", "--role", "handler", "--region", "410928-001-007-03"
    )  # signs for it
    cli(
        store,
        "people",
        "add",
        "li",
        "--role",
        "supervisor",
        "--region",
        "410928-001-007",
        "--unit",
        "wz-tjh",
    )

    reported = out(
        cli(
            store,
            "case",
            "report",
            "--kind",
            "dispute",
            "--category",
            "neighbours",
            "--region",
            "410928-001-007-03",
            "--title",
            "楼上噪音",
            "--as",
            "wang",
            "--command-id",
            "r-1",
        )
    )
    case_id = reported["case"]["id"]
    again = out(
        cli(
            store,
            "case",
            "report",
            "--kind",
            "dispute",
            "--category",
            "neighbours",
            "--region",
            "410928-001-007-03",
            "--title",
            "楼上噪音",
            "--as",
            "wang",
            "--command-id",
            "r-1",
        )
    )
    assert again["repeated"] and again["case"]["id"] == case_id

    cli(store, "case", "assign", case_id, "assignee=wang", "--as", "li")
    cli(store, "case", "accept", case_id, "--as", "wang")
    escalated = out(cli(store, "case", "escalate", case_id, "reason=网格化解不了", "--as", "wang"))
    assert escalated["case"]["rank"] == "village" and escalated["case"]["unit"] == "wz-tjh"

    refused = cli(store, "case", "escalate", case_id, "reason=村里调不了", "--as", "li", ok=False)
    assert refused.returncode == 1
    error = json.loads(refused.stderr.strip().splitlines()[-1])["error"]
    assert (error["code"], error["ceiling"], error["requested"]) == (
        "escalation_ceiling",
        "village",
        "township",
    )

    bad = cli(
        store, "case", "mediate", case_id, "outcome=perhaps", "summary=x", "--as", "li", ok=False
    )
    assert bad.returncode == 2 and "outcome" in bad.stderr

    stale = cli(store, "case", "comment", case_id, "text=x", "--if-version", "1", ok=False)
    assert json.loads(stale.stderr.strip().splitlines()[-1])["error"]["code"] == "version_conflict"

    history = out(cli(store, "case", "history", case_id))
    assert [h["type"] for h in history] == ["Reported", "Assigned", "Accepted", "Escalated"]
    assert history[0]["actor"]["id"] == "wang" and history[3]["data"]["reason"] == "网格化解不了"
    assert [h["position"] for h in history] == sorted(h["position"] for h in history)

    at_v2 = out(cli(store, "case", "show", case_id, "--version", "2"))
    assert (at_v2["status"], at_v2["version"]) == ("assigned", 2)
    as_of = out(cli(store, "case", "show", case_id, "--as-of", history[2]["recorded_at"]))
    assert (as_of["version"], as_of["status"]) == (3, "accepted")
