"""The wire format: the decoder and the JSON Schema agree, and every bad part is named."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from eit import jsonload, wire
from eit.errors import DecodeError
from eit.timeutil import parse_iso_ns

VALID_DOCS: list[dict[str, Any]] = [
    {
        "v": 1,
        "scans": [
            {
                "seq": 1842,
                "ts": "2026-11-27T04:00:00Z",
                "values": {"so2": 123.4, "o2": 8.2, "flow": 51234.0},
                "flags": {"so2": "C"},
            }
        ],
    },
    {"v": 1, "scans": [{"ts": 1795752000, "values": {"ph": 7}}]},
    {
        "v": 1,
        "factory": "f1",
        "device": "d1",
        "scans": [
            {"ts": "2026-11-27T11:00:00+07:00", "values": {"cod": 80.5}},
            {"ts": "2026-11-27T04:00:01.250Z", "values": {"cod": 81}},
        ],
    },
]

# Whole-message problems: (document or raw payload, reason).
BAD_MESSAGES: list[tuple[Any, str]] = [
    (b"\xff\xfe not text", "not_utf8"),
    (b'{"v": 1, "scans": [', "not_json"),
    ([1, 2, 3], "bad_envelope"),
    ({"scans": [{"ts": 0, "values": {"a": 1}}]}, "bad_envelope"),
    ({"v": 3, "scans": [{"ts": 0, "values": {"a": 1}}]}, "unsupported_version"),
    ({"v": 1, "scans": []}, "bad_envelope"),
    ({"v": 1, "scans": {"ts": 0}}, "bad_envelope"),
    ({"v": 1, "scans": [{"ts": 0, "values": {"a": 1}}], "extra": 1}, "bad_envelope"),
    ({"v": 1, "factory": "Bad Name", "scans": [{"ts": 0, "values": {"a": 1}}]}, "bad_envelope"),
]

T = 1795752000  # 2026-11-27T04:00:00Z, in epoch seconds
# Problems inside one scan: (scan, reason).
BAD_SCANS: list[tuple[Any, str]] = [
    ("not a scan", "bad_scan"),
    ({"values": {"so2": 1}}, "bad_timestamp"),
    ({"ts": "yesterday", "values": {"so2": 1}}, "bad_timestamp"),
    ({"ts": "2026-11-27T04:00:00", "values": {"so2": 1}}, "bad_timestamp"),
    ({"ts": 1795752000000, "values": {"so2": 1}}, "bad_timestamp"),
    ({"ts": -5, "values": {"so2": 1}}, "bad_timestamp"),
    ({"ts": T, "values": {}}, "bad_scan"),
    ({"ts": T, "values": {"so2": 1}, "unit": "ppm"}, "bad_scan"),
    ({"ts": T, "seq": -1, "values": {"so2": 1}}, "bad_scan"),
    ({"ts": T, "values": {"so2": "12.3"}}, "bad_value"),
    ({"ts": T, "values": {"so2": None}}, "bad_value"),
    ({"ts": T, "values": {"so2": True}}, "bad_value"),
    ({"ts": T, "values": {"SO2": 1.0}}, "bad_channel_name"),
    ({"ts": T, "values": {"so2": 1.0}, "flags": {"so2": "X"}}, "bad_flag"),
]


def _payload(doc: Any) -> bytes:
    return doc if isinstance(doc, bytes) else json.dumps(doc).encode()


def _validator() -> jsonschema.protocols.Validator:
    schema = wire.schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


@pytest.mark.parametrize("doc", VALID_DOCS)
def test_documented_payloads_decode_and_match_the_schema(doc: dict[str, Any]) -> None:
    _validator().validate(doc)
    decoded = wire.decode(_payload(doc))
    assert decoded.rejected == []
    assert len(decoded.scans) == len(doc["scans"])
    assert decoded.scans[0].values == {k: float(v) for k, v in doc["scans"][0]["values"].items()}


def test_design_example_decodes_to_exact_values() -> None:
    decoded = wire.decode(_payload(VALID_DOCS[0]))
    scan = decoded.scans[0]
    assert scan.seq == 1842
    assert scan.ts_ns == parse_iso_ns("2026-11-27T04:00:00Z") == 1795752000 * 10**9
    assert scan.flags == {"so2": "C"}


def test_offsets_and_epoch_seconds_give_the_same_instant() -> None:
    iso = wire.decode(_payload({"v": 1, "scans": [{"ts": "2026-11-27T11:00:00+07:00", "values": {"a": 1}}]}))
    epoch = wire.decode(_payload({"v": 1, "scans": [{"ts": 1795752000.0, "values": {"a": 1}}]}))
    assert iso.scans[0].ts_ns == epoch.scans[0].ts_ns


@pytest.mark.parametrize(("doc", "reason"), BAD_MESSAGES)
def test_unusable_messages_raise_a_specific_reason(doc: Any, reason: str) -> None:
    with pytest.raises(DecodeError) as err:
        wire.decode(_payload(doc))
    assert err.value.reason == reason
    assert err.value.detail  # a sentence for the operator
    if not isinstance(doc, bytes):
        assert not _validator().is_valid(doc)


@pytest.mark.parametrize(("scan", "reason"), BAD_SCANS)
def test_a_bad_scan_is_rejected_alone_and_the_good_one_kept(scan: Any, reason: str) -> None:
    good = {"seq": 7, "ts": "2026-11-27T04:00:00Z", "values": {"so2": 40.0}}
    doc: dict[str, Any] = {"v": 1, "scans": [scan, good]}
    decoded = wire.decode(_payload(doc))
    assert [s.seq for s in decoded.scans] == [7]
    assert [r.reason for r in decoded.rejected] == [reason]
    assert decoded.rejected[0].where.startswith("scans[0]")
    assert not _validator().is_valid(doc)


def test_nan_and_infinity_are_rejected_per_value_naming_the_channel() -> None:
    payload = b'{"v":1,"scans":[{"ts":1795752000,"values":{"so2":NaN,"nox":Infinity,"o2":8.5}}]}'
    decoded = wire.decode(payload)
    assert decoded.scans[0].values == {"o2": 8.5}
    reasons = {r.where: r.reason for r in decoded.rejected}
    assert reasons == {"scans[0].values.so2": "non_finite_value", "scans[0].values.nox": "non_finite_value"}
    assert "'so2'" in decoded.rejected[0].detail


def test_a_flag_without_a_value_is_reported() -> None:
    decoded = wire.decode(_payload({"v": 1, "scans": [{"ts": T, "values": {"a": 1}, "flags": {"b": "C"}}]}))
    assert decoded.scans[0].values == {"a": 1.0}
    assert [(r.reason, r.where) for r in decoded.rejected] == [("bad_flag", "scans[0].flags.b")]


def test_encode_round_trips_through_decode() -> None:
    scans = [
        wire.Scan(1795752000_123_000_000, {"so2": 1.5}, {"so2": "M"}, 3),
        wire.Scan(1795752001_000_000_000, {"so2": 2.0}, {}, 4),
    ]
    decoded = wire.decode(wire.encode(scans))
    assert decoded.rejected == []
    assert decoded.scans == scans
    _validator().validate(json.loads(wire.encode(scans)))


def test_microseconds_survive_the_round_trip() -> None:
    scan = wire.Scan(1795752000_123_456_000, {"a": 1.0})
    assert wire.decode(wire.encode([scan])).scans[0].ts_ns == scan.ts_ns


@pytest.mark.parametrize(
    ("topic", "ok"),
    [
        ("eit/f1/d1/data", True),
        ("eit/f1/d1/status", True),
        ("eit/f1/d1", False),
        ("eit/f1/d1/other", False),
        ("other/f1/d1/data", False),
        ("eit/F1/d1/data", False),
    ],
)
def test_topics_are_parsed_strictly(topic: str, ok: bool) -> None:
    if ok:
        parsed = wire.parse_topic(topic)
        assert (parsed.factory, parsed.device) == ("f1", "d1")
    else:
        with pytest.raises(DecodeError) as err:
            wire.parse_topic(topic)
        assert err.value.reason == "bad_topic"
        assert topic in err.value.detail


# Payloads where the JSON readers or the scan-at-a-time check could differ from the
# value-by-value reference: NaN, huge and 64-bit integers, overflowing sums, a BOM, UTF-16,
# lone surrogates, duplicate keys, booleans, upper-case names, ints among floats.
EDGE_PAYLOADS = [
    b'{"v":1,"scans":[{"ts":1795752000,"values":{"a":1e400,"b":2}}]}',
    b'{"v":1,"scans":[{"ts":1795752000,"values":{"a":NaN,"b":-Infinity,"c":3.5}}]}',
    b'{"v":1,"scans":[{"ts":1795752000,"values":{"a":1e308,"b":1e308}}]}',
    b'\xef\xbb\xbf{"v":1,"scans":[{"ts":1795752000,"values":{"a":1}}]}',
    '{"v":1,"scans":[{"ts":1795752000,"values":{"a":1}}]}'.encode("utf-16"),
    b'{"v":1,"scans":[{"ts":1795752000,"values":{"a\\ud800":1,"b":2.5}}]}',
    b'{"v":1,"scans":[{"ts":1795752000,"values":{"a":18446744073709551615,"b":-9223372036854775809}}]}',
    b'{"v":1,"scans":[{"ts":1795752000,"values":{"A":1,"b":true,"c":2}}]}',
    b'{"v":1,"scans":[{"ts":1795752000,"values":{"a":1,"a":2}}]}',
    b'{"v":1,"scans":[{"ts":1795752000,"values":{"a":-0.0,"b":7,"c":0.5}}]}',
    b'{"v":1,"scans":[{"ts":1795752000,"values":{"a":1,"b":null}},{"ts":1795752001,"values":{"a":1},"flags":{}}]}',
    b'{"v":1,"scans":[{"ts":1795752000,"values":{"a":1},"flags":null},{"ts":1795752001,"values":{"a":2},"flags":{"a":"C"}}]}',
    b'{"v":1,"scans":[{"ts":1795752000,"values":{"a":1}}],}',
    b'{"v":1,"scans":[{"ts":1795752000,"values":{"a":1}}]} x',
]


def _decoded_or_error(payload: bytes) -> Any:
    try:
        return wire.decode(payload)
    except DecodeError as exc:
        return (exc.reason, exc.detail, exc.where)


@pytest.mark.parametrize("payload", EDGE_PAYLOADS)
def test_orjson_and_json_decode_alike(payload: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _decoded_or_error(payload)
    monkeypatch.setattr(jsonload, "_fast_loads", None)
    assert _decoded_or_error(payload) == fast


@pytest.mark.parametrize("payload", EDGE_PAYLOADS)
def test_the_scan_at_a_time_check_agrees_with_the_value_by_value_one(
    payload: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = _decoded_or_error(payload)
    monkeypatch.setattr(wire, "_well_formed_values", lambda values: None)
    assert _decoded_or_error(payload) == fast


def test_numbers_beyond_a_double_are_dead_letters_not_crashes() -> None:
    huge = b"1" + b"0" * 400
    decoded = wire.decode(b'{"v":1,"scans":[{"ts":1795752000,"values":{"a":' + huge + b',"b":2}}]}')
    assert decoded.scans[0].values == {"b": 2.0}
    assert [(r.reason, r.where) for r in decoded.rejected] == [("bad_value", "scans[0].values.a")]
    decoded = wire.decode(b'{"v":1,"scans":[{"ts":' + huge + b',"values":{"b":2}}]}')
    assert [(r.reason, r.where) for r in decoded.rejected] == [("bad_timestamp", "scans[0].ts")]
    with pytest.raises(DecodeError) as err:  # refused before parsing (Python converts 4300 digits)
        wire.decode(b'{"v":1,"scans":[{"ts":1795752000,"values":{"a":' + b"1" * 5000 + b"}}]}")
    assert err.value.reason == "number_too_long"


# -- the contract's bounds (eit/bounds.py), read before or as the JSON is parsed ------------------


@pytest.fixture(params=["orjson", "json"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both JSON readers: orjson (the server's) and json (the reference, and the agent's)."""
    if request.param == "json":
        monkeypatch.setattr(jsonload, "_fast_loads", None)
    return str(request.param)


