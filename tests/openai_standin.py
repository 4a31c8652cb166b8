"""A local stand-in for OpenAI's Realtime API (GA events), for tests.

An aiohttp server at `/v1/realtime?model=...` that checks the bearer key like OpenAI does and then
speaks the Realtime protocol over the WebSocket: `session.update`, `input_audio_buffer.append`
with server VAD (simple energy detection on the PCM16 it receives, prefix padding and silence
duration honoured), `input_audio_buffer.commit` / `clear`, `conversation.item.create` (for
restoring history), `response.create` / `response.cancel`, `conversation.item.truncate`. It
emits the GA server events: `session.created` / `updated`, `speech_started` / `stopped`,
`committed`, `conversation.item.added` / `done`, input transcription (a fake but deterministic
transcript: how long the candidate spoke), `response.created`, `response.output_item.added`,
`response.content_part.added`, `response.output_audio.delta` and its transcript deltas (a tone,
faster than real time), the matching `*.done` events and `response.done`.

Its fake model says the text quoted on the last line of the response's instructions (the
OpenAI interviewer asks for exact words that way), or a fixed line when there is none.

Every event either side sends is validated against OpenAI's published schemas
(`specs/openai-openapi.yaml`: `RealtimeClientEvent*` for what it receives, `RealtimeServerEvent*`
for what it sends); a failure is recorded in `violations` (and answered with an `error` event
when the client sent it), so tests assert the stand-in and the actor both spoke OpenAI's dialect.

Faults are real: `drop_all()` / `StandinSession.abort()` abort the TCP connection (the client
sees close code 1006), `refuse` makes the next handshakes fail with 503, `max_session_s` ends
sessions the way OpenAI's 60-minute limit does (an `error` event `session_expired`, then a close).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import itertools
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import yaml
from aiohttp import WSMsgType, web

from tests.openai_spec import SPEC_PATH, OpenAISpec

BYTES_PER_MS = 48
FRAME_BYTES = 20 * BYTES_PER_MS
PCM = {"type": "audio/pcm", "rate": 24000}

_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}_standin{next(_ids):06d}"


# -------------------------------------------------------------------------------------------
# OpenAI's schemas


class RealtimeSpec(OpenAISpec):
    """The spec's validators, answering with what is wrong rather than raising (the stand-in
    collects violations and its fixtures fail on any)."""

    def errors(self, side: str, event: object) -> list[str]:
        """What is wrong with `event` as a client ("client") or server ("server") event."""
        table = self.client_schema_by_type if side == "client" else self.server_schema_by_type
        kind = event.get("type") if isinstance(event, dict) else None
        name = table.get(kind) if isinstance(kind, str) else None
        if name is None:
            return [f"{side} event of unknown type {kind!r}"]
        found = sorted(self.validator(name).iter_errors(event), key=lambda e: list(e.absolute_path))
        return [f"{name} {list(e.absolute_path)}: {e.message[:300]}" for e in found[:5]]


@cache
def realtime_spec() -> RealtimeSpec:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC_PATH.open("rb") as f:
        return RealtimeSpec(yaml.load(f, Loader=loader))


@cache
def tone(ms: int) -> bytes:
    """The fake model's voice: a quiet 220 Hz tone."""
    t = np.arange(ms * 24) / 24000
    return (np.sin(2 * np.pi * 220 * t) * 3000).astype("<i2").tobytes()


def _deep_merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value


SAY = re.compile(r'\n"(.*)"\s*\Z')


def fake_words(instructions: str) -> str:
    """What the fake model says for a response with these instructions."""
    found = SAY.search(instructions)
    return found.group(1) if found else "Please tell me more."


# -------------------------------------------------------------------------------------------
# One session


class _Closed(Exception):
    pass


@dataclass(eq=False)
class Item:
    id: str
    role: str
    type: str = "message"
    content: list[dict[str, Any]] = field(default_factory=list)
    status: str = "completed"
    audio_b: int = 0  # assistant audio generated
    truncated_ms: int | None = None
    transcript: str = ""  # what was said (assistant) or heard (user)

    def wire(self) -> dict[str, Any]:
        return {"id": self.id, "object": "realtime.item", "type": self.type, "status": self.status,
                "role": self.role, "content": self.content}


