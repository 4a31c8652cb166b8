"""The boundary to OpenAI's Realtime API: one WebSocket per session, opened through the official
`openai` SDK (`client.realtime.connect`), events in and out as JSON objects.

The SDK and `websockets` raise their own exceptions; they become `PlatformError` here and
nowhere else, so the engine (actors/openai_engine.py) never imports them. The API key never
appears in a message or a log line.

Events travel as plain JSON (`send_raw` / `recv_bytes`) rather than through the SDK's pydantic
models: the interviewer relays about ten audio events a second each way per interview, and
parsing them into models would cost more than the rest of the path.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Protocol

from interview_core.errors import ErrorCode, PlatformError

log = logging.getLogger(__name__)


class RealtimeLink(Protocol):
    """One open Realtime session. `recv` raises `PlatformError` (UNAVAILABLE) once it is closed."""

    async def send(self, data: str) -> None: ...
    async def recv(self) -> dict[str, Any]: ...
    async def close(self) -> None: ...


def _translate(exc: BaseException, doing: str) -> PlatformError:
    """The SDK's, websockets' and the network's errors as platform errors. No secrets in them."""
    from openai import OpenAIError
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

    if isinstance(exc, PlatformError):
        return exc
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        if status == 401:
            return PlatformError(ErrorCode.UNAUTHENTICATED, f"OpenAI refused the API key ({doing})")
        if status == 403:
            return PlatformError(ErrorCode.PERMISSION_DENIED, f"OpenAI refused access ({doing})")
        if status == 429:
            return PlatformError(ErrorCode.RATE_LIMITED, f"OpenAI is rate limiting ({doing})")
        if status in (400, 404):
            return PlatformError(ErrorCode.INVALID_ARGUMENT, f"OpenAI answered HTTP {status} ({doing})")
        return PlatformError(ErrorCode.UNAVAILABLE, f"OpenAI answered HTTP {status} ({doing})")
    if isinstance(exc, ConnectionClosed):
        code = exc.rcvd.code if exc.rcvd is not None else 1006
        return PlatformError(ErrorCode.UNAVAILABLE, f"the connection to OpenAI closed ({code}) ({doing})")
    if isinstance(exc, InvalidURI):
        return PlatformError(ErrorCode.INVALID_ARGUMENT, f"OPENAI_BASE_URL is not a usable URL ({doing})")
    if isinstance(exc, TimeoutError):
        return PlatformError(ErrorCode.DEADLINE_EXCEEDED, f"OpenAI did not answer in time ({doing})")
    if isinstance(exc, InvalidHandshake | OSError | EOFError):
        return PlatformError(ErrorCode.UNAVAILABLE, f"cannot reach OpenAI: {type(exc).__name__} ({doing})")
    if isinstance(exc, OpenAIError):
        return PlatformError(ErrorCode.INTERNAL, f"OpenAI client error: {type(exc).__name__} ({doing})")
    if isinstance(exc, ValueError):  # a message that is not JSON
        return PlatformError(ErrorCode.UNAVAILABLE, f"OpenAI sent something that is not JSON ({doing})")
    return PlatformError(ErrorCode.INTERNAL, f"unexpected {type(exc).__name__} ({doing})")


class _SdkLink:
    def __init__(self, connection: Any) -> None:
        self._connection = connection  # openai's AsyncRealtimeConnection

    async def send(self, data: str) -> None:
        try:
            await self._connection.send_raw(data)
        except Exception as exc:
            raise _translate(exc, "sending") from None

    async def recv(self) -> dict[str, Any]:
        try:
            event = json.loads(await self._connection.recv_bytes())
        except Exception as exc:
            raise _translate(exc, "receiving") from None
        if not isinstance(event, dict):
            raise PlatformError(ErrorCode.UNAVAILABLE, "OpenAI sent an event that is not an object")
        return event

    async def close(self) -> None:
        try:
            await self._connection.close()
        except Exception as exc:  # closing what is already gone
            log.debug("closing the OpenAI connection: %s", type(exc).__name__)


class OpenAIRealtime:
    """Opens Realtime sessions for one worker: one SDK client, shared by its interviews."""

    def __init__(self, *, api_key: str, base_url: str, model: str, connect_timeout_s: float,
                 keepalive_s: float) -> None:
        from openai import AsyncOpenAI

        if not api_key:
            raise PlatformError(ErrorCode.INVALID_ARGUMENT, "OPENAI_API_KEY is not set")
        self.model = model
        self._connect_timeout_s = connect_timeout_s
        self._keepalive_s = keepalive_s
        # The WebSocket address follows base_url (http -> ws, https -> wss), so one setting points
        # both at a gateway or a test stand-in.
        self._client = AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0)

    async def connect(self) -> RealtimeLink:
        # Passed through to websockets' connect (the SDK's TypedDict lists only some of its options).
        options: Any = {
            "open_timeout": self._connect_timeout_s,
            "ping_interval": self._keepalive_s,  # a silently dead peer is noticed, not waited on
            "ping_timeout": self._keepalive_s,
            "close_timeout": 2.0,
        }
        manager = self._client.realtime.connect(model=self.model, websocket_connection_options=options)
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                connection = await manager.enter()
        except Exception as exc:
            raise _translate(exc, "connecting") from None
        return _SdkLink(connection)