def _nested(levels: int) -> bytes:
    return (
        b'{"v":1,"scans":[{"ts":1795752000,"values":{"a":1}}],"x":'
        + b"[" * (levels - 1)
        + b"]" * (levels - 1)
        + b"}"
    )


def test_nesting_up_to_the_bound_is_read_and_deeper_is_refused_before_anything_recurses(reader: str) -> None:
    assert jsonload.loads(b"[" * 32 + b"]" * 32) is not None
    for payload in (b"[" * 33 + b"]" * 33, b"[" * 100_000 + b"]" * 100_000, b"[" * 100_000, _nested(10_000)):
        with pytest.raises(DecodeError) as err:
            jsonload.loads(payload)
        assert err.value.reason == "too_deep", payload[:40]
    # Brackets inside strings are text, not nesting.
    assert jsonload.loads(b'["' + b"[" * 1000 + b'"]') == ["[" * 1000]


def test_a_number_of_more_than_500_digits_is_refused_before_it_is_converted(reader: str) -> None:
    assert jsonload.loads(b"[" + b"9" * 500 + b"]") == [int("9" * 500)]
    for number in (b"9" * 501, b"1." + b"1" * 501, b"1e" + b"0" * 501, b"7" * 100_000):
        with pytest.raises(DecodeError) as err:
            jsonload.loads(b'{"a":' + number + b"}")
        assert err.value.reason == "number_too_long"
    assert jsonload.loads(b'{"a":"' + b"9" * 5000 + b'"}') == {"a": "9" * 5000}  # digits in a string


