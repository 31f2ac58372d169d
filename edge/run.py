"""`eit edge run`: run the agent until SIGINT or SIGTERM."""

from __future__ import annotations

import logging

from edge.agent import Agent
from edge.config import EdgeConfig
from eit.signals import stop_on_signals

log = logging.getLogger("eit.edge")


# The exit code when a scan loop or publisher failed too often (EX_SOFTWARE): the agent's systemd
# unit (Restart=always) starts it afresh.
EXIT_WORKER_FAILED = 70


def run_agent(config: EdgeConfig) -> int:
    stop = stop_on_signals()
    agent = Agent(config)
    agent.start()
    try:
        while not stop.wait(0.5):
            if agent.finished():  # every device replayed its file and the broker has it all
                break
            if agent.failed.is_set():
                break
    finally:
        agent.stop()
    if agent.failed.is_set():
        log.critical("exiting with code %d: %s", EXIT_WORKER_FAILED, agent.failure)
        return EXIT_WORKER_FAILED
    return 0
