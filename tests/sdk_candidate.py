"""A simulated candidate built on the official `openai` SDK: it gets a client secret, connects
with `client.realtime.connect(call_id=...)`, and behaves like a person with a microphone: it
streams audio continuously (silence, or an answer after each question), at real-time pace or
faster, and records every event it receives."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI

FRAME_BYTES = 960  # 20 ms of PCM16 at 24 kHz


def read_wav(path: Path) -> bytes:
    with wave.open(str(path), "rb") as wav:
        assert wav.getframerate() == 24000 and wav.getnchannels() == 1 and wav.getsampwidth() == 2
        return wav.readframes(wav.getnframes())


def silence(seconds: float) -> bytes:
    return bytes(int(seconds * 24000) * 2)


@dataclass
class CandidateRun:
    events: list[dict[str, Any]] = field(default_factory=list)
    reconnects: int = 0
    close_code: int | None = None

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]


@contextlib.asynccontextmanager
async def _explained_timeout(timeout_s: float, run: CandidateRun) -> AsyncIterator[None]:
    try:
        async with asyncio.timeout(timeout_s):
            yield
    except TimeoutError:
        tail = [e.get("type") for e in run.events[-15:]]
        raise AssertionError(f"interview stalled; reconnects={run.reconnects}; last events: {tail}") from None


def sdk_client(base: str, key: str) -> AsyncOpenAI:
    return AsyncOpenAI(api_key=key, base_url=f"http://{base}/v1", websocket_base_url=f"ws://{base}/v1",
                       max_retries=0)


async def client_secret(base: str, access_token: str) -> str:
    secret = await sdk_client(base, access_token).realtime.client_secrets.create()
    return secret.value


async def run_interview(base: str, key: str, session_id: str, answers: list[bytes], *, speed: float = 1.0,
                        reconnect: bool = False, on_event: Any = None, timeout_s: float = 120) -> CandidateRun:
    """Answers each question with the next of `answers` (then silence) until the interview ends.

    `speed` > 1 streams audio that many times faster than real time.
    """
    run = CandidateRun()
    pending = list(answers)
    to_say = bytearray()
    question_done = asyncio.Event()

    def reconnecting(_event: Any) -> None:
        run.reconnects += 1

    client = sdk_client(base, key)
    manager = client.realtime.connect(call_id=session_id, on_reconnecting=reconnecting if reconnect else None)
    async with manager as conn:
        async def speak() -> None:
            chunk = FRAME_BYTES * 5
            interval = 0.1 / speed
            next_at = time.monotonic()
            while True:
                if question_done.is_set():
                    question_done.clear()
                    to_say.extend(pending.pop(0) + silence(1.0) if pending else b"")
                piece = bytes(to_say[:chunk]) or silence(0.1)
                del to_say[:chunk]
                await conn.input_audio_buffer.append(audio=base64.b64encode(piece).decode())
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))

        speaker = asyncio.create_task(speak())
        try:
            async with _explained_timeout(timeout_s, run):
                async for event in conn:
                    data = event.model_dump(exclude_none=True) if hasattr(event, "model_dump") else dict(event)
                    run.events.append(data)
                    if on_event is not None:
                        await on_event(data, conn)
                    if data["type"] == "response.done" and data["response"]["status"] == "completed":
                        question_done.set()
                    if data["type"] == "interview.ended":
                        break
        finally:
            speaker.cancel()
    return run
