"""Makes a town's map outline (the site registry's ``town.map_outline``) from a land TopoJSON file,
so that the town page shows the coast and land around the factories without fetching map tiles.

What is available, checked for this: Debian ships no administrative or coastline data for Thailand;
on PyPI, `geothai` has Thai provinces, districts and postal codes but no shapes; on npm,
`world-atlas` ships Natural Earth's land and countries as TopoJSON (public domain) at 1:10m, 1:50m
and 1:110m. Its `land-10m.json` (about 1 km detail) is the one used here: `npm pack world-atlas`,
then `scripts/make-map-outline --site site.yaml --land package/land-10m.json`. Without an outline
(the fallback) the map draws a graticule, a scale bar and north, as before.

The land polygons are clipped to the factories' box with a margin (Sutherland-Hodgman) and thinned
to points at least ``min_step_deg`` apart.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

Point = tuple[float, float]
Ring = list[Point]
Box = tuple[float, float, float, float]  # lon0, lat0, lon1, lat1


def topojson_rings(topo: dict[str, Any], name: str = "land") -> list[Ring]:
    """Every polygon ring of object ``name`` of a TopoJSON topology, as (lon, lat) points."""
    transform = topo.get("transform")
    arcs: list[Ring] = []
    for arc in topo["arcs"]:
        points: Ring = []
        x = y = 0.0
        for pos in arc:
            if transform:  # quantized: delta-encoded integers
                x, y = x + pos[0], y + pos[1]
                sx, sy = transform["scale"]
                tx, ty = transform["translate"]
                points.append((x * sx + tx, y * sy + ty))
            else:
                points.append((float(pos[0]), float(pos[1])))
        arcs.append(points)

    def ring(indexes: list[int]) -> Ring:
        out: Ring = []
        for i in indexes:
            arc = arcs[i] if i >= 0 else list(reversed(arcs[~i]))
            out.extend(arc if not out else arc[1:])
        return out

    rings: list[Ring] = []

    def geometry(g: dict[str, Any]) -> None:
        kind = g.get("type")
        if kind == "GeometryCollection":
            for child in g["geometries"]:
                geometry(child)
        elif kind == "Polygon":
            rings.extend(ring(r) for r in g["arcs"])
        elif kind == "MultiPolygon":
            for polygon in g["arcs"]:
                rings.extend(ring(r) for r in polygon)

    geometry(topo["objects"][name])
    return rings


def clip(ring: Ring, box: Box) -> Ring:
    """The part of a ring inside the box (Sutherland-Hodgman against its four edges)."""
    lon0, lat0, lon1, lat1 = box

    def cut(points: Ring, inside: Any, cross: Any) -> Ring:
        out: Ring = []
        for i, cur in enumerate(points):
            prev = points[i - 1]
            if inside(cur):
                if not inside(prev):
                    out.append(cross(prev, cur))
                out.append(cur)
            elif inside(prev):
                out.append(cross(prev, cur))
        return out

    def at_lon(v: float) -> Any:
        return lambda a, b: (v, a[1] + (b[1] - a[1]) * (v - a[0]) / (b[0] - a[0]))

    def at_lat(v: float) -> Any:
        return lambda a, b: (a[0] + (b[0] - a[0]) * (v - a[1]) / (b[1] - a[1]), v)

    points = ring
    for inside, cross in (
        (lambda p: p[0] >= lon0, at_lon(lon0)),
        (lambda p: p[0] <= lon1, at_lon(lon1)),
        (lambda p: p[1] >= lat0, at_lat(lat0)),
        (lambda p: p[1] <= lat1, at_lat(lat1)),
    ):
        if not points:
            break
        points = cut(points, inside, cross)
    return points


def thin(ring: Ring, min_step_deg: float) -> Ring:
    out: Ring = []
    for p in ring:
        if not out or abs(p[0] - out[-1][0]) + abs(p[1] - out[-1][1]) >= min_step_deg:
            out.append(p)
    return out


def outline(rings: list[Ring], box: Box, min_step_deg: float = 0.0005) -> list[Ring]:
    """The rings clipped to the box and thinned; rings that leave fewer than 3 points are dropped."""
    out = []
    for r in rings:
        clipped = thin(clip(r, box), min_step_deg)
        if len(clipped) >= 3:
            out.append([(round(lon, 5), round(lat, 5)) for lon, lat in clipped])
    return out


def factories_box(site: Path, margin_deg: float) -> Box:
    from eit.registry import load_registry

    registry = load_registry(site)
    lats = [f.lat for f in registry.factories.values()]
    lons = [f.lon for f in registry.factories.values()]
    return (min(lons) - margin_deg, min(lats) - margin_deg, max(lons) + margin_deg, max(lats) + margin_deg)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Print a town.map_outline for a site registry from land TopoJSON"
    )
    parser.add_argument("--site", required=True, help="site registry (YAML)")
    parser.add_argument(
        "--land", required=True, help="TopoJSON with a `land` object (world-atlas land-10m.json)"
    )
    parser.add_argument(
        "--margin", type=float, default=0.05, help="degrees around the factories (default 0.05)"
    )
    args = parser.parse_args(argv)
    try:
        topo = json.loads(Path(args.land).read_text())
        rings = outline(topojson_rings(topo), factories_box(Path(args.site), args.margin))
    except (OSError, ValueError, KeyError) as exc:
        print(f"make-map-outline: {args.land}: {exc}", file=sys.stderr)
        return 2
    print("# town.map_outline: Natural Earth land (public domain), clipped to the factories' box")
    print("map_outline:")
    for r in rings:
        print("  - [" + ", ".join(f"[{lon}, {lat}]" for lon, lat in r) + "]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
