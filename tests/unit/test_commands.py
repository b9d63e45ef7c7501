"""The typed commands against the case methods they call."""

from __future__ import annotations

import inspect

import pytest

from domain.cases import CASE_CLASSES
from domain.commands import ACTIONS, CaseAction

PLAIN = sorted(
    name
    for name, cls in ACTIONS.items()
    if cls.apply is CaseAction.apply and cls.execute is CaseAction.execute
)


def test_most_actions_are_plain():
    assert len(PLAIN) >= 20 and "resume" in PLAIN and "assign" not in PLAIN


@pytest.mark.parametrize("name", PLAIN)
def test_a_plain_action_s_fields_are_its_case_method_s_keyword_arguments(name):
    """A plain action calls its case method with its fields: the two must name the same."""
    cls = ACTIONS[name]
    for kind in cls.kinds:
        method = getattr(CASE_CLASSES[kind], cls.method)
        keywords = {
            p.name
            for p in inspect.signature(method).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        }
        positional = [
            p.name
            for p in inspect.signature(method).parameters.values()
            if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        ]
        assert positional == ["self", "stamp"], (name, kind)
        assert keywords == set(cls.arguments) == set(cls.model_fields), (name, kind)
