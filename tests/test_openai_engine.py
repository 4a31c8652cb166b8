"""The OpenAI interviewer (actors/openai_engine.py) against a local server that speaks the Realtime
protocol (tests/openai_standin.py), which validates every event our actor sends against OpenAI's
`RealtimeClientEvent*` schemas and every event it sends against `RealtimeServerEvent*`.

The first part drives the engine directly, without Ray: session configuration, a whole
interview, interruptions (with and without the client's truncation report), dropped connections,
a restart from the stored transcript, the planned reconnect. The second runs interviews end to
end: edge, Ray actor, the official `openai` SDK as the candidate, the OpenAI stand-in as OpenAI,
including the crash case of the connection to OpenAI dropping mid-interview.
"""

from __future__ import annotations

import asyncio
import base64
import statistics
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from actors.engines import EngineHooks
from actors.interview_flow import EndReason, InterviewFlow, Record
from actors.openai_engine import OpenAIEngineFactory, OpenAIInterviewer
from actors.openai_realtime import OpenAIRealtime
from edge.server import RunningEdge, start_edge
from interview.v1 import resources_pb2
from interview_core import realtime_protocol as rt
from interview_core.config import ConfigError, Settings
from interview_core.errors import ErrorCode, PlatformError
from tests.conftest import SHARED, TenantWorld
from tests.openai_standin import OpenAIStandin, StandinSession
from tests.sdk_candidate import CandidateRun, client_secret, read_wav, run_interview
from tests.test_live_interview import redeem
from tests.test_live_resilience import status, transcript

QUESTIONS = ["Tell me about yourself.", "Describe a hard bug."]
TEMPLATE = resources_pb2.Template(role="Backend Engineer", questions=QUESTIONS, time_limit_seconds=600,
                                  language="en-US", voice="verse", instructions="Be kind, and keep it short.")
OPENING = f"Hello, and welcome to your interview for the role of Backend Engineer. {QUESTIONS[0]}"
CLOSING = "Thank you, that was the last question. This interview is complete. Goodbye."


