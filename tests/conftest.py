"""Shared fixtures: real Mosquitto and InfluxDB, started once per test run on free ports."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testbed.services import REPO, InfluxDB, Mosquitto, kill_leftovers, started_count

EXAMPLE_SITE = REPO / "examples" / "town" / "site.yaml"


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield broker
    broker.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A Mosquitto of the test's own: no retained message or session of another test, and free to
    be stopped, killed and started again."""
    b = Mosquitto(tmp_path / "mosquitto").start()
    yield b
    b.kill()


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
    # Wider-scoped fixtures are set up before this one: only what the test itself starts is killed.
    before = started_count()
    yield
    kill_leftovers(before)


@pytest.fixture(scope="session", autouse=True)
def _no_leftover_processes_at_exit() -> Iterator[None]:
    yield
    kill_leftovers()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a real PostgreSQL server: ``EIT_TEST_POSTGRES_URL`` when given, otherwise a
    cluster of the test run's own (initdb on a free port), as on a fresh machine."""
    import os

    given = os.environ.get("EIT_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    from testbed.services import PostgreSQL

    server = PostgreSQL().start()
    yield server.url
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A database of its own for each test on the real PostgreSQL server (a postgresql:// URL, as
    ``state.url`` takes it)."""
    from urllib.parse import urlsplit

    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(postgres_server, autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    yield urlsplit(postgres_server)._replace(path=f"/{name}").geturl()
    with psycopg.connect(postgres_server, autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
