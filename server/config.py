"""Configuration of the server process (`eit serve`): a YAML file plus EIT_* variables.

Environment variables override file keys, ``__`` separating levels: ``EIT_MQTT__PORT=1884``,
``EIT_STORE__KIND=influxdb``. Relative paths are taken from the configuration file's folder.

The file is read by the project's one YAML loader (:mod:`eit.confread`: lines, duplicate keys,
bounds) and validated with pydantic models, typed end to end: the sections below, the ingest's
and the rules' settings, and the settings class of the store kind and of each notifier kind the
file names (each kind's own module: :data:`ingest.store.STORE_KINDS`,
:data:`alerts.notifiers.NOTIFIER_KINDS`). Every problem is reported at once, each with the file,
line and key path, or the EIT_* variable that set the value.

Before validation, values are brought into the models' terms by field type, the same for every
section and kind: a key set to nothing counts as absent; a ``SecretStr`` field is read from
``key``, ``key_file`` or ``key_env`` (never printed); a ``Path`` is taken from the file's folder;
a number where text is expected is that text (``database: 2024``); one text where a list of text
is expected is a list of one.
"""

from __future__ import annotations

import math
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from alerts.notifiers import NOTIFIER_KINDS, NotifierSettings
from alerts.settings import RuleSettings
from eit.confread import (
    Loc,
    SecretError,
    apply_env_overrides,
    describe,
    key_path,
    line_of,
    read_secret,
    read_yaml,
    resolve_path,
)
from eit.errors import ConfigError, Problem
from eit.mqttconf import PROTOCOLS, MqttSettings, TlsSettings, check_username
from ingest.settings import IngestSettings
from ingest.store import STORE_KINDS, StoreSettings

M = TypeVar("M", bound=BaseModel)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def _existing_file(path: Path) -> Path:
    if not path.is_file():
        raise ValueError(f"file {path} not found")
    return path


ExistingFile = Annotated[Path, AfterValidator(_existing_file)]


class LoginSection(_Section):
    """Login throttling and hashing (server/api/loginguard.py)."""

    # Attempts per client address within window_s (refilled evenly; a success gives one back).
    per_address: int = Field(20, ge=1, le=100_000)
    # Failed logins for one account from one address within window_s.
    per_account_address: int = Field(5, ge=1, le=100_000)
    # Failed logins for one account from all addresses within window_s after which an address
    # that failed on it waits; an address that has not failed still gets its try.
    per_account: int = Field(50, ge=1, le=100_000)
    window_s: float = Field(300.0, ge=1, le=86_400)
    # Password hashes at once (each takes 64 MiB); logins waiting beyond waiting_max get 429.
    concurrent_hashes: int = Field(1, ge=1, le=64)
    waiting_max: int = Field(16, ge=1, le=10_000)


class HttpSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    # Bearer tokens of the API expire after this long.
    token_ttl_s: float = Field(12 * 3600.0, ge=60, le=30 * 86400)
    # A factory whose newest reading is older than this shows as "no data" on the pages.
    no_data_after_s: float = Field(900.0, gt=0)
    # /metrics and /readyz answer a request carrying this token (Authorization: Bearer ...);
    # give it as metrics_token, metrics_token_file or metrics_token_env.
    metrics_token: SecretStr | None = None
    # /metrics for everyone (behind a firewall that keeps it private, for instance).
    metrics_public: bool = False
    # Requests from this machine (127.0.0.1, ::1) may read /metrics and /readyz without the token.
    # Turn off behind a reverse proxy on the same machine that does not pass X-Forwarded-For.
    trust_loopback: bool = True
    # The reverse proxies whose X-Forwarded-For names the client (addresses or networks); from
    # any other address the header is ignored, so a client cannot choose the address that login
    # throttling and the loopback rule see.
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    # Request bodies larger than this are refused (413) before they are read.
    max_body_bytes: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    login: LoginSection = LoginSection()

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        import ipaddress

        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                example = "e.g. 10.0.0.5, 10.0.0.0/24"
                raise ValueError(f"{item!r} is not an IP address or network ({example})") from None
        return value


class HealthSettings(_Section):
    """When `eit serve` calls itself unhealthy, and when it gives up (docs/health.md)."""

    # A stage with work waiting that has not progressed for this long is stuck (/healthz: 503).
    stuck_after_s: float = Field(60.0, gt=0)
    # A worker that fails is restarted; when it fails more than max_restarts times within
    # restart_window_s, `eit serve` exits (code 70) so that systemd or compose start it afresh.
    max_restarts: int = Field(5, ge=0)
    restart_window_s: float = Field(300.0, gt=0)


