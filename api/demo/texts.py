"""What the demo's cases say: titles, summaries and replies, by kind and category.

The texts are data, kept in ``texts.toml`` beside this module (what the placeholders
in a title mean: the file's head); the category and channel weights the stories draw
with are in ``mixes.toml``.
"""

from __future__ import annotations

import random
import tomllib
from collections.abc import Sequence
from importlib import resources
from typing import Any


def load(name: str) -> dict[str, Any]:
    """A TOML file of this package (packaged with it: pyproject's package-data)."""
    return tomllib.loads(resources.files("api.demo").joinpath(name).read_text(encoding="utf-8"))


_TEXTS = load("texts.toml")
DISPUTE_TITLES: dict[str, list[str]] = _TEXTS["dispute_titles"]
URBAN_NEIGHBOUR_TITLES: list[str] = _TEXTS["urban_neighbour_titles"]
HAZARD_TITLES: dict[str, list[str]] = _TEXTS["hazard_titles"]
PETITION_TITLES: dict[str, list[str]] = _TEXTS["petition_titles"]
AGREEMENTS: list[str] = _TEXTS["agreements"]
FAILED_SUMMARIES: list[str] = _TEXTS["failed_summaries"]
ESCALATION_REASONS: dict[str, list[str]] = _TEXTS["escalation_reasons"]
RECLASSIFY_REASONS: list[str] = _TEXTS["reclassify_reasons"]
REPLIES: list[str] = _TEXTS["replies"]
MEASURES: list[str] = _TEXTS["measures"]


def title(rng: random.Random, templates: Sequence[str], **names: str) -> str:
    return rng.choice(templates).format(n=rng.randint(3, 28), **names)
