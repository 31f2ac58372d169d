"""The layout's import rules (docs/architecture.md, Layers), and an agent that runs with only
`eit-monitor[edge]` installed.

Every top-level package is one layer and may import only the layers listed for it, at module
level or inside a function alike; no file is exempt. The contract and the agent may import only
the standard library and the few third-party packages the edge install carries.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from testbed.services import REPO

# Which of the project's packages each package may import.
LAYERS: dict[str, set[str]] = {
    "eit": set(),
    "edge": {"eit"},
    "statedb": {"eit"},
    "ingest": {"eit", "statedb"},
    "alerts": {"eit", "statedb"},
    "dashboards": {"eit"},
    "server": {"eit", "edge", "statedb", "ingest", "alerts", "dashboards"},
    "testbed": {"eit", "edge", "statedb", "ingest", "alerts", "dashboards", "server"},
    "bench": {"eit", "edge", "statedb", "ingest", "alerts", "dashboards", "server", "testbed"},
    "tests": {"eit", "edge", "statedb", "ingest", "alerts", "dashboards", "server", "testbed", "bench"},
}
# Third-party packages the contract and the agent may use: what `pip install eit-monitor[edge]`
# installs (orjson is optional in the wire decoder, which falls back to json).
THIRD_PARTY = {
    "eit": {"yaml", "paho", "orjson", "cryptography"},
    "edge": {"yaml", "paho", "pymodbus", "serial", "cryptography"},
}
SERVER_ONLY = [
    "fastapi", "uvicorn", "amqtt", "requests", "prometheus_client", "ingest", "alerts", "pydantic",
    "sqlalchemy", "statedb", "numpy", "scipy",
]  # fmt: skip


MODULE_PATH = re.compile(rf"(?:{'|'.join(LAYERS)})(?:\.[a-z_][a-z0-9_]*)+")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import (the layer check reads absolute ones)"
            assert node.module is not None
            names.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and MODULE_PATH.fullmatch(node.value)
        ):
            # A module named in a string (a plugin table for importlib) counts as an import.
            names.add(node.value.split(".")[0])
    return names


def test_every_top_level_package_is_a_declared_layer() -> None:
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")}
    assert packages == set(LAYERS)


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_packages_import_only_the_layers_below_them(package: str) -> None:
    violations = []
    for path in sorted((REPO / package).rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        imported = _imports(path)
        bad = (imported & set(LAYERS)) - LAYERS[package] - {package}
        if bad:
            violations.append(f"{rel} imports {', '.join(sorted(bad))}")
        if package in THIRD_PARTY:
            foreign = imported - set(LAYERS) - set(sys.stdlib_module_names) - {"__future__"}
            extra = foreign - THIRD_PARTY[package]
            if extra:
                violations.append(f"{rel} imports third-party {', '.join(sorted(extra))}")
    assert violations == []


def test_edge_extra_pulls_nothing_of_the_server() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    edge = " ".join(project["optional-dependencies"]["edge"] + project["dependencies"]).lower()
    for name in (
        "fastapi",
        "uvicorn",
        "amqtt",
        "requests",
        "prometheus",
        "influxdb",
        "pydantic",
        "sqlalchemy",
        "numpy",
        "scipy",
    ):
        assert name not in edge


def test_edge_extra_is_exactly_what_the_agent_needs() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {
        re.split(r"[<>=!~\[ ]", req, maxsplit=1)[0].lower()
        for req in project["optional-dependencies"]["edge"] + project["dependencies"]
    }
    assert names == {"pyyaml", "paho-mqtt", "pymodbus", "pyserial", "cryptography"}


def test_the_wheel_ships_the_layers_and_not_the_checkout_tools() -> None:
    found = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    shipped = {name.rstrip("*") for name in found["include"]}
    assert shipped == {"eit", "edge", "statedb", "ingest", "alerts", "dashboards", "server"}


def test_agent_and_its_check_run_where_server_packages_are_absent(tmp_path: Path) -> None:
    # Hide the server's packages, then load the agent's code and parse its config as `eit edge run`
    # does; the console entry point (server/cli.py) loads nothing of the server for `eit edge`.
    script = f"""
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in {SERVER_ONLY!r}:
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
from server.cli import build_parser
build_parser().parse_args(["edge", "run", "--config", "edge.yaml"])
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
