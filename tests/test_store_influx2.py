"""Store kind ``influxdb2``: native InfluxDB 2.x writes through influxdb-client, tested at the
contract of the 2.x API with a FAKE InfluxDB 2.x (tests/influx2_fake.py) that checks token,
organisation, bucket and precision and keeps the data in a real InfluxDB 1.x behind it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from eit.errors import ConfigError
from eit.model import Reading
from eit.store import StoreError, StoreUnavailable
from ingest.store import open_store
from ingest.store.influx import line_protocol, point_line
from ingest.store.influx2 import Influx2Settings, Influx2Store
from server.config import parse_serve_config
from testbed.services import InfluxDB, free_port
from tests.conftest import EXAMPLE_SITE
from tests.influx2_fake import FakeInflux2

S = 1_000_000_000
T0 = 1795752000 * S
ORG, TOKEN = "eit-town", "eit-ingest-token"


@pytest.fixture
def fake(influxdb: InfluxDB, influx_database: str) -> Iterator[FakeInflux2]:
    server = FakeInflux2(influxdb.url, ORG, influx_database, TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def store(fake: FakeInflux2) -> Iterator[Influx2Store]:
    s = Influx2Store(fake.url, ORG, fake.bucket, TOKEN)
    yield s
    s.close()


def readings(n: int, channel: str = "so2") -> list[Reading]:
    return [Reading("f1", "d1", channel, T0 + i * S, 10.0 + i, "C" if i == 3 else "N", i) for i in range(n)]


@pytest.mark.integration
def test_writes_send_the_v1_stores_lines_with_token_org_bucket_and_ns_precision(
    fake: FakeInflux2, store: Influx2Store
) -> None:
    batch = readings(10)
    store.write(batch)
    (call,) = fake.writes()
    assert call.headers["authorization"] == f"Token {TOKEN}"
    assert (call.params["org"], call.params["bucket"], call.params["precision"]) == (ORG, fake.bucket, "ns")
    assert call.body.decode().split("\n") == list(line_protocol(batch))


@pytest.mark.integration
def test_what_is_written_natively_reads_back_through_the_v1_compatibility_api(
    fake: FakeInflux2, store: Influx2Store
) -> None:
    batch = readings(10)
    store.write(batch)
    store.write(batch)  # a redelivered message overwrites itself
    assert store.count() == 10
    assert store.readings("f1", "d1", "so2", T0, T0 + 100 * S) == batch
    assert [b.value for b in store.aggregate("f1", "d1", "so2", T0, T0 + 100 * S, 3600, valid_only=True)] == [
        pytest.approx(sum(10.0 + i for i in range(10) if i != 3) / 9)
    ]
    queries = [c for c in fake.calls if c.path == "/query"]
    assert queries and all(c.headers["authorization"] == f"Token {TOKEN}" for c in queries)
    assert {c.params["db"] for c in queries} == {fake.bucket}


@pytest.mark.integration
def test_platform_lines_go_through_the_same_native_write(fake: FakeInflux2, store: Influx2Store) -> None:
    line = point_line("platform", {"instance": "i1"}, {"readings_stored": 5, "alerts_open": 0}, T0)
    store.write_lines([line])
    assert fake.writes()[-1].body.decode() == line
    assert store.query('SELECT "readings_stored" FROM "platform"')[0]["values"] == [[T0, 5]]


@pytest.mark.integration
def test_large_batches_are_written_in_chunks_and_all_arrive(fake: FakeInflux2, store: Influx2Store) -> None:
    store.write(readings(12_000))
    assert len(fake.writes()) == 3
    assert store.count() == 12_000


@pytest.mark.integration
def test_refusals_and_outages_raise_the_errors_the_ingest_acts_on(
    fake: FakeInflux2, influx_database: str
) -> None:
    bad_token = Influx2Store(fake.url, ORG, influx_database, "not-the-token")
    with pytest.raises(StoreUnavailable, match="401"):  # kept and retried until the token is fixed
        bad_token.write(readings(1))
    bad_token.close()
    wrong_bucket = Influx2Store(fake.url, ORG, "no-such-bucket", TOKEN)
    with pytest.raises(StoreUnavailable, match="bucket not found"):
        wrong_bucket.write(readings(1))
    wrong_bucket.close()
    store = Influx2Store(fake.url, ORG, influx_database, TOKEN)
    with pytest.raises(StoreError, match="refused"):
        store.write_lines(["readings,factory=f1 value=notanumber 1"])
    fake.fail_writes_with = 503
    with pytest.raises(StoreUnavailable, match="503"):
        store.write(readings(1))
    store.close()
    down = Influx2Store(f"http://127.0.0.1:{free_port()}", ORG, influx_database, TOKEN, timeout_s=2)
    with pytest.raises(StoreUnavailable, match="cannot be reached"):
        down.write(readings(1))
    with pytest.raises(StoreUnavailable):
        down.ping()
    down.close()


@pytest.mark.integration
def test_points_beyond_the_buckets_retention_raise_store_error_with_the_reason(
    fake: FakeInflux2, store: Influx2Store, influxdb: InfluxDB
) -> None:
    # The bucket keeps one hour: a point three hours old is refused in a partial write (422).
    resp = requests.post(
        f"{influxdb.url}/query",
        params={"q": f'ALTER RETENTION POLICY autogen ON "{fake.bucket}" DURATION 1h SHARD DURATION 1h'},
        timeout=10,
    )
    assert resp.status_code == 200 and "error" not in resp.text, resp.text
    now = time.time_ns()
    store.write([Reading("f1", "d1", "so2", now, 1.0)])
    with pytest.raises(StoreError) as err:
        store.write([Reading("f1", "d1", "so2", now - 3 * 3600 * S, 1.0)])
    assert err.value.reason == "beyond_retention" and "422" in str(err.value)


def config(store: dict[str, object], tmp_path: Path) -> dict[str, object]:
    return {"site": str(EXAMPLE_SITE), "data_dir": str(tmp_path), "store": store}


def test_store_kind_influxdb2_reads_org_bucket_and_a_token_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("secret-token\n")
    data = config(
        {
            "kind": "influxdb2",
            "url": "http://influx:8086/",
            "org": ORG,
            "bucket": "eit",
            "token_file": "token",
        },
        tmp_path,
    )
    settings = parse_serve_config(data, "serve.yaml", tmp_path).store
    assert isinstance(settings, Influx2Settings)
    assert (
        settings.kind,
        settings.url,
        settings.org,
        settings.bucket,
        settings.token.get_secret_value(),
        settings.database,
    ) == (
        "influxdb2",
        "http://influx:8086",
        ORG,
        "eit",
        "secret-token",
        "eit",
    )
    assert "secret-token" not in repr(settings)
    opened = open_store(settings)
    assert isinstance(opened, Influx2Store) and opened.kind == "influxdb2"
    opened.close()


def test_store_kind_influxdb2_without_a_token_names_the_key(tmp_path: Path) -> None:
    data = config({"kind": "influxdb2", "org": ORG, "bucket": "eit"}, tmp_path)
    with pytest.raises(
        ConfigError,
        match=r"serve.yaml: store.token: required key is missing \(give token, token_file or token_env\)",
    ):
        parse_serve_config(data, "serve.yaml", tmp_path)
