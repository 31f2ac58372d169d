"""The shapes of the API's answers (they document the OpenAPI schema)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

# A factory's public state (alerts/public_state.py): from the rules' conditions only.
ComplianceState = Literal["exceeding", "provisional", "shutdown", "no_data", "compliant"]


class ErrorOut(BaseModel):
    detail: str = Field(description="What is wrong, naming the parameter or the rule")
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Each invalid parameter, its location and the problem"
    )


class LimitOut(BaseModel):
    averaging: str = Field(description="1h, 8h, 24h, instant, ...")
    max: float | None
    min: float | None
    unit: str = Field(description="The unit of max and min")
    max_in_channel_unit: float | None = Field(description="max converted into the channel's unit")
    min_in_channel_unit: float | None
    origin: str = Field(description="The preset or permit the limit comes from")
    kind: str = Field(description="standard or permit")
    source: str = Field(description="The regulation, permit or estate rule that sets the value")
    confirmed: bool = Field(description="false where the sources leave the value uncertain")


class ChannelOut(BaseModel):
    id: str
    parameter: str
    unit: str
    range: list[float]
    limits: list[LimitOut] = Field(description="Limits in force today")


class DeviceOut(BaseModel):
    id: str
    kind: str
    name: str
    channels: list[ChannelOut]


class FactoryOut(BaseModel):
    id: str
    name: str
    name_th: str
    diw_registration: str
    district: str
    estate: str
    lat: float
    lon: float
    public: bool
    state: ComplianceState = Field(
        description="exceeding: its last closed legal period (hour or rolling window) is above a limit;"
        " provisional: only the running hour is above; shutdown: an accepted shutdown window;"
        " no_data: nothing arrived for the no-data period; compliant otherwise. Officers' actions"
        " never change it"
    )
    last_update: str | None = Field(description="Time of the newest reading (UTC)")
    state_parameters: list[str] = Field(
        default_factory=list, description="The parameters behind an exceeding or provisional state (ids)"
    )
    devices: list[DeviceOut]


class AqiOut(BaseModel):
    factory: str
    device: str
    time: str
    value: float
    band: str
    sub_indices: dict[str, float]


class TownOut(BaseModel):
    id: str
    name: str
    timezone: str
    factories: int
    last_update: str | None
    states: dict[str, int] = Field(description="How many visible factories are in each compliance state")
    aqi: list[AqiOut]


class LatestOut(BaseModel):
    factory: str
    device: str
    channel: str
    time: str
    value: float
    flag: str
    unit: str


class ReadingOut(BaseModel):
    time: str
    value: float
    flag: str | None = Field(default=None, description="HJ 212 flag (raw readings only)")


class SeriesOut(BaseModel):
    factory: str
    device: str
    channel: str
    unit: str
    start: str
    end: str
    every: int | None = Field(description="Bucket length in seconds; null for raw readings")
    fn: str | None
    points: list[ReadingOut]
    truncated: bool = Field(description="True when the limit cut the raw readings short")


class HourOut(BaseModel):
    time: str = Field(description="Start of the clock hour (UTC)")
    value: float | None
    corrected: float | None = Field(description="Corrected to the reference O2 where the standard has one")
    points: int
    quadrants: int
    valid: bool
    reason: str
    limit: float | None
    limit_unit: str | None
    limit_in_channel_unit: float | None
    exceeded: bool
    retroactive: bool


class HourlyOut(BaseModel):
    factory: str
    device: str
    channel: str
    unit: str
    start: str
    end: str
    hours: list[HourOut]


class RollingPointOut(BaseModel):
    time: str = Field(description="End of the window (UTC)")
    value: float
    hours: int
    valid: bool
    limit: float | None
    limit_unit: str | None
    limit_in_channel_unit: float | None
    exceeded: bool


class RollingOut(BaseModel):
    factory: str
    device: str
    channel: str
    window: str
    unit: str
    points: list[RollingPointOut]


class ResponseOut(BaseModel):
    id: int
    alert_id: int
    factory: str
    by: str
    at: str
    cause: str
    corrective_action: str


class AlertOut(BaseModel):
    id: int
    factory: str
    device: str
    parameter: str
    rule: str
    severity: str
    state: str
    text: str = Field(description="The alert in the language asked for")
    message: str
    value: float | None
    limit: float | None
    unit: str
    provisional: bool
    retroactive: bool
    period_start: str | None
    assignee: str | None
    acknowledged_by: str | None
    escalation_step: int
    flaps: int
    opened_at: str
    updated_at: str
    acknowledged_at: str | None
    resolved_at: str | None
    closed_at: str | None
    condition: Literal["ongoing", "ended"] = Field(
        description="What the rules see (officers' actions never change it): a case resolved while"
        " its condition persists stays ongoing"
    )
    condition_since: str | None
    ended_at: str | None
    previous_id: int | None = Field(description="The case of the previous episode of the same key")
    resolution: str = Field(description="Why it was resolved (an officer's reason, or the rules')")
    current_value: float | None = Field(description="The latest value of its condition (running average)")
    current_at: str | None
    responses: list[ResponseOut] = Field(
        description="The factory operator's answers (cause and corrective action), oldest first"
    )


class ExceedanceOut(BaseModel):
    id: int
    case_id: int | None
    factory: str
    device: str
    channel: str
    rule: str
    averaging: str = Field(description="1h, 8h, 24h or instant")
    period_start: str
    period_end: str
    average: float
    limit: float
    unit: str
    basis: str = Field(description="e.g. corrected to 7 % O2, as measured")
    method: str = Field(description="The averaging method and its version (eit/standards/methods.yaml)")
    origin: str
    retroactive: bool
    provisional: bool
    outcome: str | None = Field(
        description="A provisional record's outcome once decided: confirmed or withdrawn"
    )
    decided_at: str | None
    recorded_at: str


class AuditOut(BaseModel):
    at: str
    actor: str
    action: str
    detail: str


class AlertDetailOut(AlertOut):
    audit: list[AuditOut]


class ResolveIn(BaseModel):
    reason: str = Field(min_length=1, max_length=4000, description="Why the case is resolved")


class NoteIn(BaseModel):
    note: str = Field(default="", max_length=4000, description="Optional note for the audit trail")


class AssignIn(BaseModel):
    assignee: str = Field(min_length=1, max_length=63, description="The officer account to assign to")


class CommentIn(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


class ResponseIn(BaseModel):
    cause: str = Field(min_length=1, max_length=4000, description="What caused the alert")
    corrective_action: str = Field(min_length=1, max_length=4000, description="What the factory did about it")


class UserOut(BaseModel):
    name: str
    role: str
    factory: str | None
    officer: str | None = Field(description="The site registry's officer this account logs in as")
    disabled: bool
    created_at: str


class UserIn(BaseModel):
    name: str = Field(min_length=1, max_length=63)
    role: Literal["officer", "supervisor", "admin", "operator"]
    factory: str | None = Field(default=None, max_length=63, description="Operators only: their factory")
    officer: str | None = Field(
        default=None, max_length=63, description="Officer roles only: the registry officer it logs in as"
    )
    password: str = Field(min_length=8, max_length=1024)


class OfficerLinkIn(BaseModel):
    officer: str | None = Field(
        max_length=63, description="The site registry's officer the account logs in as (null: none)"
    )


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"]
    expires_in: int = Field(description="Seconds until the token expires")
    expires_at: str
    user: UserOut


class DeadLetterOut(BaseModel):
    id: int | None
    received_at: str = Field(description="When it was first received")
    last_received_at: str = Field(description="When it was last received (a repeat counts, kept once)")
    count: int = Field(description="How many times it was received")
    topic: str
    reason: str
    detail: str
    location: str
    payload: str


class DeadLettersOut(BaseModel):
    counts: dict[str, int] = Field(description="All dead letters kept, by reason (a repeat counts once)")
    letters: list[DeadLetterOut]


class NotificationOut(BaseModel):
    id: int
    notifier: str = Field(description="The notifier's name (its kind unless named)")
    alert_id: int
    event: str = Field(description="opened, escalated, resolved, ...")
    step: int = Field(description="The escalation step the event belongs to")
    recipient: str = Field(description="The officer's id, or * for everyone (webhook, MQTT, ...)")
    state: Literal["pending", "delivered", "expired"]
    failing: bool = Field(description="Pending after at least one failed attempt")
    attempts: int
    last_error: str = Field(description="Why the last failed attempt failed (kept once delivered)")
    idempotency_key: str = Field(description="Sent with every attempt: receivers drop repeats by it")
    queued_at: str
    last_attempt_at: str | None
    next_attempt_at: str | None = Field(description="When it is tried again (pending only)")
    delivered_at: str | None
    expires_at: str = Field(description="Given up if not delivered by then")


class OfficerOut(BaseModel):
    name: str = Field(description="The account: what an alert is assigned to")
    role: str
    officer: str | None = Field(description="The site registry's officer the account logs in as")
    officer_name: str | None = Field(description="That officer's name in the site registry")
    on_duty: bool | None = Field(
        description="Whether that officer is responsible for the factory asked about (null: none asked)"
    )
