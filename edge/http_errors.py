"""Platform errors as HTTP responses and WebSocket close codes: the one mapping for the edge."""

from __future__ import annotations

import json

from aiohttp import web

from interview_core.errors import ErrorCode, ErrorKind, PlatformError

HTTP_STATUS = {
    ErrorKind.INVALID_ARGUMENT: 400,
    ErrorKind.UNAUTHENTICATED: 401,
    ErrorKind.PERMISSION_DENIED: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.ALREADY_EXISTS: 409,
    ErrorKind.FAILED_PRECONDITION: 409,
    ErrorKind.RESOURCE_EXHAUSTED: 429,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.DEADLINE_EXCEEDED: 504,
    ErrorKind.INTERNAL: 500,
}
# Expired or used invitations are gone for good: 410 tells a browser not to retry.
HTTP_STATUS_BY_CODE = {ErrorCode.INVITATION_EXPIRED: 410, ErrorCode.INVITATION_USED: 409,
                       ErrorCode.INVITATION_REVOKED: 410}

# WebSocket close codes. 1001/1011/1012/1013 make the official SDK reconnect; the others end.
WS_GOING_AWAY = 1001
WS_POLICY = 1008
WS_TOO_BIG = 1009
WS_INTERNAL = 1011
WS_RESTART = 1012
WS_TRY_LATER = 1013
WS_NORMAL = 1000
WS_CLOSE_BY_KIND = {
    ErrorKind.UNAUTHENTICATED: 4001,
    ErrorKind.PERMISSION_DENIED: 4003,
    ErrorKind.NOT_FOUND: 4004,
    ErrorKind.FAILED_PRECONDITION: 4009,
    ErrorKind.INVALID_ARGUMENT: WS_POLICY,
    ErrorKind.RESOURCE_EXHAUSTED: WS_TRY_LATER,
    ErrorKind.UNAVAILABLE: WS_INTERNAL,
    ErrorKind.DEADLINE_EXCEEDED: WS_INTERNAL,
    ErrorKind.INTERNAL: WS_INTERNAL,
    ErrorKind.ALREADY_EXISTS: 4009,
}


def error_body(error: PlatformError) -> dict[str, object]:
    """OpenAI's error shape, so the SDK surfaces it as an APIStatusError with our code."""
    return {"error": {"message": error.message, "type": error.code.kind.value, "code": error.code.code,
                      "param": error.field}}


def error_response(error: PlatformError) -> web.Response:
    status = HTTP_STATUS_BY_CODE.get(error.code, HTTP_STATUS[error.code.kind])
    return web.Response(status=status, text=json.dumps(error_body(error)), content_type="application/json")