class TlsSection(_Section):
    ca_file: ExistingFile | None = None
    cert_file: ExistingFile | None = None
    key_file: ExistingFile | None = None
    insecure: bool = False  # skip host-name check (test brokers with self-made certificates)

    def settings(self) -> TlsSettings:
        return TlsSettings(self.ca_file, self.cert_file, self.key_file, self.insecure)


class BrokerAdmin(_Section):
    """How `eit devices add|revoke` reach the running broker's dynamic-security control topic:
    the administrator's login (`eit devices init` makes it), bound to the client id of the same
    name. Host, port and TLS default to the ingest's (section ``mqtt``)."""

    host: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    tls: TlsSection | None = None
    username: str = "eit-admin"
    password: SecretStr | None = None
    timeout_s: float = Field(10.0, gt=0, le=300)

    @model_validator(mode="before")
    @classmethod
    def _retired(cls, data: Any) -> Any:
        if isinstance(data, dict) and ({"passwd_file", "acl_file"} & set(data)):
            raise ValueError(
                "passwd_file and acl_file are retired: the broker's logins live in Mosquitto's "
                "dynamic-security plugin, changed through the running broker (docs/broker.md); give "
                "the administrator's login here (username, password_file or password_env)"
            )
        return data

    def settings(self, mqtt: MqttSettings) -> MqttSettings:
        tls = self.tls.settings() if self.tls is not None else mqtt.tls
        return MqttSettings(
            host=self.host or mqtt.host,
            port=self.port or (mqtt.port if self.tls is None else 8883),
            client_id=self.username,
            protocol="5",
            username=self.username,
            password=self.password.get_secret_value() if self.password else None,
            tls=tls,
            keepalive_s=mqtt.keepalive_s,
        )


class MqttSection(_Section):
    """The ingest's broker connection (the agent reads the same keys: eit.mqttconf.read_mqtt)."""

    host: str = "localhost"
    port: int | None = Field(None, ge=1, le=65535)  # default: 8883 with TLS, 1883 without
    client_id: str = "eit-ingest"
    protocol: Literal["5", "3.1.1"] = "5"
    username: str | None = None
    password: SecretStr | None = None
    tls: TlsSection | None = None
    keepalive_s: int = Field(30, ge=5, le=3600)

    @field_validator("username")
    @classmethod
    def _placeholder(cls, username: str | None) -> str | None:
        if username is not None and (problem := check_username(username)) is not None:
            raise ValueError(problem)
        return username

    def settings(self) -> MqttSettings:
        tls = self.tls.settings() if self.tls is not None else None
        return MqttSettings(
            host=self.host,
            port=self.port or (8883 if tls else 1883),
            client_id=self.client_id,
            protocol=self.protocol,
            username=self.username,
            password=self.password.get_secret_value() if self.password else None,
            tls=tls,
            keepalive_s=self.keepalive_s,
        )


assert set(get_args(MqttSection.model_fields["protocol"].annotation)) == set(PROTOCOLS)


