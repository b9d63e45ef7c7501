"""Region geometry: which grid a map point lies in.

``fengqiao regions import FILE.geojson`` stores one Polygon or MultiPolygon per region
(a GeoJSON FeatureCollection, ``properties.code`` naming a region of the ladder;
coordinates WGS-84 longitude, latitude as RFC 7946 says). ``--crs gcj02`` converts
GCJ-02 coordinates (the offset datum of Chinese web maps) to WGS-84 first.

**Where it lives.** The ladder (``domain.ladder``) is an event-sourced aggregate; its
facts are names, ranks and parents. Geometry is bulky (a village boundary is kilobytes)
and is reference data for finding a region, not a fact any rule or read model counts
with, so it is a side table in the engine's own store (``fengqiao_region_geometry``,
:class:`engine.sql.StoreDb`), replaced region by region on each import. A case keeps
the region the point resolved to (its ``Reported`` event) and the point itself
(``details``), so a later import never moves an old case.

**Lookup.** :class:`GeometryIndex` holds the shapes in a shapely ``STRtree``; a point
goes to the smallest region (by area) that contains it (a micro-grid inside its
village inside its township). ``docs/performance.md`` has the figure.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry import shape

from domain.errors import NotFound, PointOutsideRegions, ValidationFailed
from engine.sql import StoreDb

TABLE = "fengqiao_region_geometry"
CRS = ("wgs84", "gcj02")


# -- GCJ-02 ---------------------------------------------------------------------------------
# The GCJ-02 offset (国测局坐标) as published with the open "eviltransform" and
# "coordtransform" libraries (github.com/googollee/eviltransform,
# github.com/wandergis/coordtransform): Krasovsky 1940 ellipsoid, a polynomial-and-sine
# offset from (105 E, 35 N); none outside China. WGS-84 → GCJ-02 is that formula; the
# inverse has no closed form and is found by fixed-point iteration (error < 1e-7°, ~1 cm).

_A, _EE = 6378245.0, 0.00669342162296594323


def _out_of_china(lon: float, lat: float) -> bool:
    return not (72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _offset(lon: float, lat: float) -> tuple[float, float]:
    x, y = lon - 105.0, lat - 35.0
    common = (20 * math.sin(6 * x * math.pi) + 20 * math.sin(2 * x * math.pi)) * 2 / 3
    dlat = -100 + 2 * x + 3 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x)) + common
    dlat += (20 * math.sin(y * math.pi) + 40 * math.sin(y / 3 * math.pi)) * 2 / 3
    dlat += (160 * math.sin(y / 12 * math.pi) + 320 * math.sin(y * math.pi / 30)) * 2 / 3
    dlon = 300 + x + 2 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x)) + common
    dlon += (20 * math.sin(x * math.pi) + 40 * math.sin(x / 3 * math.pi)) * 2 / 3
    dlon += (150 * math.sin(x / 12 * math.pi) + 300 * math.sin(x / 30 * math.pi)) * 2 / 3
    radlat = lat / 180 * math.pi
    magic = 1 - _EE * math.sin(radlat) ** 2
    dlat = dlat * 180 / ((_A * (1 - _EE)) / (magic * math.sqrt(magic)) * math.pi)
    dlon = dlon * 180 / (_A / math.sqrt(magic) * math.cos(radlat) * math.pi)
    return dlon, dlat


def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    if _out_of_china(lon, lat):
        return lon, lat
    dlon, dlat = _offset(lon, lat)
    return lon + dlon, lat + dlat


def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    if _out_of_china(lon, lat):
        return lon, lat
    wlon, wlat = lon, lat
    for _ in range(30):
        glon, glat = wgs84_to_gcj02(wlon, wlat)
        if abs(glon - lon) < 1e-9 and abs(glat - lat) < 1e-9:
            break
        wlon, wlat = wlon - (glon - lon), wlat - (glat - lat)
    return wlon, wlat


# -- GeoJSON --------------------------------------------------------------------------------


def _convert(coordinates: Any) -> Any:
    if isinstance(coordinates[0], (int, float)):
        return list(gcj02_to_wgs84(float(coordinates[0]), float(coordinates[1])))
    return [_convert(part) for part in coordinates]


def parse_geojson(data: Any, crs: str = "wgs84") -> dict[str, Any]:
    """``{code: shapely geometry}`` from a FeatureCollection; ValidationFailed names the feature."""
    if crs not in CRS:
        raise ValidationFailed(f"--crs is one of {', '.join(CRS)}", field="crs")
    if not isinstance(data, Mapping) or data.get("type") != "FeatureCollection":
        raise ValidationFailed("the file must be a GeoJSON FeatureCollection", field="type")
    shapes: dict[str, Any] = {}
    for number, feature in enumerate(data.get("features") or [], start=1):
        code = str(((feature or {}).get("properties") or {}).get("code") or "").strip()
        geometry = (feature or {}).get("geometry") or {}
        if not code:
            raise ValidationFailed(
                f"feature {number} has no properties.code", field="code", feature=number
            )
        if geometry.get("type") not in ("Polygon", "MultiPolygon"):
            raise ValidationFailed(
                f"feature {number} ({code}) is not a Polygon or MultiPolygon",
                field="geometry",
                feature=number,
            )
        if crs == "gcj02":
            geometry = {"type": geometry["type"], "coordinates": _convert(geometry["coordinates"])}
        try:
            polygon = shape(geometry)
        except (ValueError, TypeError, IndexError, shapely.errors.GEOSException):
            raise ValidationFailed(
                f"feature {number} ({code}) has unreadable coordinates",
                field="geometry",
                feature=number,
            ) from None
        if not polygon.is_valid:
            polygon = shapely.make_valid(polygon)
        shapes[code] = polygon
    return shapes


# -- the index ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeometryIndex:
    """Region shapes in an STRtree: :meth:`locate` a point, smallest region first."""

    codes: tuple[str, ...]
    geometries: tuple[Any, ...]
    order: tuple[tuple[float, int, str], ...]  # per shape: (area, rank, code); the smallest wins
    tree: Any

    @classmethod
    def of(cls, shapes: Mapping[str, Any], ranks: Mapping[str, int] | None = None) -> GeometryIndex:
        """``ranks`` (the ladder's) break a tie of equal areas: a village's only grid wins."""
        codes = tuple(shapes)
        geometries = tuple(shapes[c] for c in codes)
        for geometry in geometries:
            shapely.prepare(geometry)
        order = tuple(
            (round(g.area, 12), (ranks or {}).get(c, 0), c)
            for c, g in zip(codes, geometries, strict=True)
        )
        return cls(codes, geometries, order, shapely.STRtree(geometries))

    def __len__(self) -> int:
        return len(self.codes)

    def locate(self, lon: float, lat: float) -> str:
        """The code of the smallest region containing the point (its edge included);
        :class:`PointOutsideRegions` when none does."""
        hits = self.tree.query(shapely.Point(lon, lat), predicate="intersects")
        if len(hits) == 0:
            raise PointOutsideRegions(
                f"the point (lat {lat}, long {lon}) lies in no region of this deployment",
                field="lat",
                lat=lat,
                long=lon,
            )
        return self.codes[min(hits, key=lambda i: self.order[i])]


class GeometryStore:
    """The side table of region shapes (GeoJSON text, one row a region)."""

    def __init__(self, recorder: Any) -> None:
        self.db = StoreDb(recorder)
        self.table = self.db.table(TABLE)
        self.db.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} ("
            " code TEXT PRIMARY KEY, geojson TEXT NOT NULL, imported_at TEXT NOT NULL)"
        )

    def replace(self, shapes: Mapping[str, Any], imported_at: str) -> int:
        """Store each region's shape (replacing its earlier one); returns how many."""
        with self.db.transaction() as tx:
            for code, geometry in shapes.items():
                tx.execute(f"DELETE FROM {self.table} WHERE code = ?", (code,))
                tx.execute(
                    f"INSERT INTO {self.table} (code, geojson, imported_at) VALUES (?, ?, ?)",
                    (code, shapely.to_geojson(geometry), imported_at),
                )
        return len(shapes)

    def stamp(self) -> tuple[int, str]:
        """(rows, latest import): changes when an import (by any process) changed the table."""
        row = self.db.one(f"SELECT COUNT(*) AS n, MAX(imported_at) AS latest FROM {self.table}")
        return (int(row["n"]), str(row["latest"] or "")) if row else (0, "")

    def load(self, ranks: Mapping[str, int] | None = None) -> GeometryIndex:
        rows = self.db.query(f"SELECT code, geojson FROM {self.table} ORDER BY code")
        return GeometryIndex.of(
            {r["code"]: shapely.from_geojson(r["geojson"]) for r in rows}, ranks
        )


def check_codes(shapes: Mapping[str, Any], known: Iterable[str]) -> None:
    """Every shape must name a region of the ladder (``known``: the codes that do)."""
    missing = sorted(set(shapes) - set(known))
    if missing:
        raise NotFound(
            f"no region {missing[0]!r} on the ladder (import the regions first)",
            resource="region",
            id=missing[0],
            unknown=missing[:20],
        )


def load_geojson(text: str, crs: str = "wgs84") -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        raise ValidationFailed("the file is not JSON", field="file") from None
    return parse_geojson(data, crs)