def speech(seconds: float, seed: int = 1) -> bytes:
    """Loud noise: speech as far as an energy VAD can tell."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * 24000)) * 4000).clip(-32000, 32000).astype("<i2").tobytes()


def silence(seconds: float) -> bytes:
    return bytes(int(seconds * 24000) * 2)


@pytest.fixture
async def standin() -> AsyncIterator[OpenAIStandin]:
    server = await OpenAIStandin(ms_per_char=12).start()
    yield server
    await server.stop()
    assert server.violations == [], server.violations


def engine_settings(standin: OpenAIStandin, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"openai_api_key": standin.api_key, "openai_base_url": standin.base_url,
                              "turn_silence_ms": 300, "openai_truncate_wait_s": 0.3,
                              "openai_reconnect_backoff_s": 0.05, "openai_connect_timeout_s": 5.0}
    values.update(overrides)
    return Settings.from_env({}, **values)


@dataclass
class Candidate:
    """Stands in for LiveSession and the person: collects what the engine sends and stores, and
    feeds it microphone audio (silence, or an answer after each completed question)."""

    answers: list[bytes] = field(default_factory=list)
    speed: float = 4.0  # microphone audio this many times faster than real time
    events: list[rt.ServerEvent] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    finished: list[EndReason] = field(default_factory=list)
    on_event: Callable[[rt.ServerEvent], None] | None = None
    engine: OpenAIInterviewer | None = None
    _to_say: bytearray = field(default_factory=bytearray)

    def hooks(self) -> EngineHooks:
        return EngineHooks(send=self._got, record=self.records.append, finished=self.finished.append)

    def _got(self, event: rt.ServerEvent) -> None:
        self.events.append(event)
        self.times.append(time.monotonic())
        if isinstance(event, rt.ResponseDone) and event.status == "completed" and self.answers:
            self.say(self.answers.pop(0))
        if self.on_event is not None:
            self.on_event(event)

    def say(self, pcm: bytes) -> None:
        self._to_say += pcm + silence(1.0)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def microphone(self) -> None:
        """100 ms of audio at a time, paced at `speed`, ticking the engine as LiveSession does."""
        assert self.engine is not None
        chunk = 100 * 48
        next_at = last_tick = time.monotonic()
        while True:
            piece = bytes(self._to_say[:chunk]) or silence(0.1)
            del self._to_say[:chunk]
            self.engine.on_audio(piece)
            if time.monotonic() - last_tick >= 0.5:
                last_tick = time.monotonic()
                self.engine.tick()
            next_at += 0.1 / self.speed
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))


async def until(check: Callable[[], bool], within: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.01)


@dataclass
class Run:
    engine: OpenAIInterviewer
    flow: InterviewFlow
    candidate: Candidate
    mic: asyncio.Task[None]

    async def finish(self, within: float = 20.0) -> None:
        await until(lambda: bool(self.candidate.finished), within, "the interview to end")

    async def stop(self) -> None:
        self.mic.cancel()
        await self.engine.close()


@pytest.fixture
async def runs() -> AsyncIterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        await run.stop()


def start(runs: list[Run], settings: Settings, candidate: Candidate, *, restore: list[Record] | None = None,
          template: resources_pb2.Template = TEMPLATE) -> Run:
    flow = InterviewFlow(role=template.role, questions=list(template.questions),
                         time_limit_s=float(template.time_limit_seconds))
    if restore:
        flow.restore(restore)
    engine = OpenAIEngineFactory(settings)(flow, template, candidate.hooks())
    assert isinstance(engine, OpenAIInterviewer)
    candidate.engine = engine
    engine.connect()
    run = Run(engine, flow, candidate, asyncio.get_running_loop().create_task(candidate.microphone()))
    runs.append(run)
    return run


def received(session: StandinSession, kind: str) -> list[dict[str, Any]]:
    return [e for e in session.received if e.get("type") == kind]


def sent(session: StandinSession, kind: str) -> list[dict[str, Any]]:
    return [e for e in session.sent if e.get("type") == kind]


def restored_items(session: StandinSession) -> list[tuple[str, str]]:
    return [(e["item"]["role"], e["item"]["content"][0]["text"]) for e in received(session, "conversation.item.create")]


def said_by_standin(standin: OpenAIStandin) -> set[str]:
    """Every utterance and transcription the stand-in produced: what may be stored."""
    out: set[str] = set()
    for session in standin.sessions:
        out |= set(session.said.values()) | set(session.transcripts.values())
    return out


def assert_stored_once(candidate: Candidate, standin: OpenAIStandin) -> None:
    """Every turn the candidate was told about is stored exactly once, in order, and nothing else."""
    told: list[tuple[str, str]] = []
    for event in candidate.events:
        if isinstance(event, rt.ResponseOutputAudioTranscriptDone):
            told.append(("interviewer", event.transcript))
        elif isinstance(event, rt.InputAudioTranscriptionCompleted):
            told.append(("candidate", event.transcript))
    stored = [(r.speaker, r.text) for r in candidate.records]
    # A transcription may reach the candidate after the next question has begun: compare each
    # side's turns in order (the stored sequence itself is the conversation's order).
    for speaker in ("interviewer", "candidate"):
        assert [t for t in stored if t[0] == speaker] == [t for t in told if t[0] == speaker]
    assert [r.sequence for r in candidate.records] == list(range(1, len(candidate.records) + 1))
    assert all(text in said_by_standin(standin) for _speaker, text in stored), "nothing invented"


# ---------------------------------------------------------------------------------------------
# The engine against the stand-in


async def test_template_becomes_the_session_configuration(standin: OpenAIStandin, runs: list[Run]) -> None:
    start(runs, engine_settings(standin), Candidate())
    await until(lambda: bool(standin.sessions) and bool(received(standin.sessions[0], "response.create")))
    session = standin.sessions[0]
    assert session.model == "gpt-realtime"
    config = session.config
    for part in ("Backend Engineer", *QUESTIONS, "Be kind, and keep it short.", "en-US", "10 minutes"):
        assert part in config["instructions"], part
    audio_in, audio_out = config["audio"]["input"], config["audio"]["output"]
    assert audio_out["voice"] == "verse"
    assert audio_in["format"] == audio_out["format"] == {"type": "audio/pcm", "rate": 24000}
    assert audio_in["transcription"] == {"model": "gpt-4o-mini-transcribe", "language": "en"}
    assert audio_in["turn_detection"] == {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                                          "silence_duration_ms": 300, "create_response": False,
                                          "interrupt_response": False}
    create = received(session, "response.create")[0]["response"]
    assert create["instructions"].startswith(config["instructions"])
    assert create["instructions"].endswith(f'"{OPENING}"')


async def test_whole_interview(standin: OpenAIStandin, runs: list[Run]) -> None:
    candidate = Candidate(answers=[speech(2.0, 1), speech(3.0, 2)])
    run = start(runs, engine_settings(standin), candidate)
    await run.finish()
    assert candidate.finished == [EndReason.COMPLETED]
    records = candidate.records
    assert [(r.speaker, r.text) for r in records] == [
        ("interviewer", OPENING), ("candidate", "I spoke for about 2 seconds."),
        ("interviewer", QUESTIONS[1]), ("candidate", "I spoke for about 3 seconds."),
        ("interviewer", CLOSING)]
    assert_stored_once(candidate, standin)
    assert 1800 < records[1].end_ms - records[1].start_ms < 2800  # the turn's own timing, from server VAD
    assert len(standin.sessions) == 1
    # The candidate heard OpenAI's events, paced: each response.done after its audio played out.
    done = [i for i, e in enumerate(candidate.events) if isinstance(e, rt.ResponseDone)]
    assert [candidate.events[i].status for i in done] == ["completed"] * 3  # type: ignore[attr-defined]
    first_audio = next(i for i, e in enumerate(candidate.events) if isinstance(e, rt.ResponseOutputAudioDelta))
    audio_s = sum(len(e.audio) for e in candidate.of(rt.ResponseOutputAudioDelta)
                  if e.response_id == candidate.events[done[0]].response_id) / 48000  # type: ignore[attr-defined]
    assert candidate.times[done[0]] - candidate.times[first_audio] >= audio_s - 0.05
    assert {p.question_number for p in candidate.of(rt.InterviewProgress)} >= {1, 2}


# -- interruptions ------------------------------------------------------------------------------


def barge_in_after(candidate: Candidate, seconds: float, *, speech_s: float = 1.5) -> None:
    """The candidate starts talking `seconds` into the interviewer's first utterance."""
    state = {"done": False}

    def hook(event: rt.ServerEvent) -> None:
        if isinstance(event, rt.ResponseOutputAudioDelta) and not state["done"]:
            state["done"] = True
            candidate._to_say += silence(seconds * candidate.speed)  # wall-clock seconds at this speed
            candidate.say(speech(speech_s, 7))

    candidate.on_event = hook


