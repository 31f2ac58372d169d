"""Wire format v1 and v2: topics and the JSON payload of readings (schemas: eit/schema/).

v2 (eit/schema/payload-v2.json) adds to each scan its signature (``sig``), the id of the key
that made it (``k``) and the hash of the device's previous scan (``prev``): eit/signing.py. The
server reads both versions; the agent chooses (v2 when it has a signing key). A v2 field that is
not text is kept as no signature at all (the scan's readings are stored, flagged), never the
reason to lose a reading.

``decode`` turns a payload into scans and a list of the parts it had to reject, each with a
reason code and a sentence naming where the problem is. A bad value never takes the rest of its
scan down with it, and a bad scan never takes its message down: only the broken part is rejected.

The contract's bounds (eit/bounds.py) hold here: the JSON is read within the size, depth and
digit bounds with duplicate keys refused (eit/jsonload.py), a scan's time lies between 2000 and
what every store holds (``time_out_of_range``; the ingest's validator adds the future bound) and
its ``seq`` between 0 and 2^63-1 (``seq_out_of_range``). ``decode_status`` reads status messages
with the same bounds.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from eit import jsonload
from eit.bounds import MAX_MESSAGE_BYTES, seq_problem, time_problem
from eit.errors import DecodeError
from eit.model import FLAGS, ID_PATTERN
from eit.timeutil import ns_to_iso, parse_iso_ns

VERSION = 1
VERSION_SIGNED = 2
VERSIONS = (VERSION, VERSION_SIGNED)
TOPIC_ROOT = "eit"
DATA_SUBSCRIPTION = f"{TOPIC_ROOT}/+/+/data"
STATUS_SUBSCRIPTION = f"{TOPIC_ROOT}/+/+/status"
STATUS_ONLINE = "online"
STATUS_OFFLINE = "offline"
_MAX_EPOCH_S = 32503680000  # year 3000: anything larger is most likely milliseconds
_SCAN_KEYS = frozenset({"seq", "ts", "values", "flags"})
_SIGNED_KEYS = ("k", "prev", "sig")
_SCAN_KEYS_V2 = _SCAN_KEYS | frozenset(_SIGNED_KEYS)
_ENVELOPE_KEYS = frozenset({"v", "scans", "factory", "device"})
_NUMBER_TYPES = frozenset({float, int})
_DOUBLE_MAX = int(sys.float_info.max)  # integers beyond it have no float (OverflowError)
_DOUBLE_MIN = -_DOUBLE_MAX
# Channel names already seen to match ID_PATTERN (a site has a few dozen): the per-value
# regular expression is then a set lookup. Bounded, in case a sender makes up names.
_GOOD_NAMES: set[str] = set()
_GOOD_NAMES_MAX = 10_000


def schema(version: int = VERSION) -> dict[str, Any]:
    """The JSON Schema of the payload of ``version``, as shipped with the package."""
    text = resources.files("eit").joinpath(f"schema/payload-v{version}.json").read_text(encoding="utf-8")
    result: dict[str, Any] = json.loads(text)
    return result


def data_topic(factory: str, device: str) -> str:
    return f"{TOPIC_ROOT}/{factory}/{device}/data"


def status_topic(factory: str, device: str) -> str:
    return f"{TOPIC_ROOT}/{factory}/{device}/status"


def alerts_topic(factory: str) -> str:
    return f"{TOPIC_ROOT}/alerts/{factory}"


@dataclass(frozen=True, slots=True)
class Topic:
    factory: str
    device: str
    kind: str  # "data" or "status"


def parse_topic(topic: str) -> Topic:
    """Split ``eit/<factory>/<device>/<kind>``; raises DecodeError naming the bad part."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != TOPIC_ROOT:
        raise DecodeError("bad_topic", f"topic '{topic}' is not eit/<factory>/<device>/<data|status>")
    _, factory, device, kind = parts
    if kind not in ("data", "status"):
        raise DecodeError("bad_topic", f"topic '{topic}' ends in '{kind}', expected data or status")
    for label, value in (("factory", factory), ("device", device)):
        if not ID_PATTERN.fullmatch(value):
            raise DecodeError("bad_topic", f"topic '{topic}': '{value}' is not a valid {label} id")
    return Topic(factory, device, kind)


