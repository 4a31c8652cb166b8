"""Who is calling, and what they may touch.

Three kinds of caller: the platform admin (one configured token), a tenant (an API key, scoped
to one tenant) and the platform's own services, the edge and the actors (one configured service
token, allowed only the live-interview methods). Secrets are compared in constant time; API keys
are looked up by hash through the database's door and cached briefly, with revocations
broadcast to every control process at once (LISTEN/NOTIFY).
"""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from control.db import Database
from interview_core.config import Settings
from interview_core.credentials import hash_secret, hashes_match, secrets_match
from interview_core.errors import ErrorCode, PlatformError

API_KEY_REVOKED_CHANNEL = "interview_api_key_revoked"


class Role(enum.Enum):
    ADMIN = "admin"
    TENANT = "tenant"
    SERVICE = "service"


@dataclass(frozen=True)
class Principal:
    role: Role
    tenant_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None

    @property
    def rate_key(self) -> str:
        return f"{self.role.value}:{self.api_key_id or ''}"

    def describe(self) -> str:
        """For logs: never the secret."""
        if self.role is Role.TENANT:
            return f"tenant={self.tenant_id} key={self.api_key_id}"
        return str(self.role.value)


def parse_uuid(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise PlatformError(ErrorCode.INVALID_ARGUMENT, f"{field}: not a valid id", field=field) from None


def bearer_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    for key, value in metadata or ():
        if key.lower() == "authorization":
            text = value.decode() if isinstance(value, bytes) else str(value)
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            raise PlatformError(ErrorCode.UNAUTHENTICATED, "authorization must be 'Bearer <key>'")
    raise PlatformError(ErrorCode.UNAUTHENTICATED, "missing authorization metadata")


class Authenticator:
    def __init__(self, settings: Settings, db: Database) -> None:
        self._settings = settings
        self._db = db
        # secret hash -> (principal, cached until)
        self._cache: dict[bytes, tuple[Principal, float]] = {}
        self._max_cache = 10_000
        # Bumped by every revocation: a lookup that raced with one is not cached.
        self._generation = 0

    async def authenticate(self, metadata: Sequence[tuple[str, str | bytes]] | None,
                           timeout_s: float | None = None) -> Principal:
        token = bearer_token(metadata)
        if len(token) > 512:
            raise PlatformError(ErrorCode.UNAUTHENTICATED, "invalid credentials")
        if secrets_match(token, self._settings.admin_token):
            return Principal(Role.ADMIN)
        if secrets_match(token, self._settings.service_token):
            return Principal(Role.SERVICE)
        digest = hash_secret(token)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached and cached[1] > now:
            return cached[0]
        generation = self._generation
        async with self._db.transaction(timeout_s=timeout_s) as conn:
            row = await conn.fetchrow(
                "SELECT api_key_id, tenant_id, secret_hash FROM door_authenticate_api_key($1)", digest)
        if row is None or not hashes_match(bytes(row["secret_hash"]), digest):
            raise PlatformError(ErrorCode.UNAUTHENTICATED, "invalid credentials")
        principal = Principal(Role.TENANT, row["tenant_id"], row["api_key_id"])
        if generation == self._generation:
            if len(self._cache) >= self._max_cache:
                self._cache.clear()
            self._cache[digest] = (principal, now + self._settings.api_key_cache_ttl_s)
        return principal

    def forget_api_key(self, api_key_id: str) -> None:
        """Called on every revocation notice, so a revoked key stops working at once."""
        self._generation += 1
        for digest, (principal, _) in list(self._cache.items()):
            if str(principal.api_key_id) == api_key_id:
                del self._cache[digest]

    def forget_all(self) -> None:
        self._generation += 1
        self._cache.clear()


def require_admin(principal: Principal) -> None:
    if principal.role is not Role.ADMIN:
        raise PlatformError(ErrorCode.PERMISSION_DENIED, "this method needs the platform admin token")


def require_service(principal: Principal) -> None:
    if principal.role is not Role.SERVICE:
        raise PlatformError(ErrorCode.PERMISSION_DENIED, "this method is for the platform's services")


def tenant_scope(principal: Principal, requested: str) -> uuid.UUID:
    """The tenant a tenant-scoped call acts on.

    A tenant key acts on its own tenant (naming another is PERMISSION_DENIED); the admin token
    must name one; the service credential has no tenant methods.
    """
    if principal.role is Role.TENANT:
        assert principal.tenant_id is not None
        if requested and requested != str(principal.tenant_id):
            # Parse first so a malformed id is INVALID_ARGUMENT whoever sends it.
            parse_uuid(requested, "tenant_id")
            raise PlatformError(ErrorCode.PERMISSION_DENIED, "an API key reaches only its own tenant")
        return principal.tenant_id
    if principal.role is Role.ADMIN:
        if not requested:
            raise PlatformError(ErrorCode.INVALID_ARGUMENT, "tenant_id: required with the admin token",
                                field="tenant_id")
        return parse_uuid(requested, "tenant_id")
    raise PlatformError(ErrorCode.PERMISSION_DENIED, "the service credential has no tenant methods")


class RateLimiter:
    """A token bucket per credential: `rate` requests a second, bursts up to `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, key: str) -> None:
        if self._rate <= 0:
            return
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            raise PlatformError(ErrorCode.RATE_LIMITED, "too many requests; slow down")
        self._buckets[key] = (tokens - 1.0, now)
