"""The officers' inbox at scale: the requests the console makes, timed through `eit api` over HTTP,
with 10,000 cases in the state database, on SQLite and on PostgreSQL.

Run: ``python -m bench.inbox [--cases N] [--requests N] [--postgres-url URL] [--json FILE]``
(prints a table; ``--json`` also writes the figures). Without a URL it starts a PostgreSQL cluster
of its own (testbed.services.PostgreSQL, fsync off: the figures are the code's and the round
trips', not the disk's).

The town: 40 generated factories (the town builder, an hour of their readings); then ``--cases``
cases written straight into the state database as a year of the rules' work would leave them
(opened over 365 days; 3 % open, 5 % acknowledged, 12 % resolved, the rest closed; the active ones
and a few resolved ones ongoing; a fifth answered by their factory). Each request is one the
console makes (GET /api/v1/alerts, 25 a page, with its X-Total-Count and the page's answers):

- ``first page``: the active cases (the console's default);
- ``filter``: the active critical cases of one factory;
- ``date range``: every state, opened in one month;
- ``search``: every state, two words (a parameter and a factory's name);
- ``search, no match``: every state, a word no case holds (every case read);
- ``later page``: every state, the 20th page (``before_id`` from the Link of the 19th).

Each is asked ``--requests`` times after 5 unmeasured; the figures are the client's (the
requests library on the same machine, one keep-alive connection): median, p95 and the longest.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import sqlalchemy as sa

from eit.timeutil import NS_PER_S, now_ns
from statedb import open_state_db
from statedb.tables import alert_responses, alerts
from testbed.services import EitProcess, PostgreSQL, wait_for
from testbed.town import TownSpec, build_town, generated_factory, password_of

DAY_NS = 86400 * NS_PER_S
FACTORIES = 40
PAGE = 25
TARGET_P95_MS = 300.0
RULES = (("limit", 0.6), ("stale", 0.25), ("spike", 0.1), ("rate", 0.05))
PARAMETERS = ("so2", "nox", "pm", "co", "o2")
STATES = (("open", 0.03), ("acknowledged", 0.08), ("resolved", 0.2), ("closed", 1.0))  # cumulative


def case_rows(n: int, end_ns: int, seed: int = 7) -> tuple[list[dict[str, Any]], list[int]]:
    """``n`` cases as the alerts table holds them, oldest first, and which of them (1-based
    positions, the ids of a fresh table) the factory answered."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    answered = []
    opened = sorted(end_ns - rng.randrange(365 * DAY_NS) for _ in range(n))
    ongoing_keys: set[tuple[str, str, str, str]] = set()  # one ongoing case per key
    for i, at in enumerate(opened):
        factory = generated_factory(rng.randrange(FACTORIES))
        rule = rng.choices([r for r, _ in RULES], [w for _, w in RULES])[0]
        parameter = "*" if rule == "stale" else rng.choice(PARAMETERS)
        roll = rng.random()
        state = next(s for s, upto in STATES if roll < upto)
        ongoing = state in ("open", "acknowledged") or (state == "resolved" and rng.random() < 0.2)
        device = "stack-01"
        while ongoing and (factory, device, parameter, rule) in ongoing_keys:
            device = f"stack-{int(device[6:]) + 1:02d}"
        if ongoing:
            ongoing_keys.add((factory, device, parameter, rule))
        value = round(rng.uniform(60, 140), 2) if rule == "limit" else None
        text = (
            f"no data from {factory}/{device} for 360 s (limit 300 s)"
            if rule == "stale"
            else f"{parameter} {value} ppm above the standard limit 60 ppm"
            if rule == "limit"
            else f"{parameter} {rule} on {factory}/{device}"
        )
        rows.append(
            {
                "factory": factory,
                "device": device,
                "parameter": parameter,
                "rule": rule,
                "severity": "critical" if rule == "limit" and rng.random() < 0.7 else "warning",
                "state": state,
                "opened_ns": at,
                "updated_ns": at + 3600 * NS_PER_S,
                "message": text,
                "value": value,
                "limit_value": 60.0 if rule == "limit" else None,
                "unit": "ppm",
                "resolved_ns": None if state in ("open", "acknowledged") else at + 7200 * NS_PER_S,
                "assignee": "olivia" if state != "open" else None,
                "condition": "ongoing" if ongoing else "ended",
                "condition_since_ns": at,
                "ended_ns": None if ongoing else at + 7200 * NS_PER_S,
                "current_value": value,
                "current_ns": at if value is not None else None,
            }
        )
        if rng.random() < 0.2:
            answered.append(i + 1)
    return rows, answered


def fill(state_url: str | None, state_path: Path, cases: int) -> None:
    db = open_state_db(state_url, state_path)
    try:
        rows, answered = case_rows(cases, now_ns())
        with db.write() as conn:
            conn.execute(alerts.delete())  # the town's own few: the figures are of these
            conn.execute(alert_responses.delete())
            conn.execute(alerts.insert(), rows)
            first = conn.execute(sa.select(sa.func.min(alerts.c.id))).scalar()
            assert first is not None
            conn.execute(
                alert_responses.insert(),
                [
                    {
                        "alert_id": first + i - 1,
                        "factory": rows[i - 1]["factory"],
                        "actor": "operator",
                        "ts_ns": rows[i - 1]["opened_ns"] + 3600 * NS_PER_S,
                        "cause": "bag filter torn",
                        "corrective_action": "filter replaced, load cut to 70 %",
                    }
                    for i in answered
                ],
            )
    finally:
        db.close()


