"""Routing: which unit of a region is responsible for a kind and category of case.

The table is policy (``[[routing]]`` in the policy file): rules in order, each
naming the kinds and, optionally, the categories it covers and the unit kinds it
prefers, first choice first. The first rule that matches and has such a unit in
the region wins. When nothing matches, the answer is None and the caller takes
the case one rank up (兜底): a case is never left without an owner.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from domain.ladder import RegionTree, Unit


def responsible_unit(
    tree: RegionTree,
    rules: Iterable[Mapping[str, Any]],
    region: str,
    kind: str,
    category: str,
) -> Unit | None:
    units = tree.units_in(region)
    if not units:
        return None
    by_kind: dict[str, Unit] = {}
    for unit in units:
        by_kind.setdefault(unit.kind, unit)
    for rule in rules:
        if kind not in rule.get("kinds", [kind]):
            continue
        if "categories" in rule and category not in rule["categories"]:
            continue
        for unit_kind in rule.get("unit_kinds", []):
            if unit_kind in by_kind:
                return by_kind[unit_kind]
    return None
