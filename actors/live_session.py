"""One live interview inside its actor: the candidate's connection, the engine, the transcript,
the session's status, the grace period and the end.

The candidate reaches it through the edge over a frame stream (interview_core/frame_stream.py).
A newer connection replaces an older one (the candidate reconnected, perhaps through another
edge); a candidate gone longer than the grace period leaves the interview abandoned.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from actors.interview_flow import EndReason, InterviewFlow, Record
from actors.offline_engine import Engine, OfflineConfig, OfflineInterviewer, SpeechKit
from actors.transcript_writer import TranscriptWriter
from interview.v1 import resources_pb2
from interview_core import frame_stream as fs
from interview_core import realtime_protocol as rt
from interview_core.control_client import ControlClient
from interview_core.errors import PlatformError

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


def records_from(items: list[resources_pb2.TranscriptItem]) -> list[Record]:
    speaker = {resources_pb2.SPEAKER_INTERVIEWER: "interviewer", resources_pb2.SPEAKER_CANDIDATE: "candidate"}
    return [Record(i.sequence, speaker[i.speaker], i.text, i.audio_start_ms, i.audio_end_ms, f"stored_{i.sequence}")
            for i in items]


class LiveSession:
    def __init__(self, session: resources_pb2.Session, control: ControlClient, speech: SpeechKit, *,
                 grace_s: float, on_done: Callable[[str], None], model: str = "offline-interviewer") -> None:
        self.session = session
        self.session_id = session.id
        self._control = control
        self._grace_s = grace_s
        self._on_done = on_done
        template = session.template
        self.flow = InterviewFlow(role=template.role, questions=list(template.questions),
                                  time_limit_s=float(template.time_limit_seconds))
        self.writer = TranscriptWriter(session.id, control.append_items)
        self.engine: Engine = OfflineInterviewer(
            self.flow, speech, OfflineConfig(language=template.language or "en-US"),
            send=self.send_event, record=self.writer.add, finished=self._finish)
        self.config = rt.SessionConfig(id=session.id, model=model, voice=template.voice or "alloy")
        self._conn: fs.FrameProtocol | None = None
        self._started = False
        self._ended: EndReason | None = None
        self._abandon: asyncio.TimerHandle | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.frames_in = 0  # audio frames received (the bench compares them with what was sent)
        self.done = asyncio.Event()

    async def start(self) -> None:
        """Restores what a previous life of this interview stored, then starts the background work."""
        stored = await self._control.get_transcript(self.session_id)
        if stored:
            self.flow.restore(records_from(stored))
        self.writer.start()
        self._tasks = [asyncio.create_task(self._tick(), name="tick"),
                       asyncio.create_task(self._watch(), name="watch")]

    # -- the candidate's connection -------------------------------------------------------------
    def attach(self, conn: fs.FrameProtocol) -> None:
        if self._ended is not None:
            conn.send(fs.encode_frame(fs.EVENT, rt.encode_server_event(
                rt.InterviewEnded(reason=self._ended.value)).encode()))  # type: ignore[arg-type]
            conn.send(fs.encode_close(CLOSE_NORMAL, END_MESSAGE[self._ended]))
            return
        if self._conn is not None and self._conn is not conn:
            self._conn.send(fs.encode_close(CLOSE_REPLACED, "replaced by a newer connection"))
            self.engine.disconnect()
        self._conn = conn
        if self._abandon is not None:
            self._abandon.cancel()
            self._abandon = None
        self.send_event(rt.SessionCreated(session=self.config))
        if not self._started:
            self._started = True
            asyncio.get_running_loop().create_task(self._set_status(resources_pb2.SESSION_STATUS_IN_PROGRESS))
        self.engine.connect()

    def detach(self, conn: fs.FrameProtocol) -> None:
        if conn is not self._conn:
            return
        self._conn = None
        if self._ended is None:
            self.engine.disconnect()
            self._abandon = asyncio.get_running_loop().call_later(self._grace_s, self._abandoned)

    def on_frame(self, conn: fs.FrameProtocol, kind: int, payload: bytes) -> None:
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
        if self._conn is not None:
            self._conn.send(fs.encode_frame(fs.EVENT, rt.encode_server_event(event).encode()))

    # -- lifecycle ------------------------------------------------------------------------------
    def end(self, reason: EndReason) -> None:
        if self._ended is None:
            self.engine.end(reason)

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
        if self._conn is not None:
            self._conn.send(fs.encode_close(CLOSE_NORMAL, END_MESSAGE[reason]))
        await self.close()
        self.done.set()
        self._on_done(self.session_id)

    async def close(self) -> None:
        for task in self._tasks:
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


