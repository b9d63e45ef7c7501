"""The administrative ladder (行政层级): grid → village → township → county.

Regions carry hierarchical codes: ``410928`` (county), ``410928-001`` (township),
``410928-001-007`` (village), ``410928-001-007-03`` (grid). The parent of a code is
the code without its last ``-`` segment. Each region has a rank and a profile
(rural 网格/村/乡镇/县, urban 网格或楼栋/社区/街道/区). Units (村调解委员会,
综治中心, 派出所, 司法所, 信访办 …) live in regions.

The ladder is itself event-sourced (:class:`RegionLadder`): importing a region
file records what changed, and importing the same file again records nothing.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from enum import IntEnum, StrEnum
from uuid import NAMESPACE_URL, uuid5

from eventsourcing.domain import Aggregate

from domain.errors import NotFound, ValidationFailed


class Rank(IntEnum):
    GRID = 0  # 网格 / 微网格 (urban: 楼栋 / 网格)
    VILLAGE = 1  # 村 (urban: 社区)
    TOWNSHIP = 2  # 乡镇 (urban: 街道)
    COUNTY = 3  # 县 (urban: 区)

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | int) -> Rank:
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            try:
                return cls(int(value))
            except ValueError:
                pass
        else:
            try:
                return cls[str(value).strip().upper()]
            except KeyError:
                pass
        raise ValidationFailed(
            f"unknown rank {value!r}: use grid, village, township or county", field="rank"
        )


class Profile(StrEnum):
    RURAL = "rural"
    URBAN = "urban"

    @classmethod
    def parse(cls, value: str) -> Profile:
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise ValidationFailed(
                f"unknown profile {value!r}: use rural or urban", field="profile"
            ) from None


RANK_NAMES_ZH = {
    Profile.RURAL: {
        Rank.GRID: "网格",
        Rank.VILLAGE: "村",
        Rank.TOWNSHIP: "乡镇",
        Rank.COUNTY: "县",
    },
    Profile.URBAN: {
        Rank.GRID: "网格/楼栋",
        Rank.VILLAGE: "社区",
        Rank.TOWNSHIP: "街道",
        Rank.COUNTY: "区",
    },
}

CODE_PATTERN = re.compile(r"^[0-9A-Za-z]+(-[0-9A-Za-z]+)*$")


def parent_code(code: str) -> str | None:
    """The parent of ``410928-001-007`` is ``410928-001``; a root has none."""
    head, sep, _ = code.rpartition("-")
    return head if sep else None


@dataclass(frozen=True)
class Region:
    code: str
    name: str
    rank: Rank
    profile: Profile

    @property
    def parent(self) -> str | None:
        return parent_code(self.code)


@dataclass(frozen=True)
class Unit:
    """A body that handles cases, living in one region (e.g. 司法所 of a township)."""

    id: str
    name: str
    region: str
    kind: str


@dataclass(frozen=True)
class Person:
    """A named member of staff (网格员, mediator, supervisor …) in a region and unit.

    The name is the person's unique id: it is what a case is assigned to, and a
    case assigned to a person is handled at the rank of that person's region.
    """

    name: str
    role: str
    region: str
    unit: str | None = None


@dataclass
class RegionTree:
    """An in-memory index of the ladder: lookups, ancestors, subtrees, units."""

    regions: dict[str, Region] = field(default_factory=dict)
    children: dict[str | None, list[str]] = field(default_factory=dict)
    units: dict[str, Unit] = field(default_factory=dict)
    people: dict[str, Person] = field(default_factory=dict)

    def put(self, region: Region) -> None:
        if region.code not in self.regions:
            self.children.setdefault(region.parent, []).append(region.code)
        self.regions[region.code] = region

    def put_unit(self, unit: Unit) -> None:
        self.units[unit.id] = unit

    def put_person(self, person: Person) -> None:
        self.people[person.name] = person

    def person(self, name: str) -> Person:
        try:
            return self.people[name]
        except KeyError:
            raise NotFound(f"no person {name!r}", resource="person", id=name) from None

    def unit(self, unit_id: str) -> Unit:
        try:
            return self.units[unit_id]
        except KeyError:
            raise NotFound(f"no unit {unit_id!r}", resource="unit", id=unit_id) from None

    def __contains__(self, code: object) -> bool:
        return code in self.regions

    def __len__(self) -> int:
        return len(self.regions)

    def get(self, code: str) -> Region:
        try:
            return self.regions[code]
        except KeyError:
            raise NotFound(f"no region {code!r}", resource="region", id=code) from None

    def roots(self) -> list[Region]:
        return [self.regions[c] for c in self.children.get(None, [])]

    def children_of(self, code: str) -> list[Region]:
        return [self.regions[c] for c in self.children.get(code, [])]

    def ancestors(self, code: str) -> Iterator[Region]:
        """The region's parent, grandparent … up to the root (nearest first)."""
        parent = parent_code(code)
        while parent is not None:
            if parent in self.regions:
                yield self.regions[parent]
            parent = parent_code(parent)

    def lineage(self, code: str) -> list[Region]:
        """The region itself followed by its ancestors."""
        return [self.get(code), *self.ancestors(code)]

    def ancestor_at(self, code: str, rank: int) -> Region | None:
        """The region, or its nearest ancestor, whose rank is ``rank``; None if it has none.

        By rank, never by code segments: a micro-grid (a grid under a grid) has its
        village two segments up. The one rule for "the village (township) of a region"
        (the cases projection files compliance under it)."""
        own = self.regions.get(code)
        for region in ([own] if own is not None else []) + list(self.ancestors(code)):
            if region.rank == rank:
                return region
        return None

    def ancestor_at_rank(self, code: str, rank: int) -> Region:
        """The region, or its nearest ancestor, whose rank is ``rank``."""
        found = self.ancestor_at(self.get(code).code, rank)
        if found is not None:
            return found
        raise NotFound(
            f"region {code!r} has no ancestor of rank {Rank(rank).label}",
            resource="region",
            id=code,
        )

    def supervisor_at(self, code: str, rank: int) -> tuple[Region, str | None]:
        """The region of rank ``rank`` over ``code`` (``code``'s own if none is) and its
        supervisor, the first by name (None if it has none): whom a case held at its
        ceiling is put before."""
        region = self.ancestor_at(code, rank) or self.get(code)
        names = sorted(
            p.name
            for p in self.people.values()
            if p.region == region.code and p.role == "supervisor"
        )
        return region, names[0] if names else None

    def next_rank_up(self, code: str) -> Region | None:
        """The nearest ancestor of a higher rank, or None at the top."""
        rank = self.get(code).rank
        return next((r for r in self.ancestors(code) if r.rank > rank), None)

    @staticmethod
    def is_within(code: str, root: str) -> bool:
        """Is region ``code`` in the subtree rooted at ``root`` (inclusive)?"""
        return code == root or code.startswith(root + "-")

    def subtree(self, code: str) -> Iterator[Region]:
        stack = [code]
        while stack:
            current = stack.pop()
            if current in self.regions:
                yield self.regions[current]
            stack.extend(reversed(self.children.get(current, [])))

    def units_in(self, code: str) -> list[Unit]:
        return [u for u in self.units.values() if u.region == code]