def timed(session: requests.Session, url: str, params: dict[str, Any], repeat: int) -> dict[str, float]:
    for _ in range(5):
        session.get(url, params=params, timeout=30).raise_for_status()
    times = []
    rows = 0
    for _ in range(repeat):
        started = time.perf_counter()
        r = session.get(url, params=params, timeout=30)
        times.append((time.perf_counter() - started) * 1000)
        r.raise_for_status()
        rows = len(r.json())
    times.sort()
    return {
        "median_ms": statistics.median(times),
        "p95_ms": times[max(0, int(len(times) * 0.95) - 1)],
        "max_ms": times[-1],
        "rows": rows,
        "total": float(r.headers["x-total-count"]),
    }


def run_town(kind: str, workdir: Path, cases: int, repeat: int, state_url: str | None) -> dict[str, Any]:
    town = build_town(workdir, TownSpec(factories=FACTORIES, hours=1.0), state_url=state_url)
    fill(town.config.state_url, town.config.state_path, cases)
    process = EitProcess(["api", "--config", str(town.config_path)], workdir / "eit-api.log").start()
    base = f"http://127.0.0.1:{town.config.http.port}"
    try:

        def up() -> bool:
            try:
                return requests.get(f"{base}/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_for(up, 60, "eit api to answer /healthz")
        session = requests.Session()
        token = session.post(
            f"{base}/api/v1/token", data={"username": "olivia", "password": password_of("olivia")}, timeout=30
        ).json()["access_token"]
        session.headers["Authorization"] = f"Bearer {token}"
        url = f"{base}/api/v1/alerts"
        every: dict[str, Any] = {"limit": PAGE, "lang": "en"}  # every state
        # The 20th page of every case: the Link of the 19th names it.
        page = session.get(url, params=every, timeout=30)
        for _ in range(18):
            page.raise_for_status()
            page = session.get(base + page.links["next"]["url"], timeout=30)
        later = dict(every, before_id=page.json()[-1]["id"])
        end = now_ns()
        month = time.strftime("%Y-%m", time.gmtime((end - 120 * DAY_NS) / NS_PER_S))
        active = {"state": "active", "limit": PAGE, "lang": "en"}
        queries = {
            "first page": active,
            "filter": dict(active, severity="critical", factory="f007"),
            "date range": dict(every, opened_from=f"{month}-01", opened_to=f"{month}-28"),
            "search": dict(every, q="so2 factory 12"),
            "search, no match": dict(every, q="nothing-holds-this"),
            "later page": later,
        }
        results = {name: timed(session, url, params, repeat) for name, params in queries.items()}
    finally:
        code = process.terminate()
        if code != 0:
            raise RuntimeError(f"eit api exited with {code}: {process.output()[-2000:]}")
    return {"kind": kind, "cases": cases, "queries": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per query")
    parser.add_argument("--postgres-url", help="a PostgreSQL server (a database of its own is made)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory(prefix="eit-inbox-") as tmp:
        runs.append(run_town("sqlite", Path(tmp) / "sqlite", args.cases, args.requests, None))
        postgres = None
        server = args.postgres_url
        if server is None:
            postgres = PostgreSQL().start()
            server = postgres.url
        try:
            import psycopg

            name = "inbox_" + uuid.uuid4().hex[:8]
            with psycopg.connect(server, autocommit=True) as db:
                db.execute(f'CREATE DATABASE "{name}"')
            url = urlsplit(server)._replace(path=f"/{name}").geturl()
            runs.append(run_town("postgresql", Path(tmp) / "postgresql", args.cases, args.requests, url))
            with psycopg.connect(server, autocommit=True) as db:
                db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            if postgres is not None:
                postgres.stop()
    print(f"inbox of {args.cases} cases, {args.requests} requests per query, 25 a page (ms, client side)")
    print(f"{'database':11} {'query':18} {'median':>7} {'p95':>7} {'max':>7} {'rows':>5} {'total':>6}")
    worst = 0.0
    for run in runs:
        for name, r in run["queries"].items():
            worst = max(worst, r["p95_ms"])
            print(
                f"{run['kind']:11} {name:18} {r['median_ms']:7.1f} {r['p95_ms']:7.1f} {r['max_ms']:7.1f}"
                f" {r['rows']:5d} {int(r['total']):6d}"
            )
    verdict = "met" if worst <= TARGET_P95_MS else "NOT met"
    print(f"target p95 <= {TARGET_P95_MS:.0f} ms: {verdict} (worst p95 {worst:.1f} ms)")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "worst_p95_ms": worst}, indent=2))
    return 0 if worst <= TARGET_P95_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
