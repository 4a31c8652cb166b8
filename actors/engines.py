"""Which interviewer runs an interview: the seam between `LiveSession` and the engines.

`LiveSession` owns the conversation's plumbing (connection, transcript, status); an engine is
built for it by an `EngineFactory`, chosen once per worker from the settings: the offline
interviewer on the embedded defaults, the OpenAI interviewer when `OPENAI_API_KEY` is set.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from actors.interview_flow import EndReason, InterviewFlow, Record
from actors.offline_engine import Engine, OfflineConfig, OfflineInterviewer, SpeechKit
from interview.v1 import resources_pb2
from interview_core import realtime_protocol as rt
from interview_core.config import Settings


@dataclass(frozen=True)
class EngineHooks:
    """What an engine calls back: events for the candidate, turns for the transcript, the end."""

    send: Callable[[rt.ServerEvent], None]
    record: Callable[[Record], None]
    finished: Callable[[EndReason], None]


class EngineFactory(Protocol):
    model: str  # what `session.created` reports as the model

    def __call__(self, flow: InterviewFlow, template: resources_pb2.Template, hooks: EngineHooks) -> Engine: ...

    async def prepare(self, flow: InterviewFlow, template: resources_pb2.Template) -> None:
        """Work the candidate's join would otherwise wait for, done when the session is placed."""
        ...


class OfflineEngineFactory:
    model = "offline-interviewer"

    def __init__(self, settings: Settings, speech: SpeechKit) -> None:
        self._settings = settings
        self._speech = speech

    def __call__(self, flow: InterviewFlow, template: resources_pb2.Template, hooks: EngineHooks) -> Engine:
        config = OfflineConfig(language=template.language or "en-US", silence_ms=self._settings.turn_silence_ms)
        return OfflineInterviewer(flow, self._speech, config, send=hooks.send, record=hooks.record,
                                  finished=hooks.finished)

    async def prepare(self, flow: InterviewFlow, template: resources_pb2.Template) -> None:
        first = flow.first_words()
        if first is not None:  # synthesised now, from the cache at the join
            await asyncio.to_thread(self._speech.synthesize, first, template.language or "en-US")
