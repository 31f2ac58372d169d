"""`eit edge run`: run the agent until SIGINT or SIGTERM."""

from __future__ import annotations

import signal
import threading
from typing import Any

from edge.agent import Agent
from edge.config import EdgeConfig


def run_agent(config: EdgeConfig) -> int:
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    agent = Agent(config)
    agent.start()
    try:
        while not stop.wait(1.0):
            if agent.finished():  # every device replayed its file and the broker has it all
                break
    finally:
        agent.stop()
    return 0
