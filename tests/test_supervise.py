"""The supervisor of worker threads (eit/supervise.py): restarts with backoff, gives up after too
many failures, and judges a stage stuck only when it has work waiting and makes no progress."""

from __future__ import annotations

import threading
import time

import pytest

from eit.supervise import RestartPolicy, Stage, Supervisor
from testbed.services import wait_for

QUICK = RestartPolicy(max_restarts=3, window_s=60.0, backoff_initial_s=0.05, backoff_max_s=0.2)


def test_a_loop_that_fails_is_restarted_and_counted_and_keeps_its_work() -> None:
    held: list[int] = [1, 2, 3]  # the owner's work, not the loop's locals
    done: list[int] = []
    failures = iter([True, False])
    stop = threading.Event()

    def loop() -> None:
        while held and not stop.is_set():
            item = held[0]
            if item == 2 and next(failures, False):
                raise RuntimeError("injected")
            done.append(item)
            held.pop(0)

    stage = Stage("work", lambda: len(held))
    worker = Supervisor(QUICK).run(stage, loop)
    assert worker.join(10.0)
    assert done == [1, 2, 3]
    assert stage.restarts == 1 and stage.last_error == "RuntimeError: injected"
    status = stage.status(60.0)
    assert status.state == "stopped" and not status.alive and not status.given_up


def test_a_loop_failing_too_often_is_given_up_and_the_owner_told() -> None:
    told: list[tuple[str, str]] = []
    runs = 0

    def loop() -> None:
        nonlocal runs
        runs += 1
        raise ValueError(f"run {runs}")

    supervisor = Supervisor(QUICK, on_give_up=lambda s, e: told.append((s.name, str(e))))
    stage = Stage("doomed")
    worker = supervisor.run(stage, loop)
    assert worker.join(10.0)
    # max_restarts=3: the fourth failure within the window is one too many.
    assert runs == 4 and stage.restarts == 3
    assert told == [("doomed", "run 4")]
    status = supervisor.report(60.0)[0]
    assert status.state == "failed" and status.given_up and not status.ok


def test_restarts_wait_longer_after_each_failure_up_to_the_maximum() -> None:
    policy = RestartPolicy(backoff_initial_s=0.5, backoff_max_s=4.0)
    for failures, (low, high) in {1: (0.25, 0.75), 2: (0.5, 1.5), 3: (1.0, 3.0), 8: (2.0, 6.0)}.items():
        waits = [policy.backoff_s(failures) for _ in range(200)]
        assert low <= min(waits) and max(waits) <= high
        assert max(waits) - min(waits) > (high - low) / 4  # jittered, not in step


def test_stopping_a_loop_waiting_to_restart_runs_it_once_more_to_finish_cleanly() -> None:
    stop = threading.Event()
    finished_cleanly = threading.Event()
    runs = 0

    def loop() -> None:
        nonlocal runs
        runs += 1
        if stop.is_set():
            finished_cleanly.set()  # what an owner's loop does when told to stop (a sentinel)
            return
        raise RuntimeError("fails until stopped")

    slow = RestartPolicy(max_restarts=5, window_s=60.0, backoff_initial_s=30.0, backoff_max_s=30.0)
    stage = Stage("stopping")
    worker = Supervisor(slow).run(stage, loop)
    wait_for(lambda: runs == 1 and not stage.running, 5, "the first failure")
    stop.set()
    started = time.monotonic()
    assert worker.stop(5.0)
    assert time.monotonic() - started < 5.0, "stop waited out the backoff"
    assert finished_cleanly.is_set() and runs == 2


@pytest.mark.serial  # times things (decision 12: runs alone)
def test_a_stage_is_stuck_only_with_work_waiting_and_no_progress() -> None:
    waiting = 0
    release = threading.Event()
    stage = Stage("slow", lambda: waiting)
    stop = threading.Event()

    def loop() -> None:
        nonlocal waiting
        while not stop.is_set():
            if waiting:
                stage.progress()  # took the item
                release.wait()  # a call that does not return
                waiting -= 1
                stage.progress()
            else:
                stop.wait(0.01)

    worker = Supervisor(QUICK).run(stage, loop)
    try:
        wait_for(lambda: stage.running, 5, "the loop to run")
        idle = stage.status(0.2)
        assert idle.ok and idle.backlog == 0
        time.sleep(0.3)  # scenario time: idle for longer than stuck_after_s is not stuck
        assert stage.status(0.2).ok
        waiting = 1
        wait_for(lambda: stage.status(0.2).stuck, 5, "the stage to be stuck")
        stuck = stage.status(0.2)
        assert stuck.state == "stuck" and stuck.alive and not stuck.ok and stuck.backlog == 1
        release.set()
        wait_for(lambda: stage.status(0.2).ok, 5, "the stage to recover")
        assert stage.status(0.2).backlog == 0
    finally:
        release.set()
        stop.set()
        assert worker.stop(5.0)


@pytest.mark.serial  # times things (decision 12: runs alone)
def test_resting_before_a_retry_is_not_stuck() -> None:
    stage = Stage("retrying", lambda: 1)
    stage.running = True
    stage.rest(2.0)  # a backoff before retrying an unavailable store
    time.sleep(0.3)  # scenario time: longer than stuck_after_s, shorter than the rest
    assert not stage.status(0.2).stuck
    wait_for(lambda: stage.status(0.2).stuck, 5, "stuck once the rest is over and nothing moved")


def test_a_periodic_stage_has_work_only_while_an_item_is_under_way() -> None:
    stage = Stage("tick")
    assert stage.backlog() == 0
    with stage.working():
        assert stage.backlog() == 1
    assert stage.backlog() == 0
    with pytest.raises(RuntimeError), stage.working():
        raise RuntimeError("a failing tick")
    assert stage.backlog() == 0
