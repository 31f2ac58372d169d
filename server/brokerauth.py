"""Broker logins: a Mosquitto password file and ACL giving each factory a login that may publish
only under ``eit/<factory>/#`` (docs/architecture.md, "Contracts"), and the ingest a login that reads
``eit/#``. Used by `eit devices add` on the server side.

The password file is written here, in Mosquitto 2's PBKDF2-SHA512 format
(``user:$7$<iterations>$<salt>$<hash>``, base64), rather than by calling ``mosquitto_passwd``:
the server (`eit serve`, often in its own container) rarely has Mosquitto's tools installed, the
broker usually runs elsewhere (its own container or host), and the format is small and stable.
The tests check the result against a real Mosquitto. Passwords are 32 random URL-safe
characters (192 bits), so Mosquitto's default iteration count (101) is kept: the broker hashes
on every connect, and no password of that length can be guessed whatever the count.

Both files are rewritten atomically (a temporary file renamed over the old one), keeping the
lines of every other user. Mosquitto reads them at start and on SIGHUP.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from eit.model import ID_HINT, ID_PATTERN
from eit.wire import TOPIC_ROOT

ITERATIONS = 101  # Mosquitto 2.0's default for $7$ (PBKDF2-SHA512)
SALT_BYTES = 12
RESERVED = {"alerts"}  # eit/alerts/<factory> carries alert events, not a factory's data
ACL_HEADER = (
    "# Mosquitto ACL for EIT Monitor, maintained by `eit devices add`; other users' blocks are kept.\n"
    f"# A factory's login may publish only under {TOPIC_ROOT}/<factory>/#; the ingest reads {TOPIC_ROOT}/#.\n"
)


class BrokerAuthError(ValueError):
    """A login cannot be created (bad name, unreadable file). The message says what to fix."""


def hash_password(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """The password file entry's hash, as mosquitto_passwd 2.x writes it."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    b64 = base64.b64encode
    return f"$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, entry_hash: str) -> bool:
    parts = entry_hash.split("$")
    if len(parts) != 5 or parts[1] != "7":
        return False
    salt = base64.b64decode(parts[3])
    return secrets.compare_digest(hash_password(password, salt, int(parts[2])), entry_hash)


def generate_password() -> str:
    return secrets.token_urlsafe(24)


def factory_acl(factory: str) -> list[str]:
    return [f"topic write {TOPIC_ROOT}/{factory}/#"]


def ingest_acl() -> list[str]:
    return [f"topic read {TOPIC_ROOT}/#", f"topic write {TOPIC_ROOT}/alerts/#"]


@dataclass(frozen=True, slots=True)
class AddResult:
    user: str
    password: str
    rotated: bool
    topics: list[str]


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise BrokerAuthError(f"cannot read {path}: {exc.strerror}") from None


def _write_atomically(path: Path, text: str, default_mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        st = path.stat()
        mode, owner = st.st_mode & 0o777, (st.st_uid, st.st_gid)
    except FileNotFoundError:
        mode, owner = default_mode, None
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        if owner is not None and os.geteuid() == 0:
            os.chown(tmp, *owner)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BrokerAuthError(f"cannot write {path}: {exc.strerror}") from None


def set_password(passwd_file: Path, user: str, password: str) -> bool:
    """Add or replace ``user`` in the password file; True when it was already there (rotated)."""
    lines = _read_lines(passwd_file)
    entry = f"{user}:{hash_password(password)}"
    rotated = False
    out: list[str] = []
    for line in lines:
        if line.split(":", 1)[0] == user:
            rotated = True
            out.append(entry)
        elif line.strip():
            out.append(line)
    if not rotated:
        out.append(entry)
    # Mosquitto 2 warns about password files others can read.
    _write_atomically(passwd_file, "\n".join(out) + "\n", 0o640)
    return rotated


def parse_acl(text: str) -> tuple[list[str], dict[str, list[str]]]:
    """(lines before the first ``user``, that apply to anonymous clients; lines per user)."""
    preamble: list[str] = []
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("user "):
            current = blocks.setdefault(stripped[5:].strip(), [])
        elif current is None:
            if stripped and line not in ACL_HEADER.splitlines():
                preamble.append(line)
        elif stripped:
            current.append(stripped)
    return preamble, blocks


def set_acl(acl_file: Path, user: str, topics: list[str], ingest_user: str | None) -> None:
    preamble, blocks = parse_acl("\n".join(_read_lines(acl_file)))
    blocks[user] = topics
    if ingest_user is not None and ingest_user not in blocks:
        blocks[ingest_user] = ingest_acl()
    parts = [ACL_HEADER.rstrip("\n"), *preamble]
    for name, lines in blocks.items():
        parts.append("")
        parts.append(f"user {name}")
        parts.extend(lines)
    _write_atomically(acl_file, "\n".join(parts) + "\n", 0o644)


def check_user(name: str, *, factory: bool) -> None:
    if not ID_PATTERN.fullmatch(name):
        raise BrokerAuthError(
            f"'{name}' is not a valid {'factory id' if factory else 'user name'}: {ID_HINT}"
        )
    if factory and name in RESERVED:
        raise BrokerAuthError(f"'{name}' is reserved: {TOPIC_ROOT}/{name}/# carries alert events")


def add_factory(
    factory: str, passwd_file: Path, acl_file: Path, ingest_user: str | None, password: str | None = None
) -> AddResult:
    """Create or rotate a factory's login: it may publish only under eit/<factory>/#."""
    check_user(factory, factory=True)
    password = password or generate_password()
    topics = factory_acl(factory)
    # The ACL first: a login that exists in the password file but has no ACL block yet could
    # publish nowhere (Mosquitto denies what no line allows), never anywhere.
    set_acl(acl_file, factory, topics, ingest_user)
    rotated = set_password(passwd_file, factory, password)
    return AddResult(factory, password, rotated, topics)


def add_ingest(user: str, passwd_file: Path, acl_file: Path, password: str | None = None) -> AddResult:
    """Create or rotate the ingest's login: it reads eit/# (and may publish alert events)."""
    check_user(user, factory=False)
    password = password or generate_password()
    topics = ingest_acl()
    set_acl(acl_file, user, topics, None)
    rotated = set_password(passwd_file, user, password)
    return AddResult(user, password, rotated, topics)
