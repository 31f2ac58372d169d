"""Evidence of the readings: the share of each channel's readings whose scan signature the ingest
verified (the ``verified`` field, eit/signing.py) and what the devices' chains showed
(``chain_events``, ingest/verify.py), for the compliance report and the public pages.

The share is of readings stored in the period, verified ones over all; it says nothing of their
validity (flags) or of the readings that never arrived, which the completeness and the chain
events tell.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from eit.registry import Factory
from eit.signing import VERIFIED
from eit.store import Store
from eit.storeschema import DEVICE, FACTORY, ChainEvents
from eit.timeutil import ns_to_iso


def channel_share(
    store: Store, factory: str, device: str, channel: str, start_ns: int, end_ns: int
) -> dict[str, Any]:
    """``{"readings", "verified", "verified_share"}``; the share is None without readings."""
    total = store.count(factory, device, channel, start_ns, end_ns)
    verified = store.count(factory, device, channel, start_ns, end_ns, verified=VERIFIED) if total else 0
    return {
        "readings": total,
        "verified": verified,
        "verified_share": round(verified / total, 4) if total else None,
    }


def factory_share(store: Store, factory: Factory, start_ns: int, end_ns: int) -> dict[str, Any]:
    """The factory's readings in the period, verified ones and the share, over all its channels."""
    total = verified = 0
    for device in factory.devices.values():
        total += store.count(factory.id, device.id, None, start_ns, end_ns)
        verified += store.count(factory.id, device.id, None, start_ns, end_ns, verified=VERIFIED)
    return {
        "readings": total,
        "verified": verified,
        "verified_share": round(verified / total, 4) if total else None,
    }


def chain_events(
    store: Store, factory: str, devices: Iterable[str], start_ns: int, end_ns: int
) -> list[dict[str, Any]]:
    """What the devices' chains of signed scans showed in the period, oldest first."""
    out: list[dict[str, Any]] = []
    for device in devices:
        for p in store.query_points(ChainEvents.NAME, {FACTORY: factory, DEVICE: device}, start_ns, end_ns):
            out.append(
                {
                    "device": device,
                    "time": ns_to_iso(p.ts_ns),
                    "kind": p.fields.get(ChainEvents.KIND),
                    "first_seq": p.fields.get(ChainEvents.FIRST_SEQ),
                    "last_seq": p.fields.get(ChainEvents.LAST_SEQ),
                    "missing": p.fields.get(ChainEvents.MISSING),
                    "detail": p.fields.get(ChainEvents.DETAIL),
                }
            )
    out.sort(key=lambda e: (e["time"], e["device"]))
    return out
