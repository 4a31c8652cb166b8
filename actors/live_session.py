"""One live interview inside its actor: the candidate's connection, the engine, the transcript,
the session's status, the grace period and the end.

The candidate reaches it through the edge over a frame stream (interview_core/frame_stream.py).
A newer connection replaces an older one (the candidate reconnected, perhaps through another
edge); a candidate gone longer than the grace period leaves the interview abandoned.

A turn is stored before the candidate is told about it: the events that tell them a turn is over
(`conversation.item.input_audio_transcription.completed` for theirs, `response.done` for the
interviewer's) leave only once the transcript writer has stored every item recorded so far, and
the events after them wait behind them. Engines record a turn in the same step as they tell it,
so whatever the candidate was told survives this process dying the moment after. Normally that
costs one append's round trip; while the control service is down the candidate waits at the
next finished turn instead of being told about a turn that could still be lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from actors.engines import EngineFactory, EngineHooks
from actors.interview_flow import EndReason, InterviewFlow, Record
from actors.offline_engine import Engine
from actors.transcript_writer import TranscriptWriter
from interview.v1 import resources_pb2
from interview_core import frame_stream as fs
from interview_core import realtime_protocol as rt
from interview_core.control_client import ControlClient
from interview_core.errors import ErrorCode, PlatformError

log = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_REPLACED = 4000  # another connection took this interview over: the SDK must not retry

END_STATUS = {
    EndReason.COMPLETED: resources_pb2.SESSION_STATUS_COMPLETED,
    EndReason.TIME_LIMIT: resources_pb2.SESSION_STATUS_COMPLETED,
    EndReason.ENDED_BY_TENANT: resources_pb2.SESSION_STATUS_ENDED,
    EndReason.ABANDONED: resources_pb2.SESSION_STATUS_ABANDONED,
}
END_MESSAGE = {
    EndReason.COMPLETED: "interview complete",
    EndReason.TIME_LIMIT: "time limit reached",
    EndReason.ENDED_BY_TENANT: "ended by the company",
    EndReason.ABANDONED: "candidate did not return in time",
}
TERMINAL = {resources_pb2.SESSION_STATUS_COMPLETED, resources_pb2.SESSION_STATUS_ABANDONED,
            resources_pb2.SESSION_STATUS_ENDED}
# Events that tell the candidate a turn is over: sent only once the turn is stored.
TELLING = (rt.InputAudioTranscriptionCompleted, rt.ResponseDone)


def records_from(items: list[resources_pb2.TranscriptItem]) -> list[Record]:
    speaker = {resources_pb2.SPEAKER_INTERVIEWER: "interviewer", resources_pb2.SPEAKER_CANDIDATE: "candidate"}
    return [Record(i.sequence, speaker[i.speaker], i.text, i.audio_start_ms, i.audio_end_ms, f"stored_{i.sequence}")
            for i in items]


class LiveSession:
    def __init__(self, session: resources_pb2.Session, control: ControlClient, engine_factory: EngineFactory, *,
                 grace_s: float, unjoined_s: float, on_done: Callable[[str], None]) -> None:
        self.session = session
        self.session_id = session.id
        self._control = control
        self._grace_s = grace_s
        self._unjoined_s = unjoined_s
        self._on_done = on_done
        template = session.template
        self.flow = InterviewFlow(role=template.role, questions=list(template.questions),
                                  time_limit_s=float(template.time_limit_seconds))
        self.writer = TranscriptWriter(session.id, control.append_items)
        self._engine_factory = engine_factory
        self.engine: Engine = engine_factory(self.flow, template, EngineHooks(
            send=self.send_event, record=self.writer.add, finished=self._finish))
        self.config = rt.SessionConfig(id=session.id, model=engine_factory.model, voice=template.voice or "alloy")
        self._conn: fs.Channel | None = None
        self._started = False
        self._ended: EndReason | None = None
        self._abandon: asyncio.TimerHandle | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # Events waiting for the transcript (see the module's docstring): (connection, frame, tells).
        self._held: deque[tuple[fs.Channel, bytes, bool]] = deque()
        self._releasing: asyncio.Task[None] | None = None
        self.frames_in = 0  # audio frames received (the bench compares them with what was sent)
        self.done = asyncio.Event()

    async def start(self) -> None:
        """Restores what a previous life of this interview stored, then starts the background work."""
        # A session still ready has said nothing yet: no transcript to read (one RPC less a join).
        ready = self.session.status == resources_pb2.SESSION_STATUS_READY
        stored = [] if ready else await self._control.get_transcript(self.session_id)
        if stored:
            self.flow.restore(records_from(stored))
            said_goodbye = self._goodbye(stored[-1])
            if said_goodbye is not None:
                # The last words were stored (and perhaps heard) but the end was not: record it now.
                await self._set_status(END_STATUS[said_goodbye], END_MESSAGE[said_goodbye])
                raise PlatformError(ErrorCode.INVALID_STATE, "this interview is over")
        await self._engine_factory.prepare(self.flow, self.session.template)
        self.writer.start()
        self._tasks = [asyncio.create_task(self._tick(), name="tick"),
                       asyncio.create_task(self._watch(), name="watch")]
        loop = asyncio.get_running_loop()
        if self.session.status == resources_pb2.SESSION_STATUS_IN_PROGRESS:
            # Resumed after a restart: the candidate has the grace period to come back.
            self._started = True
            self._abandon = loop.call_later(self._grace_s, self._abandoned)
        else:
            self._abandon = loop.call_later(self._unjoined_s, self._unjoined)

    def _goodbye(self, item: resources_pb2.TranscriptItem) -> EndReason | None:
        """The reason the interview ended, if `item` (the last one stored) was the interviewer's
        closing words."""
        if item.speaker != resources_pb2.SPEAKER_INTERVIEWER:
            return None
        ends = {self.flow.closing_text: EndReason.COMPLETED, self.flow.time_up_text: EndReason.TIME_LIMIT}
        return ends.get(item.text)

    # -- the candidate's connection -------------------------------------------------------------
    def attach(self, conn: fs.Channel, *, announced: bool = False) -> None:
        """The candidate's stream; `announced`: the edge has told them `session.created` already."""
        if self._ended is not None:
            conn.send(fs.EVENT, rt.encode_server_event(
                rt.InterviewEnded(reason=self._ended.value)).encode())  # type: ignore[arg-type]
            conn.close(CLOSE_NORMAL, END_MESSAGE[self._ended])
            return
        if self._conn is not None and self._conn is not conn:
            self._conn.close(CLOSE_REPLACED, "replaced by a newer connection")
            self.engine.disconnect()
        self._conn = conn
        if self._abandon is not None:
            self._abandon.cancel()
            self._abandon = None
        if not announced:
            self.send_event(rt.SessionCreated(session=self.config))
        if not self._started:
            self._started = True
            asyncio.get_running_loop().create_task(self._set_status(resources_pb2.SESSION_STATUS_IN_PROGRESS))
        self.engine.connect()

    def detach(self, conn: fs.Channel) -> None:
        if conn is not self._conn:
            return
        self._conn = None
        if self._ended is None:
            self.engine.disconnect()
            self._abandon = asyncio.get_running_loop().call_later(self._grace_s, self._abandoned)

    def on_frame(self, conn: fs.Channel, kind: int, payload: bytes) -> None:
        if conn is not self._conn:
            return
        if kind == fs.AUDIO:
            self.frames_in += 1
            self.engine.on_audio(payload)
        elif kind == fs.EVENT:
            self._on_event(payload)

    def _on_event(self, payload: bytes) -> None:
        try:
            event = rt.decode_client_event(payload, max_bytes=fs.MAX_FRAME_BYTES)
        except rt.ProtocolError as exc:  # the edge validated it; this is only a safety net
            self.send_event(rt.error_event(exc))
            return
        if isinstance(event, rt.InterviewPing):
            self.send_event(rt.InterviewPong(client_time_ms=event.client_time_ms, ping_id=event.ping_id))
        elif isinstance(event, rt.SessionUpdate):
            try:
                self.config = rt.apply_session_update(self.config, event)
            except rt.ProtocolError as exc:
                self.send_event(rt.error_event(exc))
                return
            self.send_event(rt.SessionUpdated(session=self.config))
        else:
            self.engine.on_event(event)

    def send_event(self, event: rt.ServerEvent) -> None:
        conn = self._conn
        if conn is None:
            return
        payload = rt.encode_server_event(event).encode()
        tells = isinstance(event, TELLING)
        if not tells and not self._held:
            conn.send(fs.EVENT, payload)
            return
        self._held.append((conn, payload, tells))
        if self._releasing is None or self._releasing.done():
            self._releasing = asyncio.get_running_loop().create_task(self._release(), name="release")

    async def _release(self) -> None:
        """Sends the held events in order, each telling one once the transcript is stored. It runs
        after the step that held the event, so the turn's record is queued by then."""
        while self._held:
            conn, payload, tells = self._held[0]
            if tells:
                await self.writer.stored(self.writer.last_added)
            self._held.popleft()
            if conn is self._conn:  # not for a connection that has gone (it never heard it)
                conn.send(fs.EVENT, payload)

    async def _all_sent(self) -> None:
        if self._releasing is not None and not self._releasing.done():
            await asyncio.shield(self._releasing)

    # -- lifecycle ------------------------------------------------------------------------------
    def end(self, reason: EndReason) -> None:
        if self._ended is None:
            self.engine.end(reason)

    def _unjoined(self) -> None:
        """Placed ahead of a join that never came: free the slot, the session stays ready."""
        self._abandon = None
        if self._conn is None and not self._started and self._ended is None:
            asyncio.get_running_loop().create_task(self._let_go())

    async def _let_go(self) -> None:
        await self.close()
        self.done.set()
        self._on_done(self.session_id)

    def _abandoned(self) -> None:
        self._abandon = None
        if self._conn is None:
            self.end(EndReason.ABANDONED)

    def _finish(self, reason: EndReason) -> None:
        if self._ended is not None:
            return
        self._ended = reason
        asyncio.get_running_loop().create_task(self._wrap_up(reason))

    async def _wrap_up(self, reason: EndReason) -> None:
        # Every turn, then the end, is stored before anyone is told it is over.
        await self.writer.flush()
        try:
            await self._set_status(END_STATUS[reason], END_MESSAGE[reason])
        except PlatformError as exc:
            log.warning("session %s: could not record its end (%s)", self.session_id, exc.code.code)
        self.send_event(rt.InterviewEnded(reason=reason.value))  # type: ignore[arg-type]
        await self._all_sent()
        if self._conn is not None:
            self._conn.close(CLOSE_NORMAL, END_MESSAGE[reason])
        await self._let_go()

    async def close(self) -> None:
        for task in [*self._tasks, *([self._releasing] if self._releasing else [])]:
            task.cancel()
        await self.engine.close()
        await self.writer.stop()

    async def _set_status(self, status: int, reason: str = "") -> None:
        try:
            await self._control.set_status(self.session_id, status, reason)
        except PlatformError as exc:
            if exc.code.code != "INVALID_STATE":  # already ended by the tenant: fine
                raise

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self.engine.tick()

    async def _watch(self) -> None:
        """Hears the tenant's EndSession."""
        try:
            async for session in self._control.watch_status(self.session_id):
                if session.status == resources_pb2.SESSION_STATUS_ENDED:
                    self.end(EndReason.ENDED_BY_TENANT)
                    return
                if session.status in TERMINAL:
                    return
        except PlatformError as exc:
            log.warning("session %s: cannot watch for its end (%s)", self.session_id, exc.code.code)

    def stats(self) -> dict[str, object]:
        return {"session_id": self.session_id, "frames_in": self.frames_in, "audio_ms": self.engine_audio_ms,
                "connected": self._conn is not None, "ended": self._ended.value if self._ended else None}

    @property
    def engine_audio_ms(self) -> int:
        return int(getattr(self.engine, "audio_ms", 0))


