"""Exactly-once with a real worker process: SIGKILL it mid-run, restart it, and
every count equals a rebuild from zero (both stores)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from projections import default_projections
from projections.runner import ProjectionRunner
from tests.integration.test_projections_properties import snapshot
from tests.support import act, report

FENGQIAO = str(Path(sys.executable).parent / "fengqiao")
ROOT = Path(__file__).resolve().parents[2]


def start_worker(url: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "FENGQIAO_DATABASE_URL": url, "FENGQIAO_PROJECTIONS_BATCH": "7"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [FENGQIAO, "worker", "--only", "projections"], env=env, cwd=ROOT, stdout=out, stderr=out
        )


def wait_until(condition, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


def test_worker_killed_mid_run_resumes_exactly_once(app, tmp_path):
    for i in range(120):
        case_id = report(app, ["dispute", "petition"][i % 2]).case_id
        act(app, case_id, "assign", "wang", assignee="wang")
        act(app, case_id, "accept", "wang")
    head = app.head_position()
    observer = ProjectionRunner(app, default_projections())
    log = tmp_path / "worker.log"
    try:
        observer.ensure()
        worker = start_worker(app.store.url, log)
        try:
            assert wait_until(lambda: observer.position("cases") > 0), log.read_text()
            os.kill(worker.pid, signal.SIGKILL)
        finally:
            worker.wait(10)
        killed_at = observer.position("cases")
        assert 0 < killed_at < head, "the worker finished before it was killed: add events"

        worker = start_worker(app.store.url, log)
        try:
            assert wait_until(lambda: observer.position("cases") == head), log.read_text()
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(20) == 0, log.read_text()
        incremental = snapshot(observer.db)
        observer.rebuild("cases")
        assert snapshot(observer.db) == incremental
        assert len(incremental["cases"]) == 120
    finally:
        observer.close()
