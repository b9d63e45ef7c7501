"""The auditor's own script in docs/auditors.md really verifies a store, on both stores."""

from __future__ import annotations

import random
import re
import runpy
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from eventsourcing.persistence import StoredEvent

from engine.audit import proofs
from engine.audit.bundle import case_bundle
from engine.audit.checkpoints import checkpoint, export
from engine.audit.tables import CHAIN
from engine.sql import StoreDb
from tests.audit_support import RawStore, busy_history
from tests.integration.test_audit import recompute_chain
from tests.support import act, report

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


VERIFIER = Path(__file__).resolve().parents[2] / "engine" / "audit" / "verifier.py"


def bundle_verifier(tmp_path: Path) -> Path:
    """The standalone verifier printed in docs/auditors.md: the very file the engine runs."""
    block = re.search(
        r"<!-- bundle-verifier:start -->\n```python\n(.*?)```\n<!-- bundle-verifier:end -->",
        DOC.read_text(encoding="utf-8"),
        re.S,
    ).group(1)
    assert block == VERIFIER.read_text(encoding="utf-8")
    assert len(block.splitlines()) <= 155
    path = tmp_path / "verify_bundle.py"
    path.write_text(block, encoding="utf-8")
    return path


def fill(app, count: int) -> None:
    """``count`` more stored events, written as the engine writes them (batches through the
    chained recorder: chain and tree in the same transactions), copying a real case's."""
    templates = [
        (e.topic, bytes(e.state)) for e in app.recorder.select_events(busy_history(app)[0])
    ]
    batch: list[StoredEvent] = []
    while count > 0:
        case_id = uuid.uuid4()
        for version, (topic, state) in enumerate(templates[:count], start=1):
            batch.append(StoredEvent(case_id, version, topic, state))
        count -= len(templates[:count])
        if len(batch) >= 2000 or count <= 0:
            app.recorder.insert_events(batch)
            batch = []


def check_store(app, tmp_path: Path, events: int) -> None:
    script = bundle_verifier(tmp_path)
    early = report(app, "dispute").case_id  # a real case: its events far apart in the log
    act(app, early, "comment", "wang", text="first")
    fill(app, events)
    act(app, early, "comment", "wang", text="after the crowd")
    path = tmp_path / "case.bundle.json"
    path.write_bytes(case_bundle(app, early))
    run = subprocess.run(
        [sys.executable, str(script), str(path)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0 and "bundle OK: 3 events" in run.stdout, run.stdout
    head = checkpoint(app)
    assert head.size >= events
    module = runpy.run_path(str(script))  # the same file's functions, on a sample of proofs
    rng = random.Random(7)
    for _ in range(50):
        size = rng.randint(2, head.size)
        index, first = rng.randrange(size), rng.randint(1, size - 1)
        row = StoreDb(app.recorder).one(
            f"SELECT position FROM {StoreDb(app.recorder).table(CHAIN)} WHERE seq = ?", (index + 1,)
        )
        proof = proofs.inclusion(app, int(row["position"]), size)
        leaf, path_ = bytes.fromhex(proof["leaf_hash"]), [bytes.fromhex(p) for p in proof["proof"]]
        assert len(path_) <= size.bit_length()
        assert module["inclusion_root"](index, size, leaf, path_).hex() == proof["root"]
        consistent = proofs.consistency(app, first, size)
        module["check_consistency"](
            first,
            size,
            bytes.fromhex(consistent["from_root"]),
            bytes.fromhex(consistent["to_root"]),
            [bytes.fromhex(p) for p in consistent["proof"]],
        )
    bad = path.read_bytes().replace(b'"version":2', b'"version":9', 1)
    path.write_bytes(bad)
    run = subprocess.run(
        [sys.executable, str(script), str(path)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 1 and "BUNDLE INVALID: event 2 (version 9" in run.stdout


def test_the_documented_bundle_verifier_checks_proofs_from_a_store(app, tmp_path):
    check_store(app, tmp_path, 3_000)


@pytest.mark.slow
def test_the_documented_bundle_verifier_checks_proofs_from_a_store_of_100k_events(app, tmp_path):
    check_store(app, tmp_path, 100_000)
