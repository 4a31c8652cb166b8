"""The offline interviewer: the embedded default engine, speaking the same events as OpenAI's.

It asks the template's questions in order as real synthesised speech, hears the candidate with
real voice-activity detection, ends a turn after a configurable silence, records each turn with
its timing and, when enabled, transcribes it offline. It stops talking when the candidate starts
(barge-in). Deterministic for a given input: the same audio in gives the same events and
transcript out (timings aside).

The conversation logic is `InterviewFlow`'s; this module turns its actions into audio and events
and feeds it what the microphone hears. The engine interface (`Engine`) is what the OpenAI
interviewer implements too.

A finished turn is recorded before the candidate is told about it (the record, then
`input_audio_transcription.completed` or `response.done`, in one step): the live session sends
those events only once the record is stored (actors/live_session.py). After an actor restart the
interview's audio timeline continues from the end of the last stored turn.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from actors.interview_flow import (
    Action,
    EndReason,
    Finish,
    InterviewFlow,
    Progress,
    Record,
    Speak,
    StopSpeaking,
)
from interview_core import realtime_protocol as rt

log = logging.getLogger(__name__)

BYTES_PER_MS = 48  # PCM16 mono at 24 kHz
RECENT_BYTES = 1500 * BYTES_PER_MS


class SpeechKit(Protocol):
    """What the offline engine needs of speech: see actors/speech.py."""

    def synthesize(self, text: str, language: str) -> bytes: ...
    def synthesized(self, text: str, language: str) -> bytes | None:
        """The speech if it was synthesised before (no waiting), else None."""
        ...
    def new_turn_detector(self, silence_ms: int) -> TurnDetector: ...
    def transcribe(self, pcm: bytes) -> str: ...
    @property
    def transcribes(self) -> bool: ...


def progress_event(flow: InterviewFlow, action: Progress, now: float) -> rt.InterviewProgress:
    """The candidate's `interview.progress` for the flow's Progress action (both engines)."""
    return rt.InterviewProgress(question_number=action.question, question_count=action.of,
                                seconds_left=action.seconds_left or flow.seconds_left(now))


class TurnDetector(Protocol):
    def feed(self, pcm: bytes) -> list[tuple[str, int]]:
        """("started" | "stopped", offset_ms) for each change heard in this audio."""
        ...


class Engine(Protocol):
    """What the actor drives: one interview's conversation, whichever interviewer runs it."""

    def connect(self) -> None: ...
    def disconnect(self) -> None: ...
    def on_audio(self, pcm: bytes) -> None: ...
    def on_event(self, event: rt.ClientEvent) -> None: ...
    def tick(self) -> None: ...
    def end(self, reason: EndReason) -> None: ...
    async def close(self) -> None: ...


@dataclass(frozen=True)
class OfflineConfig:
    language: str = "en-US"
    silence_ms: int = 500
    chunk_ms: int = 100  # interviewer audio per output_audio.delta
    lead_ms: int = 300  # how far ahead of real time the interviewer's audio is sent
    progress_every_s: float = 15.0


