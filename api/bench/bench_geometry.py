"""Benchmark: a map point to its grid among 10,000 grid polygons — target p95 ≤ 1 ms.

Builds a county of ``size`` grid rectangles (default 10,000) nested in villages (25
grids each) and townships (20 villages each) around 阳高县, indexes them as the engine
does (``engine.geometry.GeometryIndex``: a shapely STRtree, the smallest region holding
the point wins) and times ``locate`` of random points inside the county, one call each.
Baseline in the same run: the same question without the index — shapely's vectorised
``contains_xy`` over every shape, then the smallest. The store plays no part (the index
is held in memory; the engine reloads it only when an import changed the table).

    .venv/bin/python -m api.bench.bench_geometry --size 10000
"""

from __future__ import annotations

import argparse
import math
import random
import statistics

import numpy
import shapely
from shapely.geometry import box

from api.bench.bench_queries import p95_row, timed
from api.demo.geometry import YANGGAO
from engine.geometry import GeometryIndex

GRIDS_PER_VILLAGE, VILLAGES_PER_TOWNSHIP = 25, 20


def county(grids: int) -> tuple[dict[str, object], dict[str, int]]:
    """``size`` grid boxes on a square lattice; villages and townships as blocks of them."""
    west, south, east, north = YANGGAO
    side = math.ceil(math.sqrt(grids))
    width, height = (east - west) / side, (north - south) / side
    shapes: dict[str, object] = {"county": box(*YANGGAO)}
    ranks = {"county": 3}
    village_side, township_side = 5, 5 * 4  # 5x5 grids a village, 4x5 villages a township
    for n in range(grids):
        i, j = n % side, n // side
        shapes[f"g{n}"] = box(
            west + i * width, south + j * height, west + (i + 1) * width, south + (j + 1) * height
        )
        ranks[f"g{n}"] = 0
        for prefix, block, rank in (("v", village_side, 1), ("t", township_side, 2)):
            code = f"{prefix}{i // block}-{j // block}"
            if code not in shapes:
                shapes[code] = box(
                    west + (i // block) * block * width,
                    south + (j // block) * block * height,
                    min(east, west + (i // block + 1) * block * width),
                    min(north, south + (j // block + 1) * block * height),
                )
                ranks[code] = rank
    return shapes, ranks


def run(store: str = "sqlite", size: int | None = None) -> list[dict]:
    grids = size or 10_000
    shapes, ranks = county(grids)
    index = GeometryIndex.of(shapes, ranks)
    west, south, east, north = YANGGAO
    rng = random.Random(2026)
    points = [(rng.uniform(west, east), rng.uniform(south, north)) for _ in range(2000)]
    cursor = iter(points * 10)
    indexed = timed(lambda: index.locate(*next(cursor)), 2000)
    geometries = numpy.array(index.geometries)
    areas = numpy.array([order[0] for order in index.order])

    def scan() -> str:
        lon, lat = next(cursor)
        hits = numpy.nonzero(shapely.contains_xy(geometries, lon, lat))[0]
        return index.codes[hits[numpy.argmin(areas[hits])]]

    scanned = timed(scan, 200)
    name = f"point to grid among {grids:,} grids ({len(shapes):,} shapes)"
    baseline = (round(statistics.median(scanned), 3), "contains_xy scan median ms")
    return [p95_row(name, indexed, 3, baseline, 1.0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000, help="grid polygons")
    args = parser.parse_args()
    for row in run("sqlite", args.size):
        print(row, flush=True)


if __name__ == "__main__":
    main()
