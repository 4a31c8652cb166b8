"""The simulated candidate of `interview demo`, a client built on the official `openai` SDK.

It redeems an invitation at the edge (as the invitation page does), gets a client secret, joins
with `client.realtime.connect(call_id=...)` and behaves like a person at a microphone: it streams
audio all the time (silence while it listens), and after each of the interviewer's turns speaks
its next answer, synthesised offline with espeak-ng (actors/speech.py, PCM16 at 24 kHz). Audio
goes at real-time pace; `speed` > 1 sends the answers that many times faster (silence stays at
real time, so the edge's audio rate limit is respected).

What happens is reported as `Moment`s, which the demo prints as the conversation goes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

BYTES_PER_S = 48_000  # PCM16 mono at 24 kHz
CHUNK_S = 0.1  # audio per input_audio_buffer.append
OFFLINE_MODEL = "offline-interviewer"


class CandidateError(Exception):
    """The candidate could not get in or was cut off; the message says why, in one line."""


@dataclass(frozen=True)
class Answer:
    text: str
    pcm: bytes

    @property
    def seconds(self) -> float:
        return len(self.pcm) / BYTES_PER_S


@dataclass(frozen=True)
class Redeemed:
    session_id: str
    access_token: str
    question_count: int
    time_limit_seconds: int


@dataclass(frozen=True)
class Moment:
    """Something that happened in the interview, `at` seconds after joining.

    kind: "joined" (text: the interviewer's model), "progress" (question, of, seconds_left),
    "interviewer_delta" (text), "interviewer_done" (text; cut_off), "candidate" (text, seconds),
    "heard" (text: the transcription, if any; seconds), "reconnecting", "error" (text), "ended"
    (text: the reason).
    """

    kind: str
    at: float
    text: str = ""
    seconds: float = 0.0
    question: int = 0
    of: int = 0
    seconds_left: int | None = None
    cut_off: bool = False


@dataclass
class CandidateRun:
    model: str = ""
    end_reason: str = ""
    moments: list[Moment] = field(default_factory=list)
    reconnects: int = 0


def silence(seconds: float) -> bytes:
    return bytes(int(seconds * BYTES_PER_S) // 2 * 2)


def synthesize_answers(texts: list[str], language: str = "en-US") -> list[Answer]:
    """Spoken answers, PCM16 mono at 24 kHz (what the Realtime protocol carries)."""
    from actors.speech import Synthesizer, espeak_voice_for

    synth = Synthesizer()
    return [Answer(text, synth.synthesize(text, voice=espeak_voice_for(language))) for text in texts]


def ws_base(http_base: str) -> str:
    parts = urlsplit(http_base)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise CandidateError(f"the edge address {http_base!r} is not an http(s) URL")
    return f"{scheme}://{parts.netloc}"


async def redeem(http_base: str, token: str, *, timeout_s: float = 30.0) -> Redeemed:
    """Redeems an invitation token at the edge, as the candidate's browser does."""
    url = f"{http_base.rstrip('/')}/v1/invitations/redeem"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as http:
            async with http.post(url, json={"token": token}) as resp:
                body: Any = await resp.json(content_type=None)
                if resp.status != 200:
                    error = body.get("error", {}) if isinstance(body, dict) else {}
                    raise CandidateError(f"the edge refused the invitation: {error.get('message', resp.status)} "
                                         f"({error.get('code', resp.status)})")
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise CandidateError(f"cannot reach the edge at {http_base} ({exc.__class__.__name__})") from None
    return Redeemed(str(body["session_id"]), str(body["access_token"]), int(body.get("question_count", 0)),
                    int(body.get("time_limit_seconds", 0)))


def sdk_client(http_base: str, key: str) -> Any:
    from openai import AsyncOpenAI

    base = http_base.rstrip("/")
    return AsyncOpenAI(api_key=key, base_url=f"{base}/v1", websocket_base_url=f"{ws_base(base)}/v1",
                       max_retries=0)


async def run_candidate(http_base: str, access_token: str, session_id: str, answers: list[Answer], *,
                        speed: float = 1.0, extra_answers: list[Answer] | None = None,
                        report: Callable[[Moment], None] = lambda _m: None,
                        timeout_s: float = 600.0) -> CandidateRun:
    """Takes part in the interview until it ends. Answers the interviewer's turns in order with
    `answers`; an interviewer that keeps asking (not the offline one, which asks exactly the
    template's questions) gets `extra_answers` after that, then silence."""
    from openai import OpenAIError
    from websockets.exceptions import ConnectionClosed

    run = CandidateRun()
    started = time.monotonic()
    pending = list(answers)
    extras = list(extra_answers or [])
    to_say = bytearray()
    turn_over = asyncio.Event()

    def moment(kind: str, **values: Any) -> None:
        m = Moment(kind, round(time.monotonic() - started, 1), **values)
        run.moments.append(m)
        report(m)

    def reconnecting(_event: Any) -> None:
        run.reconnects += 1
        moment("reconnecting")

    async def speak(conn: Any) -> None:
        """The microphone: 100 ms of audio at a time, answers at `speed`, silence at real time."""
        next_at = time.monotonic()
        while True:
            if turn_over.is_set():
                turn_over.clear()
                answer = pending.pop(0) if pending else (extras.pop(0) if extras and run.model != OFFLINE_MODEL
                                                         else None)
                if answer is not None:
                    moment("candidate", text=answer.text, seconds=round(answer.seconds, 1))
                    to_say.extend(silence(0.4) + answer.pcm + silence(1.0))
            chunk = int(CHUNK_S * BYTES_PER_S)
            piece = bytes(to_say[:chunk])
            del to_say[:chunk]
            pace = speed if piece else 1.0
            await conn.input_audio_buffer.append(audio=base64.b64encode(piece or silence(CHUNK_S)).decode())
            next_at += CHUNK_S / pace
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at, time.monotonic() - 1.0)  # never burst to catch up after a stall

    speaker: asyncio.Task[None] | None = None
    said: dict[str, str] = {}
    try:
        async with sdk_client(http_base, access_token) as http_client:
            secret = (await http_client.realtime.client_secrets.create()).value
        client = sdk_client(http_base, secret)
        async with asyncio.timeout(timeout_s), client:
            async with client.realtime.connect(call_id=session_id, on_reconnecting=reconnecting) as conn:
                speaker = asyncio.create_task(speak(conn))
                async for event in conn:
                    data: dict[str, Any] = (event.model_dump(exclude_none=True) if hasattr(event, "model_dump")
                                            else dict(event))
                    kind = data.get("type", "")
                    if kind == "session.created" and not run.model:
                        run.model = str(data.get("session", {}).get("model", ""))
                        moment("joined", text=run.model)
                    elif kind == "interview.progress":
                        moment("progress", question=int(data.get("question_number", 0)),
                               of=int(data.get("question_count", 0)), seconds_left=data.get("seconds_left"))
                    elif kind == "response.output_audio_transcript.delta":
                        item = str(data.get("item_id", ""))
                        said[item] = said.get(item, "") + str(data.get("delta", ""))
                        moment("interviewer_delta", text=str(data.get("delta", "")))
                    elif kind == "response.done":
                        _interviewer_done(data, said, moment)
                        if data.get("response", {}).get("status") == "completed":
                            turn_over.set()
                    elif kind == "conversation.item.input_audio_transcription.completed":
                        usage = data.get("usage", {})
                        moment("heard", text=str(data.get("transcript", "")),
                               seconds=float(usage.get("seconds", 0) or 0))
                    elif kind == "error":
                        error = data.get("error", {})
                        moment("error", text=f"{error.get('message', '')} ({error.get('code', '')})")
                    elif kind == "interview.ended":
                        run.end_reason = str(data.get("reason", ""))
                        moment("ended", text=run.end_reason)
                        break
    except TimeoutError:
        raise CandidateError(f"the interview did not end within {timeout_s:.0f} s") from None
    except ConnectionClosed as exc:
        close = exc.rcvd
        why = f"{close.code} {close.reason}".strip() if close is not None else "no close frame"
        raise CandidateError(f"the edge closed the interview's connection ({why})") from None
    except OpenAIError as exc:
        raise CandidateError(f"the candidate client failed: {exc.__class__.__name__}: {exc}") from None
    finally:
        if speaker is not None:
            speaker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # its end is not the outcome
                await speaker
    if not run.end_reason:
        raise CandidateError("the connection ended before the interview did")
    return run


def _interviewer_done(data: dict[str, Any], said: dict[str, str], moment: Callable[..., None]) -> None:
    response = data.get("response", {})
    for item in response.get("output", []) or []:
        transcript = "".join(str(c.get("transcript", "")) for c in item.get("content", []) or [])
        streamed = said.pop(str(item.get("id", "")), "")
        text = transcript or streamed
        moment("interviewer_done", text=text, cut_off=response.get("status") != "completed")
