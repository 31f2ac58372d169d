"""The store schema's names: measurements, their tags and their fields (docs/store-schema.md).

Every writer (ingest, rules, platform statistics), the API, the reports and the dashboards name
measurements, tags and fields through these classes, never as string literals; a test keeps
docs/store-schema.md and this module equal. A class per measurement: ``NAME``, ``TAGS`` (the
series key, in order) and one constant per field, listed in ``FIELDS``.
"""

from __future__ import annotations

from typing import Final

# Tags shared by several measurements.
FACTORY: Final = "factory"
DEVICE: Final = "device"
CHANNEL: Final = "channel"
SERIES_TAGS: Final = (FACTORY, DEVICE, CHANNEL)


class Readings:
    """Every accepted value."""

    NAME: Final = "readings"
    TAGS: Final = SERIES_TAGS
    VALUE: Final = "value"
    FLAG: Final = "flag"
    SEQ: Final = "seq"
    # What the ingest concluded of the scan's signature (eit/signing.py: verified, unsigned,
    # bad_signature, unknown_key); absent for a device that neither signs nor has a key.
    VERIFIED: Final = "verified"
    FIELDS: Final = (VALUE, FLAG, SEQ, VERIFIED)


class Hourly:
    """Clock-hour averages, written by the rules."""

    NAME: Final = "hourly"
    TAGS: Final = SERIES_TAGS
    VALUE: Final = "value"
    CORRECTED: Final = "corrected"
    POINTS: Final = "points"
    QUADRANTS: Final = "quadrants"
    VALID: Final = "valid"
    REASON: Final = "reason"
    LIMIT: Final = "limit"
    LIMIT_UNIT: Final = "limit_unit"
    EXCEEDED: Final = "exceeded"
    RETROACTIVE: Final = "retroactive"
    MINUTES: Final = "minutes"
    METHOD: Final = "method"
    FIELDS: Final = (
        VALUE,
        CORRECTED,
        POINTS,
        MINUTES,
        METHOD,
        QUADRANTS,
        VALID,
        REASON,
        LIMIT,
        LIMIT_UNIT,
        EXCEEDED,
        RETROACTIVE,
    )


class Rolling:
    """Rolling 8-hour and 24-hour averages (ambient air), refreshed hourly."""

    NAME: Final = "rolling"
    WINDOW: Final = "window"
    TAGS: Final = (*SERIES_TAGS, WINDOW)
    VALUE: Final = "value"
    HOURS: Final = "hours"
    VALID: Final = "valid"
    LIMIT: Final = "limit"
    LIMIT_UNIT: Final = "limit_unit"
    EXCEEDED: Final = "exceeded"
    METHOD: Final = "method"
    FIELDS: Final = (VALUE, HOURS, VALID, LIMIT, LIMIT_UNIT, EXCEEDED, METHOD)


class Daily:
    """Data completeness per local day."""

    NAME: Final = "daily"
    TAGS: Final = SERIES_TAGS
    VALID_HOURS: Final = "valid_hours"
    EXPECTED_HOURS: Final = "expected_hours"
    COMPLETENESS: Final = "completeness"
    COMPLETE: Final = "complete"
    METHOD: Final = "method"
    FIELDS: Final = (VALID_HOURS, EXPECTED_HOURS, COMPLETENESS, COMPLETE, METHOD)


class Aqi:
    """Thai AQI of ambient stations, refreshed hourly."""

    NAME: Final = "aqi"
    PARAMETER: Final = "parameter"
    TAGS: Final = (FACTORY, DEVICE, PARAMETER)
    OVERALL: Final = "overall"  # the value of PARAMETER for the station's overall index
    VALUE: Final = "value"
    BAND: Final = "band"
    CONCENTRATION: Final = "concentration"
    METHOD: Final = "method"
    FIELDS: Final = (VALUE, BAND, CONCENTRATION, METHOD)


class Energy:
    """Energy and CO2 of energy meters, per clock hour."""

    NAME: Final = "energy"
    TAGS: Final = (FACTORY, DEVICE)
    KWH: Final = "kwh"
    CO2_KG: Final = "co2_kg"
    GRID_FACTOR: Final = "grid_factor"
    METHOD: Final = "method"
    FIELDS: Final = (KWH, CO2_KG, GRID_FACTOR, METHOD)


