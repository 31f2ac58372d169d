"""What signed scans cost: signing on the agent and verifying in the ingest, in µs per scan.

    python -m bench.signing_cost                 # 12-channel scans, 2000 of them, best of 5
    python -m bench.signing_cost --channels 6 --scans 5000 --runs 7

Agent: the outbox's ``append`` of a scan to a real outbox file (SQLite, synchronous=FULL: each
append is durable), with and without the device's key; the difference is what signing adds (the
canonical form, the Ed25519 signature, the hash that the next scan names). The signing step
alone (canonical form, signature, hash) is timed too, without the file.

Ingest: ``Ingest.decode_batch`` of the same scans published one per message, as the agent sends
them live, signed (wire v2, each verified against the registered key and followed in the chain)
and unsigned (v1), on the example town's registry; the difference is the verification's cost.
The signature check alone (canonical form, Ed25519 verification, hash) is timed too.

CPU is ``time.process_time``; each figure is the best of ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.proc import cpu_model, loadavg
from edge.outbox import Outbox, message_payload
from eit.devicekeys import add_key
from eit.registry import load_registry
from eit.signing import GENESIS, Signer, canonical, new_private_key, public_text, scan_hash, verify
from eit.timeutil import now_ns, ns_to_iso
from ingest.deadletters import open_dead_letters
from ingest.metrics import IngestMetrics
from ingest.service import Incoming, Ingest
from ingest.store.sqlite import SqliteStore
from testbed.services import REPO

FACTORY = "kaeng-khoi-biomass"
DEVICE = "boiler-1"
SECOND = 1_000_000_000


def best(runs: int, work: Callable[[], float]) -> float:
    return min(work() for _ in range(runs))


def values_of(channels: int, i: int) -> dict[str, float]:
    return {f"ch{c:02d}": 100.0 + c + (i % 600) / 7 for c in range(channels)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--channels", type=int, default=12)
    p.add_argument("--scans", type=int, default=2000)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args(argv)
    n, channels = args.scans, args.channels
    signer = Signer.of(new_private_key())
    t0 = now_ns() // SECOND * SECOND - 2 * n * SECOND
    work = Path(tempfile.mkdtemp(prefix="eit-signing-"))
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {loadavg()}, {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC"
    )
    print(f"{n} scans of {channels} channels, best of {args.runs} runs (CPU time)")

    # -- the agent ----------------------------------------------------------------------------------
    def appends(signed: bool) -> Callable[[], float]:
        def run() -> float:
            path = work / f"outbox-{time.monotonic_ns()}.db"
            outbox = Outbox(path, factory=FACTORY, signers={DEVICE: signer} if signed else {})
            started = time.process_time()
            for i in range(n):
                outbox.append(DEVICE, t0 + i * SECOND, values_of(channels, i), {})
            spent = time.process_time() - started
            outbox.close()
            for leftover in work.glob(f"{path.name}*"):
                leftover.unlink()
            return spent

        return run

    def sign_only() -> float:
        prev = GENESIS
        started = time.process_time()
        for i in range(n):
            body = canonical(
                FACTORY, DEVICE, i + 1, t0 + i * SECOND, values_of(channels, i), {}, signer.key_id, prev
            )
            prev = scan_hash(body, signer.sign(body))
        return time.process_time() - started

    append_plain = best(args.runs, appends(False))
    append_signed = best(args.runs, appends(True))
    signing = best(args.runs, sign_only)

    # -- the ingest -----------------------------------------------------------------------------------
    def messages(signed: bool) -> list[bytes]:
        path = work / f"source-{int(signed)}.db"
        outbox = Outbox(path, factory=FACTORY, signers={DEVICE: signer} if signed else {})
        for i in range(n):
            outbox.append(DEVICE, t0 + i * SECOND, {"so2": 30.0 + (i % 50), "o2": 8.0, "nox": 90.0}, {})
        out = [message_payload([s]) for s in outbox.pending(DEVICE, limit=n)]
        outbox.close()
        return out

    keys = work / "device-keys.yaml"
    add_key(keys, FACTORY, DEVICE, public_text(signer.private.public_key()), t0 - SECOND, rotate=False)
    registry = load_registry(REPO / "examples" / "town" / "site.yaml")

    def decodes(payloads: list[bytes]) -> Callable[[], float]:
        def run() -> float:
            store = SqliteStore(work / f"r-{time.monotonic_ns()}.db")
            ingest = Ingest(
                registry,
                store,
                open_dead_letters(None, work / f"s-{time.monotonic_ns()}.db"),
                IngestMetrics(),
                [],
                device_keys=keys,
            )
            incoming = [Incoming(i, 1, f"eit/{FACTORY}/{DEVICE}/data", m) for i, m in enumerate(payloads)]
            started = time.process_time()
            for k in range(0, len(incoming), 500):
                ingest.decode_batch(incoming[k : k + 500], now_ns())
            spent = time.process_time() - started
            store.close()
            ingest.deadletters.close()
            return spent

        return run

    plain_msgs, signed_msgs = messages(False), messages(True)
    decode_plain = best(args.runs, decodes(plain_msgs))
    decode_signed = best(args.runs, decodes(signed_msgs))
    public = signer.private.public_key()
    scans = [json.loads(m)["scans"][0] for m in signed_msgs]

    def verify_only() -> float:
        started = time.process_time()
        for s in scans:
            ts = t0 + (s["seq"] - 1) * SECOND
            body = canonical(FACTORY, DEVICE, s["seq"], ts, s["values"], {}, s["k"], s["prev"])
            verify(public, body, s["sig"])
            scan_hash(body, s["sig"])
        return time.process_time() - started

    verifying = best(args.runs, verify_only)

    us = 1e6 / n
    rows = [
        ("agent: outbox append, unsigned", append_plain * us, ""),
        ("agent: outbox append, signed", append_signed * us, f"+{(append_signed - append_plain) * us:.0f}"),
        ("agent: signing alone (canonical form, Ed25519, hash)", signing * us, ""),
        ("ingest: decode + validate + verify, v1 unsigned", decode_plain * us, ""),
        (
            "ingest: decode + validate + verify, v2 signed",
            decode_signed * us,
            f"+{(decode_signed - decode_plain) * us:.0f}",
        ),
        ("ingest: verification alone (canonical form, Ed25519, hash)", verifying * us, ""),
    ]
    print("| step | µs per scan | signed minus unsigned |")
    print("|---|---|---|")
    for name, value, delta in rows:
        print(f"| {name} | {value:.0f} | {delta} |")
    for leftover in work.iterdir():
        leftover.unlink()
    work.rmdir()
    print(
        f"(ingest scans: 3 channels of {DEVICE}, as the example town's boiler sends; ts {ns_to_iso(t0)} on)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
