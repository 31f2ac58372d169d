"""The RabbitMQ cluster's topology, by name: which partition (quorum queue) holds a factory, and
how the MQTT plugin's routing keys map back to the agents' topics.

The agents publish `eit/<factory>/<device>/data` and `.../status` over MQTT; RabbitMQ's MQTT
plugin publishes each to the exchange ``mqtt.exchange`` with the routing key
`eit.<factory>.<device>.data` ('/' and '.' swapped). One binding per factory, `eit.<factory>.#`,
sends a factory's data and status to one partition, so one worker at a time sees all of a
factory's messages, in the order each agent connection published them. Messages that no binding
takes (a factory not in the registry) go to the alternate exchange's queue, read like a partition
and dead-lettered as ``unknown_factory``.
"""

from __future__ import annotations

import zlib

UNROUTABLE = "eit.unroutable"  # the alternate exchange and its queue
TICK_HEADER = "x-eit-tick"  # a tick: a message a worker publishes into a partition to learn it owns it
UNROUTABLE_PARTITION = -2  # the partition number the unroutable queue stands for in leases


def partition_of(factory: str, partitions: int) -> int:
    """A factory's partition: stable for the cluster's life (CRC-32 of the id, modulo P), the same
    in every worker and in `eit cluster`, whatever the order of the registry."""
    return zlib.crc32(factory.encode()) % partitions


def queue_name(prefix: str, partition: int) -> str:
    if partition == UNROUTABLE_PARTITION:
        return UNROUTABLE
    return f"{prefix}.{partition:03d}"


def binding_key(factory: str) -> str:
    return f"eit.{_swap(factory)}.#"


def topic_of(routing_key: str) -> str:
    """The MQTT topic an agent published, from the routing key the MQTT plugin gave it."""
    return _swap(routing_key)


def _swap(text: str) -> str:
    return text.translate(_SWAP)


_SWAP = str.maketrans({"/": ".", ".": "/"})
