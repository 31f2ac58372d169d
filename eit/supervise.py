"""Supervised worker threads, and what each stage of a process says about itself.

A *stage* is one long-running loop of a process: the ingest's decode, write and rules stages, the
rules' tick and effect worker, the notification dispatcher, an agent's scan loops. Each reports
three things, read by whoever judges health without asking the stage (so a stage that hangs is
seen too):

- **alive**: its thread is running its loop (not dead, not waiting to be restarted);
- **backlog**: items waiting for it (messages, batches, effects, a tick under way);
- **progress**: the last time its loop turned: an item taken or finished. A deliberate wait
  counts as well (a backoff before retrying an unavailable store, a wait for the next stage to
  take an item): the stage works as designed, and the dependency is reported on its own.

A stage is **stuck** when its backlog is above zero and it has not progressed for
``stuck_after_s`` seconds: a call that never returns, a lock never released.

:class:`Supervisor` runs each stage's loop on a thread of its own. A loop that raises is logged
with its traceback, counted (:attr:`Stage.restarts`) and run again after a backoff (0.5 s, then
twice as long for each further failure in the window, at most 30 s, with jitter); a loop that fails
more than ``max_restarts`` times within ``window_s`` is given up and the supervisor's
``on_give_up`` is called: ``eit serve`` and the edge agent then exit with a non-zero code, so that
systemd or compose start them afresh. A loop that returns has finished: its owner stopped it.

Restarting a loop never loses its work: each owner keeps the item its loop holds (a batch, an
effect, an event) on itself, not in the loop's local variables, and the loop begins with it.

Standard library only: the edge agent runs it with nothing of the server installed (which is
also why the backoff is these few lines rather than a retry library).
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger("eit.supervise")


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """When a failed loop is run again, and when it is given up."""

    max_restarts: int = 5
    window_s: float = 300.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0

    def backoff_s(self, failures_in_window: int) -> float:
        """The wait before the next run, after ``failures_in_window`` failures (>= 1)."""
        base = min(self.backoff_max_s, self.backoff_initial_s * 2.0 ** max(0, failures_in_window - 1))
        return base * (0.5 + random.random())  # jitter: stages failing together do not retry in step


@dataclass(frozen=True, slots=True)
class StageStatus:
    """One stage as health sees it at one moment."""

    name: str
    alive: bool
    backlog: int
    since_progress_s: float
    stuck: bool
    restarts: int
    given_up: bool
    finished: bool
    last_error: str

    @property
    def ok(self) -> bool:
        return self.alive and not self.stuck

    @property
    def state(self) -> str:
        """``ok``, ``stuck``, ``restarting`` (waiting to run again after a failure), ``failed``
        (given up) or ``stopped``."""
        if self.stuck:
            return "stuck"
        if self.alive:
            return "ok"
        if self.given_up:
            return "failed"
        return "stopped" if self.finished else "restarting"


class Stage:
    """What one stage reports: alive (set by its supervisor), backlog and progress (set by its
    loop). ``backlog`` is a function of the owner's queues; without one, the backlog is the items
    under way in :meth:`working` (a periodic stage: a tick)."""

    def __init__(
        self,
        name: str,
        backlog: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._backlog_of = backlog
        self._clock = clock
        self._busy = 0
        self._resting_until = 0.0
        self.last_progress = clock()
        self.running = False
        self.finished = False
        self.restarts = 0
        self.given_up = False
        self.last_error = ""

    def progress(self) -> None:
        """The loop turned: it took or finished an item, or waits on purpose for a moment."""
        self.last_progress = self._clock()

    def rest(self, seconds: float) -> None:
        """The loop waits on purpose for up to ``seconds`` (a backoff before retrying an
        unavailable dependency): not stuck meanwhile."""
        now = self._clock()
        self.last_progress = now
        self._resting_until = max(self._resting_until, now + seconds)

    @contextmanager
    def working(self) -> Iterator[None]:
        """One item of a stage without a queue (a tick): backlog 1 while it runs."""
        self._busy += 1
        self.progress()
        try:
            yield
        finally:
            self._busy -= 1
            self.progress()

    def backlog(self) -> int:
        if self._backlog_of is None:
            return self._busy
        return max(0, int(self._backlog_of()))

    def status(self, stuck_after_s: float) -> StageStatus:
        now = self._clock()
        backlog = self.backlog()
        quiet_s = now - max(self.last_progress, self._resting_until)
        return StageStatus(
            name=self.name,
            alive=self.running,
            backlog=backlog,
            since_progress_s=max(0.0, now - self.last_progress),
            stuck=self.running and backlog > 0 and quiet_s > stuck_after_s,
            restarts=self.restarts,
            given_up=self.given_up,
            finished=self.finished,
            last_error=self.last_error,
        )


GiveUp = Callable[[Stage, BaseException], None]


class Supervisor:
    """Runs loops on threads of their own, restarting those that fail (see the module)."""

    def __init__(self, policy: RestartPolicy | None = None, on_give_up: GiveUp | None = None) -> None:
        self.policy = policy or RestartPolicy()
        self.on_give_up = on_give_up
        self._lock = threading.Lock()
        self._stages: list[Stage] = []

    def run(self, stage: Stage, loop: Callable[[], None]) -> Worker:
        """Start ``loop`` under supervision on a thread named after the stage."""
        with self._lock:
            if stage not in self._stages:
                self._stages.append(stage)
        worker = Worker(self, stage, loop)
        worker.start()
        return worker

    def stages(self) -> list[Stage]:
        with self._lock:
            return list(self._stages)

    def report(self, stuck_after_s: float) -> list[StageStatus]:
        return [s.status(stuck_after_s) for s in self.stages()]

    def _gave_up(self, stage: Stage, error: BaseException) -> None:
        if self.on_give_up is None:
            return
        try:
            self.on_give_up(stage, error)
        except Exception:
            log.exception("handling the failure of %s failed", stage.name)


class Worker:
    """The thread that runs one stage's loop for a :class:`Supervisor`."""

    def __init__(self, supervisor: Supervisor, stage: Stage, loop: Callable[[], None]) -> None:
        self.supervisor = supervisor
        self.stage = stage
        self._loop = loop
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name=stage.name, daemon=True)

    def start(self) -> None:
        self.stage.running = True
        self.stage.finished = False
        self._thread.start()

    @property
    def alive(self) -> bool:
        """The thread is there: running the loop or waiting to run it again."""
        return self._thread.is_alive()

    def stop(self, timeout_s: float) -> bool:
        """No further restarts; wait for the loop to end (its owner tells it to, by its own stop
        flag). A loop waiting to be restarted is run once more, so that it sees that flag and
        ends as it would have. False when the thread is still running after ``timeout_s``."""
        self._halt.set()
        return self.join(timeout_s)

    def join(self, timeout_s: float) -> bool:
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _supervise(self) -> None:
        stage = self.stage
        failures: collections.deque[float] = collections.deque()
        last_run = False
        while True:
            stage.running = True
            try:
                self._loop()
            except Exception as exc:
                error: Exception | None = exc
            else:
                error = None
            finally:
                stage.running = False
            if error is None:
                stage.finished = True
                return
            stage.last_error = f"{type(error).__name__}: {error}"
            if last_run:
                log.error("%s failed while stopping", stage.name, exc_info=error)
                return
            if not self._wait_to_restart(error, failures):
                return
            last_run = self._halt.is_set()
            stage.restarts += 1

    def _wait_to_restart(self, error: Exception, failures: collections.deque[float]) -> bool:
        """Log the failure and wait the backoff; False when the stage is given up."""
        policy = self.supervisor.policy
        stage = self.stage
        now = time.monotonic()
        failures.append(now)
        while failures and now - failures[0] > policy.window_s:
            failures.popleft()
        if len(failures) > policy.max_restarts:
            stage.given_up = True
            log.critical(
                "%s failed %d times within %g s: giving up on it (%s)",
                stage.name,
                len(failures),
                policy.window_s,
                stage.last_error,
                exc_info=error,
            )
            self.supervisor._gave_up(stage, error)
            return False
        delay = policy.backoff_s(len(failures))
        log.error(
            "%s failed (%s); restarting it in %.1f s (failure %d of at most %d within %g s)",
            stage.name,
            stage.last_error,
            delay,
            len(failures),
            policy.max_restarts,
            policy.window_s,
            exc_info=error,
        )
        self._halt.wait(delay)
        return True


class SupervisedLoop:
    """A stage that runs one loop under a supervisor: :meth:`start` runs :meth:`_run` as the
    stage's worker, :meth:`stop` sets ``_stop`` (which the loop waits on) and waits for the worker
    up to ``stop_wait_s``. The periodic jobs of ``eit serve`` (the rules' tick, the town
    indicators, the duties) are these."""

    stop_wait_s = 5.0

    def __init__(self, supervisor: Supervisor, stage: Stage) -> None:
        self.supervisor = supervisor
        self.stage = stage
        self._stop = threading.Event()
        self._worker: Worker | None = None

    def start(self) -> None:
        self._worker = self.supervisor.run(self.stage, self._run)

    def stop(self) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.stop(self.stop_wait_s)

    def _run(self) -> None:
        raise NotImplementedError