# -- the region file ---------------------------------------------------------------

REGION_FILE_HEADER = ("code", "name", "rank", "profile")


def parse_region_file(text: str, known: RegionTree | None = None) -> list[Region]:
    """Parse ``code,name,rank,profile`` rows; any bad row rejects the whole file.

    Errors name the row number (the header is row 1). A parent must exist, in
    the file or in ``known``; a child ranks below its parent (a micro-grid may sit
    under a grid); a code appears once.
    """
    try:
        rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    except csv.Error as error:  # e.g. a line break inside an unquoted cell
        raise ValidationFailed(f"the region file is not valid CSV: {error}", field="file") from None
    if not rows or tuple(c.strip().lower() for c in rows[0]) != REGION_FILE_HEADER:
        raise ValidationFailed(
            "the region file must start with the header code,name,rank,profile",
            field="header",
            row=1,
        )
    parsed: dict[str, Region] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 4:
            raise ValidationFailed(
                f"row {number}: expected 4 columns, found {len(row)}", row=number, field="row"
            )
        code, name, rank, profile = (cell.strip() for cell in row)
        if not CODE_PATTERN.match(code):
            raise ValidationFailed(f"row {number}: bad code {code!r}", row=number, field="code")
        if not name:
            raise ValidationFailed(f"row {number}: empty name", row=number, field="name")
        if code in parsed:
            raise ValidationFailed(
                f"row {number}: code {code} appears twice", row=number, field="code"
            )
        try:
            region = Region(code, name, Rank.parse(rank), Profile.parse(profile))
        except ValidationFailed as error:
            raise ValidationFailed(
                f"row {number}: {error.message}", row=number, field=error.details.get("field")
            ) from None
        parsed[code] = region
    _check_parents(parsed, known)
    return sorted(parsed.values(), key=lambda r: r.code.count("-"))


