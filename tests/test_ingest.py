"""Decoding, validation against the registry, dead letters and storing, without a broker."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from eit.model import Reading
from eit.registry import Registry, load_registry
from eit.store import StoreUnavailable
from eit.timeutil import now_ns, ns_to_iso
from ingest.deadletters import open_dead_letters
from ingest.metrics import IngestMetrics
from ingest.service import BatchResult, Incoming, Ingest
from ingest.settings import IngestSettings
from ingest.store.influx import InfluxStore
from ingest.store.sqlite import SqliteStore
from testbed.services import InfluxDB, free_port, wait_for
from tests.conftest import EXAMPLE_SITE

TOPIC = "eit/kaeng-khoi-biomass/boiler-1/data"


class Recorder:
    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.statuses: list[tuple[str, str, str]] = []

    def on_readings(self, readings: Sequence[Reading], now_ns: int) -> None:
        self.readings.extend(readings)

    def on_status(self, factory: str, device: str, state: str, now_ns: int) -> None:
        self.statuses.append((factory, device, state))


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(EXAMPLE_SITE)


@pytest.fixture
def pipeline(tmp_path: Path, registry: Registry) -> Iterator[tuple[Ingest, Recorder]]:
    recorder = Recorder()
    ingest = Ingest(
        registry,
        SqliteStore(tmp_path / "r.db"),
        open_dead_letters(None, tmp_path / "s.db"),
        IngestMetrics(),
        [recorder],
    )
    yield ingest, recorder
    ingest.store.close()
    ingest.deadletters.close()


def msg(payload: Any, topic: str = TOPIC, mid: int = 1) -> Incoming:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Incoming(mid, 1, topic, body)


def scan(values: dict[str, Any], seq: int = 1, ts_ns: int | None = None, **extra: Any) -> dict[str, Any]:
    return {"seq": seq, "ts": ns_to_iso(ts_ns or now_ns()), "values": values, **extra}


def metric(ingest: Ingest, name: str, labels: dict[str, str] | None = None) -> float:
    value = ingest.metrics.registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


def test_valid_scans_are_stored_and_handed_to_the_rules(pipeline: tuple[Ingest, Recorder]) -> None:
    ingest, recorder = pipeline
    ingest.process(
        [
            msg(
                {
                    "v": 1,
                    "scans": [scan({"so2": 41.5, "o2": 9.1}, 1), scan({"so2": 42.0}, 2, now_ns() - 10**9)],
                }
            )
        ]
    )
    assert ingest.store.count() == 3
    assert len(recorder.readings) == 3
    assert metric(ingest, "eit_readings_stored_total") == 3
    assert ingest.deadletters.counts() == {}


def test_value_outside_measuring_range_is_stored_flagged_t(pipeline: tuple[Ingest, Recorder]) -> None:
    ingest, _ = pipeline
    ingest.process([msg({"v": 1, "scans": [scan({"so2": 612.0, "o2": 9.0}, flags={"o2": "C"})]})])
    flags = {r.channel: r.flag for r in ingest.store.latest()}
    assert flags == {"so2": "T", "o2": "C"}


@pytest.mark.parametrize(
    ("topic", "payload", "reason", "detail"),
    [
        (
            "eit/unknown-works/boiler-1/data",
            {"v": 1, "scans": [{"ts": 0, "values": {"so2": 1}}]},
            "unknown_factory",
            "factory 'unknown-works' is not in the site registry",
        ),
        (
            "eit/kaeng-khoi-biomass/boiler-9/data",
            {"v": 1, "scans": [{"ts": 0, "values": {"so2": 1}}]},
            "unknown_device",
            "device 'boiler-9' is not registered for factory 'kaeng-khoi-biomass'",
        ),
        (
            TOPIC,
            {"v": 1, "factory": "siam-cassava-starch", "scans": [{"ts": 0, "values": {"so2": 1}}]},
            "factory_mismatch",
            "payload says factory 'siam-cassava-starch' but was published under factory 'kaeng-khoi-biomass'",
        ),
        (TOPIC, b"so2=41", "not_json", "payload is not JSON"),
        ("eit/kaeng-khoi-biomass/data", b"{}", "bad_topic", "is not eit/<factory>/<device>/<data|status>"),
    ],
)
def test_unusable_messages_are_dead_lettered_whole_with_their_reason(
    pipeline: tuple[Ingest, Recorder], topic: str, payload: Any, reason: str, detail: str
) -> None:
    ingest, _ = pipeline
    ingest.process([msg(payload, topic)])
    assert ingest.store.count() == 0
    [letter] = ingest.deadletters.recent()
    assert (letter.topic, letter.reason) == (topic, reason)
    assert detail in letter.detail
    assert letter.payload == (payload.decode() if isinstance(payload, bytes) else json.dumps(payload))
    assert metric(ingest, "eit_dead_letters_total", {"reason": reason}) == 1


def test_bad_parts_are_dead_lettered_and_the_rest_of_the_message_stored(
    pipeline: tuple[Ingest, Recorder],
) -> None:
    ingest, _ = pipeline
    future = now_ns() + 3600 * 10**9
    ingest.process(
        [
            msg(
                {
                    "v": 1,
                    "scans": [
                        scan({"so2": 40.0, "h2s": 3.0, "nox": "high"}, 1),
                        scan({"so2": 41.0}, 2, future),
                        scan({"so2": 42.0}, 3),
                    ],
                }
            )
        ]
    )
    stored = sorted(
        (x.seq, x.channel)
        for x in ingest.store.readings("kaeng-khoi-biomass", "boiler-1", "so2", 0, future * 2)
    )
    assert stored == [(1, "so2"), (3, "so2")]
    letters = {d.reason: d for d in ingest.deadletters.recent()}
    assert set(letters) == {"unknown_channel", "bad_value", "future_timestamp"}
    assert (
        "channel 'h2s' is not registered for kaeng-khoi-biomass/boiler-1" in letters["unknown_channel"].detail
    )
    assert json.loads(letters["unknown_channel"].payload)["values"] == {"h2s": 3.0}
    assert letters["bad_value"].location == "scans[0].values.nox"
    assert "ahead of the server clock" in letters["future_timestamp"].detail
    assert letters["future_timestamp"].location == "scans[1].ts"


def test_status_messages_reach_the_rules_and_bad_ones_are_dead_lettered(
    pipeline: tuple[Ingest, Recorder],
) -> None:
    ingest, recorder = pipeline
    ingest.process(
        [
            msg(b"offline", "eit/kaeng-khoi-biomass/boiler-1/status"),
            msg(b'{"state":"online","outbox_pending":0}', "eit/kaeng-khoi-biomass/meter-1/status"),
            msg(b"sleepy", "eit/kaeng-khoi-biomass/meter-1/status"),
            msg(b"online", "eit/nobody/x/status"),
        ]
    )
    assert recorder.statuses == [
        ("kaeng-khoi-biomass", "boiler-1", "offline"),
        ("kaeng-khoi-biomass", "meter-1", "online"),
    ]
    assert sorted(ingest.deadletters.counts()) == ["bad_status", "unknown_device"]


def test_agent_status_reports_its_outbox_drops_and_clock_in_the_metrics(
    pipeline: tuple[Ingest, Recorder],
) -> None:
    ingest, recorder = pipeline
    status = (
        b'{"state":"online","outbox_pending":12,"outbox_dropped":345,'
        b'"outbox_dropped_by":{"size":345},"clock":"wrong","clock_synchronised":false,'
        b'"clock_problem":"the clock reads 2000-01-01T00:00:05Z, before 2020"}'
    )
    ingest.process([msg(status, "eit/kaeng-khoi-biomass/boiler-1/status")])
    assert recorder.statuses == [("kaeng-khoi-biomass", "boiler-1", "online")]
    labels = {"factory": "kaeng-khoi-biomass", "device": "boiler-1"}
    sample = ingest.metrics.registry.get_sample_value
    assert sample("eit_edge_outbox_dropped_scans", labels) == 345
    assert sample("eit_edge_outbox_pending_scans", labels) == 12
    assert sample("eit_edge_clock_ok", labels) == 0
    ingest.process([msg(b'{"state":"online","clock":"ok"}', "eit/kaeng-khoi-biomass/boiler-1/status")])
    assert sample("eit_edge_clock_ok", labels) == 1
    assert sample("eit_edge_outbox_ok", labels) == 1 and sample("eit_edge_outbox_write_errors", labels) == 0


def test_agent_status_reports_a_refusing_outbox_and_scan_restarts_in_the_metrics(
    pipeline: tuple[Ingest, Recorder],
) -> None:
    ingest, _ = pipeline
    status = (
        b'{"state":"online","outbox_pending":3,"outbox_write_errors":17,'
        b'"outbox_error":"outbox /var/lib/eit/outbox.db cannot store scans: database or disk is full",'
        b'"scan_restarts":2,"scan_error":"RuntimeError: x"}'
    )
    ingest.process([msg(status, "eit/kaeng-khoi-biomass/boiler-1/status")])
    labels = {"factory": "kaeng-khoi-biomass", "device": "boiler-1"}
    sample = ingest.metrics.registry.get_sample_value
    assert sample("eit_edge_outbox_ok", labels) == 0
    assert sample("eit_edge_outbox_write_errors", labels) == 17
    assert sample("eit_edge_scan_restarts", labels) == 2
    # The outbox stores scans again: the agent's next status has no outbox_error, the count stays.
    ingest.process(
        [msg(b'{"state":"online","outbox_write_errors":17}', "eit/kaeng-khoi-biomass/boiler-1/status")]
    )
    assert sample("eit_edge_outbox_ok", labels) == 1
    assert sample("eit_edge_outbox_write_errors", labels) == 17


# -- an unavailable store: the batch waits, retried with backoff and jitter -------------------------


def unreachable_ingest(tmp_path: Path, registry: Registry, store: InfluxStore, retry_max_s: float) -> Ingest:
    return Ingest(
        registry,
        store,
        open_dead_letters(None, tmp_path / "s.db"),
        IngestMetrics(),
        settings=IngestSettings(retry_max_s=retry_max_s),
    )


def unavailable_tries(ingest: Ingest) -> float:
    return metric(ingest, "eit_store_errors_total", {"kind": "unavailable"})


def store_in_thread(ingest: Ingest, result: BatchResult) -> tuple[threading.Thread, list[BaseException]]:
    raised: list[BaseException] = []

    def run() -> None:
        try:
            ingest.store_batch(result)
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, raised


def test_a_stop_ends_the_wait_for_an_unavailable_store_at_once(tmp_path: Path, registry: Registry) -> None:
    # A real InfluxDB client and an address where nothing listens: the store cannot be reached.
    store = InfluxStore(f"http://127.0.0.1:{free_port()}", "eit", timeout_s=2)
    ingest = unreachable_ingest(tmp_path, registry, store, retry_max_s=30)
    result = ingest.decode_batch([msg({"v": 1, "scans": [scan({"so2": 41.0})]})], now_ns())
    thread, raised = store_in_thread(ingest, result)
    wait_for(lambda: unavailable_tries(ingest) >= 3, 20, "3 tries")
    ingest.stop()
    thread.join(0.5)  # the pause after the third try has just begun and lasts 2 s or more
    assert not thread.is_alive()
    assert [type(e) for e in raised] == [StoreUnavailable]
    assert metric(ingest, "eit_readings_stored_total") == 0
    ingest.deadletters.close()


@pytest.mark.integration
def test_a_batch_waits_for_the_store_to_come_back_with_growing_jittered_pauses(
    tmp_path: Path, registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    influx = InfluxDB(tmp_path / "influxdb")  # its port is chosen, the server not started yet
    store = InfluxStore(influx.url, "eit", timeout_s=2)
    ingest = unreachable_ingest(tmp_path, registry, store, retry_max_s=2.0)
    result = ingest.decode_batch([msg({"v": 1, "scans": [scan({"so2": 41.0})]})], now_ns())
    with caplog.at_level(logging.ERROR, logger="eit.ingest"):
        thread, raised = store_in_thread(ingest, result)
        wait_for(lambda: unavailable_tries(ingest) >= 4, 30, "4 tries")
        influx.start()
        try:
            thread.join(30)
            assert not thread.is_alive() and raised == []
            assert store.count(factory="kaeng-khoi-biomass") == 1
        finally:
            store.close()
            influx.stop()
    pauses = [
        float(m.group(1))
        for m in (re.search(r"retrying in ([\d.]+) s", r.getMessage()) for r in caplog.records)
        if m
    ]
    assert len(pauses) >= 4
    # 0.5 s, 1 s, 2 s, then retry_max_s (2 s), each plus up to 0.5 s of jitter (within the cap).
    for n, pause in enumerate(pauses[:4]):
        base = min(0.5 * 2**n, 2.0)
        assert base - 0.05 <= pause <= min(base + 0.5, 2.0) + 0.05, (n, pauses)
    assert metric(ingest, "eit_readings_stored_total") == 1
    ingest.deadletters.close()