async def test_barge_in_truncates_where_the_client_says(standin: OpenAIStandin, runs: list[Run]) -> None:
    standin.ms_per_char = 40  # the opening lasts about 4 s
    candidate = Candidate(speed=1.0)
    barge_in_after(candidate, 1.0)

    def client(event: rt.ServerEvent) -> None:
        barge(event)
        if isinstance(event, rt.ResponseDone) and event.status == "cancelled":
            # As OpenAI's clients do: say where playback was cut.
            assert candidate.engine is not None and event.item_id is not None
            candidate.engine.on_event(rt.ConversationItemTruncate(item_id=event.item_id, content_index=0,
                                                                  audio_end_ms=1234))

    barge = candidate.on_event
    assert barge is not None
    candidate.on_event = client
    start(runs, engine_settings(standin, openai_truncate_wait_s=2.0), candidate)
    session = await _truncated(standin, candidate)
    truncate = received(session, "conversation.item.truncate")[0]
    assert truncate["audio_end_ms"] == 1234
    done = candidate.of(rt.ResponseDone)[0]
    assert (done.status, done.reason, done.item_id) == ("cancelled", "turn_detected", truncate["item_id"])
    item = next(it for it in session.conversation if it.id == truncate["item_id"])
    assert item.truncated_ms == 1234
    # Stored: the words the candidate heard, by the share of the audio played.
    heard = candidate.records[0]
    words = OPENING.split()
    total_ms = item.audio_b / 48
    assert heard.speaker == "interviewer" and heard.text == " ".join(words[:round(len(words) * 1234 / total_ms)])
    assert candidate.of(rt.ConversationItemTruncated)[0].audio_end_ms == 1234


async def _truncated(standin: OpenAIStandin, candidate: Candidate) -> StandinSession:
    await until(lambda: bool(standin.sessions) and bool(received(standin.sessions[0], "conversation.item.truncate")),
                what="the truncation")
    await until(lambda: len(candidate.records) >= 2, what="the candidate's turn")
    session = standin.sessions[0]
    assert [r.speaker for r in candidate.records[:2]] == ["interviewer", "candidate"]
    assert candidate.of(rt.InputAudioBufferSpeechStarted), "the client was told to stop playing"
    return session


async def test_barge_in_without_a_report_truncates_at_an_estimate(standin: OpenAIStandin, runs: list[Run]) -> None:
    standin.ms_per_char = 40
    candidate = Candidate(speed=1.0)
    barge_in_after(candidate, 1.0)
    start(runs, engine_settings(standin, openai_truncate_wait_s=0.3), candidate)
    session = await _truncated(standin, candidate)
    truncate = received(session, "conversation.item.truncate")[0]
    # Playback began with the first audio; it stopped when the candidate was heard speaking.
    first_audio = next(t for e, t in zip(candidate.events, candidate.times, strict=True)
                       if isinstance(e, rt.ResponseOutputAudioDelta))
    heard = next(t for e, t in zip(candidate.events, candidate.times, strict=True)
                 if isinstance(e, rt.InputAudioBufferSpeechStarted))
    assert abs(truncate["audio_end_ms"] - (heard - first_audio) * 1000) < 100, truncate
    assert 500 <= truncate["audio_end_ms"] <= 1600, truncate
    assert received(session, "response.cancel") == []  # generation had finished: nothing to cancel
    assert 0 < len(candidate.records[0].text.split()) < len(OPENING.split())


