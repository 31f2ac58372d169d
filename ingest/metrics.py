"""Prometheus metrics of the ingest (a registry per service, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = Counter("eit_messages_received", "MQTT messages received", ["kind"], registry=r)
        self.readings_received = Counter(
            "eit_readings_received", "Values received in decodable scans (before validation)", registry=r
        )
        self.readings_stored = Counter("eit_readings_stored", "Readings written to the store", registry=r)
        self.dead_letters = Counter(
            "eit_dead_letters", "Rejected messages, scans or values, by reason", ["reason"], registry=r
        )
        self.dead_letters_evicted = Counter(
            "eit_dead_letters_evicted",
            "Dead letters let go: beyond a factory's cap (oldest first) or past the retention",
            ["cause"],
            registry=r,
        )
        self.dead_letters_unkept = Counter(
            "eit_dead_letters_unkept",
            "Dead letters the state database refused to keep (logged instead)",
            registry=r,
        )
        self.store_outage = Gauge(
            "eit_store_outage",
            "1 while the store or the state database holds batches back (unacknowledged, retried)",
            registry=r,
        )
        self.store_outage_since = Gauge(
            "eit_store_outage_since_seconds",
            "When the current outage began (Unix time), 0 when there is none",
            registry=r,
        )
        self.store_errors = Counter(
            "eit_store_errors", "Failed store writes (retried until they succeed)", ["kind"], registry=r
        )
        self.store_write_seconds = Histogram(
            "eit_store_write_seconds",
            "Time to write one batch to the store",
            registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.batch_readings = Histogram(
            "eit_batch_readings",
            "Readings per stored batch",
            registry=r,
            buckets=(1, 10, 50, 100, 500, 1000, 2500, 5000, 10000, 50000),
        )
        # Signed scans (ingest/verify.py).
        self.scans_verified = Counter(
            "eit_scans_verified",
            "Scans by what their signature showed: verified, unsigned (a key was registered), "
            "bad_signature, unknown_key, not_signed (no key registered)",
            ["result"],
            registry=r,
        )
        self.chain_events = Counter(
            "eit_chain_events",
            "What the devices' chains of signed scans showed: reported_drop, unexplained_gap, "
            "reordered, chain_break, conflict, repeat (absorbed), explained_later",
            ["kind"],
            registry=r,
        )
        self.device_keys_errors = Counter(
            "eit_device_keys_errors",
            "Times the device keys file could not be read (the old keys stay)",
            registry=r,
        )
        self.queue_depth = Gauge("eit_ingest_queue_depth", "Messages received, not yet stored", registry=r)
        self.broker_connected = Gauge("eit_broker_connected", "1 when connected to the broker", registry=r)
        # What each agent says about itself in its status message (edge/publisher.py).
        self.edge_outbox_dropped = Gauge(
            "eit_edge_outbox_dropped_scans",
            "Scans an agent dropped from its full outbox, as its last status message says",
            ["factory", "device"],
            registry=r,
        )
        self.edge_outbox_pending = Gauge(
            "eit_edge_outbox_pending_scans",
            "Scans waiting in an agent's outbox, as its last status message says",
            ["factory", "device"],
            registry=r,
        )
        self.edge_clock_ok = Gauge(
            "eit_edge_clock_ok",
            "0 while an agent reports its clock as known wrong (its scans are flagged D), else 1",
            ["factory", "device"],
            registry=r,
        )
        self.edge_outbox_write_errors = Gauge(
            "eit_edge_outbox_write_errors",
            "Scans an agent lost because its outbox could not store them, as its last status says",
            ["factory", "device"],
            registry=r,
        )
        self.edge_outbox_ok = Gauge(
            "eit_edge_outbox_ok",
            "0 while an agent reports that its outbox cannot store scans (outbox_error), else 1",
            ["factory", "device"],
            registry=r,
        )
        self.edge_scan_restarts = Gauge(
            "eit_edge_scan_restarts",
            "Times an agent restarted the device's scan loop after it failed, as its status says",
            ["factory", "device"],
            registry=r,
        )
        self.devices_offline = Gauge(
            "eit_devices_offline", "Devices whose last status message says offline", registry=r
        )