@dataclass(slots=True)
class Scan:
    """One reading cycle of one device: values by channel, flags where not N."""

    ts_ns: int
    values: dict[str, float]
    flags: dict[str, str] = field(default_factory=dict)
    seq: int | None = None
    # Wire v2 (eit/signing.py): the signing key's id, the previous scan's hash, the signature.
    # None: not sent; "" (sig): sent as something other than text.
    key: str | None = None
    prev: str | None = None
    sig: str | None = None


@dataclass(slots=True)
class Rejected:
    """A part of a payload that could not be used, kept whole for the dead-letter store."""

    reason: str
    detail: str
    where: str
    fragment: Any


@dataclass(slots=True)
class Decoded:
    scans: list[Scan]
    rejected: list[Rejected]
    factory: str | None = None
    device: str | None = None
    version: int = VERSION


def decode(payload: bytes | str) -> Decoded:
    """Decode a v1 or v2 payload.

    Raises DecodeError when the message as a whole is unusable (not JSON, wrong version, no
    scans). Otherwise returns the usable scans and the rejected parts.
    """
    doc = _loads(payload)
    if not isinstance(doc, dict):
        raise DecodeError("bad_envelope", f"payload must be a JSON object, got {_kind(doc)}")
    if "v" not in doc:
        raise DecodeError("bad_envelope", "missing 'v' (the wire format version, 1)", "v")
    if doc["v"] not in VERSIONS or isinstance(doc["v"], bool):
        raise DecodeError(
            "unsupported_version", f"version {doc['v']!r} is not supported (this server reads 1 and 2)", "v"
        )
    version = int(doc["v"])
    if not _ENVELOPE_KEYS.issuperset(doc):
        unknown = sorted(set(doc) - _ENVELOPE_KEYS)
        raise DecodeError("bad_envelope", f"unknown key '{unknown[0]}'", unknown[0])
    factory = _optional_id(doc, "factory")
    device = _optional_id(doc, "device")
    raw_scans = doc.get("scans")
    if not isinstance(raw_scans, list) or not raw_scans:
        raise DecodeError("bad_envelope", "'scans' must be a non-empty list of scans", "scans")
    scans: list[Scan] = []
    rejected: list[Rejected] = []
    keys = _SCAN_KEYS if version == VERSION else _SCAN_KEYS_V2
    for index, raw in enumerate(raw_scans):
        scan = _decode_scan(raw, index, rejected, keys)
        if scan is not None:
            if version == VERSION_SIGNED:
                _signature_fields(scan, raw)
            scans.append(scan)
    return Decoded(scans, rejected, factory, device, version)


def _signature_fields(scan: Scan, raw: dict[str, Any]) -> None:
    key, prev, sig = (raw.get(name) for name in _SIGNED_KEYS)
    if key is None and prev is None and sig is None:
        return  # an unsigned scan in a v2 message
    scan.key = key if isinstance(key, str) else ""
    scan.prev = prev if isinstance(prev, str) else ""
    scan.sig = sig if isinstance(sig, str) else ""


def _loads(payload: bytes | str) -> Any:
    """The JSON document, within the contract's bounds (eit/jsonload.py); DecodeError naming the
    problem and where it is otherwise."""
    return jsonload.loads(payload)


def _optional_id(doc: dict[str, Any], key: str) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise DecodeError("bad_envelope", f"'{key}' must be an id string, got {value!r}", key)
    return value