async def test_barge_in_while_generating_cancels_the_response(standin: OpenAIStandin, runs: list[Run]) -> None:
    standin.ms_per_char = 40
    standin.speed = 1.0  # generated in real time: still going when the candidate cuts in
    candidate = Candidate(speed=1.0)
    barge_in_after(candidate, 1.0)
    start(runs, engine_settings(standin, openai_truncate_wait_s=0.3), candidate)
    session = await _truncated(standin, candidate)
    cancel = received(session, "response.cancel")
    assert len(cancel) == 1
    created = sent(session, "response.created")[0]["response"]["id"]
    assert cancel[0]["response_id"] == created
    assert [d["response"]["status"] for d in sent(session, "response.done")][:1] == ["cancelled"]
    # The candidate saw one end of that response: ours, cancelled because they spoke.
    ends = [d for d in candidate.of(rt.ResponseDone) if d.response_id == created]
    assert [(d.status, d.reason) for d in ends] == [("cancelled", "turn_detected")]
    assert received(session, "conversation.item.truncate")[0]["audio_end_ms"] <= 1600


# -- dropped connections ------------------------------------------------------------------------


def drop_on(standin: OpenAIStandin, when: Callable[[StandinSession, dict[str, Any]], bool]) -> list[float]:
    """Aborts the first session's connection the first time `when` holds for an event it sends."""
    dropped: list[float] = []

    def hook(session: StandinSession, event: dict[str, Any]) -> None:
        if not dropped and when(session, event):
            dropped.append(time.monotonic())
            session.abort()

    standin.on_sent = hook
    return dropped


def nth_response_audio(n: int) -> Callable[[StandinSession, dict[str, Any]], bool]:
    def when(session: StandinSession, event: dict[str, Any]) -> bool:
        return event["type"] == "response.output_audio.delta" and len(sent(session, "response.created")) == n
    return when


async def test_drop_while_asking_restores_the_conversation(standin: OpenAIStandin, runs: list[Run]) -> None:
    standin.speed = 1.0
    standin.ms_per_char = 20

    def asking_question_2(session: StandinSession, event: dict[str, Any]) -> bool:
        return nth_response_audio(2)(session, event) and len(session.transcripts) == 1  # answer 1 transcribed

    dropped = drop_on(standin, asking_question_2)
    candidate = Candidate(answers=[speech(2.0, 1), speech(3.0, 2)])
    run = start(runs, engine_settings(standin), candidate)
    await run.finish()
    assert dropped and len(standin.sessions) == 2
    second = standin.sessions[1]
    # The new session: configured, given the conversation so far, then asked for question 2 again.
    kinds = [e["type"] for e in second.received if e["type"] != "input_audio_buffer.append"]
    assert kinds[:5] == ["session.update", "conversation.item.create", "conversation.item.create",
                         "session.update", "response.create"]
    assert received(second, "session.update")[0]["session"]["audio"]["input"]["turn_detection"] is None
    assert restored_items(second) == [("assistant", OPENING), ("user", "I spoke for about 2 seconds.")]
    assert [(r.speaker, r.text) for r in candidate.records] == [
        ("interviewer", OPENING), ("candidate", "I spoke for about 2 seconds."),
        ("interviewer", QUESTIONS[1]), ("candidate", "I spoke for about 3 seconds."),
        ("interviewer", CLOSING)]
    assert_stored_once(candidate, standin)
    # The candidate: the interrupted response ended incomplete, question 2 came again, whole.
    statuses = [(d.status, d.transcript) for d in candidate.of(rt.ResponseDone)]
    assert statuses == [("completed", OPENING), ("incomplete", None), ("completed", QUESTIONS[1]),
                        ("completed", CLOSING)]
    assert not any(isinstance(e, rt.ErrorEvent) for e in candidate.events)


async def test_drop_mid_answer_replays_the_candidate_audio(standin: OpenAIStandin, runs: list[Run]) -> None:
    def second_answer_started(session: StandinSession, event: dict[str, Any]) -> bool:
        return event["type"] == "input_audio_buffer.speech_started" and len(sent(session, "response.done")) == 2

    dropped = drop_on(standin, second_answer_started)
    candidate = Candidate(answers=[speech(2.0, 1), speech(3.0, 2)])
    run = start(runs, engine_settings(standin), candidate)
    await run.finish()
    assert dropped and len(standin.sessions) == 2
    assert [(r.speaker, r.text) for r in candidate.records] == [
        ("interviewer", OPENING), ("candidate", "I spoke for about 2 seconds."),
        ("interviewer", QUESTIONS[1]), ("candidate", "I spoke for about 3 seconds."),
        ("interviewer", CLOSING)]
    assert_stored_once(candidate, standin)
    assert len(candidate.of(rt.InputAudioBufferSpeechStarted)) == 2, "the turn was not announced twice"
    answer = candidate.records[3]
    assert 2800 < answer.end_ms - answer.start_ms < 3800


