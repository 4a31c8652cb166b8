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


# Settings whose variable is not INTERVIEW_ + the field's name: conventional, unprefixed names,
# and the admin commands' target.
_PLAIN_ENV_NAMES = {
    "admin_address": "INTERVIEW_CONTROL_ADDRESS",
    "database_url": "DATABASE_URL",
    "sendgrid_api_key": "SENDGRID_API_KEY",
    "openai_api_key": "OPENAI_API_KEY",
    "openai_base_url": "OPENAI_BASE_URL",
    "apivideo_api_key": "APIVIDEO_API_KEY",
    "ray_address": "RAY_ADDRESS",
    "supabase_jwt_secret": "SUPABASE_JWT_SECRET",
    "supabase_jwks_url": "SUPABASE_JWKS_URL",
    "supabase_jwt_issuer": "SUPABASE_JWT_ISSUER",
    "supabase_jwt_audience": "SUPABASE_JWT_AUDIENCE",
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
    # Interviews one actor process serves. A process costs ~7 ms CPU/s even when idle (Ray wakes
    # it every 10 ms) and each audio wake-up is paid per process, so on a 2-core box several per
    # process is what makes 100 live interviews fit; 1 gives strict process isolation.
    interviews_per_actor: int = 10
    # Edge processes `interview up` runs on the one port (SO_REUSEPORT spreads the connections).
    # Two measured no better than one on 2 cores (docs/benchmarks.md); more cores, more edges.
    edge_processes: int = 1
    # Interviews that can start with no process start: the join burst the pool is sized for.
    warm_interviews: int = 50
    actor_start_timeout_s: float = 60.0  # a placement waiting for a new actor process gives up
    supervise_interval_s: float = 5.0  # how often the pool checks that busy actors still serve
    control_timeout_s: float = 5.0  # per control-service call from the edge and the actors
    placed_unjoined_s: float = 900.0  # a session placed (client secret made) but never joined
    max_live_interviews: int = 120  # more are refused with close code 1013
    abandon_grace_s: float = 120.0  # a candidate away longer leaves the interview abandoned
    attach_key_ttl_s: float = 10.0  # how long the edge has to open the actor stream
    # How long the edge holds candidate audio bound for one actor process to write it together.
    # 0: what one event-loop iteration queued goes in one write. 5 ms measured 0.1 core less
    # for the actors at 100 interviews and 4.6 ms more round trip at p50 (docs/benchmarks.md).
    stream_flush_ms: float = 0.0
    offline_transcription: bool = False  # pocketsphinx, about 0.2 of a core per speaking candidate
    turn_silence_ms: int = 500
    # Candidate credentials (JWTs signed with a key derived from secret_key).
    candidate_token_ttl_s: int = 24 * 3600
    client_secret_ttl_s: int = 600
    # Supabase Auth sign-in (edge/supabase_auth.py): a candidate signed in with Supabase redeems
    # with its Supabase access token. The secret allows HS256 (the project's legacy JWT secret),
    # the JWKS URL RS256/ES256 (https://<project>.supabase.co/auth/v1/.well-known/jwks.json);
    # with neither, Supabase tokens are not accepted.
    supabase_jwt_secret: str = ""
    supabase_jwks_url: str = ""
    # The required `iss`; empty: derived from a Supabase JWKS URL (https://<project>.supabase.co/auth/v1).
    supabase_jwt_issuer: str = ""
    supabase_jwt_audience: str = "authenticated"
    supabase_jwt_leeway_s: float = 30.0  # clock skew allowed on exp, nbf and iat
    supabase_jwks_cache_s: float = 300.0  # how long a fetched key set is used before refetching
    supabase_jwks_timeout_s: float = 5.0  # one fetch of the key set
    supabase_jwks_cooldown_s: float = 30.0  # least time between refetches for an unknown key id
    # Browser Origins allowed on the candidate WebSocket, comma-separated; empty: the edge's own.
    allowed_origins: str = ""
    ws_max_message_bytes: int = 256 * 1024
    # Server events held for a candidate who is not reading them (a frozen tab, a stalled network);
    # past this the connection is closed with 1011, and the SDK reconnects to the same interview.
    # About a minute of the interviewer's audio.
    ws_max_pending_bytes: int = 4 * 1024 * 1024
    # Candidate audio rate limit: sustained multiple of real time, and a burst allowance in
    # seconds of audio (a reconnecting SDK flushes what it queued, up to ~15 s).
    audio_rate_factor: float = 2.0
    audio_burst_s: float = 30.0
    max_events_per_s: float = 200.0  # non-audio client events

    # Vendors, used by later parts.
    openai_api_key: str = ""
    # The OpenAI interviewer (actors/openai_engine.py), used instead of the offline one when
    # OPENAI_API_KEY is set. OPENAI_BASE_URL points it at a gateway or a test stand-in; the
    # WebSocket address follows it (http -> ws, https -> wss).
    openai_base_url: str = "https://api.openai.com/v1"
    openai_model: str = "gpt-realtime"
    openai_voice: str = "alloy"  # when the template names none
    openai_transcription_model: str = "gpt-4o-mini-transcribe"  # the candidate's words, for the transcript
    openai_vad_threshold: float = 0.5  # server VAD; its silence is turn_silence_ms
    openai_prefix_padding_ms: int = 300
    openai_connect_timeout_s: float = 10.0
    openai_keepalive_s: float = 20.0  # WebSocket ping interval and timeout: a dead peer is noticed
    openai_reconnect_backoff_s: float = 0.5  # after a failed reconnect; the first is immediate
    openai_reconnect_backoff_max_s: float = 8.0
    # OpenAI ends a Realtime session after 60 minutes: past this age the interviewer moves the
    # conversation to a new session at the next quiet moment (a hard drop is survived too).
    openai_session_max_s: float = 55 * 60.0
    openai_truncate_wait_s: float = 0.5  # for the client's conversation.item.truncate after a barge-in
    openai_transcript_wait_s: float = 10.0  # for a candidate turn's transcription before storing it empty
    openai_replay_max_s: float = 30.0  # candidate audio kept to replay into a new session after a drop
    openai_give_up_s: float = 60.0  # OpenAI unreachable this long: the closing words are skipped
    apivideo_api_key: str = ""
    ray_address: str = ""
    # What the admin commands (launcher/admin) call: a control service elsewhere (host:port; empty:
    # control_host:control_port), with a tenant API key (empty: the admin token). Theirs alone:
    # never passed to the processes `interview up` starts.
    admin_address: str = ""
    tenant_api_key: str = ""

    log_level: str = "INFO"

    _secret_fields = frozenset({"admin_token", "service_token", "secret_key", "sendgrid_api_key",
                                "openai_api_key", "apivideo_api_key", "service_db_password",
                                "supabase_jwt_secret", "tenant_api_key"})
    _cli_only_fields = frozenset({"admin_address", "tenant_api_key"})

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
        if self.warm_interviews < 0:
            raise ConfigError("INTERVIEW_WARM_INTERVIEWS must not be negative")
        if not 0 <= self.stream_flush_ms <= 50:
            raise ConfigError("INTERVIEW_STREAM_FLUSH_MS must be within 0..50")
        for name in ("control_port", "edge_port", "embedded_pg_port", "embedded_ray_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise ConfigError(f"{_env_name(name)}: {port} is not a port")
        positive = ("db_pool_max_size", "db_acquire_timeout_s", "db_statement_timeout_s",
                    "grpc_max_message_bytes", "max_string_chars", "default_page_size",
                    "max_page_size", "invitation_ttl_s", "outbox_batch_size", "outbox_lease_s",
                    "outbox_max_attempts", "sendgrid_timeout_s", "grpc_max_concurrent_rpcs",
                    "max_live_interviews", "interviews_per_actor", "edge_processes", "supervise_interval_s",
                    "actor_start_timeout_s",
                    "control_timeout_s", "placed_unjoined_s", "abandon_grace_s", "attach_key_ttl_s", "turn_silence_ms",
                    "candidate_token_ttl_s", "client_secret_ttl_s", "ws_max_message_bytes", "ws_max_pending_bytes",
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
        self._validate_supabase()
        self._validate_openai()

    def _validate_supabase(self) -> None:
        if self.supabase_jwt_secret and len(self.supabase_jwt_secret) < 32:
            raise ConfigError("SUPABASE_JWT_SECRET must be at least 32 characters")
        if self.supabase_jwks_url:
            from urllib.parse import urlsplit

            url = urlsplit(self.supabase_jwks_url)
            if url.scheme != "https" and not (url.scheme == "http" and url.hostname in _LOOPBACK):
                raise ConfigError("SUPABASE_JWKS_URL must be https (http only on loopback)")
        if (self.supabase_jwt_secret or self.supabase_jwks_url) and not self.supabase_issuer:
            raise ConfigError("SUPABASE_JWT_ISSUER is required unless SUPABASE_JWKS_URL ends in "
                              + _JWKS_SUFFIX)
        if not self.supabase_jwt_audience:
            raise ConfigError("SUPABASE_JWT_AUDIENCE must not be empty")
        for name in ("supabase_jwks_cache_s", "supabase_jwks_timeout_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{_env_name(name)} must be positive")
        for name in ("supabase_jwt_leeway_s", "supabase_jwks_cooldown_s"):
            if not 0 <= getattr(self, name) <= 3600:
                raise ConfigError(f"{_env_name(name)} must be between 0 and 3600")

    @property
    def supabase_issuer(self) -> str:
        """The `iss` Supabase tokens must carry: configured, or the JWKS URL's auth base."""
        if self.supabase_jwt_issuer:
            return self.supabase_jwt_issuer
        if self.supabase_jwks_url.endswith(_JWKS_SUFFIX):
            return self.supabase_jwks_url.removesuffix(_JWKS_SUFFIX)
        return ""

    def _validate_openai(self) -> None:
        from urllib.parse import urlsplit

        url = urlsplit(self.openai_base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigError("OPENAI_BASE_URL must be an http(s) URL")
        if self.openai_api_key and url.scheme != "https" and url.hostname not in ("127.0.0.1", "::1", "localhost"):
            raise ConfigError("OPENAI_BASE_URL must be https (http only on loopback): it carries the API key")
        for name in ("openai_connect_timeout_s", "openai_keepalive_s", "openai_reconnect_backoff_s",
                     "openai_reconnect_backoff_max_s", "openai_session_max_s", "openai_transcript_wait_s",
                     "openai_replay_max_s", "openai_give_up_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{_env_name(name)} must be positive")
        if self.openai_truncate_wait_s < 0 or self.openai_prefix_padding_ms < 0:
            raise ConfigError("INTERVIEW_OPENAI_TRUNCATE_WAIT_S and INTERVIEW_OPENAI_PREFIX_PADDING_MS "
                              "must not be negative")
        if not 0 < self.openai_vad_threshold < 1:
            raise ConfigError("INTERVIEW_OPENAI_VAD_THRESHOLD must be between 0 and 1")

    @property
    def interviewer_model(self) -> str:
        """What candidates are told the model is: OpenAI's when its key is set, else the offline one."""
        return self.openai_model if self.openai_api_key else "offline-interviewer"

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
            if f.name in self._cli_only_fields:
                continue
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


_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_JWKS_SUFFIX = "/.well-known/jwks.json"


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


