"""Set-up commands: init, regions import, units and people, policy load."""

from __future__ import annotations

from pathlib import Path

import typer

from api.cli.common import domain_errors, emit, engine, input_file
from domain.ladder import Person, Unit

DEFAULT_POLICY = Path(__file__).resolve().parents[2] / "domain" / "default_policy.toml"

regions = typer.Typer(help="The region ladder (行政层级).", no_args_is_help=True)
units = typer.Typer(
    help="Units that handle cases (调解委员会, 综治中心, 司法所 …).", no_args_is_help=True
)
people = typer.Typer(
    help="Staff on the ladder (网格员, mediators, supervisors).", no_args_is_help=True
)
policy = typer.Typer(
    help="The versioned policy: ceilings, clocks, calendar, routing.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.add_typer(regions, name="regions")
    app.add_typer(units, name="units")
    app.add_typer(people, name="people")
    app.add_typer(policy, name="policy")


def init() -> None:
    """Create the store and load the default policy (if none is loaded yet)."""
    with engine() as app, domain_errors():
        book = app.policy_book()
        version = book.current_version or app.load_policy(DEFAULT_POLICY.read_text(), "cli:init")
        emit({"store": app.store.kind, "policy_version": version, "position": app.head_position()})


@regions.command("import")
def regions_import(
    file: Path = input_file("CSV: code,name,rank,profile; or .geojson: region geometry"),
    crs: str = typer.Option("wgs84", "--crs", help="a .geojson's datum: wgs84 (RFC 7946) or gcj02"),
) -> None:
    """Import regions (CSV; the same file twice changes nothing) or their geometry (.geojson)."""
    with engine() as app, domain_errors():
        text = file.read_text(encoding="utf-8")
        if file.suffix.lower() in (".geojson", ".json"):
            from engine.geometry import load_geojson

            emit({"geometry": app.import_geometry(load_geojson(text, crs)), "crs": crs})
            return
        changed = app.import_regions(text, "cli:admin")
        emit({"changed": changed, "regions": len(app.ladder().tree)})


@regions.command("show")
def regions_show(code: str) -> None:
    with engine() as app, domain_errors():
        tree = app.ladder().tree
        region = tree.get(code)
        emit(
            {
                "code": region.code,
                "name": region.name,
                "rank": region.rank.label,
                "profile": str(region.profile),
                "children": [c.code for c in tree.children_of(code)],
                "units": [u.id for u in tree.units_in(code)],
            }
        )


@units.command("add")
def units_add(
    unit_id: str,
    name: str = typer.Option(...),
    region: str = typer.Option(...),
    kind: str = typer.Option(
        ..., help="mediation_committee, justice_office, comprehensive_centre …"
    ),
) -> None:
    with engine() as app, domain_errors():
        emit({"changed": app.add_unit(Unit(unit_id, name, region, kind), "cli:admin")})


@people.command("add")
def people_add(
    name: str,
    role: str = typer.Option(...),
    region: str = typer.Option(...),
    unit: str | None = typer.Option(None),
) -> None:
    with engine() as app, domain_errors():
        emit({"changed": app.add_person(Person(name, role, region, unit), "cli:admin")})


@policy.command("load")
def policy_load(file: Path = input_file()) -> None:
    """Load a policy TOML file as a new version (unchanged content keeps the current version)."""
    with engine() as app, domain_errors():
        emit({"policy_version": app.load_policy(file.read_text(encoding="utf-8"), "cli:admin")})


@policy.command("show")
def policy_show(version: int | None = typer.Option(None)) -> None:
    with engine() as app, domain_errors():
        emit(app.policy(version).model_dump(mode="json"))