async def test_drop_before_transcription_commits_the_turn_again(standin: OpenAIStandin, runs: list[Run]) -> None:
    standin.transcribe_delay_s = 0.3
    dropped = drop_on(standin, lambda session, event: event["type"] == "input_audio_buffer.committed")
    candidate = Candidate(answers=[speech(2.0, 1), speech(3.0, 2)])
    run = start(runs, engine_settings(standin), candidate)
    await run.finish()
    assert dropped and len(standin.sessions) == 2
    second = standin.sessions[1]
    kinds = [e["type"] for e in second.received]
    # The first answer's audio, committed again with VAD off, before anything else is said.
    assert kinds[:2] == ["session.update", "conversation.item.create"]
    commit_at = kinds.index("input_audio_buffer.commit")
    assert set(kinds[2:commit_at]) == {"input_audio_buffer.append"}
    assert kinds.index("session.update", 1) > commit_at
    assert candidate.records[1].text == "I spoke for about 2 seconds."
    assert_stored_once(candidate, standin)


async def test_an_answer_given_while_openai_is_unreachable_is_heard(standin: OpenAIStandin,
                                                                    runs: list[Run]) -> None:
    # Question 1 has played; OpenAI goes away for over a second (the connection drops, the next
    # handshakes fail) while the candidate answers. Their audio is replayed into the new session.
    candidate = Candidate(answers=[speech(2.0, 1), speech(3.0, 2)])
    outage: list[float] = []

    def cut_after_question_1(event: rt.ServerEvent) -> None:
        if isinstance(event, rt.ResponseDone) and not outage:
            outage.append(time.monotonic())
            standin.refuse = 3
            standin.drop_all()

    candidate.on_event = cut_after_question_1
    run = start(runs, engine_settings(standin, openai_reconnect_backoff_s=0.2), candidate)
    await run.finish()
    assert standin.refused == 3 and len(standin.sessions) == 2
    second = standin.sessions[1]
    assert second.opened_at - outage[0] > 1.0, "the answer was over before OpenAI was back"
    assert [(r.speaker, r.text) for r in candidate.records] == [
        ("interviewer", OPENING), ("candidate", "I spoke for about 2 seconds."),
        ("interviewer", QUESTIONS[1]), ("candidate", "I spoke for about 3 seconds."),
        ("interviewer", CLOSING)]
    assert_stored_once(candidate, standin)


async def test_restarted_actor_restores_the_stored_conversation(standin: OpenAIStandin, runs: list[Run]) -> None:
    stored = [Record(1, "interviewer", OPENING, 0, 3000, "stored_1"),
              Record(2, "candidate", "I have built payment systems.", 3500, 9000, "stored_2")]
    candidate = Candidate(answers=[speech(2.0, 3)])
    run = start(runs, engine_settings(standin), candidate, restore=stored)
    await run.finish()
    session = standin.sessions[0]
    assert restored_items(session) == [("assistant", OPENING), ("user", "I have built payment systems.")]
    assert [(r.sequence, r.speaker, r.text) for r in candidate.records] == [
        (3, "interviewer", QUESTIONS[1]), (4, "candidate", "I spoke for about 2 seconds."), (5, "interviewer", CLOSING)]


async def test_planned_reconnect_before_the_session_limit(standin: OpenAIStandin, runs: list[Run]) -> None:
    # A session may live 1 s here (OpenAI's limit is 60 minutes): the interview moves to a new one
    # at a quiet moment, opened before the old one is closed, and the candidate sees nothing of it.
    candidate = Candidate(answers=[speech(2.0, 1), speech(3.0, 2)])
    pause = silence(6.0)  # a long think before the second answer: quiet moments to move in
    answers = candidate.answers
    answers[1] = pause + answers[1]
    run = start(runs, engine_settings(standin, openai_session_max_s=1.0), candidate)
    await run.finish(within=30)
    assert len(standin.sessions) >= 2
    for old in standin.sessions[:-1]:
        assert old.closed and not any(e["type"] == "error" for e in old.sent)
        later = standin.sessions[standin.sessions.index(old) + 1]
        assert received(later, "session.update")[0]["session"]["instructions"] == old.config["instructions"]
    assert [(r.speaker, r.text) for r in candidate.records] == [
        ("interviewer", OPENING), ("candidate", "I spoke for about 2 seconds."),
        ("interviewer", QUESTIONS[1]), ("candidate", "I spoke for about 3 seconds."),
        ("interviewer", CLOSING)]
    assert_stored_once(candidate, standin)
    assert [d.status for d in candidate.of(rt.ResponseDone)] == ["completed"] * 3


async def test_session_expiry_and_refused_handshakes_are_survived(standin: OpenAIStandin, runs: list[Run]) -> None:
    standin.refuse = 2  # the first two handshakes fail with 503
    standin.max_session_s = 2.5  # and sessions end as at OpenAI's limit, without warning to us
    candidate = Candidate(answers=[speech(2.0, 1), silence(3.0) + speech(3.0, 2)])
    run = start(runs, engine_settings(standin), candidate)
    await run.finish(within=30)
    assert standin.refused == 2 and len(standin.sessions) >= 2
    assert [r.speaker for r in candidate.records] == ["interviewer", "candidate"] * 2 + ["interviewer"]
    assert_stored_once(candidate, standin)


