"""Where the admin commands find the control service, with which credential, and how its errors
become one line and an exit code.

Address: `--address`, else `INTERVIEW_CONTROL_ADDRESS`, else the settings' control host and port
(`INTERVIEW_CONTROL_HOST`/`_PORT`, by default 127.0.0.1:50051, where `interview up` listens).

Credential: `--token`, else `INTERVIEW_TENANT_API_KEY` (a tenant's API key), else
`INTERVIEW_ADMIN_TOKEN`, else the admin token `interview up` wrote in the data directory's
`credentials.json`. The file is only read here, never created.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from interview_core.config import ConfigError, Settings
from interview_core.errors import ErrorCode, ErrorKind
from launcher.local_credentials import credentials_file

TENANT_KEY_ENV = "INTERVIEW_TENANT_API_KEY"
ADMIN_TOKEN_ENV = "INTERVIEW_ADMIN_TOKEN"
CALL_TIMEOUT_S = 15.0

ERROR_CODE_METADATA = "interview-error-code"  # control/grpc_boundary.py sets these
RETRYABLE_METADATA = "interview-retryable"

# One exit code per class of failure, so scripts can tell them apart. 2 is argparse's (usage)
# and configuration errors'.
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_BY_KIND: dict[ErrorKind, int] = {
    ErrorKind.INVALID_ARGUMENT: 3,
    ErrorKind.NOT_FOUND: 4,
    ErrorKind.ALREADY_EXISTS: 5,
    ErrorKind.FAILED_PRECONDITION: 6,
    ErrorKind.UNAUTHENTICATED: 7,
    ErrorKind.PERMISSION_DENIED: 8,
    ErrorKind.RESOURCE_EXHAUSTED: 9,
    ErrorKind.UNAVAILABLE: 10,
    ErrorKind.DEADLINE_EXCEEDED: 11,
    ErrorKind.INTERNAL: 12,
}
_CODES = {code.code: code for code in ErrorCode}


class CommandError(Exception):
    """A failure to report as one line (or, with --json, one JSON object) and an exit code."""

    def __init__(self, message: str, *, code: str, exit_code: int, retryable: bool = False,
                 hint: str = "") -> None:
        super().__init__(message)
        self.message = " ".join(message.split())  # one line, whatever the server wrote
        self.code = code
        self.exit_code = exit_code
        self.retryable = retryable
        self.hint = hint

    def line(self, prog: str) -> str:
        hint = f"; {self.hint}" if self.hint else ""
        return f"{prog}: {self.message} ({self.code}){hint}"

    def as_json(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "retryable": self.retryable,
                          "exit_code": self.exit_code, **({"hint": self.hint} if self.hint else {})}}


def invalid_input(message: str) -> CommandError:
    """Bad input caught before any call (a template file, a duration): like INVALID_ARGUMENT."""
    return CommandError(message, code="INVALID_ARGUMENT", exit_code=EXIT_BY_KIND[ErrorKind.INVALID_ARGUMENT])


@dataclass(frozen=True)
class Credential:
    token: str
    source: str  # where it came from, to name in errors (never the token itself)
    is_admin: bool | None  # True: the platform admin token; None: not known before calling


@dataclass(frozen=True)
class Target:
    """Where and as whom the admin commands call the control service."""

    address: str
    credential: Credential
    tls: bool = False

    @classmethod
    def resolve(cls, settings: Settings, *, address: str | None = None, token: str | None = None,
                tls: bool = False) -> Target:
        return cls(address or settings.admin_address or settings.control_address,
                   resolve_credential(settings, token), tls)

    def channel(self) -> grpc.Channel:
        if self.tls:
            return grpc.secure_channel(self.address, grpc.ssl_channel_credentials())
        return grpc.insecure_channel(self.address)

    @property
    def metadata(self) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {self.credential.token}"),)


def resolve_credential(settings: Settings, token: str | None) -> Credential:
    if token:
        return Credential(token, "--token", None)
    if settings.tenant_api_key:
        return Credential(settings.tenant_api_key, TENANT_KEY_ENV, False)
    if settings.admin_token:
        return Credential(settings.admin_token, ADMIN_TOKEN_ENV, True)
    stored = read_stored_admin_token(settings.data_dir)
    if stored:
        return Credential(stored, str(credentials_file(settings.data_dir)), True)
    raise ConfigError(f"no credential: pass --token, set {TENANT_KEY_ENV} or {ADMIN_TOKEN_ENV}, or run "
                      f"`interview up` first (it writes {credentials_file(settings.data_dir)})")


def read_stored_admin_token(data_dir: Path) -> str:
    path = credentials_file(data_dir)
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError:
        return ""
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc.__class__.__name__}") from None
    token = stored.get("admin_token") if isinstance(stored, dict) else None
    return token if isinstance(token, str) else ""


def stable_code(exc: grpc.RpcError) -> str:
    """The platform's stable error code from the trailing metadata; "" when the error did not come
    from our service (a connection that failed, a proxy)."""
    trailing: Any = exc.trailing_metadata() if isinstance(exc, grpc.Call) else None
    for key, value in trailing or ():
        if key == ERROR_CODE_METADATA:
            return value.decode() if isinstance(value, bytes) else str(value)
    return ""


def from_rpc_error(exc: grpc.RpcError, target: Target, *, tenant_missing: bool = False) -> CommandError:
    """The error as one line. Decided by the stable code (or, for errors that carry none, the gRPC
    status), never by the message's text."""
    status = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (exc.details() if isinstance(exc, grpc.Call) else "") or ""
    code = stable_code(exc)
    known = _CODES.get(code)
    kind: ErrorKind | None
    if known is not None:
        kind, retryable = known.kind, known.retryable
    else:
        kind = ErrorKind.__members__.get(status.name) if status is not None else None
        retryable = status in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        code = status.name if status is not None else "UNKNOWN"
    exit_code = EXIT_BY_KIND.get(kind, EXIT_FAILURE) if kind is not None else EXIT_FAILURE
    message, hint = details or code.lower().replace("_", " "), ""
    if known is None and kind is ErrorKind.UNAVAILABLE:
        message = f"cannot reach the control service at {target.address}"
        hint = "is `interview up` running? (or pass --address)"
    elif known is None and kind is ErrorKind.DEADLINE_EXCEEDED:
        message = f"the control service at {target.address} did not answer in time"
    elif kind is ErrorKind.UNAUTHENTICATED:
        hint = f"the credential from {target.credential.source} was refused"
    elif kind is ErrorKind.PERMISSION_DENIED and target.credential.is_admin is not True:
        hint = f"the credential from {target.credential.source} may not do this"
    elif (known is ErrorCode.INVALID_ARGUMENT and tenant_missing and target.credential.is_admin
          and status is grpc.StatusCode.INVALID_ARGUMENT):
        hint = "with the platform admin token, name the tenant: --tenant ID (`interview tenants list`)"
    return CommandError(message, code=code, exit_code=exit_code, retryable=retryable, hint=hint)