def _decode_scan(
    raw: Any, index: int, rejected: list[Rejected], keys: frozenset[str] = _SCAN_KEYS
) -> Scan | None:
    where = f"scans[{index}]"

    def reject(reason: str, detail: str, at: str) -> None:
        rejected.append(Rejected(reason, detail, at, raw))

    if type(raw) is not dict:
        reject("bad_scan", f"a scan must be a JSON object, got {_kind(raw)}", where)
        return None
    if not keys.issuperset(raw):
        extra = sorted(set(raw) - keys)
        reject("bad_scan", f"unknown key '{extra[0]}' in scan", f"{where}.{extra[0]}")
        return None
    seq = raw.get("seq")
    if seq is not None:
        seq_bad = seq_problem(seq)
        if seq_bad is not None:
            reject(seq_bad.reason, seq_bad.detail, f"{where}.seq")
            return None
    if "ts" not in raw:
        reject("bad_timestamp", "missing 'ts'", f"{where}.ts")
        return None
    try:
        ts_ns = _timestamp_ns(raw["ts"])
    except ValueError as exc:
        reject("bad_timestamp", str(exc), f"{where}.ts")
        return None
    ts_bad = time_problem(ts_ns)
    if ts_bad is not None:
        reject(ts_bad.reason, f"{_shown_time(raw['ts'])}: {ts_bad.detail}", f"{where}.ts")
        return None
    values = raw.get("values")
    if type(values) is not dict or not values:
        reject("bad_scan", "'values' must be a non-empty object of channel: number", f"{where}.values")
        return None
    flags_raw = raw.get("flags") or {}
    if type(flags_raw) is not dict:
        reject("bad_flag", f"'flags' must be an object, got {_kind(flags_raw)}", f"{where}.flags")
        return None
    if not flags_raw:
        good = _well_formed_values(values)
        if good is not None:
            return Scan(ts_ns, good, {}, seq)
    return _decode_values(raw, where, ts_ns, seq, values, flags_raw, rejected)


def _well_formed_values(values: dict[str, Any]) -> dict[str, float] | None:
    """The values as floats when every one is a finite number under a valid channel name (the
    usual scan), checked a whole scan at a time; None sends the scan to the value-by-value
    checks, which name each problem."""
    numbers = values.values()
    types = set(map(type, numbers))
    if not _NUMBER_TYPES.issuperset(types):  # text, null, lists, booleans (type bool)
        return None
    try:
        total = sum(numbers)
    except OverflowError:  # an integer beyond a double
        return None
    if total - total != 0:  # NaN or infinity somewhere (or finite values summing past a double)
        return None
    if not _GOOD_NAMES.issuperset(values):
        for channel in values:
            if channel not in _GOOD_NAMES:
                if not ID_PATTERN.fullmatch(channel):
                    return None
                if len(_GOOD_NAMES) >= _GOOD_NAMES_MAX:
                    _GOOD_NAMES.clear()
                _GOOD_NAMES.add(channel)
    if int in types:
        try:
            return {channel: float(value) for channel, value in values.items()}
        except OverflowError:  # an integer beyond a double
            return None
    return values  # floats already: the parsed object itself, no copy


def _decode_values(
    raw: dict[str, Any],
    where: str,
    ts_ns: int,
    seq: int | None,
    values: dict[str, Any],
    flags_raw: dict[str, Any],
    rejected: list[Rejected],
) -> Scan | None:
    """Value by value: each bad value or flag is rejected alone, naming its channel."""
    good_values: dict[str, float] = {}
    good_flags: dict[str, str] = {}
    for channel, value in values.items():
        at = f"{where}.values.{channel}"
        problem = _value_problem(channel, value)
        if problem is None:
            flag = flags_raw.get(channel, "N")
            if flag not in FLAGS:
                problem = ("bad_flag", f"flag {flag!r} for '{channel}' is not one of {''.join(FLAGS)}")
        if problem is not None:
            fragment = {"ts": raw["ts"], "values": {channel: value}}
            if channel in flags_raw:
                fragment["flags"] = {channel: flags_raw[channel]}
            if seq is not None:
                fragment["seq"] = seq
            rejected.append(Rejected(problem[0], f"'{channel}': {problem[1]}", at, fragment))
            continue
        good_values[channel] = float(value)
        flag = flags_raw.get(channel, "N")
        if flag != "N":
            good_flags[channel] = flag
    for channel in flags_raw:
        if channel not in values:
            rejected.append(
                Rejected(
                    "bad_flag",
                    f"flag for '{channel}' but no value for it",
                    f"{where}.flags.{channel}",
                    {"ts": raw["ts"], "flags": {channel: flags_raw[channel]}},
                )
            )
    if not good_values:
        return None
    return Scan(ts_ns, good_values, good_flags, seq)