def test_a_key_given_twice_is_refused_and_named(reader: str) -> None:
    with pytest.raises(DecodeError) as err:
        wire.decode(
            b'{"v":1,"scans":[{"seq":1,"ts":1795752000,"values":{"so2":1}}],'
            b'"scans":[{"seq":2,"ts":1795752001,"values":{"so2":2}}]}'
        )
    assert (err.value.reason, err.value.where) == ("duplicate_key", "scans")
    assert "'scans' twice" in err.value.detail
    with pytest.raises(DecodeError) as err:
        wire.decode(b'{"v":1,"scans":[{"ts":1795752000,"values":{"so2":1,"o2":2,"so2" :3}}]}')
    assert (err.value.reason, err.value.where) == ("duplicate_key", "so2")
    # A quote and a colon inside a string are no key: read as they are.
    doc = jsonload.loads(b'{"a":"x\\":y","b":"\\"\\":"}')
    assert doc == {"a": 'x":y', "b": '"":'}


def test_a_message_larger_than_1_mib_is_refused_unread() -> None:
    payload = b'{"v":1,"scans":[' + b" " * (1024 * 1024) + b"]}"
    for decode in (wire.decode, wire.decode_status):
        with pytest.raises(DecodeError) as err:
            decode(payload)
        assert err.value.reason == "too_large" and "1,048,594 bytes" in err.value.detail


