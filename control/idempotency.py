"""Idempotent creates: a retried create with the same idempotency key returns the first result.

The record is written in the create's own transaction, so a concurrent duplicate waits on the
unique index and then reads the committed result. The stored response is encrypted with a key
derived from the caller's idempotency key (only its hash is stored), since a response may hold a
one-time secret (an invitation link, an API key).
"""

from __future__ import annotations

import hashlib
import uuid
from typing import TypeVar

from google.protobuf.message import Message

from control.db import Connection
from interview_core.credentials import SecretBox
from interview_core.errors import ErrorCode, PlatformError

M = TypeVar("M", bound=Message)


def _request_hash(request: Message) -> bytes:
    copy = type(request)()
    copy.CopyFrom(request)
    if "idempotency_key" in copy.DESCRIPTOR.fields_by_name:
        copy.ClearField("idempotency_key")  # type: ignore[arg-type]
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).digest()


class Idempotency:
    def __init__(self, box: SecretBox) -> None:
        self._box = box

    async def replay(self, conn: Connection, tenant_id: uuid.UUID | None, method: str, key: str,
                     request: Message, response_type: type[M]) -> M | None:
        """Claims the key for this request; returns the earlier response if it was used before."""
        if not key:
            return None
        key_hash = hashlib.sha256(key.encode()).digest()
        request_hash = _request_hash(request)
        inserted = await conn.fetchval(
            "INSERT INTO idempotency_keys (tenant_id, method, key_hash, request_hash)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true",
            tenant_id, method, key_hash, request_hash)
        if inserted:
            return None
        row = await conn.fetchrow(
            "SELECT request_hash, response_ciphertext FROM idempotency_keys"
            " WHERE tenant_id IS NOT DISTINCT FROM $1 AND method = $2 AND key_hash = $3",
            tenant_id, method, key_hash)
        if row is None or row["response_ciphertext"] is None:
            raise PlatformError(ErrorCode.UNAVAILABLE, "a request with this idempotency key is in progress")
        if bytes(row["request_hash"]) != request_hash:
            raise PlatformError(ErrorCode.IDEMPOTENCY_KEY_REUSED,
                                "idempotency_key was used before with a different request",
                                field="idempotency_key")
        plain = self._box.open(bytes(row["response_ciphertext"]), purpose="idempotency", extra_key=key)
        if plain is None:
            raise PlatformError(ErrorCode.INTERNAL, "stored response unreadable (secret key changed?)")
        response = response_type()
        response.ParseFromString(plain)
        return response

    async def record(self, conn: Connection, tenant_id: uuid.UUID | None, method: str, key: str,
                     response: Message) -> None:
        if not key:
            return
        key_hash = hashlib.sha256(key.encode()).digest()
        sealed = self._box.seal(response.SerializeToString(), purpose="idempotency", extra_key=key)
        await conn.execute(
            "UPDATE idempotency_keys SET response_ciphertext = $4"
            " WHERE tenant_id IS NOT DISTINCT FROM $1 AND method = $2 AND key_hash = $3",
            tenant_id, method, key_hash, sealed)
