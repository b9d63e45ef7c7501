"""The layers run one way (docs/architecture.md): api → workflows → projections →
engine → domain. Every import of every module, including those inside functions, is
checked against the table below; ``tests`` may import anything, nothing imports
``tests``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# what each package may import of the project (itself included)
MAY_IMPORT = {
    "domain": {"domain"},
    "engine": {"engine", "domain"},
    "projections": {"projections", "engine", "domain"},
    "workflows": {"workflows", "projections", "engine", "domain"},
    "api": {"api", "workflows", "projections", "engine", "domain"},
}
PROJECT = {*MAY_IMPORT, "tests"}


def imported(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """Every module ``path`` imports (absolute names), with its line."""
    package = list(path.relative_to(root).parent.parts)
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                found.append(
                    (node.lineno, ".".join([*base, *([node.module] if node.module else [])]))
                )
            else:
                found.append((node.lineno, node.module or ""))
    return found


def violations() -> list[str]:
    wrong = []
    for layer, allowed in MAY_IMPORT.items():
        for path in sorted((ROOT / layer).rglob("*.py")):
            for line, module in imported(path):
                top = module.split(".")[0]
                if top in PROJECT and top not in allowed:
                    wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return wrong


def test_no_import_runs_against_the_layer_order() -> None:
    assert violations() == []


def test_the_walk_sees_imports_inside_functions_and_relative_ones(tmp_path) -> None:
    (tmp_path / "engine").mkdir()
    module = tmp_path / "engine" / "m.py"
    module.write_text(
        "def f():\n    from projections.db import Database\n    import tests.support\n"
        "from .store import StoreConfig\n"
    )
    assert sorted(m for _, m in imported(module, tmp_path)) == [
        "engine.store",
        "projections.db",
        "tests.support",
    ]
