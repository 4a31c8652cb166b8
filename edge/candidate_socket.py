"""The candidate WebSocket, `/v1/realtime?call_id=<session id>`: a thin pump between the
candidate and their interview's actor.

Credentials are checked before the upgrade (Authorization: Bearer, or for browsers the
subprotocols `realtime` + `openai-insecure-api-key.<secret>`). Audio arrives as OpenAI
`input_audio_buffer.append` events and goes to the actor as raw PCM frames, on the one connection
this edge process keeps to that actor process; everything the actor sends is already encoded,
and is forwarded without parsing. When the actor stream falls behind, the edge stops reading the
socket (back-pressure reaches the candidate's TCP window) instead of buffering or dropping audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web
from prometheus_client import Counter, Gauge

from actors.cluster import Placement
from edge.candidate_tokens import ACCESS, CLIENT_SECRET, CandidateClaims
from edge.http_errors import (
    WS_CLOSE_BY_KIND,
    WS_INTERNAL,
    WS_NORMAL,
    WS_POLICY,
    WS_RESTART,
    WS_TRY_LATER,
    error_response,
)
from interview.v1 import resources_pb2
from interview_core import frame_stream as fs
from interview_core import realtime_protocol as rt
from interview_core.errors import ErrorCode, ErrorKind, PlatformError
from interview_core.stream_keys import StreamKeys

if TYPE_CHECKING:
    from edge.app import Edge

log = logging.getLogger(__name__)

SUBPROTOCOL = "realtime"
ENDED_BECAUSE: dict[int, rt.InterviewEndReason] = {
    resources_pb2.SESSION_STATUS_COMPLETED: "completed",
    resources_pb2.SESSION_STATUS_ABANDONED: "abandoned",
    resources_pb2.SESSION_STATUS_ENDED: "ended_by_tenant",
}
KEY_PREFIX = "openai-insecure-api-key."
LIVE = Gauge("interview_edge_live_connections", "Candidate connections open on this edge")
FRAMES_IN = Counter("interview_edge_audio_frames_total", "Audio frames received from candidates")
FRAMES_PER_COUNT = 50  # the counter is updated once a second per candidate, not per frame (a lock)
REFUSED = Counter("interview_edge_refused_total", "Candidate connections refused", ["reason"])


class TokenBucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst, self.tokens, self.last = rate, burst, burst, time.monotonic()

    def take(self, amount: float) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < amount:
            return False
        self.tokens -= amount
        return True


def credential_of(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    for proto in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
        proto = proto.strip()
        if proto.startswith(KEY_PREFIX) and len(proto) > len(KEY_PREFIX):
            return proto[len(KEY_PREFIX):]
    return None


class CandidateLink:
    """One open candidate connection and its channel to the interview's actor."""

    def __init__(self, ws: web.WebSocketResponse, session_id: str, *, max_pending_bytes: int) -> None:
        self.ws = ws
        self.session_id = session_id
        self.outbox: deque[bytes] = deque()  # events as the actor encoded them (UTF-8 JSON)
        self.pending_bytes = 0
        self.max_pending_bytes = max_pending_bytes
        self.wake = asyncio.Event()
        self.close_with: tuple[int, str] | None = None
        self.frames_in = 0
        self.writer: asyncio.Task[None] | None = None  # pump_out
        self._dropping: asyncio.Task[None] | None = None

    def on_frame(self, kind: int, payload: bytes) -> None:
        if kind == fs.EVENT and self.close_with is None:
            if self.pending_bytes + len(payload) > self.max_pending_bytes:
                # Not reading: the actor's stream is shared, so it is not paused for one candidate;
                # the candidate goes, and reconnects to the interview when it reads again.
                log.warning("session %s: the candidate is not reading its events; closing", self.session_id)
                self.outbox.clear()
                self.pending_bytes = 0
                self.close_with = (WS_INTERNAL, "too far behind reading events")
                self._dropping = asyncio.get_running_loop().create_task(self._drop())
                return
            self.outbox.append(payload)
            self.pending_bytes += len(payload)
        elif kind == fs.CLOSE and self.close_with is None:
            self.close_with = fs.decode_close(payload)
        self.wake.set()

    async def _drop(self) -> None:
        """Its writes are stuck waiting for it to read: stop them, and close within a second
        (abruptly, if even the close cannot be written)."""
        if self.writer is not None:
            self.writer.cancel()
        assert self.close_with is not None
        code, reason = self.close_with
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(code=code, message=reason.encode()), 1.0)

    def on_lost(self) -> None:
        if self.close_with is None:
            # The actor went away mid-interview: 1011 makes the SDK reconnect, and the pool
            # finds the restarted actor.
            self.close_with = (WS_INTERNAL, "interview actor unavailable")
        self.wake.set()

    async def pump_out(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.outbox:
                event = self.outbox.popleft()
                self.pending_bytes -= len(event)
                await self.ws.send_frame(event, WSMsgType.TEXT)
            if self.close_with is not None:
                code, reason = self.close_with
                await self.ws.close(code=code, message=reason.encode()[:120])
                return


class ActorStream:
    """This edge process's one connection to an actor process, shared by every interview of
    that process it serves, a channel each: the actor then reads several interviews' audio in
    one wake-up (interview_core/frame_stream.py)."""

    def __init__(self, flush_delay_s: float, on_gone: Callable[[ActorStream], None]) -> None:
        self.proto = fs.FrameProtocol(self._on_frame, self._on_lost, flush_delay_s=flush_delay_s)
        self.links: dict[int, CandidateLink] = {}
        self._next_channel = 0
        self._on_gone = on_gone

    def open(self, link: CandidateLink, key: str, *, announced: bool) -> int:
        self._next_channel += 1
        channel = self._next_channel
        self.links[channel] = link
        self.proto.send(fs.encode_hello(channel, key, announced=announced))
        return channel

    def send(self, kind: int, channel: int, payload: bytes) -> None:
        self.proto.send(fs.encode_frame(kind, channel, payload))

    def release(self, channel: int) -> None:
        """The candidate has gone: the actor starts its grace period."""
        if self.links.pop(channel, None) is not None:
            self.proto.send(fs.encode_frame(fs.DETACH, channel, b""))

    def _on_frame(self, kind: int, channel: int, payload: bytes) -> None:
        link = self.links.get(channel)
        if link is not None:
            link.on_frame(kind, payload)

    def _on_lost(self, _exc: Exception | None) -> None:
        links, self.links = self.links, {}
        for link in links.values():
            link.on_lost()
        self._on_gone(self)


class CandidateSockets:
    def __init__(self, edge: Edge) -> None:
        self.edge = edge
        self._links: set[CandidateLink] = set()
        self._closing = False
        self._keys = StreamKeys(edge.settings.secret_key)
        # session -> where it is placed, the session it was announced with, until when
        self._placed: dict[str, tuple[Placement, rt.SessionConfig, float]] = {}
        self._streams: dict[tuple[str, int], asyncio.Task[ActorStream]] = {}  # by actor address

    async def _stream_to(self, host: str, port: int) -> ActorStream:
        """The connection to the actor at this address, opened once for all its interviews (joins
        arriving while it opens wait for the same connect)."""
        task = self._streams.get((host, port))
        if task is None:
            task = self._streams[(host, port)] = asyncio.create_task(self._connect(host, port))
        return await asyncio.shield(task)

    async def _connect(self, host: str, port: int) -> ActorStream:
        connecting = asyncio.current_task()

        def forget(_stream: ActorStream | None = None) -> None:  # the next join connects anew
            if self._streams.get((host, port)) is connecting:
                del self._streams[(host, port)]

        stream = ActorStream(self.edge.settings.stream_flush_ms / 1000, forget)
        try:
            await asyncio.get_running_loop().create_connection(lambda: stream.proto, host, port)
        except OSError:
            forget()
            raise
        return stream

    async def pre_place(self, session_id: str, config: rt.SessionConfig) -> None:
        """Places a session ahead of its join (a client secret was just made for it), so the join
        itself is an upgrade and `session.created` at once, then a TCP connect and a key. Failing
        here is not an error: the join places again."""
        try:
            placement = await self.edge.cluster.place(session_id)
        except PlatformError as exc:
            log.info("session %s not placed ahead of its join (%s)", session_id, exc.code.code)
            return
        now = time.monotonic()
        self._placed = {s: p for s, p in self._placed.items() if p[2] > now}
        self._placed[session_id] = (placement, config, now + self.edge.settings.client_secret_ttl_s)

    async def _place(self, session_id: str) -> tuple[Placement, rt.SessionConfig | None]:
        """Where the session is, and the session to announce at once when it was placed ahead
        (otherwise the actor announces it: a returning candidate's session may have changed)."""
        cached = self._placed.pop(session_id, None)
        if cached is not None and cached[2] > time.monotonic():
            return cached[0], cached[1]
        return await self.edge.cluster.place(session_id), None

    @property
    def live_count(self) -> int:
        return len(self._links)

    async def _authenticate(self, request: web.Request, session_id: str) -> CandidateClaims:
        token = credential_of(request)
        if token is None:
            raise PlatformError(ErrorCode.UNAUTHENTICATED, "missing credential")
        try:
            claims = self.edge.tokens.verify(token)
        except PlatformError:
            claims = self.edge.tokens.verify(token, allow_expired=True)
            # An expired client secret still reconnects to the interview it opened.
            if claims.kind != CLIENT_SECRET or not await self.edge.cluster.secret_opened(
                    claims.session_id, claims.token_id):
                raise
        if claims.kind not in (ACCESS, CLIENT_SECRET):
            raise PlatformError(ErrorCode.UNAUTHENTICATED, "invalid credential")
        if claims.session_id != session_id:
            raise PlatformError(ErrorCode.PERMISSION_DENIED, "this credential is for another interview")
        return claims

    async def handle(self, request: web.Request) -> web.StreamResponse:
        settings = self.edge.settings
        session_id = request.query.get("call_id", "")
        origin = request.headers.get("Origin")
        try:
            if origin is not None and origin.rstrip("/") not in settings.origins:
                raise PlatformError(ErrorCode.PERMISSION_DENIED, "origin not allowed")
            if not session_id:
                raise PlatformError(ErrorCode.INVALID_ARGUMENT, "call_id (the interview session id) is required")
            claims = await self._authenticate(request, session_id)
        except PlatformError as exc:
            REFUSED.labels(exc.code.code).inc()
            return error_response(exc)  # refused before the upgrade
        ws = web.WebSocketResponse(protocols=(SUBPROTOCOL,), max_msg_size=settings.ws_max_message_bytes,
                                   heartbeat=30.0, compress=False)
        placement: Placement | None = None
        announce: rt.SessionConfig | None = None
        failure: PlatformError | None = None
        if self._closing:
            failure = PlatformError(ErrorCode.UNAVAILABLE, "edge restarting")
        else:
            try:
                placement, announce = await self._place(session_id)
            except PlatformError as exc:
                failure = exc
        if failure is not None and failure.code.kind not in (ErrorKind.RESOURCE_EXHAUSTED, ErrorKind.UNAVAILABLE,
                                                                ErrorKind.FAILED_PRECONDITION):
            REFUSED.labels(failure.code.code).inc()
            return error_response(failure)
        await ws.prepare(request)
        if failure is not None:
            REFUSED.labels(failure.code.code).inc()
            if failure.code is ErrorCode.INVALID_STATE:
                reason = await self._end_reason(session_id)
                await ws.send_str(rt.encode_server_event(rt.InterviewEnded(reason=reason)))
                await ws.close(code=WS_NORMAL, message=b"interview is over")
            else:
                code = WS_RESTART if self._closing else WS_CLOSE_BY_KIND.get(failure.code.kind, WS_TRY_LATER)
                await ws.close(code=code, message=failure.message.encode()[:120])
            return ws
        assert placement is not None
        if announce is not None:
            # Placed ahead, on a warm actor: the session exists, so the candidate hears so now, as
            # OpenAI's first event; what they send meanwhile waits in the socket for the stream.
            await ws.send_str(rt.encode_server_event(rt.SessionCreated(session=announce)))
        if claims.kind == CLIENT_SECRET:  # recorded while the stream opens, not before
            remembering = asyncio.create_task(self.edge.cluster.remember_secret(session_id, claims.token_id))
        await self._serve(ws, placement, session_id, announced=announce is not None)
        if claims.kind == CLIENT_SECRET:
            with contextlib.suppress(Exception):
                await remembering
        return ws

    async def _end_reason(self, session_id: str) -> rt.InterviewEndReason:
        """Why a finished interview ended, for a candidate who comes back to it."""
        try:
            session = await self.edge.control.get_session(session_id, retry=False)
        except PlatformError:
            return "completed"
        return ENDED_BECAUSE.get(session.status, "completed")

    async def _serve(self, ws: web.WebSocketResponse, placement: Placement, session_id: str, *,
                     announced: bool) -> None:
        settings = self.edge.settings
        link = CandidateLink(ws, session_id, max_pending_bytes=settings.ws_max_pending_bytes)
        try:
            stream = await self._stream_to(placement.host, placement.port)
        except OSError:
            try:  # the actor moved (restarted on a new port): ask the pool where it is now
                placement = await self.edge.cluster.place(session_id)
                stream = await self._stream_to(placement.host, placement.port)
            except (OSError, PlatformError):
                await ws.close(code=WS_INTERNAL, message=b"interview actor unreachable")
                return
        channel = stream.open(link, self._keys.mint(session_id, settings.attach_key_ttl_s), announced=announced)
        self._links.add(link)
        LIVE.inc()
        writer = link.writer = asyncio.create_task(link.pump_out())
        audio = TokenBucket(48_000 * settings.audio_rate_factor, 48_000 * settings.audio_burst_s)
        events = TokenBucket(settings.max_events_per_s, settings.max_events_per_s * 2)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    data: str = msg.data
                    try:
                        event = rt.decode_client_event(data, max_bytes=settings.ws_max_message_bytes)
                    except rt.ProtocolError as exc:
                        await ws.send_str(rt.encode_server_event(rt.error_event(exc)))
                        continue
                    if type(event) is rt.InputAudioBufferAppend:
                        if not audio.take(len(event.audio)):
                            await ws.send_str(rt.encode_server_event(rt.ErrorEvent(
                                message="audio arrives faster than real time allows", code="rate_limited",
                                client_event_id=event.event_id)))
                            await ws.close(code=WS_POLICY, message=b"audio flood")
                            break
                        link.frames_in += 1
                        if link.frames_in % FRAMES_PER_COUNT == 0:
                            FRAMES_IN.inc(FRAMES_PER_COUNT)
                        stream.send(fs.AUDIO, channel, event.audio)
                        if stream.proto.paused:
                            await stream.proto.wait_writable()
                    elif events.take(1):
                        stream.send(fs.EVENT, channel, data.encode())
                    else:
                        await ws.send_str(rt.encode_server_event(rt.ErrorEvent(
                            message="too many events", code="rate_limited", client_event_id=event.event_id)))
                elif msg.type == WSMsgType.BINARY:
                    await ws.send_str(rt.encode_server_event(rt.ErrorEvent(
                        message="binary messages are not part of this protocol; send JSON events",
                        code="invalid_event")))
                else:
                    break
        finally:
            self._links.discard(link)
            LIVE.dec()
            FRAMES_IN.inc(link.frames_in % FRAMES_PER_COUNT)
            stream.release(channel)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def shutdown(self, _app: web.Application) -> None:
        """The edge is going away: 1012 tells the SDK to reconnect (to another edge, or this one)."""
        self._closing = True
        await asyncio.gather(*(link.ws.close(code=WS_RESTART, message=b"edge restarting")
                               for link in list(self._links)), return_exceptions=True)
        for task in list(self._streams.values()):
            if task.done() and not task.cancelled() and task.exception() is None:
                task.result().proto.close()  # the actors start their interviews' grace periods
