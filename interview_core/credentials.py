"""Secrets: invitation tokens, API keys, and encryption of what must be kept but not read.

Tokens are random (256 bits from `secrets`), stored only as SHA-256 hashes (a slow hash adds
nothing for secrets this long) and compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

INVITATION_TOKEN_BYTES = 32
API_KEY_PREFIX = "ik_"


def new_invitation_token() -> str:
    return secrets.token_urlsafe(INVITATION_TOKEN_BYTES)


def new_api_key_secret() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def new_bootstrap_secret() -> str:
    """For generated admin and service tokens and the secret key."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


def hashes_match(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def secrets_match(presented: str, expected: str) -> bool:
    """Constant-time comparison of a presented secret with a configured one."""
    if not expected:
        return False
    return hmac.compare_digest(hash_secret(presented), hash_secret(expected))


class SecretBox:
    """AES-256-GCM with keys derived from the configured secret key, one per purpose.

    `purpose` keeps one kind of ciphertext from being accepted as another; `extra_key` mixes in
    a secret the database does not hold (an idempotency key, say).
    """

    def __init__(self, secret_key: str) -> None:
        if len(secret_key) < 16:
            raise ValueError("secret key must be at least 16 characters")
        self._root = hashlib.sha256(b"interview-secret-box\x00" + secret_key.encode()).digest()

    def _key(self, purpose: str, extra_key: str) -> bytes:
        material = purpose.encode() + b"\x00" + extra_key.encode()
        return hmac.new(self._root, material, hashlib.sha256).digest()

    def seal(self, plaintext: bytes, *, purpose: str, extra_key: str = "") -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + AESGCM(self._key(purpose, extra_key)).encrypt(nonce, plaintext, purpose.encode())

    def open(self, sealed: bytes, *, purpose: str, extra_key: str = "") -> bytes | None:
        """The plaintext, or None when the ciphertext is not ours (wrong key or tampered)."""
        if len(sealed) < 13:
            return None
        try:
            return AESGCM(self._key(purpose, extra_key)).decrypt(sealed[:12], sealed[12:], purpose.encode())
        except InvalidTag:
            return None


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
