"""The agent's signing keys: one Ed25519 private key per device, made here and never sent anywhere.

`eit edge keygen --config edge.yaml` writes ``<keys folder>/<device>.key`` (PEM, owner-only: mode
0600, in a folder of mode 0700) for each device that has none, and prints each device's public key
for the server's `eit devices key add` (or `rotate`, with ``--rotate`` here, which moves the old
key aside as ``<device>.key.<time>``). The agent refuses to start with a key file that others may
read (the error names the file and the fix).
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from eit.errors import ConfigError
from eit.signing import Signer, SigningError, new_private_key, private_from_pem, private_pem, public_text


def key_path(folder: Path, device: str) -> Path:
    return folder / f"{device}.key"


def load_signer(path: Path, source: str, key: str) -> Signer:
    """The device's key; ConfigError naming the agent's configuration ``source``, ``key`` and the
    file when it is missing, readable by others or not an Ed25519 key."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(
            source, key, f"no signing key {path}: make it with `eit edge keygen --config {source}`"
        ) from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            source,
            key,
            f"signing key {path} may be read by others (mode {stat.S_IMODE(info.st_mode):o}): "
            f"chmod 600 {path}",
        )
    try:
        return Signer.of(private_from_pem(path.read_bytes(), str(path)))
    except (SigningError, OSError) as exc:
        raise ConfigError(source, key, str(exc)) from None


@dataclass(frozen=True, slots=True)
class MadeKey:
    device: str
    path: Path
    key_id: str
    public_key: str
    made: bool  # False: the device had a key already (its public key is printed again)


def make_key(folder: Path, device: str, *, rotate: bool = False) -> MadeKey:
    """Make ``device``'s key unless it has one (``rotate``: move the old one aside and make anew)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    path = key_path(folder, device)
    if path.exists() and rotate:
        path.rename(path.with_name(f"{path.name}.{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"))
    if path.exists():
        signer = load_signer(path, str(path), "")
        return MadeKey(device, path, signer.key_id, public_text(signer.private.public_key()), False)
    private = new_private_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(private_pem(private))
        out.flush()
        os.fsync(out.fileno())
    signer = Signer.of(private)
    return MadeKey(device, path, signer.key_id, public_text(private.public_key()), True)
