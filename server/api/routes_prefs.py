"""Each account's notification preferences (`/api/v1/me/notifications`, the page
`/preferences`): the channels it adds, muting of non-critical items (never of critical ones),
its language for notifications, and how the site registry routes alerts to it (which the
account cannot change: the registry is the source of duty routing).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field

from alerts.notifiers.preferences import (
    CHANNEL_KINDS,
    MAX_CHANNELS,
    PreferenceError,
    Preferences,
    PreferenceStore,
    masked,
)
from server.api.auth import Principal
from server.api.common import Context, errors


class ChannelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["email", "apprise"] = Field(description="email: an address; apprise: an Apprise URL")
    address: str = Field(min_length=1, max_length=512, description="name@example.org, or line://TOKEN")


class OptionsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mute_non_critical: bool = Field(description="mute warnings and other non-critical items (never critical)")
    language: Literal["th", "en"] | None = Field(
        None, description="the language of notifications, for an account that is no registry officer"
    )


def channel_id(kind: str, address: str) -> str:
    """A channel's id in URLs: the address itself is not put in a URL (an Apprise URL holds a
    service's token)."""
    return hashlib.sha256(f"{kind}\x1f{address}".encode()).hexdigest()[:16]


def prefs_router(ctx: Context) -> APIRouter:
    router = APIRouter(prefix="/api/v1/me/notifications", tags=["accounts"])
    sources = ctx.sources
    store = sources.preferences or PreferenceStore(sources.alerts.db)
    registry = sources.registry
    logged_in = ctx.auth.logged_in

    def describe(p: Principal, prefs: Preferences) -> dict[str, Any]:
        user = p.user
        assert user is not None
        officer = registry.officers.get(user.officer) if user.officer else None
        routing: dict[str, Any]
        if officer is not None:
            routing = {
                "as": "officer",
                "officer": officer.id,
                "email": officer.email or None,
                "language": officer.language,
                "factories": list(officer.factories),
                "districts": list(officer.districts),
                "escalate_to": officer.escalate_to,
            }
        elif user.role == "operator" and user.factory:
            factory = registry.factories.get(user.factory)
            routing = {
                "as": "operator",
                "factory": user.factory,
                "contacts": [
                    {"id": c.id, "name": c.name, "email": c.email or None}
                    for c in (factory.contacts if factory else ())
                ],
            }
        else:
            routing = {"as": "none"}
        channels = [{"id": channel_id("email", a), "kind": "email", "address": a} for a in prefs.emails]
        channels += [
            {"id": channel_id("apprise", a), "kind": "apprise", "address": masked("apprise", a)}
            for a in prefs.apprise
        ]
        return {
            "user": user.name,
            "role": user.role,
            "routing": routing,
            "mute_non_critical": prefs.mute_non_critical,
            "critical_always_sent": True,
            "language": prefs.language,
            "channels": channels,
            "max_channels": MAX_CHANNELS,
            "kinds": list(CHANNEL_KINDS),
            # The kinds this server can deliver: a channel of a kind it has no notifier for waits.
            "kinds_delivered": [k for k in CHANNEL_KINDS if k in sources.notifier_kinds],
        }

    def refused(exc: PreferenceError) -> HTTPException:
        return HTTPException(422, str(exc))

    @router.get(
        "",
        summary="My notification preferences and how the site registry routes alerts to me",
        responses=errors(401, 503),
    )
    def get_preferences(p: Principal = Depends(logged_in)) -> Any:
        return describe(p, store.get(p.name))

    @router.put(
        "",
        summary="Mute non-critical items (critical alerts are always sent); my notifications' language",
        responses=errors(400, 401, 422, 503),
    )
    def put_options(body: OptionsIn, p: Principal = Depends(logged_in)) -> Any:
        try:
            prefs = store.set_options(p.name, body.mute_non_critical, body.language, ctx.now())
        except PreferenceError as exc:
            raise refused(exc) from exc
        return describe(p, prefs)

    @router.post(
        "/channels",
        status_code=201,
        summary="Add a channel: an e-mail address or an Apprise URL (LINE, Telegram, ...)",
        responses=errors(400, 401, 422, 503),
    )
    def add_channel(body: ChannelIn, p: Principal = Depends(logged_in)) -> Any:
        try:
            prefs = store.add_channel(p.name, body.kind, body.address, ctx.now())
        except PreferenceError as exc:
            raise refused(exc) from exc
        return describe(p, prefs)

    @router.delete(
        "/channels/{channel}",
        summary="Remove one of my channels (by its id)",
        responses=errors(401, 404, 422, 503),
    )
    def remove_channel(
        channel: Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")], p: Principal = Depends(logged_in)
    ) -> Any:
        prefs = store.get(p.name)
        mine = [("email", a) for a in prefs.emails] + [("apprise", a) for a in prefs.apprise]
        found = next(((k, a) for k, a in mine if channel_id(k, a) == channel), None)
        if found is None:
            raise HTTPException(404, f"no channel {channel} among yours")
        return describe(p, store.remove_channel(p.name, *found))

    return router