@dataclass(eq=False)
class StandinSession:
    standin: OpenAIStandin
    ws: web.WebSocketResponse
    request: web.Request
    model: str
    id: str = field(default_factory=lambda: new_id("sess"))
    opened_at: float = field(default_factory=time.monotonic)
    config: dict[str, Any] = field(default_factory=dict)
    conversation: list[Item] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)  # client events (audio summarised)
    received_times: list[float] = field(default_factory=list)  # time.monotonic() of each
    sent: list[dict[str, Any]] = field(default_factory=list)  # server events (audio summarised)
    transcripts: dict[str, str] = field(default_factory=dict)  # user item -> its transcript
    said: dict[str, str] = field(default_factory=dict)  # assistant item -> its transcript
    written_b: int = 0  # all input audio appended in the session
    closed: bool = False
    audio_out: bool = False
    _buffer: bytearray = field(default_factory=bytearray)  # uncommitted input audio
    _buffer_start_b: int = 0
    _frame: bytearray = field(default_factory=bytearray)
    _speaking: bool = False
    _speech_item: str = ""
    _silence_ms: int = 0
    _response: asyncio.Task[None] | None = None
    _response_id: str = ""
    _cancel_reason: str = "client_cancelled"
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    # -- faults ---------------------------------------------------------------------------------
    def abort(self) -> None:
        """The connection dies: no close frame, the TCP connection is reset."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()
        self.closed = True

    # -- sending --------------------------------------------------------------------------------
    async def send(self, event: dict[str, Any]) -> None:
        if self.closed:
            raise _Closed
        event.setdefault("event_id", new_id("event"))
        for problem in self.standin.spec.errors("server", event):
            self.standin.violations.append(f"stand-in sent: {problem}")
        summary = {k: v for k, v in event.items() if k != "delta"} if event["type"].endswith("audio.delta") \
            else event
        self.sent.append(summary)
        try:
            await self.ws.send_str(json.dumps(event))
        except (ConnectionError, RuntimeError):
            self.closed = True
            raise _Closed from None
        if self.standin.on_sent is not None:
            self.standin.on_sent(self, event)
            if self.closed:
                raise _Closed

    async def error(self, code: str, message: str, event_id: str | None = None, param: str | None = None) -> None:
        await self.send({"type": "error", "error": {"type": "invalid_request_error", "code": code,
                                                    "message": message, "param": param, "event_id": event_id}})

    def session_view(self) -> dict[str, Any]:
        audio = self.config.get("audio", {})
        audio_in = dict(audio.get("input", {}))
        audio_in.setdefault("format", PCM)
        audio_in.setdefault("turn_detection", None)
        audio_out = dict(audio.get("output", {}))
        audio_out.setdefault("format", PCM)
        audio_out.setdefault("voice", "alloy")
        view = {"type": "realtime", "object": "realtime.session", "id": self.id, "model": self.model,
                "expires_at": int(time.time()) + 3600,
                "output_modalities": self.config.get("output_modalities", ["audio"]),
                "instructions": self.config.get("instructions", ""),
                "audio": {"input": audio_in, "output": audio_out}}
        return view

    # -- receiving ------------------------------------------------------------------------------
    async def handle(self, text: str) -> None:
        try:
            event = json.loads(text)
        except ValueError:
            self.standin.violations.append("client sent a message that is not JSON")
            await self.error("invalid_json", "not JSON")
            return
        problems = self.standin.spec.errors("client", event)
        kind = event.get("type") if isinstance(event, dict) else None
        self.received.append({"type": kind, "bytes": len(event.get("audio", "")) * 3 // 4}
                             if kind == "input_audio_buffer.append" else event)
        self.received_times.append(time.monotonic())
        if problems:
            self.standin.violations.extend(f"client sent: {p}" for p in problems)
            await self.error("invalid_value", "; ".join(problems)[:500],
                             event.get("event_id") if isinstance(event, dict) else None)
            return
        handler = getattr(self, "_on_" + str(kind).replace(".", "_"), None)
        if handler is None:
            await self.error("unsupported", f"the stand-in does not implement {kind}", event.get("event_id"))
            return
        await handler(event)

    async def _on_session_update(self, event: dict[str, Any]) -> None:
        update = event["session"]
        voice = update.get("audio", {}).get("output", {}).get("voice")
        if voice is not None and self.audio_out and voice != self.session_view()["audio"]["output"]["voice"]:
            await self.error("cannot_update_voice", "voice cannot change after audio output", event.get("event_id"),
                             "session.audio.output.voice")
            return
        _deep_merge(self.config, copy.deepcopy({k: v for k, v in update.items() if k != "type"}))
        await self.send({"type": "session.updated", "session": self.session_view()})

    def _vad(self) -> dict[str, Any] | None:
        vad = self.config.get("audio", {}).get("input", {}).get("turn_detection")
        return vad if isinstance(vad, dict) else None

    async def _on_input_audio_buffer_append(self, event: dict[str, Any]) -> None:
        pcm = base64.b64decode(event["audio"])
        self._buffer += pcm
        self.written_b += len(pcm)
        vad = self._vad()
        if vad is None:
            return
        self._frame += pcm
        threshold = 32768 * 0.03 * float(vad.get("threshold", 0.5))
        prefix_ms = int(vad.get("prefix_padding_ms", 300))
        silence_ms = int(vad.get("silence_duration_ms", 500))
        end_b = self.written_b - len(self._frame)  # position of the frame being looked at
        while len(self._frame) >= FRAME_BYTES:
            frame = np.frombuffer(bytes(self._frame[:FRAME_BYTES]), dtype="<i2").astype(np.float64)
            del self._frame[:FRAME_BYTES]
            start_b, end_b = end_b, end_b + FRAME_BYTES
            voiced = math.sqrt(float(np.mean(frame * frame))) > threshold
            if not self._speaking and voiced:
                self._speaking = True
                self._silence_ms = 0
                self._speech_item = new_id("item")
                start_ms = max(self._buffer_start_b // BYTES_PER_MS, start_b // BYTES_PER_MS - prefix_ms)
                await self.send({"type": "input_audio_buffer.speech_started", "audio_start_ms": start_ms,
                                 "item_id": self._speech_item})
                if vad.get("interrupt_response", True) and self._response is not None:
                    self._cancel("turn_detected")
            elif self._speaking:
                self._silence_ms = 0 if voiced else self._silence_ms + 20
                if self._silence_ms >= silence_ms:
                    self._speaking = False
                    await self.send({"type": "input_audio_buffer.speech_stopped",
                                     "audio_end_ms": end_b // BYTES_PER_MS, "item_id": self._speech_item})
                    await self._commit(self._speech_item, upto_b=end_b)
                    if vad.get("create_response", True) and self._response is None:
                        self._start_response({})

    async def _on_input_audio_buffer_commit(self, event: dict[str, Any]) -> None:
        if len(self._buffer) < 100 * BYTES_PER_MS:
            await self.error("input_audio_buffer_commit_empty", "buffer too small: at least 100 ms of audio needed",
                             event.get("event_id"))
            return
        item = self._speech_item if self._speaking else new_id("item")
        self._speaking = False
        await self._commit(item, upto_b=self.written_b)

    async def _on_input_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        self._buffer.clear()
        self._buffer_start_b = self.written_b
        self._speaking = False
        await self.send({"type": "input_audio_buffer.cleared"})

    async def _commit(self, item_id: str, *, upto_b: int) -> None:
        take = max(0, upto_b - self._buffer_start_b)
        audio = bytes(self._buffer[:take])
        del self._buffer[:take]
        self._buffer_start_b = upto_b
        previous = self.conversation[-1].id if self.conversation else None
        item = Item(item_id, "user", content=[{"type": "input_audio"}])
        self.conversation.append(item)
        await self.send({"type": "input_audio_buffer.committed", "previous_item_id": previous, "item_id": item_id})
        await self.send({"type": "conversation.item.added", "previous_item_id": previous, "item": item.wire()})
        await self.send({"type": "conversation.item.done", "previous_item_id": previous, "item": item.wire()})
        transcription = self.config.get("audio", {}).get("input", {}).get("transcription")
        if transcription:
            self._spawn(self._transcribe(item, audio))

    async def _transcribe(self, item: Item, audio: bytes) -> None:
        await asyncio.sleep(self.standin.transcribe_delay_s)
        samples = np.frombuffer(audio[: len(audio) // 2 * 2], dtype="<i2").astype(np.float64)
        frames = samples[: len(samples) // 480 * 480].reshape(-1, 480)
        vad = self._vad() or {}
        threshold = 32768 * 0.03 * float(vad.get("threshold", 0.5))
        voiced = int((np.sqrt((frames * frames).mean(axis=1)) > threshold).sum()) if len(frames) else 0
        text = f"I spoke for about {round(voiced * 0.02)} seconds."
        item.transcript = text
        item.content = [{"type": "input_audio", "transcript": text}]
        self.transcripts[item.id] = text
        await self.send({"type": "conversation.item.input_audio_transcription.completed", "item_id": item.id,
                         "content_index": 0, "transcript": text,
                         "usage": {"type": "duration", "seconds": round(len(audio) / 48000, 3)}})

    async def _on_conversation_item_create(self, event: dict[str, Any]) -> None:
        raw = event["item"]
        item = Item(raw.get("id") or new_id("item"), raw["role"], type=raw["type"], content=raw.get("content", []))
        item.transcript = " ".join(str(c.get("text", c.get("transcript", ""))) for c in item.content)
        previous_id = event.get("previous_item_id")
        if previous_id == "root":
            index = 0
        elif previous_id is not None:
            found = [i for i, it in enumerate(self.conversation) if it.id == previous_id]
            if not found:
                await self.error("item_not_found", f"no item {previous_id}", event.get("event_id"))
                return
            index = found[0] + 1
        else:
            index = len(self.conversation)
        previous = self.conversation[index - 1].id if index > 0 else None
        self.conversation.insert(index, item)
        await self.send({"type": "conversation.item.added", "previous_item_id": previous, "item": item.wire()})
        await self.send({"type": "conversation.item.done", "previous_item_id": previous, "item": item.wire()})

    async def _on_conversation_item_truncate(self, event: dict[str, Any]) -> None:
        item = next((it for it in self.conversation if it.id == event["item_id"]), None)
        if item is None or item.role != "assistant":
            await self.error("item_not_found", "no assistant item with that id", event.get("event_id"), "item_id")
            return
        if event["audio_end_ms"] > item.audio_b // BYTES_PER_MS:
            await self.error("invalid_value", "audio_end_ms is past the end of the item's audio",
                             event.get("event_id"), "audio_end_ms")
            return
        item.truncated_ms = event["audio_end_ms"]
        item.content = [{"type": "output_audio", "transcript": ""}]  # as OpenAI: the unheard text is gone
        await self.send({"type": "conversation.item.truncated", "item_id": item.id, "content_index": 0,
                         "audio_end_ms": event["audio_end_ms"]})

    async def _on_response_create(self, event: dict[str, Any]) -> None:
        if self._response is not None:
            await self.error("conversation_already_has_active_response", "a response is in progress",
                             event.get("event_id"))
            return
        self._start_response(event.get("response") or {})

    async def _on_response_cancel(self, event: dict[str, Any]) -> None:
        wanted = event.get("response_id")
        if self._response is None or (wanted is not None and wanted != self._response_id):
            await self.error("response_cancel_not_active", "no response to cancel", event.get("event_id"))
            return
        self._cancel("client_cancelled")

    # -- the fake model -------------------------------------------------------------------------
    def _cancel(self, reason: str) -> None:
        if self._response is not None:
            self._cancel_reason = reason
            self._response.cancel()

    def _start_response(self, params: dict[str, Any]) -> None:
        self._response_id = new_id("resp")
        self._response = asyncio.get_running_loop().create_task(self._respond(self._response_id, params))

    async def _respond(self, response_id: str, params: dict[str, Any]) -> None:
        instructions = params.get("instructions") or self.config.get("instructions", "")
        text = fake_words(str(instructions))
        voice = self.session_view()["audio"]["output"]["voice"]
        response: dict[str, Any] = {"object": "realtime.response", "id": response_id, "status": "in_progress",
                                    "output": [], "conversation_id": "conv_" + self.id,
                                    "output_modalities": ["audio"],
                                    "audio": {"output": {"format": PCM, "voice": voice}}}
        previous = self.conversation[-1].id if self.conversation else None
        item = Item(new_id("item"), "assistant", status="in_progress")
        try:
            try:
                await self.send({"type": "response.created", "response": dict(response)})
                self.conversation.append(item)
                await self.send({"type": "response.output_item.added", "response_id": response_id,
                                 "output_index": 0, "item": item.wire()})
                await self.send({"type": "conversation.item.added", "previous_item_id": previous,
                                 "item": item.wire()})
                await self.send({"type": "response.content_part.added", "response_id": response_id,
                                 "item_id": item.id, "output_index": 0, "content_index": 0,
                                 "part": {"type": "audio", "transcript": ""}})
                pcm = tone(max(200, int(len(text) * self.standin.ms_per_char)))
                chunk = self.standin.chunk_ms * BYTES_PER_MS
                words = text.split(" ")
                chunks = math.ceil(len(pcm) / chunk)
                said = 0
                ids = {"response_id": response_id, "item_id": item.id, "output_index": 0, "content_index": 0}
                for n, offset in enumerate(range(0, len(pcm), chunk)):
                    due = math.ceil((n + 1) / chunks * len(words))
                    if due > said:
                        delta = (" " if said else "") + " ".join(words[said:due])
                        said = due
                        item.transcript += delta
                        await self.send({"type": "response.output_audio_transcript.delta", **ids, "delta": delta})
                    piece = pcm[offset:offset + chunk]
                    item.audio_b += len(piece)
                    self.audio_out = True
                    await self.send({"type": "response.output_audio.delta", **ids,
                                     "delta": base64.b64encode(piece).decode()})
                    await asyncio.sleep(self.standin.chunk_ms / 1000 / self.standin.speed)
                item.status = "completed"
                item.content = [{"type": "output_audio", "transcript": text}]
                self.said[item.id] = text
                await self.send({"type": "response.output_audio.done", **ids})
                await self.send({"type": "response.output_audio_transcript.done", **ids, "transcript": text})
                await self.send({"type": "response.content_part.done", **ids,
                                 "part": {"type": "audio", "transcript": text}})
                await self.send({"type": "response.output_item.done", "response_id": response_id, "output_index": 0,
                                 "item": item.wire()})
                await self.send({"type": "conversation.item.done", "previous_item_id": previous, "item": item.wire()})
                self._response = None
                await self.send({"type": "response.done", "response": {**response, "status": "completed",
                                                                       "output": [item.wire()]}})
            except asyncio.CancelledError:
                self._response = None
                item.status = "incomplete"
                item.content = [{"type": "output_audio", "transcript": item.transcript}]
                self.said[item.id] = item.transcript
                await self.send({"type": "response.done", "response": {
                    **response, "status": "cancelled", "output": [item.wire()],
                    "status_details": {"type": "cancelled", "reason": self._cancel_reason}}})
        except _Closed:
            pass
        finally:
            if self._response is not None and self._response_id == response_id:
                self._response = None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def stop(self) -> None:
        self.closed = True
        for task in [*self._tasks, *([self._response] if self._response else [])]:
            task.cancel()


# -------------------------------------------------------------------------------------------
# The server


class OpenAIStandin:
    def __init__(self, api_key: str = "sk-standin-test-key", *, ms_per_char: float = 25.0, speed: float = 20.0,
                 chunk_ms: int = 100, transcribe_delay_s: float = 0.05) -> None:
        self.api_key = api_key
        self.ms_per_char = ms_per_char  # how long the fake model speaks per character
        self.speed = speed  # audio generated this many times faster than real time
        self.chunk_ms = chunk_ms
        self.transcribe_delay_s = transcribe_delay_s
        self.spec = realtime_spec()
        self.sessions: list[StandinSession] = []
        self.violations: list[str] = []
        self.refused = 0
        self.refuse = 0  # the next handshakes answered with 503
        self.max_session_s: float | None = None
        self.on_sent: Callable[[StandinSession, dict[str, Any]], None] | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> OpenAIStandin:
        app = web.Application()
        app.router.add_get("/v1/realtime", self._realtime)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        for session in self.sessions:
            session.stop()
        if self._runner is not None:
            await self._runner.cleanup()

    def drop_all(self) -> int:
        """Aborts every open connection (a real fault: TCP reset, no close frame)."""
        live = [s for s in self.sessions if not s.closed]
        for session in live:
            session.abort()
        return len(live)

    @property
    def live(self) -> list[StandinSession]:
        return [s for s in self.sessions if not s.closed]

    async def _realtime(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"error": {"type": "invalid_request_error", "code": "invalid_api_key",
                                                "message": "Incorrect API key provided.", "param": None}},
                                     status=401)
        model = request.query.get("model")
        if not model:
            return web.json_response({"error": {"type": "invalid_request_error", "code": "missing_model",
                                                "message": "model is required", "param": "model"}}, status=400)
        if self.refuse > 0:
            self.refuse -= 1
            self.refused += 1
            return web.json_response({"error": {"type": "server_error", "message": "try again"}}, status=503)
        ws = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024, autoping=True)
        await ws.prepare(request)
        session = StandinSession(self, ws, request, model)
        self.sessions.append(session)
        expiry: asyncio.TimerHandle | None = None
        if self.max_session_s is not None:
            expiry = asyncio.get_running_loop().call_later(self.max_session_s,
                                                           lambda: session._spawn(self._expire(session)))
        try:
            await session.send({"type": "session.created", "session": session.session_view()})
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await session.handle(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self.violations.append("client sent a binary message")
        except _Closed:
            pass
        finally:
            if expiry is not None:
                expiry.cancel()
            session.stop()
        return ws

    async def _expire(self, session: StandinSession) -> None:
        try:
            await session.error("session_expired", "Your session hit the maximum duration of 60 minutes.")
        except _Closed:
            return
        session.closed = True
        await session.ws.close(code=1000, message=b"session expired")