# -- the boundary and the wiring ----------------------------------------------------------------


async def test_the_boundary_speaks_platform_errors(standin: OpenAIStandin) -> None:
    wrong = OpenAIRealtime(api_key="sk-wrong-key-123", base_url=standin.base_url, model="gpt-realtime",
                           connect_timeout_s=2.0, keepalive_s=5.0)
    with pytest.raises(PlatformError) as refused:
        await wrong.connect()
    assert refused.value.code is ErrorCode.UNAUTHENTICATED and "sk-wrong" not in refused.value.message
    nowhere = OpenAIRealtime(api_key="sk-x", base_url="http://127.0.0.1:9/v1", model="gpt-realtime",
                             connect_timeout_s=2.0, keepalive_s=5.0)
    with pytest.raises(PlatformError) as unreachable:
        await nowhere.connect()
    assert unreachable.value.retryable
    right = OpenAIRealtime(api_key=standin.api_key, base_url=standin.base_url, model="gpt-realtime",
                           connect_timeout_s=2.0, keepalive_s=5.0)
    link = await right.connect()
    assert (await link.recv())["type"] == "session.created"
    standin.drop_all()
    with pytest.raises(PlatformError) as dropped:
        await link.recv()
    assert dropped.value.code is ErrorCode.UNAVAILABLE
    await link.close()


async def test_the_standin_holds_both_sides_to_the_spec(standin: OpenAIStandin) -> None:
    """The stand-in cannot drift into a private dialect: what breaks OpenAI's schemas is caught."""
    link = await OpenAIRealtime(api_key=standin.api_key, base_url=standin.base_url, model="gpt-realtime",
                                connect_timeout_s=2.0, keepalive_s=5.0).connect()
    assert (await link.recv())["type"] == "session.created"
    await link.send('{"type":"session.update","session":{"type":"realtime","audio":{"output":{"speed":9}}}}')
    await link.send('{"type":"conversation.item.truncate","item_id":"item_1"}')
    await link.send('{"type":"response.speak"}')
    errors = [await link.recv() for _ in range(3)]
    await link.close()
    assert [e["type"] for e in errors] == ["error"] * 3
    assert len(standin.violations) >= 3 and all(v.startswith("client sent") for v in standin.violations)
    assert any("speed" in v for v in standin.violations)
    assert standin.spec.errors("server", {"type": "response.output_audio.delta", "event_id": "e", "delta": ""})
    assert standin.spec.errors("server", {"type": "session.created", "event_id": "e",
                                          "session": standin.sessions[0].session_view()}) == []
    standin.violations.clear()  # provoked on purpose


def test_settings_choose_and_point_the_interviewer() -> None:
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": "http://127.0.0.1:9999/v1",
           "INTERVIEW_OPENAI_MODEL": "gpt-realtime-mini"}
    settings = Settings.from_env(env)
    assert settings.openai_base_url == "http://127.0.0.1:9999/v1"
    assert settings.interviewer_model == "gpt-realtime-mini"
    assert settings.to_env()["OPENAI_BASE_URL"] == "http://127.0.0.1:9999/v1"  # what a Ray worker gets
    assert Settings.from_env({}).interviewer_model == "offline-interviewer"
    assert "sk-test" not in str(settings.redacted())
    with pytest.raises(ConfigError):  # the key never goes over plain HTTP to another host
        Settings.from_env({**env, "OPENAI_BASE_URL": "http://gateway.example.com/v1"})

    from actors.interview_actor import InterviewWorker

    worker = InterviewWorker("worker-test", settings.replace(service_token="s" * 20, secret_key="k" * 32).to_env())
    factory = worker._engine_factory()
    assert isinstance(factory, OpenAIEngineFactory) and factory.model == "gpt-realtime-mini"


# ---------------------------------------------------------------------------------------------
# End to end: edge, Ray actor, the official SDK as the candidate, the stand-in as OpenAI

AUDIO = SHARED / "audio"
OPENAI_NAMESPACE = "interview-tests-openai"


@pytest.fixture(scope="module")
async def openai_server() -> AsyncIterator[OpenAIStandin]:
    server = await OpenAIStandin(ms_per_char=20, speed=10).start()
    yield server
    await server.stop()
    assert server.violations == [], server.violations


@pytest.fixture(scope="module")
async def openai_edge(live_settings: Settings, openai_server: OpenAIStandin) -> AsyncIterator[RunningEdge]:
    # Its own pool (another Ray namespace) whose workers have OPENAI_API_KEY and OPENAI_BASE_URL.
    settings = live_settings.replace(edge_port=0, ray_namespace=OPENAI_NAMESPACE, warm_interviews=1,
                                     openai_api_key=openai_server.api_key, openai_base_url=openai_server.base_url,
                                     openai_reconnect_backoff_s=0.1)
    running = await start_edge(settings)
    yield running
    await running.stop()


