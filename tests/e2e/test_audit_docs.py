"""The auditor's own script in docs/auditors.md really verifies a store, on both stores."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.audit.checkpoints import checkpoint, export
from tests.audit_support import RawStore, busy_history
from tests.integration.test_audit import recompute_chain

DOC = Path(__file__).resolve().parents[2] / "docs" / "auditors.md"


@pytest.fixture(autouse=True)
def signing_key(tmp_path, monkeypatch):
    monkeypatch.setenv("FENGQIAO_SIGNING_KEY", str(tmp_path / "signing-key.pem"))


def auditor_script(tmp_path: Path) -> Path:
    block = re.search(
        r"<!-- auditor-script:start -->\n```python\n(.*?)```\n<!-- auditor-script:end -->",
        DOC.read_text(encoding="utf-8"),
        re.S,
    ).group(1)
    assert len(block.splitlines()) <= 45
    path = tmp_path / "verify.py"
    path.write_text(block, encoding="utf-8")
    return path


def test_the_documented_script_agrees_with_the_engine(app, store, tmp_path):
    script = auditor_script(tmp_path)
    busy_history(app)
    cp_file = tmp_path / "cp.json"
    export(checkpoint(app), cp_file)
    busy_history(app)  # more events after the checkpoint do not matter
    target = store.url if store.is_postgres else str(store.sqlite_path)

    def run() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(script), target, str(cp_file)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert run().returncode == 0
    raw = RawStore(app)
    try:
        position, *_, state = raw.events_rows()[3]
        raw.sql(
            f"UPDATE {raw.events} SET state = ? WHERE {raw.pos} = ?",
            (bytes(state) + b" ", position),
        )
        recompute_chain(raw)
    finally:
        raw.close()
    tampered = run()
    assert tampered.returncode == 1 and "DIFFERS" in tampered.stdout
