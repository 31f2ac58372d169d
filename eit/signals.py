"""Stopping long-running commands (`eit serve`, `eit api`, `eit demo`, `eit edge run`) cleanly."""

from __future__ import annotations

import signal
import threading
from typing import Any


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM. Install it before starting anything, so a signal that
    arrives during start-up still stops the process cleanly."""
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop
