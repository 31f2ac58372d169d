"""The town map's outline: TopoJSON land decoded (quantized, delta-encoded arcs, reversed arcs),
clipped to the factories' box, kept in the site registry as `town.map_outline` and checked there."""

from __future__ import annotations

from pathlib import Path

import pytest

from eit.errors import ConfigError
from eit.registry import load_registry
from server.mapoutline import clip, outline, topojson_rings
from testbed.services import REPO

# A square island from (0, 0) to (10, 10), as two quantized arcs, the second used reversed.
TOPOLOGY = {
    "type": "Topology",
    "transform": {"scale": [0.5, 0.5], "translate": [100.0, 10.0]},
    "arcs": [[[0, 0], [20, 0], [0, 20]], [[0, 0], [0, 20], [20, 0]]],
    "objects": {
        "land": {"type": "GeometryCollection", "geometries": [{"type": "Polygon", "arcs": [[0, ~1]]}]}
    },
}


def test_topojson_land_is_decoded_into_lon_lat_rings() -> None:
    [ring] = topojson_rings(TOPOLOGY)
    assert ring == [(100.0, 10.0), (110.0, 10.0), (110.0, 20.0), (100.0, 20.0), (100.0, 10.0)]


def test_a_ring_is_clipped_to_the_box_and_what_falls_outside_is_dropped() -> None:
    [ring] = topojson_rings(TOPOLOGY)
    clipped = clip(ring, (105.0, 15.0, 120.0, 30.0))
    assert set(clipped) == {(105.0, 15.0), (110.0, 15.0), (110.0, 20.0), (105.0, 20.0)}
    assert outline([ring], (200.0, 50.0, 201.0, 51.0)) == []


def test_the_registry_keeps_the_outline_and_names_a_bad_point(tmp_path: Path) -> None:
    example = load_registry(REPO / "examples" / "town" / "site.yaml")
    assert example.map_outline and all(len(r) >= 3 for r in example.map_outline)
    text = (REPO / "examples" / "town" / "site.yaml").read_text()
    start = text.index("  map_outline:")
    end = text.index("\n\n", start)
    bad = tmp_path / "site.yaml"
    bad.write_text(
        text[:start] + "  map_outline:\n    - [[101.1, 12.7], [101.2, 12.7], [400, 12.8]]" + text[end:]
    )
    with pytest.raises(ConfigError) as info:
        load_registry(bad)
    assert "town.map_outline" in str(info.value) and "ring 0, point 2" in str(info.value)
    assert str(bad) in str(info.value)