@pytest.mark.parametrize(
    ("ts", "reason"),
    [
        ("1999-12-31T23:59:59Z", "time_out_of_range"),
        ("2000-01-01T06:59:59+07:00", "time_out_of_range"),
        ("0001-01-01T00:00:00Z", "time_out_of_range"),
        ("9999-12-31T23:59:59-01:00", "time_out_of_range"),
        ("2262-04-11T23:47:17Z", "time_out_of_range"),
        (946684799, "time_out_of_range"),
        (9300000000, "time_out_of_range"),
        ("2000-01-01T00:00:00Z", None),
        (946684800, None),
        ("2262-04-11T23:47:16Z", None),
    ],
)
def test_scan_times_are_bounded_from_2000_to_what_every_store_holds(ts: Any, reason: str | None) -> None:
    decoded = wire.decode(_payload({"v": 1, "scans": [{"ts": ts, "values": {"so2": 1}}]}))
    assert [r.reason for r in decoded.rejected] == ([reason] if reason else [])
    if reason:
        assert decoded.rejected[0].where == "scans[0].ts"


def test_seq_is_bounded_to_a_signed_64_bit_integer() -> None:
    decoded = wire.decode(
        _payload(
            {
                "v": 1,
                "scans": [{"seq": s, "ts": T, "values": {"so2": 1}} for s in (2**63 - 1, 2**63, 10**400)],
            }
        )
    )
    assert [s.seq for s in decoded.scans] == [2**63 - 1]
    assert [(r.reason, r.where) for r in decoded.rejected] == [
        ("seq_out_of_range", "scans[1].seq"),
        ("seq_out_of_range", "scans[2].seq"),
    ]
    assert "9223372036854775808" in decoded.rejected[0].detail
    assert "1329 bits" in decoded.rejected[1].detail


@pytest.mark.parametrize(
    ("payload", "state", "reason"),
    [
        (b"online", "online", None),
        (b" offline\n", "offline", None),
        (b'{"state":"online","outbox_pending":3}', "online", None),
        (b"sleepy", None, "bad_status"),
        (b'{"state":"asleep"}', None, "bad_status"),
        (b'{"state":"online"', None, "not_json"),
        (b'{"state":"online","n":' + b"7" * 5000 + b"}", None, "number_too_long"),
        (b'{"state":"online","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}", None, "too_deep"),
        (b'{"state":"offline","state":"online"}', None, "duplicate_key"),
    ],
)
def test_status_messages_are_read_within_the_same_bounds(
    payload: bytes, state: str | None, reason: str | None
) -> None:
    if reason is None:
        assert wire.decode_status(payload).state == state
        return
    with pytest.raises(DecodeError) as err:
        wire.decode_status(payload)
    assert err.value.reason == reason