def _check_parents(parsed: dict[str, Region], known: RegionTree | None) -> None:
    """Each parent exists (in the file or the ladder) and ranks above its child, or is a
    grid above a micro-grid; errors name the child's row."""
    numbers = {code: n for n, code in enumerate(parsed, start=2)}
    for code, region in parsed.items():
        parent = region.parent
        if parent is None:
            continue
        parent_region = parsed.get(parent) or (known.regions.get(parent) if known else None)
        if parent_region is None:
            raise ValidationFailed(
                f"row {numbers[code]}: parent {parent} of {code} is not in the file or the ladder",
                row=numbers[code],
                field="code",
            )
        if not (region.rank < parent_region.rank or region.rank == parent_region.rank == Rank.GRID):
            raise ValidationFailed(
                f"row {numbers[code]}: {code} ({region.rank.label}) must rank below its parent "
                f"{parent} ({parent_region.rank.label})",
                row=numbers[code],
                field="rank",
            )


# -- the event-sourced ladder ------------------------------------------------------

LADDER_ID = uuid5(NAMESPACE_URL, "fengqiao:region-ladder")


class RegionLadder(Aggregate):
    """The one ladder of a deployment; every change to it is an event."""

    class Started(Aggregate.Created):
        pass

    class RegionAdded(Aggregate.Event):
        code: str
        name: str
        rank: int
        profile: str
        actor_id: str

        def apply(self, ladder: RegionLadder) -> None:
            ladder.tree.put(Region(self.code, self.name, Rank(self.rank), Profile(self.profile)))

    class RegionChanged(RegionAdded):
        """Name, rank or profile of an existing region changed."""

    class UnitAdded(Aggregate.Event):
        unit_id: str
        name: str
        region: str
        kind: str
        actor_id: str

        def apply(self, ladder: RegionLadder) -> None:
            ladder.tree.put_unit(Unit(self.unit_id, self.name, self.region, self.kind))

    class UnitChanged(UnitAdded):
        """Name, region or kind of an existing unit changed."""

    class PersonAdded(Aggregate.Event):
        name: str
        role: str
        region: str
        unit: str | None
        actor_id: str

        def apply(self, ladder: RegionLadder) -> None:
            ladder.tree.put_person(Person(self.name, self.role, self.region, self.unit))

    class PersonChanged(PersonAdded):
        """Role, region or unit of an existing person changed."""

    def __init__(self) -> None:
        self.tree = RegionTree()

    @classmethod
    def start(cls) -> RegionLadder:
        return cls._create(cls.Started, id=LADDER_ID)

    def import_regions(self, regions: Iterable[Region], actor_id: str) -> int:
        """Record each region that is new or differs; return how many changed."""
        events = (self.RegionAdded, self.RegionChanged)
        return sum(
            self._record_change(
                self.tree.regions.get(region.code),
                region,
                events,
                actor_id,
                code=region.code,
                name=region.name,
                rank=int(region.rank),
                profile=str(region.profile),
            )
            for region in regions
        )

    def add_unit(self, unit: Unit, actor_id: str) -> bool:
        if unit.region not in self.tree:
            raise NotFound(f"no region {unit.region!r} for unit {unit.id}", resource="region")
        fields = {"unit_id": unit.id, "name": unit.name, "region": unit.region, "kind": unit.kind}
        events = (self.UnitAdded, self.UnitChanged)
        return self._record_change(self.tree.units.get(unit.id), unit, events, actor_id, **fields)

    def add_person(self, person: Person, actor_id: str) -> bool:
        if person.region not in self.tree:
            raise NotFound(f"no region {person.region!r} for {person.name}", resource="region")
        if person.unit is not None:
            self.tree.unit(person.unit)
        current = self.tree.people.get(person.name)
        events = (self.PersonAdded, self.PersonChanged)
        return self._record_change(current, person, events, actor_id, **asdict(person))

    def _record_change(
        self,
        current: object,
        new: object,
        events: tuple[type, type],
        actor_id: str,
        **fields: object,
    ) -> bool:
        """Record ``new`` unless the ladder already holds it: ``events``' first (added) when
        it is new, its second (changed) when it differs. Returns whether anything was recorded."""
        if current == new:
            return False
        added, changed = events
        self.trigger_event(changed if current else added, actor_id=actor_id, **fields)
        return True


__all__ = [
    "LADDER_ID",
    "Person",
    "Profile",
    "Rank",
    "Region",
    "RegionLadder",
    "RegionTree",
    "Unit",
    "parse_region_file",
    "parent_code",
]