def _value_problem(channel: str, value: Any) -> tuple[str, str] | None:
    if not ID_PATTERN.fullmatch(channel):
        return ("bad_channel_name", "channel names are lower-case letters, digits, '-' or '_'")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ("bad_value", f"expected a number, got {_kind(value)}")
    if isinstance(value, int) and not _DOUBLE_MIN <= value <= _DOUBLE_MAX:
        return ("bad_value", f"an integer of {len(str(abs(value)))} digits is beyond any measurement")
    if not math.isfinite(value):
        return ("non_finite_value", f"{value} is not a measurement (NaN and infinity are rejected)")
    return None


def _timestamp_ns(ts: Any) -> int:
    if isinstance(ts, str):
        try:
            return parse_iso_ns(ts)
        except ValueError as exc:
            raise ValueError(f"'{ts[:40]}': {exc}") from None
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        raise ValueError(f"expected an ISO 8601 string or epoch seconds, got {_kind(ts)}")
    if isinstance(ts, int) and ts > _DOUBLE_MAX:
        raise ValueError(f"an integer of {len(str(ts))} digits is not a time")
    if not math.isfinite(ts) or ts < 0:
        raise ValueError(f"{ts} is not a time")
    if ts > _MAX_EPOCH_S:
        raise ValueError(f"{ts} is after the year 3000: epoch milliseconds? send seconds")
    return round(ts * 1_000_000) * 1000


def _shown_time(ts: Any) -> str:
    if isinstance(ts, str):
        return repr(ts[:40])
    return repr(ts) if not isinstance(ts, int) or abs(ts) < 10**30 else "the number"


@dataclass(frozen=True, slots=True)
class Status:
    """An agent's status message: ``online`` or ``offline``, and what a JSON status adds (the
    outbox's backlog and drops, the clock: edge/publisher.py)."""

    state: str
    details: dict[str, Any] = field(default_factory=dict)


def decode_status(payload: bytes | str) -> Status:
    """Decode a status message: plain ``online``/``offline`` or a JSON object with ``state``.

    JSON is read within the contract's bounds (size, depth, digits, duplicate keys: reasons of
    eit/jsonload.py); anything else that is not a status raises DecodeError ``bad_status``."""
    data = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload
    if len(data) > MAX_MESSAGE_BYTES:
        raise DecodeError(
            "too_large",
            f"status of {len(data):,} bytes is larger than the {MAX_MESSAGE_BYTES:,} a message may be",
        )
    text = data.decode("utf-8", errors="replace").strip()
    if text in (STATUS_ONLINE, STATUS_OFFLINE):
        return Status(text)
    if text.startswith("{"):
        doc = jsonload.loads(data, "status")
        state = doc.get("state") if isinstance(doc, dict) else None
        if state in (STATUS_ONLINE, STATUS_OFFLINE):
            return Status(str(state), doc)
    raise DecodeError(
        "bad_status", f"status must be 'online', 'offline' or JSON with a state, got {text[:60]!r}"
    )


def encode(scans: Iterable[Scan]) -> bytes:
    """Encode scans as a v1 payload (timestamps as ISO 8601 UTC)."""
    out = []
    for scan in scans:
        item: dict[str, Any] = {}
        if scan.seq is not None:
            item["seq"] = scan.seq
        item["ts"] = ns_to_iso(scan.ts_ns)
        item["values"] = scan.values
        if scan.flags:
            item["flags"] = scan.flags
        out.append(item)
    return json.dumps({"v": VERSION, "scans": out}, separators=(",", ":"), allow_nan=False).encode()


def signed_scan_body(scan: Scan) -> dict[str, Any]:
    """A v2 scan as it goes on the wire (its signature fields set: eit/signing.py)."""
    item: dict[str, Any] = {}
    if scan.seq is not None:
        item["seq"] = scan.seq
    item["ts"] = ns_to_iso(scan.ts_ns)
    item["values"] = scan.values
    if scan.flags:
        item["flags"] = scan.flags
    for name, value in zip(_SIGNED_KEYS, (scan.key, scan.prev, scan.sig), strict=True):
        if value is not None:
            item[name] = value
    return item


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"text ({value[:40]!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
