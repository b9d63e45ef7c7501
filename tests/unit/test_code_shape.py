"""The code's shape checks itself: short functions where rules live (domain/ and
projections/). A declarative table (a function that only returns a literal dict, list,
tuple or set) may be as long as its rows."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 60
RULE_PACKAGES = ("domain", "projections")
TABLES = (ast.Dict, ast.List, ast.Tuple, ast.Set)


def is_table(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    body = node.body[1:] if ast.get_docstring(node) is not None else node.body
    return len(body) == 1 and isinstance(body[0], ast.Return) and isinstance(body[0].value, TABLES)


def long_functions(package: str, root: Path = ROOT) -> list[str]:
    found = []
    for path in sorted((root / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not is_table(node):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_LINES:
                    found.append(
                        f"{path.relative_to(root)}:{node.lineno} {node.name} ({length} lines)"
                    )
    return found


def test_no_function_in_domain_or_projections_is_longer_than_60_lines() -> None:
    found = [f for package in RULE_PACKAGES for f in long_functions(package)]
    assert not found, "functions longer than 60 lines:\n" + "\n".join(found)


def test_the_walk_finds_long_functions_and_methods_but_not_tables(tmp_path: Path) -> None:
    (tmp_path / "domain").mkdir()
    lines = "".join(f"    x{i} = {i}\n" for i in range(60))
    rows = "".join(f"        {i}: {i},\n" for i in range(70))
    (tmp_path / "domain" / "m.py").write_text(
        f"def short():\n    return 1\n\n\ndef long():\n{lines}\n\n"
        f"class C:\n    async def method(self):\n    {lines.replace(chr(10) + '    ', chr(10) + '        ')}\n\n"
        f'def table():\n    """Rows."""\n    return {{\n{rows}    }}\n'
    )
    assert [f.split(" ")[1] for f in long_functions("domain", tmp_path)] == ["long", "method"]
