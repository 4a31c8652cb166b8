"""Supabase Auth sign-in: verifies a Supabase access token (PyJWT) and names the account it is for.

A candidate already signed in with Supabase presents its access token to redeem an invitation;
the edge checks it here and redeems with the token's `sub` (the Supabase user's id, which on
Supabase is auth.users.id) as the account. Which algorithms are accepted follows from the
configuration, never from the token: HS256 only with `SUPABASE_JWT_SECRET`, RS256/ES256 only with
`SUPABASE_JWKS_URL` (keys fetched by PyJWKClient, cached, each bound to its own algorithm), so a
token cannot choose `none` or have a public key used as an HMAC secret.

Every refusal is a `SupabaseTokenError` whose `reason` is a stable `Refusal`; callers and tests
match on that, never on the message. Tokens and their claims are never logged.
"""

from __future__ import annotations

import asyncio
import enum
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import jwt
from jwt import PyJWK, PyJWKClient

from interview_core.config import Settings
from interview_core.errors import ErrorCode, PlatformError

HMAC_ALGORITHMS = ("HS256",)
ASYMMETRIC_ALGORITHMS = ("RS256", "ES256")
SIGNED_IN_ROLE = "authenticated"
MAX_TOKEN_CHARS = 8192


class Refusal(enum.Enum):
    """Why a Supabase token was refused. The values are stable: never rename one."""

    MALFORMED = "supabase_token_malformed"  # not a JWT, or a header/claim of the wrong shape
    ALGORITHM = "supabase_token_algorithm"  # `none`, or an algorithm this configuration does not allow
    SIGNATURE = "supabase_token_signature"  # signed with another key
    UNKNOWN_KEY = "supabase_token_unknown_key"  # no published key has its `kid`
    EXPIRED = "supabase_token_expired"
    NOT_YET_VALID = "supabase_token_not_yet_valid"  # `nbf` or `iat` in the future
    AUDIENCE = "supabase_token_audience"
    ISSUER = "supabase_token_issuer"
    MISSING_CLAIM = "supabase_token_missing_claim"
    SUBJECT = "supabase_token_subject"  # `sub` is not a user id
    ROLE = "supabase_token_role"  # not a signed-in user's token (anon, service_role)
    KEYS_UNAVAILABLE = "supabase_keys_unavailable"  # the key set could not be fetched: retry


class SupabaseTokenError(PlatformError):
    """A refused Supabase token: UNAUTHENTICATED (401), or UNAVAILABLE when the keys could not be
    fetched (503, retryable). `reason` says which class of refusal it is."""

    def __init__(self, reason: Refusal, message: str) -> None:
        code = ErrorCode.UNAVAILABLE if reason is Refusal.KEYS_UNAVAILABLE else ErrorCode.UNAUTHENTICATED
        super().__init__(code, message)
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        return (SupabaseTokenError, (self.reason, self.message))


@dataclass(frozen=True)
class SupabaseUser:
    user_id: str  # the token's `sub`, canonical UUID text
    email: str  # "" when the token has none (a phone or anonymous sign-in)
    expires_at: int


