"""Opaque page tokens for keyset pagination over (created_at, id).

A token records where the last page ended and a fingerprint of the list and its filters, so a
token used with another list or other filters is refused rather than silently skipping rows. Tokens need no
secrecy: row-level security bounds what any token can reach.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from interview_core.credentials import b64url, unb64url
from interview_core.errors import ErrorCode, PlatformError


@dataclass(frozen=True)
class Cursor:
    created_at: dt.datetime
    id: uuid.UUID


def _fingerprint(filters: Sequence[Any]) -> str:
    return hashlib.sha256(json.dumps([str(f) for f in filters]).encode()).hexdigest()[:16]


def encode(cursor: Cursor, filters: Sequence[Any] = ()) -> str:
    body = {"t": cursor.created_at.isoformat(), "i": str(cursor.id), "f": _fingerprint(filters)}
    return b64url(json.dumps(body, separators=(",", ":")).encode())


def decode(token: str, filters: Sequence[Any] = ()) -> Cursor | None:
    if not token:
        return None
    bad = PlatformError(ErrorCode.INVALID_PAGE_TOKEN, "page_token: not a token this query returned",
                        field="page_token")
    if len(token) > 512:
        raise bad
    try:
        body = json.loads(unb64url(token))
        cursor = Cursor(dt.datetime.fromisoformat(body["t"]), uuid.UUID(body["i"]))
        fingerprint = body["f"]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise bad from None
    if fingerprint != _fingerprint(filters) or cursor.created_at.tzinfo is None:
        raise bad
    return cursor


def next_token(rows: Sequence[Any], page_size: int, filters: Sequence[Any] = (),
               id_column: str = "id") -> tuple[Sequence[Any], str]:
    """Trims the extra row a query fetched (LIMIT page_size + 1) and makes the next token."""
    if len(rows) <= page_size:
        return rows, ""
    page = rows[:page_size]
    last = page[-1]
    return page, encode(Cursor(last["created_at"], last[id_column]), filters)
