"""The platform's errors: each has a stable code and says whether retrying can help.

Domain code raises `PlatformError` (or a subclass) with an `ErrorCode`; transports map the code
once, to a gRPC status (control/grpc_errors.py) or a WebSocket close code. Never match on the
message: it is for people.
"""

from __future__ import annotations

import enum


class ErrorKind(enum.Enum):
    """The class of failure, which decides the gRPC status."""

    INVALID_ARGUMENT = "invalid_argument"
    NOT_FOUND = "not_found"
    ALREADY_EXISTS = "already_exists"
    FAILED_PRECONDITION = "failed_precondition"
    UNAUTHENTICATED = "unauthenticated"
    PERMISSION_DENIED = "permission_denied"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    UNAVAILABLE = "unavailable"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    INTERNAL = "internal"


class ErrorCode(enum.Enum):
    """Stable error codes. The value is what clients see; never rename one."""

    INVALID_ARGUMENT = ("INVALID_ARGUMENT", ErrorKind.INVALID_ARGUMENT, False)
    INVALID_PAGE_TOKEN = ("INVALID_PAGE_TOKEN", ErrorKind.INVALID_ARGUMENT, False)
    NOT_FOUND = ("NOT_FOUND", ErrorKind.NOT_FOUND, False)
    ALREADY_EXISTS = ("ALREADY_EXISTS", ErrorKind.ALREADY_EXISTS, False)
    IDEMPOTENCY_KEY_REUSED = ("IDEMPOTENCY_KEY_REUSED", ErrorKind.ALREADY_EXISTS, False)
    INVITATION_EXPIRED = ("INVITATION_EXPIRED", ErrorKind.FAILED_PRECONDITION, False)
    INVITATION_USED = ("INVITATION_USED", ErrorKind.FAILED_PRECONDITION, False)
    INVITATION_REVOKED = ("INVITATION_REVOKED", ErrorKind.FAILED_PRECONDITION, False)
    INVALID_STATE = ("INVALID_STATE", ErrorKind.FAILED_PRECONDITION, False)
    UNAUTHENTICATED = ("UNAUTHENTICATED", ErrorKind.UNAUTHENTICATED, False)
    PERMISSION_DENIED = ("PERMISSION_DENIED", ErrorKind.PERMISSION_DENIED, False)
    RATE_LIMITED = ("RATE_LIMITED", ErrorKind.RESOURCE_EXHAUSTED, True)
    TOO_MANY_WATCHERS = ("TOO_MANY_WATCHERS", ErrorKind.RESOURCE_EXHAUSTED, True)
    UNAVAILABLE = ("UNAVAILABLE", ErrorKind.UNAVAILABLE, True)
    DEADLINE_EXCEEDED = ("DEADLINE_EXCEEDED", ErrorKind.DEADLINE_EXCEEDED, True)
    INTERNAL = ("INTERNAL", ErrorKind.INTERNAL, False)

    def __init__(self, code: str, kind: ErrorKind, retryable: bool) -> None:
        self.code = code
        self.kind = kind
        self.retryable = retryable


class PlatformError(Exception):
    """An error with a stable code. `message` is safe to show the caller: no secrets in it."""

    def __init__(self, code: ErrorCode, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    @property
    def retryable(self) -> bool:
        return self.code.retryable

    def __reduce__(self) -> tuple[object, ...]:
        # Crosses process boundaries (Ray) intact: code, message and field.
        return (_rebuild, (self.code.name, self.message, self.field))

    def __repr__(self) -> str:
        return f"PlatformError({self.code.code}, {self.message!r})"


def invalid(field: str, message: str) -> PlatformError:
    return PlatformError(ErrorCode.INVALID_ARGUMENT, f"{field}: {message}", field=field)


def not_found(what: str) -> PlatformError:
    return PlatformError(ErrorCode.NOT_FOUND, f"{what} not found")


def _rebuild(code: str, message: str, field: str | None) -> PlatformError:
    return PlatformError(ErrorCode[code], message, field=field)
