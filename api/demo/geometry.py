"""Plausible region geometry for a generated county: nested rectangles.

Not surveyed boundaries: the county's box (by default around 阳高县, ~113.75 E 40.36 N,
WGS-84) is cut into a near-square grid of cells, one per township; each township's cell
into one per village; each village's into one per grid (网格). A point therefore lies in
one region of each rank, and the smallest is its grid — what the Open311 front door needs
to place a report from a map point. ``fengqiao demo`` imports it; the tests use it too.
"""

from __future__ import annotations

import math
from typing import Any

from shapely.geometry import box, mapping

from domain.ladder import RegionTree

YANGGAO = (113.45, 40.15, 114.05, 40.57)  # west, south, east, north (degrees, WGS-84)


def _cells(
    bounds: tuple[float, float, float, float], count: int
) -> list[tuple[float, float, float, float]]:
    if count == 0:
        return []
    west, south, east, north = bounds
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    width, height = (east - west) / columns, (north - south) / rows
    return [
        (
            west + (i % columns) * width,
            north - (i // columns + 1) * height,
            west + (i % columns + 1) * width,
            north - (i // columns) * height,
        )
        for i in range(count)
    ]


def nested_grid(
    tree: RegionTree, root: str, bounds: tuple[float, float, float, float] = YANGGAO
) -> dict[str, Any]:
    """``{code: shapely box}`` for ``root`` and every region under it."""
    shapes: dict[str, Any] = {}
    pending = [(root, bounds)]
    while pending:
        code, cell = pending.pop()
        shapes[code] = box(*cell)
        children = sorted(r.code for r in tree.children_of(code))
        pending += zip(children, _cells(cell, len(children)), strict=True)
    return shapes


def feature_collection(shapes: dict[str, Any]) -> dict[str, Any]:
    """The shapes as the GeoJSON ``fengqiao regions import FILE.geojson`` reads."""
    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {"code": code}, "geometry": mapping(shape)}
            for code, shape in sorted(shapes.items())
        ],
    }


def centre(shapes: dict[str, Any], code: str) -> tuple[float, float]:
    """(lat, long) of a region's centre: a point that lies in it (and in its grid)."""
    point = shapes[code].centroid
    return point.y, point.x