def told(run: CandidateRun) -> dict[str, list[str]]:
    """The turns the candidate was told about, each side in order."""
    return {"interviewer": [e["transcript"] for e in run.of_type("response.output_audio_transcript.done")],
            "candidate": [e["transcript"]
                          for e in run.of_type("conversation.item.input_audio_transcription.completed")]}


async def assert_stored_as_told(world: TenantWorld, session_id: str, run: CandidateRun,
                                server: OpenAIStandin) -> list[resources_pb2.TranscriptItem]:
    """Item by item: every turn the candidate was told about stored exactly once, in order, nothing invented."""
    items = await transcript(world, session_id)
    interviewer, candidate = resources_pb2.SPEAKER_INTERVIEWER, resources_pb2.SPEAKER_CANDIDATE
    assert [i.sequence for i in items] == [1, 2, 3, 4, 5]
    assert [i.speaker for i in items] == [interviewer, candidate, interviewer, candidate, interviewer]
    assert [i.text for i in items if i.speaker == interviewer] == told(run)["interviewer"]
    assert [i.text for i in items if i.speaker == candidate] == told(run)["candidate"]
    questions = world.template.questions
    assert [i.text for i in items if i.speaker == interviewer] == [
        f"Hello, and welcome to your interview for the role of {world.template.role}. {questions[0]}",
        questions[1], CLOSING]
    assert all(i.text.startswith("I spoke for about ") for i in items if i.speaker == candidate)
    assert all(i.text in said_by_standin(server) for i in items), "nothing invented"
    assert await status(world, session_id) == resources_pb2.SESSION_STATUS_COMPLETED
    return items


async def test_interview_through_the_openai_interviewer(world: TenantWorld, openai_edge: RunningEdge,
                                                        openai_server: OpenAIStandin) -> None:
    base = f"127.0.0.1:{openai_edge.port}"
    redeemed = await redeem(world, base)
    session_id = str(redeemed["session_id"])
    secret = await client_secret(base, str(redeemed["access_token"]))
    answers = [read_wav(AUDIO / "candidate_intro.wav"), read_wav(AUDIO / "candidate_answer_project.wav")]
    run = await run_interview(base, secret, session_id, answers, speed=4.0, timeout_s=60)
    assert run.of_type("session.created")[0]["session"]["model"] == "gpt-realtime"
    assert run.of_type("interview.ended")[-1]["reason"] == "completed"
    assert len(run.of_type("input_audio_buffer.speech_started")) == 2
    assert run.of_type("response.output_audio.delta"), "the interviewer spoke"
    items = await assert_stored_as_told(world, session_id, run, openai_server)
    assert 6000 < items[1].audio_end_ms - items[1].audio_start_ms < 10000  # the intro is 8.5 s of speech
    assert openai_server.violations == []


async def test_barge_in_through_the_sdk(world: TenantWorld, openai_edge: RunningEdge,
                                       openai_server: OpenAIStandin) -> None:
    """The candidate talks over the first question; their SDK client reports where it cut playback
    (`conversation.item.truncate`, as OpenAI's clients do) and OpenAI's item is truncated there."""
    base = f"127.0.0.1:{openai_edge.port}"
    redeemed = await redeem(world, base)
    session_id = str(redeemed["session_id"])
    state: dict[str, Any] = {}

    async def talk_over(event: dict[str, Any], conn: Any) -> None:
        if event["type"] == "response.output_audio.delta" and "barged" not in state:
            state["barged"] = event["item_id"]
            await asyncio.sleep(0.3)
            await conn.input_audio_buffer.append(audio=base64.b64encode(speech(1.5)).decode())
        if event["type"] == "response.done" and event["response"]["status"] == "cancelled":
            await conn.conversation.item.truncate(item_id=state["barged"], content_index=0, audio_end_ms=700)

    sessions_before = len(openai_server.sessions)
    answers = [read_wav(AUDIO / "candidate_answer_project.wav")]  # for question 2
    run = await run_interview(base, str(redeemed["access_token"]), session_id, answers, speed=4.0,
                              on_event=talk_over, timeout_s=60)
    assert run.of_type("interview.ended")[-1]["reason"] == "completed"
    cancelled = [e for e in run.of_type("response.done") if e["response"]["status"] == "cancelled"]
    assert [e["response"]["status_details"]["reason"] for e in cancelled] == ["turn_detected"]
    assert run.of_type("conversation.item.truncated")[0]["audio_end_ms"] == 700
    (session,) = openai_server.sessions[sessions_before:]
    truncates = received(session, "conversation.item.truncate")
    assert [(t["item_id"], t["audio_end_ms"]) for t in truncates] == [(state["barged"], 700)]
    items = await transcript(world, session_id)
    opening = f"Hello, and welcome to your interview for the role of {world.template.role}. " \
              f"{world.template.questions[0]}"
    heard = items[0].text
    assert items[0].speaker == resources_pb2.SPEAKER_INTERVIEWER and opening.startswith(heard) and heard != opening
    assert [i.speaker for i in items] == [resources_pb2.SPEAKER_INTERVIEWER, resources_pb2.SPEAKER_CANDIDATE] * 2 + [
        resources_pb2.SPEAKER_INTERVIEWER]
    assert items[2].text == world.template.questions[1]


