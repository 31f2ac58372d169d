"""The share of a factory's readings whose scan signature the ingest verified (signed at the
meter's agent, docs/signing.md), per factory and channel, over the last days: public for a
published factory, like its compliance state. Officers (and the factory's operator) also see the
chain events: gaps, reported drops, reorders and conflicts."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, Field

from alerts.evidence import chain_events, channel_share, factory_share
from eit.errors import EitError
from eit.model import ID_PATTERN
from eit.timeutil import ns_to_iso
from server.api.auth import Principal
from server.api.common import HOUR_NS, Context, errors


class ChannelVerificationOut(BaseModel):
    device: str
    channel: str
    readings: int
    verified: int
    verified_share: float | None = Field(description="verified / readings; null without readings")


class ChainEventOut(BaseModel):
    device: str
    time: str
    kind: str
    first_seq: int
    last_seq: int
    missing: int
    detail: str


class VerificationOut(BaseModel):
    factory: str
    period_start: str
    period_end: str
    readings: int
    verified: int
    verified_share: float | None = Field(description="verified / readings; null without readings")
    channels: list[ChannelVerificationOut]
    chain_events: list[ChainEventOut] | None = Field(
        None, description="for officers and the factory's operator; null for the public"
    )


def evidence_router(ctx: Context) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["data"])
    factory_path = Path(pattern=f"^{ID_PATTERN.pattern}$", max_length=63, description="Factory id")

    @router.get(
        "/factories/{factory}/verification",
        summary="The share of the factory's readings whose signature was verified, per channel",
        response_model=VerificationOut,
        responses=errors(401, 403, 404, 422, 503),
    )
    def verification(
        factory: str = factory_path,
        days: int = Query(30, ge=1, le=366, description="The last DAYS days up to now"),
        p: Principal = Depends(ctx.auth.principal),
    ) -> VerificationOut:
        f = ctx.factory(p, factory)
        end = ctx.now()
        start = end - days * 24 * HOUR_NS
        store = ctx.sources.store
        try:
            total = factory_share(store, f, start, end)
            channels = [
                ChannelVerificationOut(
                    device=d.id,
                    channel=ch.id,
                    **channel_share(store, f.id, d.id, ch.id, start, end),
                )
                for d in f.devices.values()
                for ch in d.channels.values()
            ]
            events = None
            if p.user is not None:
                events = [ChainEventOut(**e) for e in chain_events(store, f.id, f.devices, start, end)]
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc
        return VerificationOut(
            factory=f.id,
            period_start=ns_to_iso(start),
            period_end=ns_to_iso(end),
            channels=channels,
            chain_events=events,
            **total,
        )

    return router
