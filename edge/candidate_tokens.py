"""Candidate credentials: the access token a redemption returns and the short-lived client
secrets made from it, both JWTs (PyJWT, HS256) signed with a key derived from the platform's
secret key. They name the session, so one session's credential never opens another's."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt

from interview_core.errors import ErrorCode, PlatformError

ISSUER = "interview-edge"
AUDIENCE = "interview-candidate"
ACCESS = "candidate"
CLIENT_SECRET = "client_secret"


@dataclass(frozen=True)
class CandidateClaims:
    kind: str
    user_id: str
    session_id: str
    tenant_id: str
    token_id: str
    expires_at: int


class CandidateTokens:
    def __init__(self, secret_key: str) -> None:
        self._key = hmac.new(secret_key.encode(), b"candidate-jwt", hashlib.sha256).digest()

    def issue(self, kind: str, *, user_id: str, session_id: str, tenant_id: str, ttl_s: int) -> tuple[str, int]:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": user_id, "sid": session_id, "tid": tenant_id,
                  "typ": kind, "iat": now, "exp": now + ttl_s, "jti": secrets.token_urlsafe(12)}
        return jwt.encode(claims, self._key, algorithm="HS256"), now + ttl_s

    def verify(self, token: str, *, allow_expired: bool = False) -> CandidateClaims:
        """The claims; expired tokens only when `allow_expired` (the caller then decides)."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self._key, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER,
                options={"require": ["exp", "sub", "sid", "typ", "jti"], "verify_exp": not allow_expired})
        except jwt.ExpiredSignatureError:
            raise PlatformError(ErrorCode.UNAUTHENTICATED, "credential expired") from None
        except jwt.PyJWTError:
            raise PlatformError(ErrorCode.UNAUTHENTICATED, "invalid credential") from None
        if claims["typ"] not in (ACCESS, CLIENT_SECRET):
            raise PlatformError(ErrorCode.UNAUTHENTICATED, "invalid credential")
        return CandidateClaims(claims["typ"], claims["sub"], claims["sid"], claims.get("tid", ""),
                               claims["jti"], int(claims["exp"]))
