"""Is the agent's clock right? Scans are stamped with it (UTC), so a wrong clock makes wrong data.

After a power cut a Raspberry Pi without a battery-backed clock starts at an old date (1970,
2000, or the last time saved by fake-hwclock) until NTP corrects it. The agent tells three cases
apart:

- ``wrong``: known wrong: before ``min_year`` (2020), or behind the newest scan already stamped
  while the OS does not report the clock as synchronised. Scans taken now are flagged (HJ 212
  ``D``: the acquisition system is at fault) and counted;
- ``unsynchronised``: the kernel says no time source disciplines the clock (``adjtimex``
  returns TIME_ERROR). The clock may be right; the status message says so, scans are not flagged;
- ``ok``: synchronised, or its state cannot be read on this system (``synchronised`` is then
  null in the status).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from eit.timeutil import NS_PER_S, ns_to_iso

TIME_ERROR = 5  # adjtimex(2): "the clock is not synchronized"
BEHIND_TOLERANCE_S = 2.0


@dataclass(frozen=True, slots=True)
class ClockState:
    state: str  # "ok", "unsynchronised" or "wrong"
    synchronised: bool | None
    problem: str = ""

    @property
    def known_wrong(self) -> bool:
        return self.state == "wrong"

    def as_status(self) -> dict[str, object]:
        status: dict[str, object] = {"clock": self.state, "clock_synchronised": self.synchronised}
        if self.problem:
            status["clock_problem"] = self.problem
        return status


@functools.cache
def _libc() -> ctypes.CDLL | None:
    # Loaded once: find_library runs a subprocess (ldconfig) on every call.
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def kernel_synchronised() -> bool | None:
    """What the kernel says (Linux ``adjtimex`` with no change requested); None if unknown."""
    libc = _libc() if sys.platform.startswith("linux") else None
    if libc is None:
        return None
    try:
        timex = ctypes.create_string_buffer(512)  # struct timex, modes = 0: read only
        result = int(libc.adjtimex(timex))
    except AttributeError:
        return None
    if result < 0:
        return None
    return result != TIME_ERROR


class ClockWatch:
    """Judges the clock at each scan; asks the kernel at most every ``sync_check_s``."""

    def __init__(
        self,
        min_year: int = 2020,
        latest_stamped_ns: Callable[[], int] | None = None,
        synchronised: Callable[[], bool | None] = kernel_synchronised,
        sync_check_s: float = 10.0,
    ) -> None:
        self.min_year = min_year
        self._min_ns = int(datetime(min_year, 1, 1, tzinfo=UTC).timestamp()) * NS_PER_S
        self._latest_stamped = latest_stamped_ns
        self._synchronised = synchronised
        self._sync_check_s = sync_check_s
        self._sync: bool | None = None
        self._next_sync_check = 0.0
        self._floor_ns = latest_stamped_ns() if latest_stamped_ns else 0

    def note_stamped(self, ts_ns: int) -> None:
        """A scan was stamped at ``ts_ns`` with a clock believed right."""
        self._floor_ns = max(self._floor_ns, ts_ns)

    def judge(self, now_ns: int) -> ClockState:
        mono = time.monotonic()
        if mono >= self._next_sync_check:
            self._sync = self._synchronised()
            self._next_sync_check = mono + self._sync_check_s
        sync = self._sync
        if now_ns < self._min_ns:
            return ClockState(
                "wrong",
                sync,
                f"the clock reads {ns_to_iso(now_ns)}, before {self.min_year}: "
                "set the time or enable NTP (timedatectl set-ntp true)",
            )
        if sync is not True and now_ns < self._floor_ns - int(BEHIND_TOLERANCE_S * NS_PER_S):
            return ClockState(
                "wrong",
                sync,
                f"the clock reads {ns_to_iso(now_ns)}, behind the newest scan already taken "
                f"({ns_to_iso(self._floor_ns)}), and is not synchronised",
            )
        if sync is False:
            return ClockState(
                "unsynchronised",
                sync,
                "the operating system reports the clock as not synchronised (no NTP): "
                "scan times may drift; enable NTP (timedatectl set-ntp true)",
            )
        return ClockState("ok", sync)
