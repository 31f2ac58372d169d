"""The devices' registered public keys (a YAML file that `eit devices key add|rotate` keeps).

Only public keys: each device's private key is made and kept by its agent (`eit edge keygen`).
A key is valid from ``valid_from`` (inclusive) until ``valid_to`` (exclusive, open when absent);
a scan is verified with the key of its device that was valid at the scan's time and whose id it
names, so readings signed before a rotation still verify after it.

    keys:
      - factory: kaeng-khoi-biomass
        device: boiler-1
        id: 3q2-7w8AAAA
        public_key: 11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo
        valid_from: "2026-11-01T00:00:00Z"
        valid_to: "2026-12-01T00:00:00Z"
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from eit.confread import Problems, Section, read_yaml
from eit.errors import ConfigError
from eit.model import ID_HINT, ID_PATTERN
from eit.signing import SigningError, key_id, public_from_text
from eit.timeutil import datetime_to_ns, ns_to_iso, parse_iso_ns

HEADER = (
    "# Public keys of the agents' devices: only public keys, made by `eit edge keygen` at the\n"
    "# factory and registered with `eit devices key add|rotate` (docs/signing.md).\n"
)


@dataclass(frozen=True, slots=True)
class DeviceKey:
    factory: str
    device: str
    id: str
    public_key: str
    valid_from_ns: int
    valid_to_ns: int | None = None
    public: Ed25519PublicKey | None = field(default=None, compare=False, repr=False)

    def valid_at(self, ts_ns: int) -> bool:
        return self.valid_from_ns <= ts_ns and (self.valid_to_ns is None or ts_ns < self.valid_to_ns)


@dataclass(slots=True)
class DeviceKeys:
    """Every registered key, by device."""

    keys: list[DeviceKey] = field(default_factory=list)
    _by_device: dict[tuple[str, str], list[DeviceKey]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for key in self.keys:
            self._by_device.setdefault((key.factory, key.device), []).append(key)

    def of(self, factory: str, device: str) -> list[DeviceKey]:
        return self._by_device.get((factory, device), [])

    def valid_at(self, factory: str, device: str, ts_ns: int) -> list[DeviceKey]:
        """The device's keys valid at ``ts_ns`` (two during a rotation's overlap, if any)."""
        return [k for k in self.of(factory, device) if k.valid_at(ts_ns)]

    def key_for(self, factory: str, device: str, key_id_: str, ts_ns: int) -> DeviceKey | None:
        for key in self.of(factory, device):
            if key.id == key_id_ and key.valid_at(ts_ns):
                return key
        return None


def _time(sec: Section, key: str) -> int | None:
    value = sec.raw(key, None)
    if value is None:
        return None
    if isinstance(value, datetime):  # YAML reads an unquoted ISO time as a datetime
        if value.tzinfo is None:
            sec.fail(key, "give the time in UTC, ending in Z")
        return datetime_to_ns(value)
    if not isinstance(value, str):
        sec.fail(key, f"expected an ISO 8601 UTC time, got {value!r}")
    try:
        return parse_iso_ns(value)
    except ValueError as exc:
        sec.fail(key, f"'{value}' is not an ISO 8601 UTC time: {exc}")


def load_device_keys(path: Path) -> DeviceKeys:
    """The file's keys (none when it does not exist); ConfigError naming file, key and line."""
    if not path.exists():
        return DeviceKeys()
    doc = read_yaml(path)
    if doc.data is None:
        return DeviceKeys()
    root = Section.of(doc)
    problems = Problems()
    keys: list[DeviceKey] = []
    for sec in root.sections("keys"):
        with problems.gather():
            keys.append(_read_key(sec))
    with problems.gather():
        root.finish()
    problems.check()
    return DeviceKeys(keys)


def _read_key(sec: Section) -> DeviceKey:
    factory = sec.text("factory", pattern=ID_PATTERN, hint=ID_HINT)
    device = sec.text("device", pattern=ID_PATTERN, hint=ID_HINT)
    text = sec.text("public_key")
    try:
        public = public_from_text(text)
    except (SigningError, ValueError) as exc:
        sec.fail("public_key", f"not an Ed25519 public key: {exc}")
    kid = key_id(public)
    stated = sec.text("id", kid)
    if stated != kid:
        sec.fail("id", f"'{stated}' is not the id of this public key ({kid})")
    valid_from = _time(sec, "valid_from")
    if valid_from is None:
        sec.fail("valid_from", "required key is missing")
    valid_to = _time(sec, "valid_to")
    if valid_to is not None and valid_to <= valid_from:
        sec.fail("valid_to", "must be after valid_from")
    sec.finish()
    return DeviceKey(factory, device, kid, text, valid_from, valid_to, public)


def add_key(
    path: Path, factory: str, device: str, public_key: str, valid_from_ns: int, *, rotate: bool
) -> DeviceKey:
    """Register a device's public key from ``valid_from_ns``.

    Without ``rotate`` the device must have no key open at that time; with it, the device's open
    keys end where the new one begins (readings signed before then still verify with them).
    Raises ConfigError when the file cannot take the key, naming it and why."""
    current = load_device_keys(path)
    try:
        public = public_from_text(public_key)
    except (SigningError, ValueError) as exc:
        raise ConfigError(str(path), f"{factory}/{device}", f"not an Ed25519 public key: {exc}") from None
    new = DeviceKey(factory, device, key_id(public), public_key, valid_from_ns, None, public)
    kept: list[DeviceKey] = []
    for key in current.keys:
        if (key.factory, key.device) != (factory, device):
            kept.append(key)
            continue
        if key.id == new.id:
            raise ConfigError(str(path), f"{factory}/{device}", f"key {key.id} is registered already")
        open_then = key.valid_to_ns is None or key.valid_to_ns > valid_from_ns
        if open_then and not rotate:
            raise ConfigError(
                str(path),
                f"{factory}/{device}",
                f"key {key.id} is valid at {ns_to_iso(valid_from_ns)}: use rotate to replace it",
            )
        if open_then:
            if key.valid_from_ns >= valid_from_ns:
                raise ConfigError(
                    str(path),
                    f"{factory}/{device}",
                    f"key {key.id} begins at {ns_to_iso(key.valid_from_ns)}, not before the new key",
                )
            key = DeviceKey(key.factory, key.device, key.id, key.public_key, key.valid_from_ns, valid_from_ns)
        kept.append(key)
    kept.append(new)
    write_device_keys(path, DeviceKeys(kept))
    return new


def write_device_keys(path: Path, keys: DeviceKeys) -> None:
    """Write the file whole, atomically (a reader sees the old file or the new one)."""
    items = []
    for key in keys.keys:
        item: dict[str, str] = {
            "factory": key.factory,
            "device": key.device,
            "id": key.id,
            "public_key": key.public_key,
            "valid_from": ns_to_iso(key.valid_from_ns),
        }
        if key.valid_to_ns is not None:
            item["valid_to"] = ns_to_iso(key.valid_to_ns)
        items.append(item)
    text = HEADER + yaml.safe_dump({"keys": items}, sort_keys=False, default_flow_style=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".device-keys-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
