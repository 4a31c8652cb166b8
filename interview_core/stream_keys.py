"""One-time keys that open an interview's frame stream (interview_core/frame_stream.py).

The edge mints a key for the session it is connecting; the actor checks the signature (a key
derived from the platform's secret, which both hold), the expiry and the session, and accepts
each key once. So a join costs no Ray call when the edge already knows where the session lives,
and a key seen on the wire opens nothing twice.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable


class StreamKeys:
    def __init__(self, secret_key: str, *, clock: Callable[[], float] = time.time) -> None:
        self._key = hmac.new(secret_key.encode(), b"interview-stream-key", hashlib.sha256).digest()
        self._clock = clock
        self._used: dict[str, float] = {}  # nonce -> expiry, forgotten once expired

    def _mac(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:32]

    def mint(self, session_id: str, ttl_s: float) -> str:
        body = f"{session_id}.{self._clock() + ttl_s:.3f}.{secrets.token_urlsafe(12)}"
        return f"{body}.{self._mac(body)}"

    def redeem(self, key: str) -> str | None:
        """The session the key opens, or None when it is forged, expired or already used."""
        body, _, mac = key.rpartition(".")
        session_id, _, rest = body.partition(".")
        expires_text, _, nonce = rest.partition(".")
        if not nonce or not hmac.compare_digest(mac, self._mac(body)):
            return None
        try:
            expires = float(expires_text)
        except ValueError:
            return None
        now = self._clock()
        if expires < now or nonce in self._used:
            return None
        if len(self._used) > 1024:
            self._used = {n: t for n, t in self._used.items() if t >= now}
        self._used[nonce] = expires
        return session_id
