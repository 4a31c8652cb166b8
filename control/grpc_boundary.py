"""The gRPC boundary: every handler runs through `unary` or `server_stream`, which authenticate
the caller, apply the rate limit, and map platform errors to status codes, once, here.

No error leaves as UNKNOWN: an unexpected exception is logged with an id and returned as
INTERNAL carrying that id. Each error also carries its stable code and retryability in trailing
metadata (`interview-error-code`, `interview-retryable`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import grpc
from google.protobuf.message import DecodeError

from control.auth import Authenticator, Principal, RateLimiter
from interview_core.errors import ErrorCode, ErrorKind, PlatformError

log = logging.getLogger(__name__)

STATUS_BY_KIND: dict[ErrorKind, grpc.StatusCode] = {
    ErrorKind.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorKind.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    ErrorKind.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorKind.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    ErrorKind.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorKind.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorKind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorKind.DEADLINE_EXCEEDED: grpc.StatusCode.DEADLINE_EXCEEDED,
    ErrorKind.INTERNAL: grpc.StatusCode.INTERNAL,
}

MALFORMED = object()  # what a request that does not parse as its message becomes
_MALFORMED_ERROR = PlatformError(ErrorCode.INVALID_ARGUMENT, "the request is not a valid message of this method")

ERROR_CODE_METADATA = "interview-error-code"
RETRYABLE_METADATA = "interview-retryable"


@dataclass(frozen=True)
class Call:
    """What a handler knows of the call besides its request."""

    principal: Principal
    context: grpc.aio.ServicerContext[Any, Any]

    def time_left(self) -> float | None:
        """Seconds until the caller's deadline, or None without one."""
        remaining = self.context.time_remaining()
        return None if remaining is None else max(0.0, remaining)


@dataclass(frozen=True)
class Gate:
    authenticator: Authenticator
    rate_limiter: RateLimiter

    async def admit(self, context: grpc.aio.ServicerContext[Any, Any]) -> Call:
        remaining = context.time_remaining()
        metadata = cast(Sequence[tuple[str, str | bytes]], context.invocation_metadata())
        principal = await self.authenticator.authenticate(metadata, remaining)
        self.rate_limiter.check(principal.rate_key)
        return Call(principal, context)


async def abort_with(context: grpc.aio.ServicerContext[Any, Any], error: PlatformError) -> None:
    await context.abort(
        STATUS_BY_KIND[error.code.kind],
        error.message,
        trailing_metadata=(
            (ERROR_CODE_METADATA, error.code.code),
            (RETRYABLE_METADATA, "true" if error.retryable else "false"),
        ),
    )


def _internal(method: str) -> PlatformError:
    incident = secrets.token_hex(6)
    log.exception("unexpected error in %s (incident %s)", method, incident)
    return PlatformError(ErrorCode.INTERNAL, f"internal error (incident {incident})")


S = TypeVar("S", bound="HasGate")
Req = TypeVar("Req")
Resp = TypeVar("Resp")


class HasGate:
    gate: Gate


def unary(
    handler: Callable[[S, Req, Call], Awaitable[Resp]],
) -> Callable[[S, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]]:
    @functools.wraps(handler)
    async def wrapper(self: S, request: Req, context: grpc.aio.ServicerContext[Any, Any]) -> Resp:
        try:
            if request is MALFORMED:
                raise _MALFORMED_ERROR
            call = await self.gate.admit(context)
            return await handler(self, request, call)
        except PlatformError as error:
            await abort_with(context, error)
        except asyncio.CancelledError:
            raise
        except Exception:
            await abort_with(context, _internal(handler.__qualname__))
        raise AssertionError("unreachable: abort raises")

    return wrapper


def server_stream(
    handler: Callable[[S, Req, Call], AsyncIterator[Resp]],
) -> Callable[[S, Req, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Resp]]:
    @functools.wraps(handler)
    async def wrapper(self: S, request: Req, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Resp]:
        try:
            if request is MALFORMED:
                raise _MALFORMED_ERROR
            call = await self.gate.admit(context)
            async for item in handler(self, request, call):
                yield item
        except PlatformError as error:
            await abort_with(context, error)
        except asyncio.CancelledError:
            raise
        except Exception:
            await abort_with(context, _internal(handler.__qualname__))

    return wrapper


class MalformedRequestInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Requests whose bytes do not parse reach our handlers as MALFORMED, so they end
    INVALID_ARGUMENT like any other bad input (gRPC itself would answer UNKNOWN)."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method  # type: ignore[attr-defined]
        if handler is None or not method.startswith(self._prefix) or handler.request_deserializer is None:
            return handler
        parse = handler.request_deserializer

        def tolerant(data: bytes) -> Any:
            try:
                return parse(data)
            except DecodeError:
                return MALFORMED

        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                handler.unary_unary, request_deserializer=tolerant, response_serializer=handler.response_serializer)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                handler.unary_stream, request_deserializer=tolerant, response_serializer=handler.response_serializer)
        return handler
