"""`eit edge run`: run the agent until SIGINT or SIGTERM."""

from __future__ import annotations

from edge.agent import Agent
from edge.config import EdgeConfig
from eit.signals import stop_on_signals


def run_agent(config: EdgeConfig) -> int:
    stop = stop_on_signals()
    agent = Agent(config)
    agent.start()
    try:
        while not stop.wait(1.0):
            if agent.finished():  # every device replayed its file and the broker has it all
                break
    finally:
        agent.stop()
    return 0
