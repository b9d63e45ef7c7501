"""The typed commands against the case methods they call with their fields."""

from __future__ import annotations

import inspect

import pytest

from domain.cases import CASE_CLASSES
from domain.commands import ACTIONS, CaseAction, _ClockAction, _SuspensionAction


def calls(cls: type[CaseAction]) -> tuple[list[str], set[str]] | None:
    """The positional parameters and keyword arguments a forwarding action gives its case
    method, or None for an action with a rule of its own."""
    fields = set(cls.arguments)
    if issubclass(cls, _ClockAction):
        return ["self", "stamp", "clock"], fields - {"clock"}
    if issubclass(cls, _SuspensionAction):
        return ["self", "stamp"], fields | {"resolve_clock"}
    if cls.apply is CaseAction.apply and cls.execute is CaseAction.execute:
        return ["self", "stamp"], fields
    return None


FORWARDING = sorted(name for name, cls in ACTIONS.items() if calls(cls) is not None)


def test_most_actions_forward_their_fields():
    assert len(FORWARDING) >= 27 and {"resume", "extend", "suspend"} <= set(FORWARDING)
    assert "assign" not in FORWARDING


@pytest.mark.parametrize("name", FORWARDING)
def test_an_action_s_fields_are_its_case_method_s_arguments(name):
    """A forwarding action calls its case method with its fields: the two must name the same."""
    cls = ACTIONS[name]
    assert set(cls.arguments) == set(cls.model_fields)
    expected = calls(cls)
    for kind in cls.kinds:
        parameters = inspect.signature(getattr(CASE_CLASSES[kind], cls.method)).parameters
        positional = [
            p.name for p in parameters.values() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        ]
        keywords = {p.name for p in parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}
        assert (positional, keywords) == expected, (name, kind)