class OfflineInterviewer:
    def __init__(self, flow: InterviewFlow, speech: SpeechKit, config: OfflineConfig, *,
                 send: Callable[[rt.ServerEvent], None], record: Callable[[Record], None],
                 finished: Callable[[EndReason], None], clock: Callable[[], float] = time.monotonic) -> None:
        self.flow = flow
        self._speech = speech
        self._config = config
        self._send = send
        self._record = record
        self._finished = finished
        self._clock = clock
        self._detector = speech.new_turn_detector(config.silence_ms)
        self.audio_ms = 0  # the candidate's input audio heard so far, the interview's timeline
        self._audio_bytes = 0
        self._base_ms = 0  # where this process's audio starts on the timeline (after a restart)
        self._utterance = bytearray()  # the candidate's current turn, for transcription
        self._recent = bytearray()  # the last second or so: a turn starts before it is detected
        self._collecting = False
        self._speaking: asyncio.Task[None] | None = None
        self._speaking_item: str | None = None
        self._response_id = ""
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_progress = 0.0
        self._input_item = ""

    # -- inputs --------------------------------------------------------------------------------
    def connect(self) -> None:
        if self._audio_bytes == 0 and self.flow.recorded and not self._base_ms:
            # Restored from the stored transcript: carry on the timeline where it stopped.
            self._base_ms = max(r.end_ms for r in self.flow.recorded)
            self.audio_ms = self._base_ms
        self._apply(self.flow.connect(self._clock(), self.audio_ms))

    def disconnect(self) -> None:
        self._apply(self.flow.disconnect(self._clock(), self.audio_ms))

    def on_audio(self, pcm: bytes) -> None:
        self._audio_bytes += len(pcm)
        self.audio_ms = self._base_ms + self._audio_bytes // BYTES_PER_MS
        if self._collecting:
            self._utterance += pcm
        elif self._speech.transcribes:
            self._recent += pcm
            if len(self._recent) > 2 * RECENT_BYTES:
                del self._recent[:-RECENT_BYTES]
        for change, offset_ms in self._detector.feed(pcm):
            if change == "started":
                self._speech_started(self._base_ms + offset_ms)
            else:
                self._speech_stopped(self._base_ms + offset_ms)

    def on_event(self, event: rt.ClientEvent) -> None:
        if isinstance(event, rt.InputAudioBufferCommit):
            if self._collecting:
                self._speech_stopped(self.audio_ms)
            self._send(rt.InputAudioBufferCommitted(item_id=self._input_item or rt.new_id("item")))
        elif isinstance(event, rt.InputAudioBufferClear):
            self._collecting = False
            self._utterance.clear()
            self._apply(self.flow.speech_discarded())
            self._send(rt.InputAudioBufferCleared())
        elif isinstance(event, rt.ResponseCancel):
            self._apply(self.flow.cancel_speaking(self.audio_ms))
        elif isinstance(event, rt.ConversationItemTruncate):
            self._send(rt.ConversationItemTruncated(item_id=event.item_id, audio_end_ms=event.audio_end_ms,
                                                    content_index=event.content_index))

    def tick(self) -> None:
        now = self._clock()
        self._apply(self.flow.tick(now, self.audio_ms))
        if now - self._last_progress >= self._config.progress_every_s and self.flow.end_reason is None:
            self._apply([self.flow.progress(now)])

    def end(self, reason: EndReason) -> None:
        self._apply(self.flow.end(reason, self.audio_ms))

    async def close(self) -> None:
        for task in [*self._tasks, *([self._speaking] if self._speaking else [])]:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- turn detection ------------------------------------------------------------------------
    def _speech_started(self, offset_ms: int) -> None:
        self._collecting = True
        heard_since_start = max(0, self.audio_ms - offset_ms) * BYTES_PER_MS
        self._utterance = bytearray(self._recent[-heard_since_start:] if heard_since_start else b"")
        self._recent.clear()
        self._input_item = rt.new_id("item")
        self._send(rt.InputAudioBufferSpeechStarted(audio_start_ms=offset_ms, item_id=self._input_item))
        self._apply(self.flow.speech_started(offset_ms))

    def _speech_stopped(self, offset_ms: int) -> None:
        if not self._collecting:
            return
        self._collecting = False
        item_id = self._input_item
        self._send(rt.InputAudioBufferSpeechStopped(audio_end_ms=offset_ms, item_id=item_id))
        self._send(rt.InputAudioBufferCommitted(item_id=item_id))
        audio = bytes(self._utterance)
        self._utterance.clear()
        self._spawn(self._finish_turn(item_id, offset_ms, audio))

    async def _finish_turn(self, item_id: str, offset_ms: int, audio: bytes) -> None:
        text = ""
        if self._speech.transcribes:
            text = await asyncio.to_thread(self._speech.transcribe, audio)
        actions = self.flow.speech_stopped(offset_ms, text)
        self._apply([a for a in actions if isinstance(a, Record)])  # stored before the candidate is told
        self._send(rt.InputAudioTranscriptionCompleted(item_id=item_id, transcript=text,
                                                       audio_seconds=len(audio) / (BYTES_PER_MS * 1000)))
        self._apply([a for a in actions if not isinstance(a, Record)])

    # -- actions -------------------------------------------------------------------------------
    def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Speak):
                self._start_speaking(action)
            elif isinstance(action, StopSpeaking):
                self._stop_speaking(action.item_id)
            elif isinstance(action, Record):
                self._record(action)
            elif isinstance(action, Progress):
                self._last_progress = self._clock()
                self._send(progress_event(self.flow, action, self._last_progress))
            elif isinstance(action, Finish):
                self._finished(action.reason)

    def _start_speaking(self, action: Speak) -> None:
        self._stop_speaking(None)
        self._response_id = rt.new_id("resp")
        self._speaking_item = action.item_id
        self._speaking = asyncio.get_running_loop().create_task(self._speak(action, self._response_id))

    def _stop_speaking(self, item_id: str | None) -> None:
        if self._speaking is None or (item_id is not None and item_id != self._speaking_item):
            return
        self._speaking.cancel()
        self._speaking = None
        if item_id is not None:
            self._send(rt.ResponseDone(response_id=self._response_id, status="cancelled",
                                       reason="turn_detected", item_id=item_id))
        self._speaking_item = None

    async def _speak(self, action: Speak, response_id: str) -> None:
        pcm = self._speech.synthesized(action.text, self._config.language)
        if pcm is None:  # off the loop: synthesis takes tens of milliseconds
            pcm = await asyncio.to_thread(self._speech.synthesize, action.text, self._config.language)
        item = action.item_id
        self._send(rt.ResponseCreated(response_id=response_id))
        self._send(rt.ResponseOutputAudioTranscriptDelta(response_id=response_id, item_id=item, delta=action.text))
        chunk = self._config.chunk_ms * BYTES_PER_MS
        started = self._clock()
        for offset in range(0, len(pcm), chunk):
            # Send up to lead_ms ahead of real time: smooth playback, quick to stop on barge-in.
            due = started + (offset / BYTES_PER_MS - self._config.lead_ms) / 1000
            delay = due - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
            self._send(rt.ResponseOutputAudioDelta(response_id=response_id, item_id=item,
                                                   audio=pcm[offset:offset + chunk]))
        # The interviewer has finished when the candidate has heard the last of it.
        remaining = started + len(pcm) / BYTES_PER_MS / 1000 - self._clock()
        if remaining > 0:
            await asyncio.sleep(remaining)
        self._speaking = None
        self._speaking_item = None
        actions = self.flow.speaking_done(item, self.audio_ms)
        self._apply([a for a in actions if isinstance(a, Record)])  # stored before the candidate is told
        self._send(rt.ResponseOutputAudioDone(response_id=response_id, item_id=item))
        self._send(rt.ResponseOutputAudioTranscriptDone(response_id=response_id, item_id=item, transcript=action.text))
        self._send(rt.ResponseDone(response_id=response_id, status="completed", item_id=item, transcript=action.text))
        self._apply([a for a in actions if not isinstance(a, Record)])

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
