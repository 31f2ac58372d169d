"""The layout's import rules, and an agent that runs with only `eit-monitor[edge]` installed."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.services import REPO

# Which of the project's packages each package may import (DESIGN.md, Layout). `eit.cli`,
# `eit.serve` and `eit.demo` are the composition root: they wire the packages together.
ALLOWED = {
    "eit": set(),
    "edge": {"eit"},
    "ingest": {"eit"},
    "alerts": {"eit", "ingest"},
    "dashboards": {"eit"},
}
COMPOSITION_ROOT = {"eit/cli.py", "eit/serve.py", "eit/demo.py"}
SERVER_ONLY = ["fastapi", "uvicorn", "amqtt", "requests", "prometheus_client", "ingest", "alerts"]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_packages_import_only_what_the_layout_allows(package: str) -> None:
    violations = []
    for path in sorted((REPO / package).rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel in COMPOSITION_ROOT:
            continue
        bad = (_imports(path) & set(ALLOWED)) - ALLOWED[package] - {package}
        if bad:
            violations.append(f"{rel} imports {', '.join(sorted(bad))}")
    assert violations == []


def test_edge_extra_pulls_nothing_of_the_server() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    edge = " ".join(project["optional-dependencies"]["edge"] + project["dependencies"]).lower()
    for name in ("fastapi", "uvicorn", "amqtt", "requests", "prometheus", "influxdb"):
        assert name not in edge


def test_edge_extra_is_exactly_what_the_agent_needs() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {
        re.split(r"[<>=!~\[ ]", req, maxsplit=1)[0].lower()
        for req in project["optional-dependencies"]["edge"] + project["dependencies"]
    }
    assert names == {"pyyaml", "paho-mqtt", "pymodbus", "pyserial"}


def test_agent_and_its_check_run_where_server_packages_are_absent(tmp_path: Path) -> None:
    # Hide the server's packages, then load the agent's code and parse its config as `eit edge run` does.
    script = f"""
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in {SERVER_ONLY!r}:
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
from eit.cli import build_parser
from edge.config import load_edge_config
from edge.agent import Agent
from edge.run import run_agent
config = load_edge_config({str(REPO / "examples/town/edge/kaeng-khoi-biomass.yaml")!r},
                          environ={{"EIT_OUTBOX__PATH": {str(tmp_path / "o.db")!r}}})
agent = Agent(config)
agent.outbox.close()
# `eit edge check` and a Modbus meter's driver, with pymodbus, load without them too.
import pathlib
from edge.check import check
from edge.config import parse_edge_config
meter = {{"host": "127.0.0.1", "port": 1, "channels": {{"a": {{"address": 0}}}}}}
modbus = {{"factory": "f", "outbox": {{"path": {str(tmp_path / "m.db")!r}}},
          "devices": [{{"id": "m", "driver": "modbus", "modbus": meter}}]}}
Agent(parse_edge_config(modbus, "edge.yaml", pathlib.Path("."))).outbox.close()
assert "pymodbus.client" in sys.modules
loaded = sorted(m for m in sys.modules if m.split('.')[0] in {SERVER_ONLY!r})
print('loaded:', loaded)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "loaded: []"
