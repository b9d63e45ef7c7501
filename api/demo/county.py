"""The demo county, shaped on 阳高县 (DOMAIN.md §1, seed 002).

Eleven rural townships with about two hundred villages, one urban subdistrict
(街道) with fifteen communities and their building grids, about 520 grids and
560 grid workers. Every township has its 综治中心, 派出所, 司法所, 信访办 and
安监站; every village its 调解委员会 and 村委会; the county its 矛盾纠纷调处中心,
信访局 (with the 12345 hotline), 应急管理局 and the departments that answer a
whistle (吹哨报到).

Who is who (roles as in ``domain.permissions``):

* grid: 网格员 grid workers (handler: they settle what they can), 网格辅助员
  assistants (reporter), and on urban grids a 网格长 (supervisor at grid rank,
  the ceiling of an urban 小事, so the one who may reclassify it);
* village / community: a mediator (handler, 调解委员会), a clerk (handler,
  村委会 / 居委会: hazards and petitions), the secretary (supervisor: 派单, 结案,
  重新定性 at the village ceiling);
* township / subdistrict: a handler in each unit and the 综治中心 director
  (supervisor);
* county: handlers in each unit and department, the 调处中心 director and the
  12345 dispatcher (supervisors), an auditor, an integrator and an administrator.

The county is loaded through the engine's own set-up commands.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from api.demo.names import Names, chinese_number
from domain.actors import Actor, Role
from domain.ladder import Person, Profile, Rank, Region, Unit
from engine.service import Fengqiao

COUNTY_CODE = "410990"

TOWNSHIP_UNITS = (  # kind, id suffix, name suffix
    ("comprehensive_centre", "zzzx", "综治中心"),
    ("police_station", "pcs", "派出所"),
    ("justice_office", "sfs", "司法所"),
    ("petition_office", "xfb", "信访办"),
    ("safety_office", "ajz", "安监站"),
)
COUNTY_UNITS = (
    ("county_mediation_centre", "tjzx", "矛盾纠纷调处化解中心"),
    ("county_petition_bureau", "xfj", "信访局(12345热线)"),
    ("emergency_bureau", "yjj", "应急管理局"),
)
COUNTY_DEPARTMENTS = (  # summoned by a whistle (吹哨); they check in (报到)
    ("zjj", "住房和城乡建设局"),
    ("rsj", "人力资源和社会保障局"),
    ("cgj", "城市管理局"),
    ("scj", "市场监督管理局"),
    ("zrj", "自然资源局"),
    ("xfdd", "消防救援大队"),
    ("gdgs", "供电公司"),
)


@dataclass(frozen=True)
class CountyShape:
    """How big the county is. The defaults are 阳高县's figures (seed 002)."""

    townships: int = 11
    villages: int = 197
    communities: int = 15
    grids: int = 521
    grids_per_community: int = 5
    grid_workers: int = 561
    assistants: int = 100

    @classmethod
    def small(cls) -> CountyShape:
        """A county a test can build in a moment: same structure, fewer places."""
        return cls(
            townships=3,
            villages=9,
            communities=3,
            grids=24,
            grids_per_community=3,
            grid_workers=26,
            assistants=4,
        )


def staff_actor(person: Person, rank: Rank) -> Actor:
    return Actor(
        id=person.name, role=person.role, unit=person.unit, region=person.region, rank=int(rank)
    )


@dataclass
class Grid:
    region: Region
    workers: list[Actor] = field(default_factory=list)  # 网格员
    assistants: list[Actor] = field(default_factory=list)  # 网格辅助员
    chief: Actor | None = None  # 网格长 (urban grids)


class _OnProfile:
    """A village or township: urban when its region is on the urban profile."""

    region: Region

    @property
    def urban(self) -> bool:
        return self.region.profile == Profile.URBAN


@dataclass
class Village(_OnProfile):
    """A village, or on the urban profile a community (社区)."""

    region: Region
    grids: list[Grid]
    mediation_committee: Unit
    committee: Unit  # 村委会 / 居委会
    mediator: Actor
    clerk: Actor
    secretary: Actor


@dataclass
class Township(_OnProfile):
    """A township (乡镇), or on the urban profile the subdistrict (街道)."""

    region: Region
    villages: list[Village]
    units: dict[str, Unit]  # by kind
    handlers: dict[str, Actor]  # by unit kind
    supervisor: Actor


