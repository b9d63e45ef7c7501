#!/usr/bin/env python3
"""Fengqiao's two entry points, on a fresh machine with only Python 3.11:

    python3 dev.py demo    # build the demo county (SQLite) and serve it on http://127.0.0.1:8000
    python3 dev.py test    # the checks (ruff check, ruff format --check, mypy), then the test
                           # suite (PostgreSQL tests too where it is reachable)

Each creates ./.venv and installs the project into it first (again whenever
pyproject.toml changes). Extra arguments go to `fengqiao demo` or to pytest.
A failing check stops `test` before pytest, with a non-zero exit.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".fengqiao-installed"


def run(*command: str | Path, **kwargs) -> None:
    print("+", " ".join(str(c) for c in command), flush=True)
    subprocess.run([str(c) for c in command], check=True, cwd=ROOT, **kwargs)


def ensure_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be run by an older python3
        sys.exit(f"Fengqiao needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        run(sys.executable, "-m", "venv", VENV)
    run(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(BIN / "python", "-m", "pip", "install", "--quiet", "-e", ".[dev]")
    STAMP.write_text(wanted)


CHECKS = (
    ("ruff", "check", "."),
    ("ruff", "format", "--check", "."),
    ("mypy",),  # files and strictness: [tool.mypy] in pyproject.toml
)


def checks() -> int:
    """Lint, formatting and types; the exit code of the first that fails, else 0."""
    for tool, *args in CHECKS:
        print("+", tool, *args, flush=True)
        code = subprocess.call([str(BIN / tool), *args], cwd=ROOT)
        if code != 0:
            print(f"dev.py: `{tool} {' '.join(args)}` failed; the tests did not run", flush=True)
            return code
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test"):
        print(__doc__)
        return 2
    ensure_venv()
    command, rest = argv[0], argv[1:]
    if command == "demo":
        return subprocess.call([str(BIN / "fengqiao"), "demo", *rest], cwd=ROOT)
    failed = checks()
    if failed:
        return failed
    setup = ROOT / "tests" / "setup.sh"
    if setup.exists():
        run("bash", setup)
    return subprocess.call([str(BIN / "python"), "-m", "pytest", *parallel(rest), *rest], cwd=ROOT)


def parallel(args: list[str]) -> list[str]:
    """pytest-xdist, a test module to a worker (module fixtures are set up once), one worker
    more than the cores: many tests wait on a subprocess, a socket, a browser or a commit, so
    a third worker on 2 cores fills that time (2026-12-07: 6 min 46 s with 2 workers, 5 min 31 s
    with 3, same clone and host). Not when the caller chose (-n / -p no:xdist) or asked for
    one test by node id."""
    if any(a.startswith("-n") or a == "no:xdist" or "::" in a for a in args):
        return []
    return ["-n", str((os.cpu_count() or 1) + 1), "--dist", "loadscope"]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