@dataclass
class Fault:
    """Cuts the interview's OpenAI connection when `when` first holds for an event the stand-in sends."""

    when: Callable[[StandinSession, dict[str, Any]], bool]
    at: float = 0.0
    session: StandinSession | None = None
    response_id: str = ""

    def hook(self, session: StandinSession, event: dict[str, Any]) -> None:
        if self.session is None and self.when(session, event):
            self.at = time.monotonic()
            self.session = session
            self.response_id = str(event.get("response_id", ""))
            session.abort()


async def interview_with_fault(world: TenantWorld, edge: RunningEdge, server: OpenAIStandin,
                               fault: Fault) -> tuple[str, CandidateRun, float | None, float]:
    """A whole interview through the SDK with the OpenAI connection cut once. Returns the session,
    the candidate's run, when the candidate heard the interviewer again after the fault (seconds
    after it, None if no audio came after it) and when the new OpenAI session was restored."""
    base = f"127.0.0.1:{edge.port}"
    redeemed = await redeem(world, base)
    session_id = str(redeemed["session_id"])
    heard_again: list[float] = []

    async def watch(event: dict[str, Any], _conn: Any) -> None:
        if (event["type"] == "response.output_audio.delta" and fault.session is not None and not heard_again
                and event["response_id"] != fault.response_id):
            heard_again.append(time.monotonic())

    sessions_before = len(server.sessions)
    server.on_sent = fault.hook
    try:
        answers = [read_wav(AUDIO / "candidate_intro.wav"), read_wav(AUDIO / "candidate_answer_project.wav")]
        run = await run_interview(base, str(redeemed["access_token"]), session_id, answers, speed=8.0,
                                  on_event=watch, timeout_s=60)
    finally:
        server.on_sent = None
    assert fault.session is not None, "the fault was not injected"
    mine = server.sessions[sessions_before:]
    after = [s for s in mine if s.opened_at > fault.at]
    assert len(after) == 1, "one new OpenAI session after the fault"
    new = after[0]
    vad_on = next(n for n, e in enumerate(new.received) if e["type"] == "session.update"
                  and e["session"].get("audio", {}).get("input", {}).get("turn_detection"))
    restored_at = new.received_times[vad_on] - fault.at
    return session_id, run, (heard_again[0] - fault.at) if heard_again else None, restored_at


async def test_openai_connection_drops_mid_interview(world: TenantWorld, openai_edge: RunningEdge,
                                                     openai_server: OpenAIStandin) -> None:
    """Crash case: the connection to OpenAI drops while the interviewer asks question 2 (repeated
    for a p50), and once while the candidate answers. The actor reconnects and restores the
    conversation; the candidate sees a pause; the transcript is whole."""
    resumed: list[float] = []
    restored: list[float] = []
    for _ in range(3):
        fault = Fault(lambda s, e: e["type"] == "response.output_audio.delta"
                      and len([x for x in s.sent if x["type"] == "response.created"]) == 2)
        session_id, run, heard, restore = await interview_with_fault(world, openai_edge, openai_server, fault)
        assert heard is not None
        resumed.append(heard)
        restored.append(restore)
        assert run.of_type("interview.ended")[-1]["reason"] == "completed"
        assert not run.of_type("error")
        await assert_stored_as_told(world, session_id, run, openai_server)
        ends = [(e["response"]["status"]) for e in run.of_type("response.done")]
        assert ends == ["completed", "incomplete", "completed", "completed"], ends
    # While the candidate is speaking: their answer's audio is replayed into the new session.
    fault = Fault(lambda s, e: e["type"] == "input_audio_buffer.speech_started"
                  and len([x for x in s.sent if x["type"] == "response.done"]) == 2)
    session_id, run, _heard, restore = await interview_with_fault(world, openai_edge, openai_server, fault)
    restored.append(restore)
    assert run.of_type("interview.ended")[-1]["reason"] == "completed"
    assert len(run.of_type("input_audio_buffer.speech_started")) == 2, "no turn announced twice"
    await assert_stored_as_told(world, session_id, run, openai_server)
    report = (f"OpenAI connection cut mid-question ({len(resumed)} runs): fault -> candidate hears the "
              f"interviewer again p50 {statistics.median(resumed) * 1000:.0f} ms "
              f"(all: {', '.join(f'{x * 1000:.0f}' for x in resumed)} ms); fault -> new session restored "
              f"p50 {statistics.median(restored) * 1000:.0f} ms "
              f"(all: {', '.join(f'{x * 1000:.0f}' for x in restored)} ms)")
    print(report)
    assert statistics.median(resumed) < 2.0
