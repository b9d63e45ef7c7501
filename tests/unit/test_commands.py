"""The typed commands against the case methods they call with their fields."""

from __future__ import annotations

import inspect

import pytest

from domain.cases import CASE_CLASSES
from domain.commands import ACTIONS, CaseAction, _ClockAction, _printable, _SuspensionAction


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


@pytest.mark.parametrize(
    ("char", "in_text", "in_line"),
    [
        ("\t", None, None),
        ("\n", None, "a line break"),
        ("\r", "a line break", "a line break"),
        ("\x00", "U+0000", "U+0000"),
        ("\x1f", "U+001F", "U+001F"),
        (" ", None, None),
        ("\x7f", "U+007F", "U+007F"),
        ("\x9f", "U+009F", "U+009F"),
        ("\xa0", None, None),
        ("\u2028", None, "a line break"),
        ("\u2029", None, "a line break"),
        ("\ud800", "U+D800", "U+D800"),
        ("\udfff", "U+DFFF", "U+DFFF"),
        ("\ue000", None, None),
        ("\ufffe", "U+FFFE", "U+FFFE"),
        ("\uffff", "U+FFFF", "U+FFFF"),
        ("督", None, None),
    ],
)
def test_text_refuses_controls_surrogates_and_line_separators(char, in_text, in_line) -> None:
    """Each boundary of what free text (lines allowed) and one line refuse, and the first
    refused character is the one named."""
    for newlines, refused in ((True, in_text), (False, in_line)):
        text = "办" * 30_000 + char + "\x01"
        if refused is None:
            with pytest.raises(ValueError, match="U\\+0001"):
                _printable(text, newlines=newlines)
            assert _printable("a" + char + "b", newlines=newlines) == "a" + char + "b"
        else:
            with pytest.raises(ValueError, match=refused.replace("+", "\\+")):
                _printable(text, newlines=newlines)