class StateSection(_Section):
    path: Path | None = None  # default: data_dir/state.db
    url: SecretStr | None = None  # PostgreSQL for the alert lifecycle (default: the SQLite path)

    @field_validator("url")
    @classmethod
    def _postgresql(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None and not url.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError("expected a postgresql:// URL (leave it out for the embedded database)")
        return url


def _site_exists(path: Path) -> Path:
    if not path.is_file():
        raise ValueError(f"site registry {path} not found")
    return path


class ServeFile(_Section):
    """The file as written. ``store`` and ``notifiers`` are checked for shape here and validated
    with the settings class of the kind each names."""

    site: Annotated[Path, AfterValidator(_site_exists)]
    data_dir: Path | None = None  # default: data/ beside the file
    mqtt: MqttSection = Field(default_factory=MqttSection)
    store: dict[str, Any] = Field(default_factory=dict)
    state: StateSection = Field(default_factory=StateSection)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    rules: RuleSettings = Field(default_factory=RuleSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    notifiers: list[dict[str, Any]] = Field(default_factory=list)
    broker: BrokerAdmin = Field(default_factory=BrokerAdmin)


@dataclass(frozen=True, slots=True)
class ServeConfig:
    source: str
    site: Path
    data_dir: Path
    mqtt: MqttSettings
    store: StoreSettings
    state_path: Path
    ingest: IngestSettings
    rules: RuleSettings
    http: HttpSettings
    notifiers: tuple[NotifierSettings, ...] = ()
    # PostgreSQL for the state database (default: the SQLite file state_path); its URL may hold a password.
    state_url: str | None = field(default=None, repr=False)
    broker: BrokerAdmin = field(default_factory=BrokerAdmin)
    health: HealthSettings = field(default_factory=HealthSettings)


def load_serve_config(path: Path | str, environ: dict[str, str] | None = None) -> ServeConfig:
    path = Path(path)
    doc = read_yaml(path)
    data = {} if doc.data is None else doc.data
    if not isinstance(data, dict):
        raise ConfigError(str(path), "", "expected a mapping at the top level", 1)
    origins = apply_env_overrides(data, environ)
    return parse_serve_config(data, str(path), path.parent.resolve(), origins, lines=doc.lines)


def parse_serve_config(
    data: dict[str, Any],
    source: str,
    base_dir: Path,
    origins: dict[str, str] | None = None,
    *,
    lines: Mapping[Loc, int] | None = None,
) -> ServeConfig:
    """Validate a server configuration (as parsed, EIT_* variables applied); every problem found
    is reported in one ConfigError."""
    return _Reader(data, source, base_dir, origins or {}, lines or {}).config()


class _Reader:
    def __init__(
        self,
        data: dict[str, Any],
        source: str,
        base_dir: Path,
        origins: dict[str, str],
        lines: Mapping[Loc, int],
    ) -> None:
        self.data = data
        self.source = source
        self.base_dir = base_dir
        self.origins = origins
        self.lines = lines
        self.problems: list[Problem] = []
        self._reported: set[Loc] = set()  # secrets already reported: no second problem for them

    def config(self) -> ServeConfig:
        file = self.validate(ServeFile, self.data, ())
        data_dir = (file.data_dir if file and file.data_dir else None) or self.base_dir / "data"
        store = self.store(data_dir)
        notifiers = self.notifiers()
        if self.problems:
            raise ConfigError.of(sorted(self.problems, key=lambda p: math.inf if p.line is None else p.line))
        assert file is not None and store is not None
        if not notifiers:
            notifiers = [NOTIFIER_KINDS.get("log").settings.model_validate({"kind": "log"})]
        return ServeConfig(
            source=self.source,
            site=file.site,
            data_dir=data_dir,
            mqtt=file.mqtt.settings(),
            store=store,
            state_path=file.state.path or data_dir / "state.db",
            state_url=file.state.url.get_secret_value() if file.state.url else None,
            ingest=file.ingest,
            rules=file.rules,
            http=file.http,
            notifiers=tuple(notifiers),
            broker=file.broker,
            health=file.health,
        )

    # -- plugin sections ---------------------------------------------------------------------------
    def store(self, data_dir: Path) -> StoreSettings | None:
        raw = self.data.get("store") or {}
        if not isinstance(raw, dict):
            return None  # reported by ServeFile
        kind = raw.get("kind", "sqlite")
        if kind not in STORE_KINDS:
            self.add(("store", "kind"), STORE_KINDS.unknown(kind))
            return None
        settings = STORE_KINDS.get(kind).settings
        return self.validate(settings, {"kind": kind, **raw}, ("store",), {"data_dir": data_dir})

    def notifiers(self) -> list[NotifierSettings]:
        raw = self.data.get("notifiers") or []
        if not isinstance(raw, list):
            return []  # reported by ServeFile
        found = []
        names: dict[str, int] = {}  # each notifier's name (its queue's) -> its index
        for index, entry in enumerate(raw):
            loc: Loc = ("notifiers", index)
            if not isinstance(entry, dict):
                continue  # reported by ServeFile
            kind = entry.get("kind")
            if kind is None:
                self.add(
                    (*loc, "kind"), f"required key is missing (one of {', '.join(NOTIFIER_KINDS.names())})"
                )
            elif kind not in NOTIFIER_KINDS:
                self.add((*loc, "kind"), NOTIFIER_KINDS.unknown(kind))
            else:
                settings = self.validate(NOTIFIER_KINDS.get(kind).settings, entry, loc)
                if settings is not None:
                    found.append(settings)
                    named = names.setdefault(settings.queue_name, index)
                    if named != index:
                        self.add(
                            (*loc, "name" if settings.name else "kind"),
                            f"notifiers[{named}] is named '{settings.queue_name}' too:"
                            " give each notifier of one kind a name of its own (name: ...)",
                        )
        return found

    # -- validation and its problems ---------------------------------------------------------------
    def validate(
        self, model: type[M], value: Any, loc: Loc, context: dict[str, Any] | None = None
    ) -> M | None:
        prepared = self.prepare(model, value, loc)
        try:
            return model.model_validate(prepared, context=context)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                where = (*loc, *error["loc"])
                if not any(where[: len(r)] == r for r in self._reported):
                    self.add(where, _message(error, model, tuple(error["loc"])))
            return None

    def prepare(self, model: type[BaseModel], value: Any, loc: Loc) -> Any:
        """``value`` in the model's terms (see the module's docstring)."""
        if not isinstance(value, dict):
            return value
        out = {k: v for k, v in value.items() if v is not None}
        for name, info in model.model_fields.items():
            key = info.alias or name
            kind = _unoptional(info.annotation)
            if kind is SecretStr:
                forms = {f: out.pop(f) for f in (key, f"{key}_file", f"{key}_env") if f in out}
                try:
                    secret = read_secret(key, forms, self.base_dir)
                except SecretError as exc:
                    self.add((*loc, exc.key), exc.problem)
                    self._reported.add((*loc, key))
                    continue
                if secret is not None:
                    out[key] = secret
            elif key in out:
                out[key] = self._in_terms(kind, out[key], (*loc, key))
        return out

    def _in_terms(self, kind: Any, value: Any, loc: Loc) -> Any:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if kind is Path and isinstance(value, str):
            return resolve_path(value, self.base_dir)
        if (kind is str or _is_text_literal(kind)) and number:
            return str(value)
        if get_origin(kind) is tuple and get_args(kind) == (str, ...):
            if isinstance(value, str):
                return (value,)
            if isinstance(value, list):
                return tuple(
                    str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for v in value
                )
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            return self.prepare(kind, value, loc)
        return value

    def add(self, loc: Loc, problem: str) -> None:
        env_name = self.origins.get(".".join(str(k) for k in loc))
        if env_name is not None:
            self.problems.append(
                Problem(f"environment variable {env_name}", key_path(self.data, loc), problem)
            )
        else:
            self.problems.append(
                Problem(self.source, key_path(self.data, loc), problem, line_of(self.lines, loc))
            )


def _unoptional(annotation: Any) -> Any:
    """The type a field holds when given: ``X`` of ``X | None`` and of ``Annotated[X, ...]``."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            annotation = args[0]
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _is_text_literal(kind: Any) -> bool:
    return get_origin(kind) is Literal and all(isinstance(a, str) for a in get_args(kind))


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model that holds the key at ``loc`` (relative to ``model``)."""
    for key in loc[:-1]:
        fields = {info.alias or name: info for name, info in model.model_fields.items()}
        info = fields.get(str(key))
        kind = _unoptional(info.annotation) if info is not None else None
        if not (isinstance(kind, type) and issubclass(kind, BaseModel)):
            return None
        model = kind
    return model


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


_QUOTED = re.compile(r"'([^']*)'")


def _message(error: Any, model: type[BaseModel], loc: Loc) -> str:
    """A pydantic error in the house's words (as eit.confread.Section words them)."""
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    holder = _model_at(model, loc) if loc else None
    if kind == "missing":
        info = holder.model_fields.get(str(loc[-1])) if holder else None
        if holder is not None and info is None:  # an alias
            info = next((i for i in holder.model_fields.values() if i.alias == loc[-1]), None)
        if info is not None and _unoptional(info.annotation) is SecretStr:
            return f"required key is missing (give {loc[-1]}, {loc[-1]}_file or {loc[-1]}_env)"
        return "required key is missing"
    if kind == "extra_forbidden":
        known = sorted(i.alias or n for n, i in holder.model_fields.items()) if holder else []
        return "unknown key" + (f" (known keys here: {', '.join(known)})" if known else "")
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, got {describe(value)}"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number, got {describe(value)}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {describe(value)}"
    if kind == "string_type":
        return f"expected text, got {describe(value)}"
    if kind == "path_type":
        return f"expected a file path, got {describe(value)}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping, got {describe(value)}"
    if kind in ("list_type", "tuple_type"):
        return f"expected a list, got {describe(value)}"
    if kind == "finite_number":
        return "must be a finite number"
    if kind == "greater_than":
        return f"{_fmt(value)} must be greater than {_fmt(ctx['gt'])}"
    if kind == "greater_than_equal":
        return f"{_fmt(value)} is below the minimum {_fmt(ctx['ge'])}"
    if kind == "less_than_equal":
        return f"{_fmt(value)} is above the maximum {_fmt(ctx['le'])}"
    if kind == "less_than":
        return f"{_fmt(value)} must be less than {_fmt(ctx['lt'])}"
    if kind == "literal_error":
        choices = _QUOTED.findall(str(ctx.get("expected", "")))
        return f"'{value}' is not one of {', '.join(choices)}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return str(error["msg"])