class Platform:
    """The platform's own health, written by `eit serve`."""

    NAME: Final = "platform"
    INSTANCE: Final = "instance"
    TAGS: Final = (INSTANCE,)
    READINGS_STORED: Final = "readings_stored"
    MESSAGES: Final = "messages"
    DEAD_LETTERS: Final = "dead_letters"
    DEVICES_ONLINE: Final = "devices_online"
    DEVICES_OFFLINE: Final = "devices_offline"
    OUTBOX_PENDING: Final = "outbox_pending"
    ALERTS_OPEN: Final = "alerts_open"
    FIELDS: Final = (
        READINGS_STORED,
        MESSAGES,
        DEAD_LETTERS,
        DEVICES_ONLINE,
        DEVICES_OFFLINE,
        OUTBOX_PENDING,
        ALERTS_OPEN,
    )


class PlatformDeadLetters:
    """The dead-letter counter per reason."""

    NAME: Final = "platform_dead_letters"
    INSTANCE: Final = "instance"
    REASON: Final = "reason"
    TAGS: Final = (INSTANCE, REASON)
    COUNT: Final = "count"
    FIELDS: Final = (COUNT,)


class Sites:
    """The site registry's factories, written by `eit serve` at start."""

    NAME: Final = "sites"
    TAGS: Final = (FACTORY,)
    FACTORY_NAME: Final = "name"
    NAME_TH: Final = "name_th"
    DISTRICT: Final = "district"
    ESTATE: Final = "estate"
    LAT: Final = "lat"
    LON: Final = "lon"
    PUBLIC: Final = "public"
    DEVICES: Final = "devices"
    FIELDS: Final = (FACTORY_NAME, NAME_TH, DISTRICT, ESTATE, LAT, LON, PUBLIC, DEVICES)


class PublicState:
    """Each factory's public state, from the rules' conditions only (officers' actions never
    change it): written by the rules when it changes, and hourly."""

    NAME: Final = "public_state"
    TAGS: Final = (FACTORY,)
    STATE: Final = "state"
    PARAMETERS: Final = "parameters"
    FIELDS: Final = (STATE, PARAMETERS)


class Indicator:
    """Town indicators: each factory's (or ambient station's) contribution to an indicator for a
    local month or year (eit/indicators.yaml); the town's value is made from them when read."""

    NAME: Final = "indicator"
    INDICATOR: Final = "indicator"
    PERIOD: Final = "period"
    TAGS: Final = (INDICATOR, PERIOD, FACTORY, DEVICE)
    ALL_DEVICES: Final = "all"  # the value of DEVICE for a contribution of the whole factory
    VALUE: Final = "value"
    NUMERATOR: Final = "numerator"
    DENOMINATOR: Final = "denominator"
    METHOD: Final = "method"
    FIELDS: Final = (VALUE, NUMERATOR, DENOMINATOR, METHOD)


class ChainEvents:
    """What the ingest saw in a device's chain of signed scans (ingest/verify.py): a gap in
    ``seq`` (``reported_drop`` when the agent said it dropped those scans, ``unexplained_gap``
    otherwise), a gap that later scans filled (``reordered``), a scan naming another previous
    scan than the one received (``chain_break``) and a second, different scan under a seq already
    received (``conflict``). Keyed by the time of the scan where it was seen."""

    NAME: Final = "chain_events"
    TAGS: Final = (FACTORY, DEVICE)
    KIND: Final = "kind"
    FIRST_SEQ: Final = "first_seq"
    LAST_SEQ: Final = "last_seq"
    MISSING: Final = "missing"
    DETAIL: Final = "detail"
    FIELDS: Final = (KIND, FIRST_SEQ, LAST_SEQ, MISSING, DETAIL)


MEASUREMENTS: Final = (
    Readings,
    Hourly,
    Rolling,
    Daily,
    Aqi,
    Energy,
    Platform,
    PlatformDeadLetters,
    Sites,
    PublicState,
    Indicator,
    ChainEvents,
)


def series_tags(series: tuple[str, str, str]) -> dict[str, str]:
    """The tags of a channel's series: factory, device, channel."""
    return {FACTORY: series[0], DEVICE: series[1], CHANNEL: series[2]}
