"""The platform's configuration: one typed, validated object, loaded once from the environment.

Every timeout, size limit and retry count lives here with its default. `Settings.from_env()` is
the only place that reads `os.environ` for settings.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, get_type_hints


class ConfigError(ValueError):
    """A setting is malformed; the message names the variable."""


def _env_name(name: str) -> str:
    return "INTERVIEW_" + name.upper()


# Settings that keep their conventional, unprefixed variable names.
_PLAIN_ENV_NAMES = {
    "database_url": "DATABASE_URL",
    "sendgrid_api_key": "SENDGRID_API_KEY",
    "openai_api_key": "OPENAI_API_KEY",
    "apivideo_api_key": "APIVIDEO_API_KEY",
    "ray_address": "RAY_ADDRESS",
}


@dataclass(frozen=True)
class Settings:
    # Where `interview up` keeps the embedded database, generated credentials and logs.
    data_dir: Path = Path(".interview")

    # Database. Empty database_url: the embedded PostgreSQL under data_dir.
    database_url: str = ""
    # The services' own role (no superuser, no BYPASSRLS). Empty: derived from database_url.
    service_database_url: str = ""
    service_db_password: str = ""
    embedded_pg_port: int = 54329
    db_pool_min_size: int = 1
    db_pool_max_size: int = 10
    db_acquire_timeout_s: float = 5.0
    db_statement_timeout_s: float = 10.0

    # Control service.
    control_host: str = "127.0.0.1"
    control_port: int = 50051
    grpc_reflection: bool = True
    grpc_max_message_bytes: int = 1 << 20
    grpc_max_concurrent_rpcs: int = 1000
    shutdown_grace_s: float = 5.0
    admin_token: str = ""
    # The edge's and actors' credential: redeem invitations, record session status and transcript.
    service_token: str = ""
    # Key material for encrypting queued links and idempotent responses (and, later, signing
    # candidate tokens). Empty: `interview up` generates one in data_dir.
    secret_key: str = ""
    # Per-credential request rate limit (requests per second, burst); 0 disables it.
    rate_limit_per_s: float = 500.0
    rate_limit_burst: int = 1000
    max_watchers_per_tenant: int = 100
    api_key_cache_ttl_s: float = 30.0

    # Edge (the candidate-facing HTTP/WebSocket server).
    edge_host: str = "127.0.0.1"
    edge_port: int = 8080
    # Invitation links are built from this. Empty: http://{edge_host}:{edge_port}.
    public_base_url: str = ""

    # Input limits.
    max_string_chars: int = 1000
    max_long_text_chars: int = 20000
    max_questions: int = 100
    max_time_limit_s: int = 4 * 3600
    default_page_size: int = 50
    max_page_size: int = 500

    # Invitations.
    invitation_ttl_s: int = 7 * 24 * 3600
    max_invitation_ttl_s: int = 90 * 24 * 3600

    # Email.
    sendgrid_api_key: str = ""
    sendgrid_host: str = "https://api.sendgrid.com"
    sendgrid_timeout_s: float = 10.0
    email_from: str = "interviews@example.com"
    email_from_name: str = "Interviews"
    outbox_poll_interval_s: float = 1.0
    outbox_batch_size: int = 20
    outbox_lease_s: float = 60.0
    outbox_max_attempts: int = 12
    outbox_backoff_base_s: float = 1.0
    outbox_backoff_max_s: float = 300.0

    # Live interviews: the edge, the actors and the Ray cluster.
    ray_namespace: str = "interview"
    # Embedded Ray head started by `interview up` when RAY_ADDRESS is unset.
    embedded_ray_port: int = 6389
    warm_actors: int = 8  # idle interview actors kept ready (each costs ~6 ms CPU/s when idle)
    max_live_interviews: int = 120  # more are refused with close code 1013
    abandon_grace_s: float = 120.0  # a candidate away longer leaves the interview abandoned
    attach_key_ttl_s: float = 10.0  # how long the edge has to open the actor stream
    offline_transcription: bool = False  # pocketsphinx, about 0.2 of a core per speaking candidate
    turn_silence_ms: int = 500
    # Candidate credentials (JWTs signed with a key derived from secret_key).
    candidate_token_ttl_s: int = 24 * 3600
    client_secret_ttl_s: int = 600
    # Browser Origins allowed on the candidate WebSocket, comma-separated; empty: the edge's own.
    allowed_origins: str = ""
    ws_max_message_bytes: int = 256 * 1024
    # Candidate audio rate limit: sustained multiple of real time, and a burst allowance in
    # seconds of audio (a reconnecting SDK flushes what it queued, up to ~15 s).
    audio_rate_factor: float = 2.0
    audio_burst_s: float = 30.0
    max_events_per_s: float = 200.0  # non-audio client events

    # Vendors, used by later parts.
    openai_api_key: str = ""
    apivideo_api_key: str = ""
    ray_address: str = ""

    log_level: str = "INFO"

    _secret_fields = frozenset({"admin_token", "service_token", "secret_key", "sendgrid_api_key",
                                "openai_api_key", "apivideo_api_key", "service_db_password"})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name.startswith("_"):
                continue
            var = _PLAIN_ENV_NAMES.get(f.name, _env_name(f.name))
            raw = env.get(var)
            if raw is None:
                continue
            values[f.name] = _parse(var, raw, hints[f.name])
        values.update(overrides)
        settings = cls(**values)
        settings.validate()
        return settings

    def replace(self, **changes: Any) -> Settings:
        updated = dataclasses.replace(self, **changes)
        updated.validate()
        return updated

    def validate(self) -> None:
        if self.warm_actors < 0:
            raise ConfigError("INTERVIEW_WARM_ACTORS must not be negative")
        for name in ("control_port", "edge_port", "embedded_pg_port", "embedded_ray_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise ConfigError(f"{_env_name(name)}: {port} is not a port")
        positive = ("db_pool_max_size", "db_acquire_timeout_s", "db_statement_timeout_s",
                    "grpc_max_message_bytes", "max_string_chars", "default_page_size",
                    "max_page_size", "invitation_ttl_s", "outbox_batch_size", "outbox_lease_s",
                    "outbox_max_attempts", "sendgrid_timeout_s", "grpc_max_concurrent_rpcs",
                    "max_live_interviews", "abandon_grace_s", "attach_key_ttl_s", "turn_silence_ms",
                    "candidate_token_ttl_s", "client_secret_ttl_s", "ws_max_message_bytes",
                    "audio_rate_factor", "audio_burst_s", "max_events_per_s")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{_env_name(name)} must be positive")
        if self.db_pool_min_size > self.db_pool_max_size:
            raise ConfigError("INTERVIEW_DB_POOL_MIN_SIZE exceeds INTERVIEW_DB_POOL_MAX_SIZE")
        if self.default_page_size > self.max_page_size:
            raise ConfigError("INTERVIEW_DEFAULT_PAGE_SIZE exceeds INTERVIEW_MAX_PAGE_SIZE")
        if self.invitation_ttl_s > self.max_invitation_ttl_s:
            raise ConfigError("INTERVIEW_INVITATION_TTL_S exceeds INTERVIEW_MAX_INVITATION_TTL_S")
        if self.admin_token and len(self.admin_token) < 16:
            raise ConfigError("INTERVIEW_ADMIN_TOKEN must be at least 16 characters")
        if self.service_token and len(self.service_token) < 16:
            raise ConfigError("INTERVIEW_SERVICE_TOKEN must be at least 16 characters")
        if self.admin_token and self.admin_token == self.service_token:
            raise ConfigError("INTERVIEW_SERVICE_TOKEN must differ from INTERVIEW_ADMIN_TOKEN")

    @property
    def control_address(self) -> str:
        return f"{self.control_host}:{self.control_port}"

    @property
    def origins(self) -> frozenset[str]:
        own = {f"http://{self.edge_host}:{self.edge_port}", self.invite_base_url}
        extra = {o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip()}
        return frozenset(own | extra)

    @property
    def invite_base_url(self) -> str:
        base = self.public_base_url or f"http://{self.edge_host}:{self.edge_port}"
        return base.rstrip("/")

    def to_env(self) -> dict[str, str]:
        """The settings as environment variables, for child processes."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            out[_PLAIN_ENV_NAMES.get(f.name, _env_name(f.name))] = text
        return out

    def redacted(self) -> dict[str, Any]:
        """The settings with secrets masked, for logs and `interview up`'s banner."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name.startswith("_"):
                continue
            value = getattr(self, f.name)
            if f.name in self._secret_fields and value:
                value = "***"
            elif f.name.endswith("database_url") and value:
                value = _redact_url(value)
            out[f.name] = value
        return out


def _redact_url(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _parse(var: str, raw: str, kind: Any) -> Any:
    try:
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind is Path:
            return Path(raw)
        return raw
    except ValueError:
        raise ConfigError(f"{var}: cannot read {raw!r} as {getattr(kind, '__name__', kind)}") from None


