"""`fengqiao audit`, `fengqiao privacy` and `fengqiao case file` through the real CLI, on both stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from api.cli import app as root
from engine import privacy
from engine.audit.checkpoints import checkpoint, export, load_signing_key
from tests.audit_support import RawStore
from tests.integration.test_audit import recompute_chain
from tests.support import ZHANG_SAN, act, report

ROOT = Path(__file__).resolve().parents[2]


def cli(store, tmp_path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "FENGQIAO_DATABASE_URL": store.url,
        "FENGQIAO_LOG_FORMAT": "json",
        "FENGQIAO_SIGNING_KEY": str(tmp_path / "signing-key.pem"),
    }
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


def test_checkpoint_verify_case_file_and_erasure_from_the_shell(app, store, tmp_path):
    case_id = report(app, parties=[ZHANG_SAN]).case_id
    act(app, case_id, "assign", "li", assignee="zhao")
    act(app, case_id, "accept", "zhao")
    exported = tmp_path / "checkpoint.json"

    signed = json.loads(
        cli(store, tmp_path, "audit", "checkpoint", "--export", str(exported)).stdout
    )["checkpoint"]
    assert json.loads(exported.read_text())["root"] == signed["root"]
    verified = json.loads(
        cli(store, tmp_path, "audit", "verify", "--against", str(exported)).stdout
    )
    assert verified["ok"] and verified["checkpoints_checked"] >= 1
    person = {"person_id": privacy.find_person(app, id_number="41092819800101127X")}
    erased = json.loads(cli(store, tmp_path, "privacy", "erase", person["person_id"]).stdout)
    assert erased["person_id"] == person["person_id"] and not erased["already_erased"]
    assert json.loads(cli(store, tmp_path, "audit", "verify", "--against", str(exported)).stdout)[
        "ok"
    ]

    page = tmp_path / "case.html"
    written = json.loads(
        cli(store, tmp_path, "case", "file", str(case_id), "--out", str(page)).stdout
    )
    assert written["verified"] and written["events"] == 3
    html = page.read_text(encoding="utf-8")
    for text in (
        "案 件 卷 宗",
        "办理时间线",
        "上报",
        "派单",
        "签收",
        "防篡改校验",
        "通过",
        "[erased]",
        signed["root"],
    ):
        assert text in html, text
    assert "张三" not in html

    raw = RawStore(app)
    try:
        position = app.positions_of(case_id)[2]
        raw.sql(f"UPDATE {raw.events} SET state = ? WHERE {raw.pos} = ?", (b"{}", position))
    finally:
        raw.close()
    failed = cli(store, tmp_path, "audit", "verify", ok=False)
    assert failed.returncode == 1 and f"position {position}" in failed.stderr
    assert json.loads(failed.stdout)["finding"]["problem"] == "altered"
    cli(store, tmp_path, "audit", "verify", "--case", str(case_id), ok=False)


def test_bundle_verify_bundle_and_verify_against_from_the_shell(app, store, tmp_path):
    case_id = report(app, "hazard").case_id
    act(app, case_id, "comment", "wang", text="已拍照")
    old = tmp_path / "old-head.json"
    export(checkpoint(app, key=load_signing_key(tmp_path / "signing-key.pem")), old)
    act(app, case_id, "comment", "wang", text="整改中")
    bundle = tmp_path / "case.bundle.json"
    written = json.loads(
        cli(store, tmp_path, "audit", "bundle", str(case_id), "--out", str(bundle)).stdout
    )
    assert written["bytes"] == bundle.stat().st_size
    # verify-bundle opens no store: run in this process, through the same typer app
    checked = CliRunner().invoke(root, ["audit", "verify-bundle", str(bundle)])
    assert checked.exit_code == 0 and json.loads(checked.stdout)["events"] == 3
    bundle.write_bytes(bundle.read_bytes().replace(b'"version":3', b'"version":4'))
    tampered = CliRunner().invoke(root, ["audit", "verify-bundle", str(bundle)])
    assert tampered.exit_code == 1 and "event 3 (version 4" in tampered.stderr

    raw = RawStore(app)
    try:  # rewrite the first event and recompute everything after it, tree included
        position, *_, state = raw.events_rows()[0]
        raw.sql(
            f"UPDATE {raw.events} SET state = ? WHERE {raw.pos} = ?",
            (bytes(state) + b" ", position),
        )
        recompute_chain(raw)
        raw.sql(f"DELETE FROM {raw.checkpoints}")
    finally:
        raw.close()
    rewritten = cli(store, tmp_path, "audit", "verify", "--against", str(old), ok=False)
    assert json.loads(rewritten.stdout)["finding"]["problem"] == "not_extended"
    assert "does not extend the older tree head" in rewritten.stderr
