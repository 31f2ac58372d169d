"""docs/store-schema.md and eit/storeschema.py name the same measurements, tags and fields."""

from __future__ import annotations

import re

from eit import storeschema
from testbed.services import REPO


def documented_schema() -> dict[str, tuple[set[str], dict[str, str]]]:
    """docs/store-schema.md as {measurement: (tags, {field: type})}."""
    text = (REPO / "docs" / "store-schema.md").read_text(encoding="utf-8")
    schema: dict[str, tuple[set[str], dict[str, str]]] = {}
    current = ""
    for line in text.splitlines():
        heading = re.match(r"^## `(\w+)`", line)
        if heading:
            current = heading.group(1)
            schema[current] = (set(), {})
            continue
        row = re.match(r"^\| (tag|field) \| (.+?) \|", line)
        if row and current:
            tags, fields = schema[current]
            if row.group(1) == "tag":  # "(`8h` or `24h`)" are values, not names
                tags.update(re.findall(r"`(\w+)`", re.sub(r"\([^)]*\)", "", row.group(2))))
            else:
                # `a` (float), `b`, `c` (string): each name takes the type that follows it
                for names, kind in re.findall(r"((?:`\w+`(?:, )?)+) \((\w+)", row.group(2)):
                    fields.update(dict.fromkeys(re.findall(r"`(\w+)`", names), kind))
    return schema


def test_the_schema_page_and_the_constants_name_the_same_things() -> None:
    in_code = {m.NAME: (set(m.TAGS), set(m.FIELDS)) for m in storeschema.MEASUREMENTS}
    documented = {name: (tags, set(fields)) for name, (tags, fields) in documented_schema().items()}
    assert documented == in_code


def _queries(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["query"]] if isinstance(node.get("query"), str) else []
        return found + [q for value in node.values() for q in _queries(value)]
    if isinstance(node, list):
        return [q for item in node for q in _queries(item)]
    return []


def test_every_dashboard_query_names_only_what_the_schema_holds() -> None:
    from dashboards.build import build_dashboards
    from eit.registry import load_registry

    registry = load_registry(REPO / "examples" / "town" / "site.yaml")
    by_name = {m.NAME: set(m.TAGS) | set(m.FIELDS) for m in storeschema.MEASUREMENTS}
    queries = [q for d in build_dashboards(registry) for q in _queries(d.model)]
    assert len(queries) > 20
    for query in queries:
        measurement = re.search(r'FROM "([a-z_]+)"', query)
        assert measurement is not None, query
        assert measurement.group(1) in by_name, query
        names = set(re.findall(r'"([^"]+)"', re.sub(r'AS "[^"]*"', "", query))) - {measurement.group(1)}
        assert names <= by_name[measurement.group(1)], (query, names - by_name[measurement.group(1)])
