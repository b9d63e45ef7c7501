"""The settings model (``engine/settings.py``) and the one table of settings in
``docs/operations.md`` say the same: every field is a row and every row a field, with
its type and its default; and no module reads the environment on import."""

from __future__ import annotations

import re
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest

from engine.settings import DEFAULTS, Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = ROOT / "docs" / "operations.md"
ROW = re.compile(r"^\| `(FENGQIAO_[A-Z0-9_]+)` \| (\w+) \| ([^|]+) \| [^|]+ \|$")
TYPE_NAMES = {int: "int", float: "float", bool: "bool", str: "str", Path: "path"}
UNSET = "(unset)"


def documented() -> dict[str, tuple[str, str]]:
    """Variable → (type, default) from the table between the ``settings`` markers."""
    text = OPERATIONS.read_text(encoding="utf-8")
    table = text.split("<!-- settings:start -->")[1].split("<!-- settings:end -->")[0]
    rows = table.strip().splitlines()[2:]  # past the header and its rule
    found = {}
    for line in rows:
        match = ROW.match(line)
        assert match, f"not a row of the settings table: {line!r}"
        variable, type_name, default = match.groups()
        assert variable not in found, f"{variable} is in the table twice"
        found[variable] = (type_name, default.strip())
    return found


def type_name(annotation: object) -> str:
    """``int`` for ``Annotated[int, ...]``, ``str`` for ``str | None`` and so on."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if isinstance(annotation, types.UnionType):
        (annotation,) = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    return TYPE_NAMES[annotation]


def test_every_setting_is_in_the_table_and_every_row_is_a_setting():
    fields = {Settings.variable(name) for name in Settings.model_fields}
    rows = set(documented())
    assert sorted(fields - rows) == [], "settings missing from docs/operations.md"
    assert sorted(rows - fields) == [], "rows of docs/operations.md that are no setting"


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_the_table_gives_each_settings_type_and_default(name):
    field = Settings.model_fields[name]
    type_written, default_written = documented()[Settings.variable(name)]
    assert type_written == type_name(field.annotation)
    if default_written == UNSET:
        assert field.default in (None, ""), f"{name} has a default: {field.default!r}"
    else:  # the text, read as the variable would be, gives the model's default
        read = Settings.from_environment({Settings.variable(name): default_written})
        assert getattr(read, name) == field.default, (default_written, field.default)


def test_the_defaults_are_the_models_and_the_environment_overrides_them():
    assert Settings() == DEFAULTS == Settings.from_environment({})
    read = Settings.from_environment(
        {
            "FENGQIAO_CASE_CACHE": "5",
            "FENGQIAO_FEED_DIRECT": "0",
            "FENGQIAO_SIGNING_KEY": "/keys/k.pem",
            "FENGQIAO_PROJECTIONS_URL": "",
        }
    )
    assert (read.case_cache, read.feed_direct, read.signing_key) == (5, False, Path("/keys/k.pem"))
    assert read.projections_url is None  # an empty value counts as unset
    assert read.model_fields_set == {"case_cache", "feed_direct", "signing_key"}
    with pytest.raises(
        SettingsError, match=r"^FENGQIAO_CASE_CACHE='-5' must be a finite number >= 0"
    ):
        Settings.from_environment({"FENGQIAO_CASE_CACHE": "-5"})
    with pytest.raises(SettingsError, match=r"^FENGQIAO_FEED_DIRECT='maybe'"):
        Settings.from_environment({"FENGQIAO_FEED_DIRECT": "maybe"})


def test_an_engine_reads_its_settings_when_it_is_built(store, monkeypatch):
    from engine.service import Fengqiao

    monkeypatch.setenv("FENGQIAO_CASE_CACHE", "7")
    built = Fengqiao(store)
    try:
        assert built.settings.case_cache == built.case_cache.size == 7
    finally:
        built.close()
    given = Fengqiao(store, settings=Settings(case_cache=3))
    try:
        assert given.case_cache.size == 3  # given settings win over the environment
    finally:
        given.close()


def test_no_module_reads_a_setting_on_import():
    """Importing every module with a setting that does not fit raises nothing: the
    environment is read when a process starts, not when a module is imported."""
    modules = [
        "api.cli",
        "api.http.app",
        "engine.feed",
        "engine.audit.worker",
        "engine.leadership",
        "projections.worker",
        "projections.province",
        "workflows.webhooks",
        "workflows.routing",
    ]
    code = f"import importlib\nfor m in {modules!r}: importlib.import_module(m)\n"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    env |= {
        Settings.variable(name): "not a value"
        for name, field in Settings.model_fields.items()
        if type_name(field.annotation) in ("int", "float", "bool")
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