def unverified_issuer(token: str) -> str | None:
    """The token's `iss` before any check, to route it to the right verifier; None if unreadable.
    Nothing may be trusted from it."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    issuer = claims.get("iss")
    return issuer if isinstance(issuer, str) else None


class SupabaseVerifier:
    def __init__(self, *, issuer: str, audience: str = SIGNED_IN_ROLE, secret: str = "", jwks_url: str = "",
                 leeway_s: float = 30.0, jwks_cache_s: float = 300.0, jwks_timeout_s: float = 5.0,
                 jwks_cooldown_s: float = 30.0) -> None:
        if not secret and not jwks_url:
            raise ValueError("a Supabase verifier needs a JWT secret or a JWKS URL")
        if not issuer or not audience:
            raise ValueError("a Supabase verifier needs an issuer and an audience")
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s
        self._secret = secret
        self._jwks = (PyJWKClient(jwks_url, cache_jwk_set=True, lifespan=jwks_cache_s, timeout=jwks_timeout_s,
                                  cooldown_duration=jwks_cooldown_s) if jwks_url else None)
        # Key fetches block (urllib); one thread does them so a slow key server ties up one
        # thread, not the default pool the rest of the edge shares.
        self._fetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="supabase-jwks") if jwks_url else None
        self.algorithms = frozenset((HMAC_ALGORITHMS if secret else ()) + (ASYMMETRIC_ALGORITHMS if jwks_url else ()))

    @classmethod
    def from_settings(cls, settings: Settings) -> SupabaseVerifier | None:
        """The verifier the configuration asks for; None when Supabase sign-in is off."""
        if not settings.supabase_jwt_secret and not settings.supabase_jwks_url:
            return None
        return cls(issuer=settings.supabase_issuer, audience=settings.supabase_jwt_audience,
                   secret=settings.supabase_jwt_secret, jwks_url=settings.supabase_jwks_url,
                   leeway_s=settings.supabase_jwt_leeway_s, jwks_cache_s=settings.supabase_jwks_cache_s,
                   jwks_timeout_s=settings.supabase_jwks_timeout_s,
                   jwks_cooldown_s=settings.supabase_jwks_cooldown_s)

    def close(self) -> None:
        if self._fetcher is not None:
            self._fetcher.shutdown(wait=False, cancel_futures=True)

    async def verify(self, token: str) -> SupabaseUser:
        """The signed-in Supabase user the token is for, or a `SupabaseTokenError`."""
        alg, kid = self._header(token)
        key: str | PyJWK
        if alg in HMAC_ALGORITHMS:
            key = self._secret
        else:
            key = await self._public_key(kid)
        return self._decode(token, key, alg)

    def _header(self, token: str) -> tuple[str, str | None]:
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise SupabaseTokenError(Refusal.MALFORMED, "invalid credential")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise SupabaseTokenError(Refusal.MALFORMED, "invalid credential") from None
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise SupabaseTokenError(Refusal.ALGORITHM, "credential signed with an algorithm not accepted here")
        if kid is not None and not isinstance(kid, str):
            raise SupabaseTokenError(Refusal.MALFORMED, "invalid credential")
        return alg, kid

    async def _public_key(self, kid: str | None) -> PyJWK:
        assert self._jwks is not None and self._fetcher is not None  # alg is asymmetric: JWKS is configured
        if not kid:
            raise SupabaseTokenError(Refusal.UNKNOWN_KEY, "credential names no signing key")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._fetcher, self._jwks.get_signing_key, kid)
        except jwt.PyJWKClientConnectionError:
            raise SupabaseTokenError(Refusal.KEYS_UNAVAILABLE,
                                     "sign-in keys unavailable; try again shortly") from None
        except (jwt.PyJWKClientError, jwt.PyJWKSetError, jwt.PyJWKError):
            # No key with that id (after one refetch, cooldown permitting), or a key set we cannot
            # use: either way this token cannot be verified.
            raise SupabaseTokenError(Refusal.UNKNOWN_KEY, "credential signed with an unknown key") from None

    def _decode(self, token: str, key: str | PyJWK, alg: str) -> SupabaseUser:
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=[alg], audience=self.audience, issuer=self.issuer, leeway=self.leeway_s,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]})
        except jwt.ExpiredSignatureError:
            raise SupabaseTokenError(Refusal.EXPIRED, "credential expired") from None
        except jwt.ImmatureSignatureError:
            raise SupabaseTokenError(Refusal.NOT_YET_VALID, "credential not yet valid") from None
        except jwt.InvalidAudienceError:
            raise SupabaseTokenError(Refusal.AUDIENCE, "credential not meant for this service") from None
        except jwt.InvalidIssuerError:
            raise SupabaseTokenError(Refusal.ISSUER, "credential from another issuer") from None
        except jwt.MissingRequiredClaimError:
            raise SupabaseTokenError(Refusal.MISSING_CLAIM, "credential lacks a required claim") from None
        except jwt.InvalidAlgorithmError:
            raise SupabaseTokenError(Refusal.ALGORITHM,
                                     "credential signed with an algorithm not accepted here") from None
        except jwt.InvalidSignatureError:
            raise SupabaseTokenError(Refusal.SIGNATURE, "invalid credential") from None
        except (jwt.InvalidKeyError, jwt.PyJWKError):
            raise SupabaseTokenError(Refusal.SIGNATURE, "invalid credential") from None
        except jwt.PyJWTError:  # undecodable payload, a claim of the wrong type
            raise SupabaseTokenError(Refusal.MALFORMED, "invalid credential") from None
        role = claims.get("role", SIGNED_IN_ROLE)
        if role != SIGNED_IN_ROLE:
            raise SupabaseTokenError(Refusal.ROLE, "not a signed-in user's credential")
        try:
            user_id = str(uuid.UUID(str(claims["sub"])))
        except ValueError:
            raise SupabaseTokenError(Refusal.SUBJECT, "credential names no user") from None
        email = claims.get("email")
        return SupabaseUser(user_id=user_id, email=email if isinstance(email, str) else "",
                            expires_at=int(claims["exp"]))
