"""Helpers shared by the API's routes: time parameters, factory look-up with access checks,
limits converted into channel units, compliance states."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import HTTPException

from alerts.public_state import read_public_states
from eit.bounds import time_problem
from eit.errors import EitError
from eit.registry import Channel, Device, Factory, Registry
from eit.timeutil import NS_PER_S, datetime_to_ns, ns_to_iso
from eit.units import UnitError, conversion_factor
from server.api.auth import Auth, Principal, forbidden
from server.api.schemas import ErrorOut
from server.api.sources import ApiSources

HOUR_NS = 3600 * NS_PER_S


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI documentation of the error answers a route gives."""
    text = {
        400: "The request body cannot be read (not UTF-8 JSON or form data)",
        401: "No valid bearer token: log in",
        403: "The account may not do this",
        404: "No such factory, device, channel or alert (or not visible to the caller)",
        409: "The alert's state does not allow this change",
        422: "A parameter is invalid; the message names it",
        429: "Too many failed logins",
        503: "A store cannot be reached",
    }
    return {c: {"model": ErrorOut, "description": text[c]} for c in codes}


def bad_parameter(name: str, problem: str, where: str = "query") -> HTTPException:
    return HTTPException(422, f"{where} parameter '{name}': {problem}")


def to_ns(name: str, value: datetime | None, default_ns: int) -> int:
    if value is None:
        return default_ns
    if value.tzinfo is None:
        raise bad_parameter(name, "give a time zone, e.g. 2026-11-27T04:00:00Z")
    ts_ns = datetime_to_ns(value)
    problem = time_problem(ts_ns)  # the contract's bounds (eit/bounds.py): 2000 to what stores hold
    if problem is not None:
        raise bad_parameter(name, f"out of range: {problem.detail}")
    return ts_ns


def time_range(
    start: datetime | None, end: datetime | None, now_ns: int, default_s: int, max_s: int
) -> tuple[int, int]:
    end_ns = to_ns("end", end, now_ns)
    start_ns = to_ns("start", start, end_ns - default_s * NS_PER_S)
    if end_ns <= start_ns:
        raise bad_parameter("end", f"must be after start ({ns_to_iso(start_ns)})")
    if end_ns - start_ns > max_s * NS_PER_S:
        raise bad_parameter("start", f"the range is longer than {max_s // 86400} days: ask for less")
    return start_ns, end_ns


@dataclass(slots=True)
class Context:
    sources: ApiSources
    auth: Auth
    token_ttl_s: float

    @property
    def registry(self) -> Registry:
        return self.sources.registry

    def now(self) -> int:
        return self.sources.clock()

    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.sources.registry.timezone)

    def factory(self, p: Principal, factory_id: str) -> Factory:
        """The factory, when the caller may see it: 404 for the public (a factory that is not
        published does not exist for it), 403 for an operator of another factory."""
        f: Factory | None = self.sources.registry.factories.get(factory_id)
        if f is None or (p.user is None and not f.public):
            raise HTTPException(404, f"no factory '{factory_id}'" + ("" if p.user else " is published"))
        if not p.sees(f):
            raise forbidden(f"an operator sees only its own factory ({p.user.factory if p.user else ''})")
        return f

    def device(self, p: Principal, factory_id: str, device_id: str) -> tuple[Factory, Device]:
        f = self.factory(p, factory_id)
        d = f.devices.get(device_id)
        if d is None:
            raise HTTPException(404, f"factory '{factory_id}' has no device '{device_id}'")
        return f, d

    def channel(
        self, p: Principal, factory_id: str, device_id: str, channel_id: str
    ) -> tuple[Factory, Device, Channel]:
        f, d = self.device(p, factory_id, device_id)
        ch = d.channels.get(channel_id)
        if ch is None:
            raise HTTPException(404, f"device '{factory_id}/{device_id}' has no channel '{channel_id}'")
        return f, d, ch

    def visible(self, p: Principal) -> list[Factory]:
        return [f for f in self.sources.registry.factories.values() if p.sees(f)]

    def in_channel_unit(self, ch: Channel, value: Any, unit: Any) -> float | None:
        if not isinstance(value, int | float) or isinstance(value, bool) or not isinstance(unit, str):
            return None
        try:
            return float(value) * conversion_factor(
                ch.parameter, unit, ch.unit, self.sources.registry.standards
            )
        except UnitError:
            return None

    def compliance_states(self, factories: list[Factory]) -> dict[str, tuple[str, int | None]]:
        """(public state, newest reading ns) of each factory: the state the rules wrote
        (alerts/public_state.py: from the conditions only, never from officers' actions)."""
        return {f: (state, newest) for f, (state, _, newest) in self.public_states(factories).items()}

    def public_states(self, factories: list[Factory]) -> dict[str, tuple[str, tuple[str, ...], int | None]]:
        """(public state, the parameters behind it, newest reading ns) of each factory."""
        now = self.now()
        stale_ns = int(self.sources.stale_after_s * NS_PER_S)
        try:
            states = read_public_states(
                self.sources.store, [f.id for f in factories], now, stale_ns, max(stale_ns, 2 * HOUR_NS)
            )
            latest = self.sources.store.latest()
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc
        newest: dict[str, int] = {}
        for r in latest:
            if r.ts_ns > newest.get(r.factory, -1):
                newest[r.factory] = r.ts_ns
        return {f.id: (states[f.id][0], states[f.id][1], newest.get(f.id)) for f in factories}
