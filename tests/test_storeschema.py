"""docs/store-schema.md and eit/storeschema.py name the same measurements, tags and fields."""

from __future__ import annotations

import re

from eit import storeschema
from testbed.services import REPO

SECTION = re.compile(r"^## `([a-z_]+)`", re.M)
ROW = re.compile(r"^\| (tag|field) \| ([^|]+) \|", re.M)


def _documented() -> dict[str, tuple[set[str], set[str]]]:
    text = (REPO / "docs" / "store-schema.md").read_text()
    heads = list(SECTION.finditer(text))
    out: dict[str, tuple[set[str], set[str]]] = {}
    for i, head in enumerate(heads):
        body = text[head.end() : heads[i + 1].start() if i + 1 < len(heads) else len(text)]
        tags: set[str] = set()
        fields: set[str] = set()
        for kind, names in ROW.findall(body):
            names = re.sub(r"\([^)]*\)", "", names)  # "(`8h` or `24h`)": values, not names
            (tags if kind == "tag" else fields).update(re.findall(r"`([a-z_0-9]+)`", names))
        out[head.group(1)] = (tags, fields)
    return out


def test_the_schema_page_and_the_constants_name_the_same_things() -> None:
    in_code = {m.NAME: (set(m.TAGS), set(m.FIELDS)) for m in storeschema.MEASUREMENTS}
    assert _documented() == in_code


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
