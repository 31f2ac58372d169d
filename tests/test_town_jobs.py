"""One worker of the cluster runs the town-wide jobs (server/town_jobs.py): the holder of their
lease in the state database (PostgreSQL, as on the cluster). Two leader loops share one database;
the indicators and duties run only on the leader, and a duties run whose lease lapsed mid-way
stops before its next write."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from prometheus_client import generate_latest

from alerts.duties import DutiesJob, DutiesTicker, DutyStore, NotLeader, ShutdownCalendar
from alerts.duties.job import RULE_LAB
from alerts.duties.rules import load_duty_rules
from alerts.indicators_job import IndicatorJob
from alerts.model import AlertEvent
from alerts.state import AlertStore
from eit.model import Reading
from eit.registry import load_registry
from eit.supervise import Supervisor
from eit.timeutil import parse_iso_ns
from ingest.store.sqlite import SqliteStore
from server.cluster import town_jobs_holder
from server.config import load_serve_config
from server.serve import Server
from server.town_jobs import TOWN_JOBS_PARTITION, TownJobsLeader, town_jobs_set
from statedb import StateDb, open_state_db
from testbed.services import REPO, free_port, wait_for, write_serve_config

SITE = REPO / "examples" / "town" / "site.yaml"
PREFIX = "eit.partition"
STARCH, OUTFALL = "siam-cassava-starch", "outfall-1"
S = 1_000_000_000
MIN = 60 * S


@pytest.fixture
def db(postgres_url: str, tmp_path: Path) -> Iterator[StateDb]:
    state = open_state_db(postgres_url, tmp_path / "unused.db")
    yield state
    state.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "readings.db")
    yield s
    s.close()


def leader(db: StateDb, owner: str, lease_s: float) -> TownJobsLeader:
    return TownJobsLeader.on(db, PREFIX, owner, lease_s, Supervisor())


class CountedGate:
    """A job's question "do I lead?", counting how often the job asked it and when it last heard
    yes (the last time a run could begin)."""

    def __init__(self, holds: Callable[[], bool]) -> None:
        self.holds = holds
        self.asked = 0
        self.last_yes: float | None = None

    def __call__(self) -> bool:
        self.asked += 1
        yes = self.holds()
        if yes:
            self.last_yes = time.monotonic()
        return yes


def test_of_two_workers_exactly_one_holds_the_town_jobs_lease_at_a_time(db: StateDb) -> None:
    a, b = leader(db, "worker-a", 30.0), leader(db, "worker-b", 30.0)
    assert a.step() is True, "a free lease is taken"
    for _ in range(5):  # rounds of both, renewing and trying to take
        a._next_renewal = 0.0  # every round renews
        assert (a.step(), b.step()) == (True, False)
    rows = a.leases.all()
    assert [(r.partition, r.owner, r.token) for r in rows] == [(TOWN_JOBS_PARTITION, "worker-a", 1)]
    assert a.leases.queue_set == town_jobs_set(PREFIX) != PREFIX, "apart from the partitions' leases"
    assert (a.leadership().leader, b.leadership().leader) == (True, False)
    a.stop()
    b.stop()


def test_a_stopped_leader_releases_the_lease_and_the_standby_takes_it_over_at_once(db: StateDb) -> None:
    # A lease of 30 s: the standby takes over within seconds only because the lease was released.
    a, b = leader(db, "worker-a", 30.0), leader(db, "worker-b", 30.0)
    a.start()
    wait_for(a.holds, 10, "worker a to take the lease")
    b.start()
    try:
        wait_for(lambda: b.rounds >= 2, 10, "worker b's first rounds")
        assert not b.holds(), "a holds it"
        stopping = time.monotonic()
        a.stop()
        assert not a.holds()
        wait_for(b.holds, 5, "worker b to take the released lease")
        assert time.monotonic() - stopping < 10, "well before a's lease would have expired"
        holder = b.holder()
        assert holder is not None and (holder.owner, holder.token) == ("worker-b", 2)
        assert (b.taken, a.lost) == (1, 0)
    finally:
        a.stop()
        b.stop()
    holder = b.holder()
    assert holder is not None and holder.expires_ns == 0, "b released it on stop too"


@pytest.mark.serial
def test_a_leader_whose_renewals_pause_stops_leading_before_another_can_take_over(
    db: StateDb, store: SqliteStore
) -> None:
    lease_s = 1.0
    a, b = leader(db, "worker-a", lease_s), leader(db, "worker-b", lease_s)
    assert a.step() and not b.step()
    lease = a._lease
    assert lease is not None
    # a's indicators run every 50 ms while it leads.
    gate = CountedGate(a.holds)
    jobs = IndicatorJob(load_registry(SITE), store, 0.05, Supervisor(), leader=gate)
    jobs.leader_poll_s = 0.05
    jobs.start()
    try:
        wait_for(lambda: jobs.runs >= 2, 30, "the leader's indicators to run")
        # Worker a's renewals pause (it is not stepped): its lease lapses by its own clock first,
        # and only after the database's expiry can b take the lease.
        deadline = time.monotonic() + 10 * lease_s
        while not b.step():
            assert time.monotonic() < deadline, "b never took the expired lease"
            time.sleep(0.02)  # the rounds' pace, not an assertion
        b_took_at = time.monotonic()
        assert not a.holds(), "never two leaders at once"
        assert lease.valid_until < b_took_at, "a's lease had lapsed by its own clock"
        asked = gate.asked
        wait_for(lambda: gate.asked > asked + 3, 10, "a's indicator loop to look again")
        assert gate.last_yes is not None and gate.last_yes < b_took_at, "no run of a began after b took"
    finally:
        jobs.stop()
    # Resumed, a never renews across the pause, and b's lease is not free: a stays a standby.
    a._next_renewal = 0.0
    assert a.step() is False
    assert (a.lost, a.leadership().token) == (1, 0)
    holder = b.holder()
    assert holder is not None and (holder.owner, holder.token) == ("worker-b", 2)
    a.stop()
    b.stop()


def test_the_indicators_and_duties_run_on_the_leader_only_and_move_with_the_lease(
    db: StateDb, store: SqliteStore
) -> None:
    registry = load_registry(SITE)
    alerts = AlertStore(db)
    rules = load_duty_rules()
    a, b = leader(db, "worker-a", 30.0), leader(db, "worker-b", 30.0)
    assert a.step() and not b.step()
    gates = {name: CountedGate(w.holds) for name, w in (("a", a), ("b", b))}
    duty_gates = {name: CountedGate(w.holds) for name, w in (("a", a), ("b", b))}
    # Both jobs every 0.2 s on the leader; a standby looks every 50 ms whether it leads.
    indicators = {
        name: IndicatorJob(registry, store, 0.2, Supervisor(), leader=g) for name, g in gates.items()
    }
    duties = {
        name: DutiesTicker(
            DutiesJob(
                registry,
                store,
                DutyStore(db, rules, ZoneInfo(registry.timezone)),
                alerts,
                ShutdownCalendar(registry),
                rules,
                integrity_monthly=False,
            ),
            0.2,
            Supervisor(),
            leader=g,
        )
        for name, g in duty_gates.items()
    }
    for job in indicators.values():
        job.leader_poll_s = 0.05
    for ticker in duties.values():
        ticker.leader_poll_s = 0.05

    def looked(name: str) -> Callable[[], bool]:
        seen = (gates[name].asked, duty_gates[name].asked)
        return lambda: gates[name].asked > seen[0] + 3 and duty_gates[name].asked > seen[1] + 3

    for loop in (*indicators.values(), *duties.values()):
        loop.start()
    try:
        wait_for(lambda: indicators["a"].runs >= 2 and duties["a"].runs >= 2, 30, "the leader's jobs to run")
        wait_for(looked("b"), 10, "the standby's jobs to look several times")
        assert (indicators["b"].runs, duties["b"].runs) == (0, 0), "the standby runs nothing"
        assert (gates["b"].last_yes, duty_gates["b"].last_yes) == (None, None)
        # The leader stops: the standby takes the lease and runs the jobs at once.
        a.stop()
        stopped_at = time.monotonic()
        assert b.step()
        wait_for(lambda: indicators["b"].runs >= 1 and duties["b"].runs >= 1, 30, "the new leader's jobs")
        wait_for(looked("a"), 10, "the old leader's jobs to look several times")
        for gate in (gates["a"], duty_gates["a"]):
            assert gate.last_yes is not None and gate.last_yes < stopped_at, "the old leader runs no more"
    finally:
        for loop in (*indicators.values(), *duties.values()):
            loop.stop()
        a.stop()
        b.stop()


def test_a_duties_run_whose_lease_lapsed_opens_no_case_and_the_new_leaders_run_opens_it_once(
    db: StateDb, store: SqliteStore
) -> None:
    registry = load_registry(SITE)
    alerts = AlertStore(db)
    rules = load_duty_rules()
    events: list[AlertEvent] = []
    job = DutiesJob(
        registry,
        store,
        DutyStore(db, rules, ZoneInfo(registry.timezone)),
        alerts,
        ShutdownCalendar(registry),
        rules,
        emit=events.append,
        lookback_days=2,
        integrity_monthly=False,
    )
    # The outfall ran in June and its COD was never checked against a lab: a case after 30 June.
    june = parse_iso_ns("2026-06-02T00:00:00+07:00")
    store.write(
        [
            Reading(STARCH, OUTFALL, ch, ts + 7 * S, 50.0, "N")
            for ts in range(june, june + 3600 * S, MIN)
            for ch in ("cod", "bod")
        ]
    )
    now = parse_iso_ns("2026-07-01T00:30:00+07:00")

    def lab_cases() -> list[str]:
        return [a.parameter for a in alerts.list(limit=100) if a.rule == RULE_LAB and a.factory == STARCH]

    a, b = leader(db, "worker-a", 30.0), leader(db, "worker-b", 30.0)
    assert a.step()
    a.stop()  # a's lease ends (here released; a lapse by a's own clock answers the same)
    with pytest.raises(NotLeader):
        job.run_once(now, a.holds)
    assert lab_cases() == [] and events == [], "no case, no notification from a worker that lost the lease"
    assert b.step()
    job.run_once(now, b.holds)
    job.run_once(now + 60 * S, b.holds)
    assert sorted(lab_cases()) == ["bod 2026-06", "cod 2026-06"], "one case per channel, once"
    assert [(e.kind, e.alert.rule) for e in events] == [("opened", RULE_LAB)] * 2
    b.stop()


def _cluster_worker(workdir: Path, postgres_url: str, amqp_port: int) -> Server:
    """An `eit serve` of the cluster (transport amqp) on the example town, its state database the
    shared PostgreSQL; its broker never answers (the town-wide jobs need none)."""
    path = write_serve_config(workdir, free_port(), state_url=postgres_url)
    data = yaml.safe_load(path.read_text())
    data["ingest"] |= {
        "transport": "amqp",
        "amqp": {"urls": [f"amqp://eit@127.0.0.1:{amqp_port}/"], "partitions": 2, "lease_s": 30.0},
    }
    path.write_text(yaml.safe_dump(data))
    return Server(load_serve_config(path, environ={}))


def _leads(server: Server) -> bool:
    _, detail = server.readiness()
    return bool(detail["town_jobs"]["leader"])


def test_two_cluster_workers_elect_one_leader_shown_in_readyz_and_metrics_and_hand_over_on_stop(
    tmp_path: Path, postgres_url: str
) -> None:
    amqp_port = free_port()  # nothing listens there
    a = _cluster_worker(tmp_path / "a", postgres_url, amqp_port)
    b = _cluster_worker(tmp_path / "b", postgres_url, amqp_port)
    assert a.town_jobs is not None and b.town_jobs is not None
    assert a.indicators.leader == a.town_jobs.holds
    running: list[Server] = []
    a.start()
    running.append(a)
    try:
        wait_for(lambda: _leads(a), 20, "the first worker to lead the town-wide jobs")
        b.start()
        running.append(b)
        wait_for(lambda: b.town_jobs is not None and b.town_jobs.rounds >= 2, 10, "the second's rounds")
        assert not _leads(b)
        assert a.readiness()[1]["stages"]["town-jobs"]["state"] == "ok"
        assert "eit_town_jobs_leader 1.0" in generate_latest(a.metrics.registry).decode()
        assert "eit_town_jobs_leader 0.0" in generate_latest(b.metrics.registry).decode()
        running.remove(a)
        a.stop()
        wait_for(lambda: _leads(b), 5, "the second worker to take over (the lease is 30 s)")
        assert b.readiness()[1]["town_jobs"]["owner"] == b.town_jobs.leases.owner
        holder = town_jobs_holder(a.config)  # as `eit cluster status` shows it
        assert holder is not None and (holder.owner, holder.token) == (b.town_jobs.leases.owner, 2)
    finally:
        for server in running:
            server.stop()
    assert town_jobs_holder(b.config) is None, "released on stop: no holder"
