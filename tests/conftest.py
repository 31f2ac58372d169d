"""Shared fixtures: real Mosquitto and InfluxDB, started once per test run on free ports."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.services import REPO, InfluxDB, Mosquitto, kill_leftovers

EXAMPLE_SITE = REPO / "examples" / "town" / "site.yaml"


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB]:
    server = InfluxDB(tmp_path_factory.mktemp("influxdb")).start()
    yield server
    server.stop()


@pytest.fixture
def influx_database() -> str:
    """A database name of its own for each test."""
    return "t_" + uuid.uuid4().hex[:12]


@pytest.fixture
def example_site() -> Path:
    return EXAMPLE_SITE


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Print a measured figure to the terminal even when pytest captures output."""

    def emit(line: str) -> None:
        with capsys.disabled():
            print(f"\n  {request.node.name}: {line}")

    return emit


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    yield
    kill_leftovers()
