"""``fengqiao bench`` runs from an installed wheel: every benchmark it runs is a
packaged module (``api/bench/``), not a file of the checkout's ``tests/``."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from api.cli.bench import BENCHES, module_of

ROOT = Path(__file__).resolve().parents[2]


def test_every_benchmark_is_a_packaged_module() -> None:
    for name, bench in BENCHES.items():
        module = module_of(bench)
        assert module.startswith("api.bench."), name
        assert importlib.util.find_spec(module) is not None, name


def test_a_benchmark_run_in_process_runs_from_the_checkout(tmp_path) -> None:
    """``fengqiao bench replay`` calls its module's ``run`` in-process (``module`` in
    benches.toml): the module is found by its packaged name (it was once imported by its
    bare name and failed)."""
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "bench", "replay", "--store", "sqlite", "--size", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "replay sqlite case_as_of" in done.stdout


@pytest.mark.slow  # builds a wheel and installs it with its dependencies (~30 s or more)
def test_fengqiao_bench_runs_from_a_wheel_installed_outside_the_checkout(tmp_path) -> None:
    def run(*command: str | Path) -> str:
        done = subprocess.run(
            [str(c) for c in command], cwd=tmp_path, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    source = tmp_path / "source"  # a copy: building in the checkout would leave build/ there
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "var"),
    )
    run(sys.executable, "-m", "pip", "wheel", source, "-w", tmp_path / "wheel", "--no-deps", "-q")
    run(sys.executable, "-m", "venv", tmp_path / "venv")
    (wheel,) = (tmp_path / "wheel").glob("fengqiao-*.whl")
    run(tmp_path / "venv" / "bin" / "pip", "install", "-q", wheel)
    fengqiao = tmp_path / "venv" / "bin" / "fengqiao"
    assert "replay" in run(fengqiao, "bench", "--help")
    assert "replay sqlite case_as_of" in run(
        fengqiao, "bench", "replay", "--store", "sqlite", "--size", "3"
    )
