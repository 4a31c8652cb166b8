"""The edge's and the actors' client of the control service, with the service credential.

This is the gRPC client boundary: it translates gRPC statuses back into platform errors (by the
stable code the server sends in trailing metadata), and retries what is retryable, so a control
service restart delays transcript writes instead of losing them.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc

from interview.v1 import (
    invitation_service_pb2,
    invitation_service_pb2_grpc,
    resources_pb2,
    session_service_pb2,
    session_service_pb2_grpc,
)
from interview_core.errors import ErrorCode, PlatformError

log = logging.getLogger(__name__)

T = TypeVar("T")

_BY_CODE = {code.code: code for code in ErrorCode}
_BY_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: ErrorCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND: ErrorCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: ErrorCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION: ErrorCode.INVALID_STATE,
    grpc.StatusCode.UNAUTHENTICATED: ErrorCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED: ErrorCode.PERMISSION_DENIED,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ErrorCode.RATE_LIMITED,
    grpc.StatusCode.DEADLINE_EXCEEDED: ErrorCode.DEADLINE_EXCEEDED,
}


def translate(exc: grpc.aio.AioRpcError) -> PlatformError:
    for item in exc.trailing_metadata() or ():
        key, value = item[0], str(item[1])  # type: ignore[index]
        if key == "interview-error-code" and value in _BY_CODE:
            return PlatformError(_BY_CODE[value], exc.details() or "")
    code = _BY_STATUS.get(exc.code(), ErrorCode.UNAVAILABLE)
    return PlatformError(code, exc.details() or exc.code().name)


class ControlClient:
    def __init__(self, address: str, service_token: str, *, timeout_s: float = 5.0,
                 retry_for_s: float = 60.0) -> None:
        self._channel = grpc.aio.insecure_channel(address, options=[
            ("grpc.keepalive_time_ms", 20000), ("grpc.enable_retries", 0),
            # Back within a second of a control service restart (gRPC's default waits up to 2 minutes).
            ("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000)])
        self._md = (("authorization", f"Bearer {service_token}"),)
        self._timeout = timeout_s
        self._retry_for = retry_for_s
        self.invitations = invitation_service_pb2_grpc.InvitationServiceStub(self._channel)
        self.sessions = session_service_pb2_grpc.SessionServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close(None)

    async def connect(self, timeout_s: float) -> bool:
        """Opens the channel ahead of the first call (a warm actor's first join pays nothing)."""
        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def _call(self, fn: Callable[[], Awaitable[T]], *, retry: bool) -> T:
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + (self._retry_for if retry else 0)
        delay = 0.1
        while True:
            try:
                return await fn()
            except grpc.aio.AioRpcError as exc:
                error = translate(exc)
            if not (retry and error.retryable and loop.time() < give_up_at):
                raise error
            log.warning("control service call failed (%s); retrying in %.1fs", error.code.code, delay)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 5.0)

    async def lookup_invitation(self, token: str) -> invitation_service_pb2.LookupInvitationResponse:
        request = invitation_service_pb2.LookupInvitationRequest(token=token)
        return await self._call(lambda: self.invitations.LookupInvitation(
            request, metadata=self._md, timeout=self._timeout), retry=False)

    async def redeem_invitation(self, token: str, user_id: str, *, external_account: bool = False,
                                external_email: str = "") -> invitation_service_pb2.RedeemInvitationResponse:
        request = invitation_service_pb2.RedeemInvitationRequest(
            token=token, user_id=user_id, external_account=external_account, external_email=external_email)
        return await self._call(lambda: self.invitations.RedeemInvitation(
            request, metadata=self._md, timeout=self._timeout), retry=False)

    async def get_session(self, session_id: str, *, retry: bool = True) -> resources_pb2.Session:
        request = session_service_pb2.GetSessionRequest(session_id=session_id)
        return await self._call(lambda: self.sessions.GetSession(
            request, metadata=self._md, timeout=self._timeout), retry=retry)

    async def get_transcript(self, session_id: str) -> list[resources_pb2.TranscriptItem]:
        items: list[resources_pb2.TranscriptItem] = []
        while True:
            request = session_service_pb2.GetTranscriptRequest(
                session_id=session_id, after_sequence=items[-1].sequence if items else 0)
            page = await self._call(lambda r=request: self.sessions.GetTranscript(  # type: ignore[misc]
                r, metadata=self._md, timeout=self._timeout), retry=True)
            items.extend(page.items)
            if not page.has_more:
                return items

    async def set_status(self, session_id: str, status: int, reason: str = "") -> resources_pb2.Session:
        request = session_service_pb2.UpdateSessionStatusRequest(
            session_id=session_id, status=status, reason=reason)  # type: ignore[arg-type]
        return await self._call(lambda: self.sessions.UpdateSessionStatus(
            request, metadata=self._md, timeout=self._timeout), retry=True)

    async def append_items(self, session_id: str, items: list[resources_pb2.TranscriptItem]
                           ) -> session_service_pb2.AppendTranscriptItemsResponse:
        request = session_service_pb2.AppendTranscriptItemsRequest(session_id=session_id, items=items)
        return await self._call(lambda: self.sessions.AppendTranscriptItems(
            request, metadata=self._md, timeout=self._timeout), retry=True)

    async def watch_status(self, session_id: str) -> AsyncIterator[resources_pb2.Session]:
        """The session whenever its status changes, until it ends (reconnecting as needed)."""
        after = 0
        while True:
            try:
                stream = self.sessions.WatchSession(
                    session_service_pb2.WatchSessionRequest(session_id=session_id, after_sequence=after),
                    metadata=self._md)
                async for event in stream:
                    if event.HasField("transcript_item"):
                        after = event.transcript_item.sequence
                    else:
                        yield event.session
                return
            except grpc.aio.AioRpcError as exc:
                error = translate(exc)
                if not error.retryable:
                    raise error from None
            await asyncio.sleep(1.0)
