"""Checks on request fields. Each failure is INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import re
import uuid

from control.auth import parse_uuid
from interview_core.config import Settings
from interview_core.errors import invalid

# Deliberately plain: one @, a dot in the domain, no spaces or control characters.
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,200}")


class Validator:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def text(self, value: str, field: str, *, required: bool = False, max_chars: int | None = None,
             multiline: bool = False) -> str:
        limit = max_chars or self.settings.max_string_chars
        value = value.strip()
        if required and not value:
            raise invalid(field, "required")
        if len(value) > limit:
            raise invalid(field, f"longer than {limit} characters")
        control = _CONTROL if multiline else re.compile(r"[\x00-\x1f\x7f]")
        if control.search(value):
            raise invalid(field, "contains control characters")
        return value

    def long_text(self, value: str, field: str) -> str:
        return self.text(value, field, max_chars=self.settings.max_long_text_chars, multiline=True)

    def email(self, value: str, field: str = "email", *, required: bool = True) -> str:
        value = value.strip()
        if not value:
            if required:
                raise invalid(field, "required")
            return ""
        if len(value) > 254 or not _EMAIL.fullmatch(value):
            raise invalid(field, "not a valid email address")
        return value.lower()

    def id(self, value: str, field: str) -> uuid.UUID:
        if not value:
            raise invalid(field, "required")
        return parse_uuid(value, field)

    def optional_id(self, value: str, field: str) -> uuid.UUID | None:
        return parse_uuid(value, field) if value else None

    def page_size(self, value: int) -> int:
        if value < 0:
            raise invalid("page_size", "must not be negative")
        if value == 0:
            return self.settings.default_page_size
        return min(value, self.settings.max_page_size)

    def idempotency_key(self, value: str) -> str:
        if value and not _IDEMPOTENCY_KEY.fullmatch(value):
            raise invalid("idempotency_key", "1 to 200 printable ASCII characters")
        return value