@dataclass
class County:
    region: Region
    townships: list[Township]
    units: dict[str, Unit]  # by kind; departments under their id suffix
    handlers: dict[str, Actor]  # by unit kind or department suffix
    supervisor: Actor  # 调处中心 director
    dispatcher: Actor  # 12345 派单 and 回访
    auditor: Actor
    integrator: Actor
    admin: Actor
    people: list[Person]

    @property
    def name(self) -> str:
        return self.region.name

    def regions(self) -> Iterator[Region]:
        yield self.region
        for township in self.townships:
            yield township.region
            for village in township.villages:
                yield village.region
                for grid in village.grids:
                    yield grid.region

    def all_units(self) -> Iterator[Unit]:
        yield from self.units.values()
        for township in self.townships:
            yield from township.units.values()
            for village in township.villages:
                yield village.mediation_committee
                yield village.committee

    def villages(self) -> Iterator[Village]:
        for township in self.townships:
            yield from township.villages

    def grids(self) -> Iterator[Grid]:
        for village in self.villages():
            yield from village.grids

    def department(self, suffix: str) -> Unit:
        return self.units[suffix]

    def region_csv(self) -> str:
        """The ladder as a region file (``code,name,rank,profile``)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(("code", "name", "rank", "profile"))
        for region in self.regions():
            writer.writerow((region.code, region.name, region.rank.label, str(region.profile)))
        return out.getvalue()


def _split(total: int, parts: int, rng: random.Random, low: int = 1) -> list[int]:
    """``total`` spread over ``parts`` with some variety, each at least ``low``."""
    if parts <= 0:
        return []
    counts = [low] * parts
    weights = [rng.uniform(0.6, 1.4) for _ in range(parts)]
    spare = total - low * parts
    for index in rng.choices(range(parts), weights=weights, k=max(spare, 0)):
        counts[index] += 1
    return counts


class _Builder:
    def __init__(self, seed: int, shape: CountyShape) -> None:
        self.rng = random.Random(f"fengqiao-demo-county:{seed}")
        self.names = Names(self.rng)
        self.shape = shape
        self.people: list[Person] = []

    def staff(
        self, role: Role, region: Region, unit: Unit | None = None, name: str | None = None
    ) -> Actor:
        person = Person(
            name or self.names.person(), str(role), region.code, unit.id if unit else None
        )
        self.people.append(person)
        return staff_actor(person, region.rank)

    def build(self) -> County:
        shape, rng = self.shape, self.rng
        county_name = self.names.county()
        county = Region(COUNTY_CODE, county_name, Rank.COUNTY, Profile.RURAL)
        short = county_name.removesuffix("县")

        units = {
            kind: Unit(f"{COUNTY_CODE}-{suffix}", f"{county_name}{name}", COUNTY_CODE, kind)
            for kind, suffix, name in COUNTY_UNITS
        }
        for suffix, name in COUNTY_DEPARTMENTS:
            units[suffix] = Unit(
                f"{COUNTY_CODE}-{suffix}", f"{county_name}{name}", COUNTY_CODE, "department"
            )
        handlers = {kind: self.staff(Role.HANDLER, county, unit) for kind, unit in units.items()}
        supervisor = self.staff(Role.SUPERVISOR, county, units["county_mediation_centre"])
        dispatcher = self.staff(Role.SUPERVISOR, county, units["county_petition_bureau"])
        auditor = self.staff(Role.AUDITOR, county)
        integrator = self.staff(Role.INTEGRATOR, county, name=f"{short}网格通平台")
        admin = self.staff(Role.ADMIN, county, name=f"{short}综治办管理员")

        urban_grids = shape.communities * shape.grids_per_community  # building grids (楼栋网格)
        rural_grids = max(shape.grids - urban_grids, shape.villages)

        townships: list[Township] = []
        villages_per_township = _split(shape.villages, shape.townships, rng)
        grids_per_village = _split(rural_grids, shape.villages, rng)
        grid_counts = iter(grids_per_village)
        for number, village_count in enumerate(villages_per_township, start=1):
            code = f"{COUNTY_CODE}-{number:03d}"
            region = Region(code, self.names.township(), Rank.TOWNSHIP, Profile.RURAL)
            townships.append(
                self.township(region, village_count, lambda: next(grid_counts), self.names.village)
            )
        code = f"{COUNTY_CODE}-{shape.townships + 1:03d}"
        subdistrict = Region(code, self.names.subdistrict(), Rank.TOWNSHIP, Profile.URBAN)
        community_grids = iter(_split(urban_grids, shape.communities, rng))
        townships.append(
            self.township(
                subdistrict, shape.communities, lambda: next(community_grids), self.names.community
            )
        )

        grids = [
            grid
            for township in townships
            for village in township.villages
            for grid in village.grids
        ]
        for grid in grids:
            grid.workers.append(self.staff(Role.HANDLER, grid.region))
        for grid in rng.sample(grids, k=min(max(shape.grid_workers - len(grids), 0), len(grids))):
            grid.workers.append(self.staff(Role.HANDLER, grid.region))
        for grid in rng.sample(grids, k=min(shape.assistants, len(grids))):
            grid.assistants.append(self.staff(Role.REPORTER, grid.region))
        for grid in grids:
            if grid.region.profile == Profile.URBAN:
                grid.chief = self.staff(Role.SUPERVISOR, grid.region)

        return County(
            county,
            townships,
            units,
            handlers,
            supervisor,
            dispatcher,
            auditor,
            integrator,
            admin,
            self.people,
        )

    def township(
        self,
        region: Region,
        village_count: int,
        grid_count: Callable[[], int],
        village_name: Callable[[], str],
    ) -> Township:
        urban = region.profile == Profile.URBAN
        units = {
            kind: Unit(f"{region.code}-{suffix}", f"{region.name}{name}", region.code, kind)
            for kind, suffix, name in TOWNSHIP_UNITS
        }
        handlers = {kind: self.staff(Role.HANDLER, region, unit) for kind, unit in units.items()}
        supervisor = self.staff(Role.SUPERVISOR, region, units["comprehensive_centre"])
        villages = []
        for number in range(1, village_count + 1):
            name = village_name()
            village = Region(f"{region.code}-{number:03d}", name, Rank.VILLAGE, region.profile)
            mediation = Unit(
                f"{village.code}-tjh", f"{name}人民调解委员会", village.code, "mediation_committee"
            )
            committee_name = "居民委员会" if urban else "村民委员会"
            committee = Unit(
                f"{village.code}-{'jwh' if urban else 'cwh'}",
                f"{name}{committee_name}",
                village.code,
                "village_committee",
            )
            grids = []
            for g in range(1, grid_count() + 1):
                label = f"{g}号楼网格" if urban else f"第{chinese_number(g)}网格"
                grids.append(
                    Grid(
                        Region(
                            f"{village.code}-{g:02d}", f"{name}{label}", Rank.GRID, region.profile
                        )
                    )
                )
            villages.append(
                Village(
                    village,
                    grids,
                    mediation,
                    committee,
                    mediator=self.staff(Role.HANDLER, village, mediation),
                    clerk=self.staff(Role.HANDLER, village, committee),
                    secretary=self.staff(Role.SUPERVISOR, village, committee),
                )
            )
        return Township(region, villages, units, handlers, supervisor)


def generate_county(seed: int, shape: CountyShape | None = None) -> County:
    """The county for a seed: the same seed always gives the same places and people."""
    return _Builder(seed, shape or CountyShape()).build()


def load_places(app: Fengqiao, county: County, actor_id: str = "demo:admin") -> None:
    """The county's ladder and its grid geometry (``api.demo.geometry``): where a map
    point lands."""
    from api.demo.geometry import nested_grid

    app.import_regions(county.region_csv(), actor_id)
    app.import_geometry(nested_grid(app.ladder().tree, COUNTY_CODE))


def load_county(
    app: Fengqiao, county: County, policy_text: str, actor_id: str = "demo:admin"
) -> int:
    """Import the ladder and its grid geometry (``api.demo.geometry``), its units and
    people, and the policy, through the engine.

    Returns the policy version. Loading the same county again changes nothing.
    """
    load_places(app, county, actor_id)
    for unit in county.all_units():
        app.add_unit(unit, actor_id)
    for person in county.people:
        app.add_person(person, actor_id)
    return app.load_policy(policy_text, actor_id)
