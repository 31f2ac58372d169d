"""Shared fixtures: real Mosquitto, InfluxDB and PostgreSQL, started once per test process (each
pytest-xdist worker has its own, on free ports in folders of its own), and the test kinds.

Kinds (markers):
- ``integration``: needs a real service (Mosquitto, InfluxDB, PostgreSQL, Chromium, an `eit`
  process). A test that asks for a service fixture is marked here; a test that starts one
  otherwise carries the mark itself.
- ``serial``: kills, pauses or times things (broker kills, outages, SIGSTOP, timing figures), so it
  runs alone, after the parallel pass (`make test`).
- ``unit``: every other test. `make unit` runs only these (``--unit``), and there starting any
  service fails the test, so a service test cannot slip in unmarked.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.services import (
    NO_SERVICES_ENV,
    REPO,
    InfluxDB,
    Mosquitto,
    kill_leftovers,
    refuse_in_unit_run,
    started_count,
)

EXAMPLE_SITE = REPO / "examples" / "town" / "site.yaml"
# Fixtures that start or hand out a real service: a test using one (directly or through another
# fixture) is an integration test.
SERVICE_FIXTURES = frozenset(
    {"mosquitto", "broker", "influxdb", "influx_database", "postgres_server", "postgres_url", "browser"}
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--unit",
        action="store_true",
        help="only the tests that need no service (not integration, not serial); starting a service fails",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--unit"):
        # Read by testbed.services' starters, in this process and in xdist's workers alike.
        os.environ[NO_SERVICES_ENV] = "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shared = sorted(nodeid for nodeid, n in Counter(item.nodeid for item in items).items() if n > 1)
    if shared:
        # pytest-xdist's --dist loadfile keys tests by node id: it would run one of each.
        raise pytest.UsageError(f"tests share a node id, so only one of each would run: {shared[:3]}")
    deselected: list[pytest.Item] = []
    kept: list[pytest.Item] = []
    for item in items:
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
        if item.get_closest_marker("integration") is None and item.get_closest_marker("serial") is None:
            item.add_marker(pytest.mark.unit)
        if config.getoption("--unit") and item.get_closest_marker("unit") is None:
            deselected.append(item)
        else:
            kept.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


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
def report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Note a measured figure: the run lists them at its end ("measured figures"), from every
    pytest-xdist worker too (a worker's own output is not shown)."""

    def emit(line: str) -> None:
        request.node.user_properties.append((FIGURE, f"{request.node.name}: {line}"))

    return emit


FIGURE = "measured figure"
_figures: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        _figures.extend(str(value) for name, value in report.user_properties if name == FIGURE)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _figures:
        terminalreporter.section("measured figures")
        for line in _figures:
            terminalreporter.write_line(f"  {line}")


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


# One Chromium per test process, for every browser test file: Playwright's sync API runs one
# event loop per thread, so a second sync_playwright() beside a live one (a fixture defined in
# two modules, both alive on one xdist worker) fails with "Sync API inside the asyncio loop".
@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    import shutil

    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is not installed: run `make test`, which installs it")
    refuse_in_unit_run("Chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
