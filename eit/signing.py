"""Signed scans (wire v2): the canonical form, Ed25519 signatures and the per-device hash chain.

The agent signs each scan over its canonical form (:func:`canonical`): a JSON text with sorted
keys and no spaces holding the wire version, the factory and device (so a scan cannot be replayed
under another device's topic), ``seq``, the time in nanoseconds, the values as the doubles they
are, the flags other than N, the id of the signing key and ``prev``, the hash of the device's
previous scan (:func:`scan_hash`: SHA-256 over the canonical form and the signature). So scan n
names scan n-1: a scan deleted, inserted or reordered between the meter and the store leaves a
mark, and a changed value breaks the signature.

Text fields are base64url without padding: the signature (64 bytes), ``prev`` (32 bytes) and the
key id (the first 8 bytes of SHA-256 over the raw public key).

The ``cryptography`` package is imported only where a key is made, read or used, and then only
its Ed25519 module: an agent that does not sign loads none of it, and one that signs loads no
more of it than it needs (its memory target: docs/edge-footprint.md). A private key file is
PKCS#8 PEM (RFC 8410), read and written here for Ed25519 alone, as OpenSSL reads and writes it.

What the ingest concludes about a scan (:data:`RESULTS`) is stored beside each reading as
``verified``; it never changes a reading's validity or the averages.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

WIRE_VERSION: Final = 2
# The ``prev`` of a device's first scan: no scan before it.
GENESIS: Final = "A" * 43

# What the ingest concludes about a scan, stored as the readings' ``verified`` field.
VERIFIED: Final = "verified"  # signed by the key registered for the device at the scan's time
UNSIGNED: Final = "unsigned"  # no signature, from a device that has a key registered then
BAD_SIGNATURE: Final = "bad_signature"  # the signature does not match (changed on the way)
UNKNOWN_KEY: Final = "unknown_key"  # signed, but with no key registered for the device at that time
NOT_SIGNED: Final = ""  # no signature and no key registered (an agent that does not sign)
RESULTS: Final = (VERIFIED, UNSIGNED, BAD_SIGNATURE, UNKNOWN_KEY, NOT_SIGNED)


class SigningError(ValueError):
    """A key or signature that cannot be used; the message names it and says why."""


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str, what: str, size: int) -> bytes:
    """The bytes of a base64url text of ``size`` bytes; SigningError naming ``what`` otherwise."""
    if not isinstance(text, str) or len(text) > 4 * size:
        raise SigningError(f"{what} is not base64url text of {size} bytes")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise SigningError(f"{what} is not base64url: {exc}") from None
    if len(data) != size:
        raise SigningError(f"{what} holds {len(data)} bytes, expected {size}")
    return data


def canonical(
    factory: str,
    device: str,
    seq: int | None,
    ts_ns: int,
    values: Mapping[str, float],
    flags: Mapping[str, str],
    key_id: str,
    prev: str,
) -> bytes:
    """The bytes a scan's signature covers (tests/test_signing.py keeps a golden copy)."""
    doc = {
        "d": device,
        "f": factory,
        "flags": {ch: flag for ch, flag in flags.items() if flag != "N"},
        "k": key_id,
        "prev": prev,
        "seq": seq,
        "ts": ts_ns,
        "v": WIRE_VERSION,
        "values": {ch: float(value) for ch, value in values.items()},
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=True).encode()


def scan_hash(canonical_bytes: bytes, signature: str) -> str:
    """The hash the next scan names as ``prev``."""
    return b64(hashlib.sha256(canonical_bytes + b"." + signature.encode("ascii")).digest())


def key_id(public: Ed25519PublicKey) -> str:
    return b64(hashlib.sha256(public.public_bytes_raw()).digest()[:8])


def public_text(public: Ed25519PublicKey) -> str:
    """The public key as registered on the server: base64url of its 32 raw bytes."""
    return b64(public.public_bytes_raw())


def public_from_text(text: str, what: str = "public key") -> Ed25519PublicKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    return Ed25519PublicKey.from_public_bytes(unb64(text, what, 32))


def new_private_key() -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()


# PKCS#8 PrivateKeyInfo of an Ed25519 key (RFC 8410 section 7): this prefix, then the 32-byte seed.
_PKCS8_ED25519 = bytes.fromhex("302e020100300506032b657004220420")
_PEM_BEGIN, _PEM_END = "-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----"


def private_pem(key: Ed25519PrivateKey) -> bytes:
    der = base64.b64encode(_PKCS8_ED25519 + key.private_bytes_raw()).decode("ascii")
    return f"{_PEM_BEGIN}\n{der}\n{_PEM_END}\n".encode("ascii")


def private_from_pem(data: bytes, where: str) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    text = data.decode("ascii", errors="replace").strip()
    if not (text.startswith(_PEM_BEGIN) and text.endswith(_PEM_END)):
        raise SigningError(f"{where}: not an unencrypted PEM private key ({_PEM_BEGIN} ... {_PEM_END})")
    try:
        der = base64.b64decode("".join(text[len(_PEM_BEGIN) : -len(_PEM_END)].split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SigningError(f"{where}: the PEM body is not base64: {exc}") from None
    if len(der) != len(_PKCS8_ED25519) + 32 or not der.startswith(_PKCS8_ED25519):
        raise SigningError(f"{where}: not an Ed25519 private key (PKCS#8, RFC 8410)")
    return Ed25519PrivateKey.from_private_bytes(der[len(_PKCS8_ED25519) :])


@dataclass(frozen=True, slots=True)
class Signer:
    """One device's private key, as the agent holds it."""

    private: Ed25519PrivateKey
    key_id: str

    @classmethod
    def of(cls, private: Ed25519PrivateKey) -> Signer:
        return cls(private, key_id(private.public_key()))

    def sign(self, canonical_bytes: bytes) -> str:
        return b64(self.private.sign(canonical_bytes))


def verify(public: Ed25519PublicKey, canonical_bytes: bytes, signature: str) -> bool:
    """True when ``signature`` is ``public``'s over the bytes (False for any malformed one)."""
    from cryptography.exceptions import InvalidSignature

    try:
        public.verify(unb64(signature, "signature", 64), canonical_bytes)
    except (InvalidSignature, SigningError):
        return False
    return True
