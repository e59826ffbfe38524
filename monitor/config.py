"""The one place settings are read.

Precedence, highest first: command-line flag > environment variable (`FINSENT_<NAME>`)
> TOML file (`--config PATH` or `FINSENT_CONFIG`) > default. `load_settings` returns a
frozen `Settings`; nothing else in the project reads the environment for configuration.
"""

from __future__ import annotations

import contextlib
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "FINSENT_"


class ConfigError(Exception):
    """A setting has a bad value; the message names it and says what would be valid."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DetectSettings(_Frozen):
    """Spike detection; see the README's tuning guide for what each one trades off."""

    window_minutes: int = Field(
        15, ge=1, le=24 * 60, description="the shortest horizon (and the dashboard's recent window)"
    )
    extra_windows_minutes: tuple[int, ...] = Field(
        (60, 240, 720, 1440), description="longer horizons also tested (sparse keys whose bad news unfolds over a day)"
    )
    baseline_days: float = Field(7.0, gt=0, le=90, description="trailing span the baseline is estimated from")
    false_alarm_budget: float = Field(
        0.05,
        gt=0,
        le=10,
        description="expected false alerts per key per 30 days of quiet traffic, shared over horizons",
    )
    min_negative: int = Field(3, ge=1, description="fewest negative documents (stories + copy evidence) to fire")
    min_negative_ratio: float = Field(
        2.0, ge=0, description="and at least this multiple of the negatives the key usually has in that horizon"
    )
    min_lift: float = Field(1.5, ge=1.0, description="window negative share must be at least this multiple of baseline")
    min_share_delta: float = Field(0.15, ge=0, le=1, description="and at least this many points above baseline")
    warmup_minutes: int = Field(120, ge=0, description="history a key needs before it can fire")
    resolve_minutes: int = Field(15, ge=0, description="how long a key must stay below the resolve level to resolve")
    prior_strength: float = Field(
        30.0, ge=0, description="pseudo-documents of shrinkage toward the population when it cannot be estimated"
    )
    max_concentration: float = Field(
        200.0, ge=2, description="cap on baseline certainty in pseudo-documents (real shares drift between windows)"
    )
    overdispersion: float = Field(
        0.6, ge=0, description="volume test: variance = mean + overdispersion * mean^2 (real counts are bursty)"
    )
    rate_prior_hours: float = Field(
        24.0, ge=0, description="hours of the population's typical volume a key's own volume is shrunk with"
    )
    copy_weight: float = Field(0.25, ge=0, le=1, description="evidence one copy of a negative story adds")
    copy_cap: float = Field(0.5, ge=0, description="copy evidence is capped at this multiple of the negative stories")
    fresh_minutes: int = Field(2, ge=1, le=60, description="a key can start firing only this soon after a new story")
    interval_seconds: float = Field(30.0, gt=0, description="how often the live detector ticks")
    allowed_lateness_minutes: int = Field(2, ge=0, description="replay watermark lag behind max event time")
    novelty_horizon_minutes: int = Field(360, ge=0, description="near-duplicates within this horizon count once")
    novelty_threshold: float = Field(0.7, gt=0, le=1, description="Jaccard similarity that makes two texts duplicates")
    pending_minutes: int = Field(0, ge=0, description="a spike must hold this long before it fires")

    @field_validator("extra_windows_minutes")
    @classmethod
    def _windows(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(w < 1 or w > 24 * 60 for w in v):
            raise ValueError("extra window lengths must be between 1 and 1440 minutes")
        return tuple(sorted(set(v)))


class AlertSettings(_Frozen):
    """Alertmanager-style timing, with named defaults."""

    group_by: tuple[str, ...] = ("key_kind", "key_value")
    group_wait_seconds: float = Field(30.0, ge=0)
    group_interval_seconds: float = Field(300.0, ge=0)
    repeat_interval_seconds: float = Field(4 * 3600.0, ge=0)
    send_resolved: bool = True
    inhibit_entity_by_topic: bool = False
    # Mute a topic alert while the window's documents naming firing companies carry at least
    # `inhibit_topic_share` of its excess negatives (the topic surge is their echo).
    inhibit_topic_by_entity: bool = False
    inhibit_topic_share: float = Field(0.5, gt=0, le=1)
    sender_interval_seconds: float = Field(5.0, gt=0)
    max_attempts: int = Field(12, ge=1)
    evidence_count: int = Field(5, ge=0, le=10)
    digest_channel: str | None = None
    digest_cron: str = "0 18 * * *"
    # `alertmanager` channels: firing alerts are re-posted this often, well inside the
    # endsAt each post sets (15 minutes), so Alertmanager keeps them firing.
    alertmanager_repost_seconds: float = Field(60.0, ge=5, le=300)


_INPUT_FIELDS = ("id", "text", "title", "published_at", "source", "url", "lang", "kind", "tickers")


class InputSettings(_Frozen):
    """How the input topics' records map onto the message contract (`[input]`).

    Each field names a dotted path into the record (`text = "payload.body"`); a field left
    out is read from the top-level key of its own name. A Kafka Connect JSON envelope is
    unwrapped first; paths may be written against the payload or the whole envelope.
    """

    id: str | None = None
    text: str | None = None
    title: str | None = None
    published_at: str | None = Field(None, description="RFC 3339, or epoch seconds / milliseconds")
    source: str | None = None
    url: str | None = None
    lang: str | None = None
    kind: str | None = None
    tickers: str | None = None
    id_from_key: bool = Field(False, description="take the document id from the Kafka record key when it has one")
    unwrap_envelope: bool = Field(True, description="unwrap Kafka Connect's {schema, payload} JSON envelope")
    required: tuple[str, ...] = Field(
        ("text",), description="fields whose path must be present, else the record is dead-lettered"
    )

    @field_validator("id", "text", "title", "published_at", "source", "url", "lang", "kind", "tickers")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = v.strip()
        if not v or any(not part for part in v.split(".")):
            raise ValueError(f"{v!r} is not a dotted path (e.g. payload.body)")
        return v

    @field_validator("required")
    @classmethod
    def _required(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [f for f in v if f not in _INPUT_FIELDS]
        if unknown:
            raise ValueError(f"unknown field(s) {unknown}; choose from {', '.join(_INPUT_FIELDS)}")
        return v

    def paths(self) -> dict[str, str]:
        """The mapped fields and their paths (unmapped fields are absent)."""
        return {f: p for f in _INPUT_FIELDS if (p := getattr(self, f)) is not None}


class FeedSource(_Frozen):
    """A news feed polled by `finsent sources run` (`[[sources]]`)."""

    name: str = Field(min_length=1, max_length=100)
    type: Literal["rss", "atom"] = Field("rss", description="informative: the format is detected from the document")
    url: str
    topic: str = "news"
    interval_seconds: float = Field(300.0, ge=1, le=7 * 86_400)
    timeout_seconds: float = Field(20.0, gt=0, le=300)
    max_backoff_seconds: float = Field(3600.0, ge=1)
    max_text_chars: int = Field(20_000, ge=100, le=1_000_000)
    extract_text: bool = Field(
        False, description="fetch each new item's page and take its article text (needs the `extract` extra)"
    )

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"source url must be http(s), got {v[:40]!r}")
        return v


class RetentionSettings(_Frozen):
    """How long rows are kept (`[retention]`); the hourly purge job applies it in batches.

    Event-time tables (documents, minute counts) are aged against the stream's newest
    event, not the wall clock, so a backfill of last year's data is not purged as it
    arrives. Minute counts are rolled up into hourly (then daily) counts before they go,
    so the dashboard's long views keep their history; they are kept at least the
    detector's baseline span plus a day, so a purge changes no alert. 0 keeps forever.
    """

    enabled: bool = True
    interval_minutes: float = Field(60.0, gt=0)
    batch_rows: int = Field(5000, ge=1)
    documents_days: float = Field(30.0, ge=0)
    minute_counts_days: float = Field(30.0, ge=0)
    hourly_rollups_days: float = Field(400.0, ge=0)  # then rolled into daily counts, kept
    notifications_days: float = Field(30.0, ge=0)  # sent, failed or silenced ones (with their attempts); alert events
    dead_letters_days: float = Field(30.0, ge=0)
    resolved_alerts_days: float = Field(180.0, ge=0)
    # Bounded keys: a symbol no watchlist entry names counts as a company key only from its
    # `entity_min_sightings`-th sighting; sightings idle this long are forgotten.
    entity_min_sightings: int = Field(2, ge=1)
    entity_sightings_days: float = Field(7.0, gt=0)


class EntityUniverseSettings(_Frozen):
    """The default company universe shipped with the package (`[entity_universe]`).

    Off: companies are linked only through cashtags, publisher tickers and `[[entities]]`."""

    enabled: bool = True
    path: str | None = None  # another universe file of the same format (default: the shipped one)


class Entity(_Frozen):
    symbol: str
    name: str | None = None
    aliases: tuple[str, ...] = ()

    @field_validator("symbol")
    @classmethod
    def _upper(cls, v: str) -> str:
        v = v.strip().upper()
        if not v:
            raise ValueError("an entity needs a non-empty symbol")
        return v


ChannelType = Literal["webhook", "slack", "teams", "feishu", "dingtalk", "alertmanager"]


class Channel(_Frozen):
    name: str
    type: ChannelType
    url: SecretStr | None = None
    url_env: str | None = None
    secret: SecretStr | None = None
    secret_env: str | None = None
    rate_per_minute: float | None = None
    timeout_seconds: float = Field(10.0, gt=0)
    # The language of the message text: "zh" writes Chinese titles and bodies (Feishu,
    # DingTalk, Teams, webhooks, Alertmanager annotations); Slack stays English.
    locale: Literal["en", "zh"] = "en"

    @model_validator(mode="after")
    def _resolve_env(self) -> Channel:
        # Values named by *_env are read here, the one place settings come from.
        if self.url is None and self.url_env:
            val = os.environ.get(self.url_env)
            if not val:
                raise ValueError(f"channel {self.name!r}: environment variable {self.url_env} (url_env) is not set")
            object.__setattr__(self, "url", SecretStr(val))
        if self.url is None:
            raise ValueError(f"channel {self.name!r} needs `url` or `url_env`")
        if self.secret is None and self.secret_env:
            val = os.environ.get(self.secret_env)
            if not val:
                raise ValueError(
                    f"channel {self.name!r}: environment variable {self.secret_env} (secret_env) is not set"
                )
            object.__setattr__(self, "secret", SecretStr(val))
        return self


class Route(_Frozen):
    """Send matching alerts to `channels`. Empty match fields match everything."""

    channels: tuple[str, ...]
    key_kind: Literal["topic", "entity"] | None = None
    key_value: tuple[str, ...] = ()
    topic: tuple[str, ...] = ()
    severity: tuple[str, ...] = ()
    continue_: bool = Field(True, alias="continue")


def _split_list(v: Any) -> Any:
    if isinstance(v, str):
        return tuple(p.strip() for p in v.split(",") if p.strip())
    return v


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
        populate_by_name=True,
    )

    database_url: str = Field("sqlite:///finsent.db", repr=False)  # may hold a password
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_topics: Annotated[tuple[str, ...], NoDecode] = ("news", "comments")
    kafka_group: str = "finsent"
    model: str = "auto"  # the shipped English model for English, the multilingual one for the rest; or a folder
    metrics_port: int = Field(9108, ge=0, le=65535)

    # Ingest
    batch_max_records: int = Field(512, ge=1, le=100_000)
    poll_timeout_ms: int = Field(500, ge=1, le=60_000)
    max_poll_interval_ms: int = Field(10_000, ge=1000)
    session_timeout_ms: int = Field(10_000, ge=1000)
    max_message_bytes: int = Field(2 * 1024 * 1024, ge=1024)
    max_future_skew_seconds: int = Field(86_400, ge=0)
    stuck_after_seconds: float = Field(120.0, gt=0)
    # After SIGTERM/SIGINT: how long the batch in flight may still finish (then it is
    # abandoned, its offsets uncommitted), and the hard bound on the whole stop.
    stop_grace_seconds: float = Field(5.0, ge=0)
    stop_timeout_seconds: float = Field(15.0, gt=0)

    # Results out: stored documents to `<topic>.scored`, alert transitions to `alerts_topic`
    publish_results: bool = True
    alerts_topic: str = Field("finsent.alerts", min_length=1, max_length=249)

    # Inference
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    max_length: int = Field(128, ge=8, le=512)
    inference_batch_size: int = Field(256, ge=1)

    # Dashboard
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = Field(8501, ge=1, le=65535)
    dashboard_url: str = "http://127.0.0.1:8501"
    dashboard_password: SecretStr | None = None

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    detect: DetectSettings = DetectSettings()  # type: ignore[call-arg]
    alerting: AlertSettings = AlertSettings()  # type: ignore[call-arg]
    retention: RetentionSettings = RetentionSettings()  # type: ignore[call-arg]
    input: InputSettings = InputSettings()  # type: ignore[call-arg]
    entity_universe: EntityUniverseSettings = EntityUniverseSettings()  # type: ignore[call-arg]
    entities: tuple[Entity, ...] = ()
    channels: tuple[Channel, ...] = ()
    routes: tuple[Route, ...] = ()
    sources: tuple[FeedSource, ...] = ()

    @field_validator("kafka_topics", mode="before")
    @classmethod
    def _topics(cls, v: Any) -> Any:
        v = _split_list(v)
        if not v:
            raise ValueError("at least one topic is needed, e.g. news,comments")
        return v

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, v: str) -> str:
        from sqlalchemy.engine import make_url

        try:
            u = make_url(v)
        except Exception:
            raise ValueError("not a database URL; use e.g. sqlite:///finsent.db or postgresql://user@host/db") from None
        if u.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError(f"backend {u.get_backend_name()!r} is not supported; use sqlite or postgresql")
        return v

    @model_validator(mode="after")
    def _check_retention(self) -> Settings:
        r, d = self.retention, self.detect
        need = d.baseline_days + 1
        if r.minute_counts_days and r.minute_counts_days < need:
            raise ValueError(
                f"retention.minute_counts_days = {r.minute_counts_days:g} is shorter than the detector's baseline "
                f"(detect.baseline_days = {d.baseline_days:g}) plus a day; set it to at least {need:g} (or 0 to keep all)"
            )
        return self

    @model_validator(mode="after")
    def _check_refs(self) -> Settings:
        names = [c.name for c in self.channels]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"channel names must be unique; repeated: {', '.join(sorted(dupes))}")
        src = [x.name for x in self.sources]
        if len(src) != len(set(src)):
            raise ValueError(f"source names must be unique; repeated: {sorted({n for n in src if src.count(n) > 1})}")
        for r in self.routes:
            unknown = [c for c in r.channels if c not in names]
            if unknown:
                raise ValueError(f"route names unknown channel(s) {unknown}; configured: {names}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = settings_cls.model_config.get("toml_file")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    def redacted(self) -> dict[str, Any]:
        """The effective configuration as plain data, secrets masked."""
        from monitor.redact import redact_url

        data = self.model_dump(mode="json", by_alias=True)
        data["database_url"] = redact_url(self.database_url)
        for ch in data["channels"]:
            for k in ("url", "secret"):
                if ch.get(k):
                    ch[k] = "**********"
        if data.get("dashboard_password"):
            data["dashboard_password"] = "**********"
        return data


def _format_error(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "settings"
        top = str(e["loc"][0]) if e["loc"] else ""
        env = f" ({ENV_PREFIX}{top.upper()})" if top and top in Settings.model_fields else ""
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown setting; see `finsent config` for the valid names"
        parts.append(f"{loc}{env}: {msg}")
    return "invalid configuration: " + "; ".join(parts)


def load_settings(config_path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Read settings once. `overrides` are command-line flags (None values are ignored)."""
    path = config_path or os.environ.get(f"{ENV_PREFIX}CONFIG")
    cls: type[Settings] = Settings
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} does not exist (from --config or {ENV_PREFIX}CONFIG)")
        try:
            with p.open("rb") as fh:
                tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {str(p)!r} is not valid TOML: {exc}") from None
        cls = type("Settings", (Settings,), {"model_config": {**Settings.model_config, "toml_file": p}})
    try:
        settings = cls(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(_format_error(exc)) from None
    _register_secrets(settings)
    return settings


def _register_secrets(settings: Settings) -> None:
    """Tell the redactor every secret value, so none reaches a log line or an error."""
    from sqlalchemy.engine import make_url

    from monitor.redact import register_secrets

    values: list[str | None] = [c.url.get_secret_value() if c.url else None for c in settings.channels]
    values += [c.secret.get_secret_value() if c.secret else None for c in settings.channels]
    if settings.dashboard_password is not None:
        values.append(settings.dashboard_password.get_secret_value())
    with contextlib.suppress(Exception):  # an unparseable URL was rejected by validation already
        values.append(make_url(settings.database_url).password)  # type: ignore[arg-type]
    register_secrets(values)
