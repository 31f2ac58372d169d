"""The ingest's settings (section ``ingest`` of the server configuration)."""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from eit.bounds import MAX_FUTURE_S


class DeadLetterSettings(BaseModel):
    """``ingest: {dead_letters: {max_per_factory, retention_days}}`` (ingest/deadletters.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    # The dead letters seen longest ago go first; unregistered senders share one allowance.
    max_per_factory: int = Field(10_000, ge=1)
    retention_days: float = Field(30.0, gt=0)


# -- the RabbitMQ cluster's ingest (ingest/amqp.py; docs/scale-out.md) ----------------------------


class AmqpSettings(BaseModel):
    """``ingest: {transport: amqp, amqp: {...}}``: workers consuming the cluster's partitions.

    The partitions (quorum queues with a single active consumer) are declared by `eit cluster
    init` from the same settings; a factory's data and status go to one partition."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    # Every node's AMQP URL (amqp://user@host:port/vhost); tried in turn, from a random one.
    urls: list[str] = Field(min_length=1)
    # The login's password for the AMQP and management URLs (password, password_file or
    # password_env; a password written in a URL is used when this is not given).
    password: SecretStr | None = None
    # The topic exchange the MQTT plugin publishes to (rabbitmq.conf: mqtt.exchange).
    exchange: str = Field("eit.mqtt", min_length=1)
    # Fixed for the cluster's life: a factory's partition is a hash of its id modulo this.
    partitions: int = Field(8, ge=1, le=1024)
    queue_prefix: str = Field("eit.partition", min_length=1)
    # Unacknowledged messages the broker may send a worker (as the MQTT receive maximum).
    prefetch: int = Field(10_000, ge=1, le=65_535)
    # The broker closes a worker's connection after missing two of these; bounds a hung worker.
    heartbeat_s: int = Field(5, ge=1, le=60)
    # A worker writes a partition's readings only while it holds that partition's lease (in the
    # state database) and renews it every lease_s / 3; a worker that missed a renewal is fenced.
    lease_s: float = Field(10.0, gt=0)
    # How often each worker publishes a tick into every partition: the active consumer of a
    # partition without traffic still learns that it owns it.
    tick_s: float = Field(2.0, gt=0)
    replicas: int = Field(3, ge=1, le=7)  # quorum queue group size at declaration
    # A worker of a storage replica's queue set (its own queue_prefix and store): it stores the
    # readings of its set's partitions and runs no rules (no alerts, cases, notifications or town
    # jobs: the primary set's workers run those; the derived points of its store it recomputes
    # from its readings, alerts/replica_derived.py), and leaves the unroutable queue to the
    # primary set.
    replica: bool = False
    # The management HTTP API of the nodes (http://user:password@host:15672), for `eit cluster
    # status` (leader, active consumer) and `eit cluster sync` (bindings of removed factories).
    management_urls: list[str] = Field(default_factory=list)
    # A file each worker appends one line to per message it has written (time, worker,
    # connection, partition, topic, first seq): the audit of who wrote what, in which order.
    delivery_log: str | None = None

    def with_password(self, url: str) -> str:
        """``url`` with the configured password in it (as it is when none is configured)."""
        if self.password is None:
            return url
        parts = urlsplit(url)
        user = parts.username or ""
        host = parts.hostname or ""
        netloc = f"{quote(user, safe='')}:{quote(self.password.get_secret_value(), safe='')}@{host}"
        if parts.port is not None:
            netloc += f":{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))


# -- the ingest ----------------------------------------------------------------------------------
# Defined after the settings its fields hold: the configuration reader (server/config.py) reads
# each field's type, and a name not yet defined would stay an unresolved forward reference there
# (whose secrets, password_file and password_env, it would not know).


class IngestSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    batch_max_readings: int = Field(5000, ge=1)
    # The longest a message waits for others to join its batch when the queue is idle.
    flush_interval_s: float = Field(0.005, gt=0)
    # Scans stamped further ahead of the server clock are dead-lettered (future_timestamp).
    max_future_s: float = Field(MAX_FUTURE_S, ge=0)
    retry_max_s: float = Field(30.0, gt=0)
    stats_interval_s: float = Field(10.0, gt=0)  # the `platform` measurement (ingest/selfstats.py)
    # How many dead letters each factory keeps, and for how long (ingest/deadletters.py).
    dead_letters: DeadLetterSettings = Field(default_factory=DeadLetterSettings)
    # Where the messages come from: the MQTT broker (section ``mqtt``), or the RabbitMQ cluster's
    # partitions over AMQP (``amqp`` below; the `cluster` extra).
    transport: Literal["mqtt", "amqp"] = "mqtt"
    amqp: AmqpSettings | None = None

    @model_validator(mode="after")
    def _amqp_when_chosen(self) -> IngestSettings:
        if self.transport == "amqp" and self.amqp is None:
            raise ValueError("ingest.transport is amqp but ingest.amqp (urls, partitions) is missing")
        return self
