"""Validation of decoded scans against the site registry.

Whole-message problems (unknown factory or device, a payload naming another factory than its
topic) reject the message. Per-value problems (unknown channel, timestamp too far in the future:
``max_future_s`` ahead of the receiving clock, eit/bounds.py) reject only that value or scan.
A value outside the channel's measuring range is kept and flagged T (above range), as an analyzer
would, because it is a real observation of an over-range event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eit.bounds import time_problem
from eit.errors import DecodeError
from eit.model import Reading
from eit.registry import Registry
from eit.timeutil import NS_PER_S, ns_to_iso
from eit.wire import Decoded, Rejected, Topic


@dataclass(slots=True)
class Checked:
    readings: list[Reading]
    rejected: list[Rejected]


class Validator:
    def __init__(self, registry: Registry, max_future_s: float = 300.0) -> None:
        self.registry = registry
        self.max_future_ns = int(max_future_s * NS_PER_S)

    def check(
        self, topic: Topic, decoded: Decoded, now_ns: int, verified: Sequence[str] | None = None
    ) -> Checked:
        """Raises DecodeError when the whole message must be rejected. ``verified``: each scan's
        signature result (ingest/verify.py), stored with its readings."""
        factory = self.registry.factories.get(topic.factory)
        if factory is None:
            raise DecodeError("unknown_factory", f"factory '{topic.factory}' is not in the site registry")
        device = factory.devices.get(topic.device)
        if device is None:
            raise DecodeError(
                "unknown_device", f"device '{topic.device}' is not registered for factory '{topic.factory}'"
            )
        if decoded.factory is not None and decoded.factory != topic.factory:
            raise DecodeError(
                "factory_mismatch",
                f"payload says factory '{decoded.factory}' but was published under factory '{topic.factory}'",
                "factory",
            )
        if decoded.device is not None and decoded.device != topic.device:
            raise DecodeError(
                "device_mismatch",
                f"payload says device '{decoded.device}' but was published under device '{topic.device}'",
                "device",
            )
        readings: list[Reading] = []
        rejected = list(decoded.rejected)
        latest_ok = now_ns + self.max_future_ns
        channels = device.channels
        for index, scan in enumerate(decoded.scans):
            out_of_range = time_problem(scan.ts_ns)  # the wire decoder's bound, for any decoder
            if out_of_range is not None:
                rejected.append(
                    Rejected(
                        out_of_range.reason,
                        f"scan time: {out_of_range.detail}",
                        f"scans[{index}].ts",
                        {"seq": scan.seq, "ts_ns": scan.ts_ns, "values": scan.values},
                    )
                )
                continue
            if scan.ts_ns > latest_ok:
                rejected.append(
                    Rejected(
                        "future_timestamp",
                        f"scan time {ns_to_iso(scan.ts_ns)} is more than "
                        f"{self.max_future_ns // NS_PER_S} s ahead of the server clock ({ns_to_iso(now_ns)})",
                        f"scans[{index}].ts",
                        {"seq": scan.seq, "ts": ns_to_iso(scan.ts_ns), "values": scan.values},
                    )
                )
                continue
            result = verified[index] if verified is not None else ""
            for name, value in scan.values.items():
                channel = channels.get(name)
                if channel is None:
                    rejected.append(
                        Rejected(
                            "unknown_channel",
                            f"channel '{name}' is not registered for {topic.factory}/{topic.device}"
                            f" (registered: {', '.join(channels)})",
                            f"scans[{index}].values.{name}",
                            {"seq": scan.seq, "ts": ns_to_iso(scan.ts_ns), "values": {name: value}},
                        )
                    )
                    continue
                flag = scan.flags.get(name, "N")
                if flag == "N" and (value > channel.range_max or value < channel.range_min):
                    flag = "T"
                readings.append(
                    Reading(
                        topic.factory,
                        topic.device,
                        name,
                        scan.ts_ns,
                        value,
                        flag,
                        scan.seq,
                        result,
                    )
                )
        return Checked(readings, rejected)
