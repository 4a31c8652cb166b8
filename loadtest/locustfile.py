"""Locust scenario: every user is a candidate in a live interview.

Each user gets an invitation through the control API, redeems it at the edge, opens the
candidate WebSocket (`/v1/realtime?call_id=<session>`, the OpenAI Realtime event protocol) and
behaves like a browser with a microphone: it sends one 20 ms `input_audio_buffer.append` every
20 ms at real-time pace (absolute-time pacing; a late sender catches up with at most 200 ms of
audio), silence while the interviewer talks, and a recorded answer (shared/audio/*.wav) after each
question. It measures its own latencies and reports them to Locust as request events:

=================  ============================================  ================================
request type       name                                          what
=================  ============================================  ================================
HTTP               POST /v1/invitations/redeem                   the redemption
WS                 join (connect -> session.created)             joining the interview
WS                 ping round trip                               `interview.ping` -> `interview.pong`
                                                                 through the edge and the actor,
                                                                 every 0.5 s
WS                 turn (end of answer -> interviewer audio)     the candidate's last voiced frame
                                                                 to the first audio of the
                                                                 next question (includes the
                                                                 interviewer's end-of-turn silence,
                                                                 500 ms by default)
WS                 audio (worst send lateness in 1 s)            one per second: how late the
                                                                 latest-sent frame of that second
                                                                 left (the generator keeping up);
                                                                 response_length = frames sent
                                                                 that second (50 at real time)
WS                 connection                                    a failure when the server closes
                                                                 the connection or an error event
                                                                 arrives
=================  ============================================  ================================

Run it against a running stack (`interview up`), for example::

    locust -f loadtest/locustfile.py --headless -u 5 -r 5 -t 20s --host http://127.0.0.1:8080

`--host` is the edge's base URL. Setup (a tenant with an API key and a template, once per Locust
process; a candidate and an invitation per user) goes through the gRPC control API, configured
by environment variables:

``INTERVIEW_CONTROL_ADDRESS``
    the control service, host:port (default ``127.0.0.1:50051``, `interview up`'s default).
``INTERVIEW_ADMIN_TOKEN``
    the platform admin token, used to create the load-test tenant and its API key. Default: read
    from ``<INTERVIEW_DATA_DIR>/credentials.json`` (``INTERVIEW_DATA_DIR`` defaults to
    ``.interview``, where `interview up` writes it).
``INTERVIEW_TENANT_API_KEY``
    instead of the admin token: an existing tenant API key to create candidates and invitations
    with (a template is created under it).
``LOCUST_AUDIO_DIR``
    candidate speech, PCM16 24 kHz mono WAV files (default ``shared/audio`` beside the repository).
``LOCUST_QUESTIONS``
    questions in the template (default 20), ``LOCUST_TIME_LIMIT_S`` its time limit (default 3600).

The stack's default `INTERVIEW_MAX_LIVE_INTERVIEWS` (120) caps the users one stack serves, and
`INTERVIEW_WARM_INTERVIEWS` the number that join without waiting for an actor process to start.

The WebSocket client is `websocket-client` (package ``websocket-client``), which cooperates with
gevent's monkey patching; gRPC runs on gevent after ``grpc.experimental.gevent.init_gevent()``.
Interviews left open when the test stops are abandoned by the platform after its grace period.
"""

from __future__ import annotations

import base64
import json
import os
import random
import time
import uuid
import wave
from pathlib import Path
from typing import Any

import gevent  # type: ignore[import-untyped]
import gevent.lock  # type: ignore[import-untyped]
import grpc
import requests
import websocket
from grpc.experimental import gevent as grpc_gevent  # type: ignore[attr-defined]
from locust import User, events, task

grpc_gevent.init_gevent()  # gRPC's own threads must cooperate with gevent's monkey patching

FRAME_S = 0.020
FRAME_BYTES = 960  # 20 ms of PCM16 mono at 24 kHz
PING_EVERY_FRAMES = 25
MAX_BEHIND_S = 0.2
SILENCE_MSG = json.dumps({"type": "input_audio_buffer.append",
                          "audio": base64.b64encode(bytes(FRAME_BYTES)).decode()}, separators=(",", ":"))
QUESTIONS = [
    "Tell me about yourself and what you are working on now.",
    "Describe a hard bug you tracked down, and how you found it.",
    "How do you decide what to test in a new service?",
    "Tell me about a time you disagreed with a teammate, and what happened.",
    "How would you design a rate limiter for a public API?",
]


# --- shared setup: one tenant and template per Locust process -----------------------------------

class _Setup:
    def __init__(self) -> None:
        self._lock = gevent.lock.Semaphore()
        self._done: dict[str, Any] | None = None
        self._clips: list[tuple[list[str], int]] | None = None

    def clips(self) -> list[tuple[list[str], int]]:
        """Each answer as append events, with the index of its last voiced frame."""
        if self._clips is None:
            from loadtest.shared_files import shared_dir

            audio_dir = Path(os.environ.get("LOCUST_AUDIO_DIR") or shared_dir() / "audio")
            clips = []
            for path in sorted(audio_dir.glob("*.wav")):
                if "silence" in path.name:
                    continue
                with wave.open(str(path), "rb") as wav:
                    if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (24000, 1, 2):
                        continue
                    pcm = wav.readframes(wav.getnframes())
                frames = [json.dumps({"type": "input_audio_buffer.append",
                                      "audio": base64.b64encode(pcm[i:i + FRAME_BYTES]).decode()},
                                     separators=(",", ":"))
                          for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)]
                clips.append((frames + [SILENCE_MSG] * 5, last_voiced(pcm)))
            if not clips:
                raise RuntimeError(f"no candidate speech (PCM16 24 kHz mono WAV) in {audio_dir}; set LOCUST_AUDIO_DIR")
            self._clips = clips
        return self._clips

    def get(self) -> dict[str, Any]:
        with self._lock:
            if self._done is None:
                self._done = self._create()
            return self._done

    def _create(self) -> dict[str, Any]:
        from interview.v1 import (
            resources_pb2,
            template_service_pb2,
            template_service_pb2_grpc,
            tenant_service_pb2,
            tenant_service_pb2_grpc,
        )
        from interview_core.config import Settings
        from launcher.admin.connection import resolve_credential

        settings = Settings.from_env()  # the admin commands' target and credential, as they find them
        channel = grpc.insecure_channel(settings.admin_address or settings.control_address)
        credential = resolve_credential(settings, None)
        api_key = credential.token if credential.is_admin is False else ""
        if not api_key:
            admin = md(credential.token)
            tenants = tenant_service_pb2_grpc.TenantServiceStub(channel)
            tenant = tenants.CreateTenant(tenant_service_pb2.CreateTenantRequest(
                display_name=f"Locust {uuid.uuid4().hex[:6]}"), metadata=admin, timeout=30)
            api_key = tenants.CreateApiKey(tenant_service_pb2.CreateApiKeyRequest(
                tenant_id=tenant.id, display_name="locust"), metadata=admin, timeout=30).secret
        n = int(os.environ.get("LOCUST_QUESTIONS", "20"))
        questions = [QUESTIONS[i % len(QUESTIONS)] if i < len(QUESTIONS)
                     else f"Question {i + 1}. {QUESTIONS[i % len(QUESTIONS)]}" for i in range(n)]
        template = template_service_pb2_grpc.TemplateServiceStub(channel).CreateTemplate(
            template_service_pb2.CreateTemplateRequest(template=resources_pb2.Template(
                role="Backend Engineer", questions=questions,
                time_limit_seconds=int(os.environ.get("LOCUST_TIME_LIMIT_S", "3600")),
                language="en-US", voice="alloy", instructions="Be kind.")), metadata=md(api_key), timeout=30)
        return {"channel": channel, "api_key": api_key, "template_id": template.id}


def last_voiced(pcm: bytes, threshold: int = 500) -> int:
    """The index of the last 20 ms frame with any sample louder than `threshold` (of 32767)."""
    import array

    samples = array.array("h", pcm)
    per_frame = FRAME_BYTES // 2
    for index in range(len(samples) // per_frame - 1, -1, -1):
        chunk = samples[index * per_frame:(index + 1) * per_frame]
        if max(chunk) > threshold or -min(chunk) > threshold:
            return index
    return 0


def md(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


SETUP = _Setup()


@events.init.add_listener  # type: ignore[untyped-decorator]
def _on_init(environment: Any, **_kwargs: Any) -> None:
    SETUP.clips()  # fail early if there is no speech to send


# --- the candidate ------------------------------------------------------------------------------

class Candidate(User):  # type: ignore[misc]
    """One candidate: joins, then streams audio and pings until the test stops."""

    wait_time = None  # the single task runs for the user's whole life

    def on_start(self) -> None:
        self.ws: websocket.WebSocket | None = None
        self.closing = False
        self.speech: list[str] = []
        self.speech_voiced_left = 0  # frames until the answer's last voiced frame has been sent
        self.answer_due: float | None = None
        self.answer_end: float | None = None  # when the last answer's audio was sent
        self.rng = random.Random()
        self.frames_this_second = 0
        session_id, token = self._invitation()
        self._join(session_id, token)

    def _fire(self, request_type: str, name: str, started: float, response_time_ms: float,
              exception: BaseException | None = None, length: int = 0) -> None:
        self.environment.events.request.fire(
            request_type=request_type, name=name, response_time=response_time_ms, response_length=length,
            exception=exception, context={}, start_time=started, url=None, response=None)

    def _invitation(self) -> tuple[str, str]:
        from interview.v1 import (
            candidate_service_pb2,
            candidate_service_pb2_grpc,
            invitation_service_pb2,
            invitation_service_pb2_grpc,
        )

        setup = SETUP.get()
        api = md(setup["api_key"])
        candidate = candidate_service_pb2_grpc.CandidateServiceStub(setup["channel"]).UpsertCandidate(
            candidate_service_pb2.UpsertCandidateRequest(
                email=f"locust-{uuid.uuid4().hex[:10]}@example.com", full_name="Locust Candidate"),
            metadata=api, timeout=30).candidate
        invitation = invitation_service_pb2_grpc.InvitationServiceStub(setup["channel"]).CreateInvitation(
            invitation_service_pb2.CreateInvitationRequest(candidate_id=candidate.id,
                                                           template_id=setup["template_id"]),
            metadata=api, timeout=30)
        started = time.time()
        t0 = time.perf_counter()
        resp = requests.post(f"{self.host}/v1/invitations/redeem", json={"token": invitation.token}, timeout=30)
        elapsed = (time.perf_counter() - t0) * 1000
        error = None if resp.status_code == 200 else RuntimeError(f"{resp.status_code}: {resp.text[:200]}")
        self._fire("HTTP", "POST /v1/invitations/redeem", started, elapsed, error, len(resp.content))
        if error is not None:
            raise error
        body = resp.json()
        return str(body["session_id"]), str(body["access_token"])

    def _join(self, session_id: str, token: str) -> None:
        url = self.host.replace("http://", "ws://").replace("https://", "wss://").rstrip("/")
        started = time.time()
        t0 = time.perf_counter()
        try:
            ws = websocket.create_connection(f"{url}/v1/realtime?call_id={session_id}",
                                             header=[f"Authorization: Bearer {token}"], timeout=60,
                                             enable_multithread=True)
            first = json.loads(ws.recv())
            if first.get("type") != "session.created":
                raise RuntimeError(f"expected session.created, got {first.get('type')}")
        except Exception as exc:
            self._fire("WS", "join (connect -> session.created)", started, (time.perf_counter() - t0) * 1000, exc)
            raise
        self._fire("WS", "join (connect -> session.created)", started, (time.perf_counter() - t0) * 1000)
        ws.settimeout(None)
        self.ws = ws
        self.reader = gevent.spawn(self._read)

    def _read(self) -> None:
        ws = self.ws
        assert ws is not None
        while True:
            try:
                received = ws.recv()
            except Exception as exc:
                if not self.closing:
                    self._fire("WS", "connection", time.time(), 0, exc)
                return
            data = received.decode(errors="replace") if isinstance(received, bytes) else received
            if not data:
                if not self.closing:
                    self._fire("WS", "connection", time.time(), 0,
                               RuntimeError(f"closed by the server ({ws.status})"))
                return
            kind = data[9:data.find('"', 9)] if data.startswith('{"type":"') else ""
            if kind == "interview.pong":
                event = json.loads(data)
                rtt = time.monotonic() * 1000 - float(event["client_time_ms"])
                self._fire("WS", "ping round trip", time.time() - rtt / 1000, rtt)
            elif kind == "response.output_audio.delta" and self.answer_end is not None:
                wait = (time.monotonic() - self.answer_end) * 1000
                self.answer_end = None
                self._fire("WS", "turn (end of answer -> interviewer audio)", time.time() - wait / 1000, wait)
            elif kind == "response.done":
                event = json.loads(data)
                if event.get("response", {}).get("status") == "completed" and not self.speech:
                    self.answer_due = time.monotonic() + self.rng.uniform(0.5, 2.0)
            elif kind == "error":
                self._fire("WS", "connection", time.time(), 0, RuntimeError(data[:200]))
            elif kind == "interview.ended":
                self.closing = True
                self._fire("WS", "connection", time.time(), 0, RuntimeError("the interview ended"))

    @task  # type: ignore[untyped-decorator]
    def stream(self) -> None:
        ws = self.ws
        assert ws is not None
        clips = SETUP.clips()
        ping_phase = self.rng.randrange(PING_EVERY_FRAMES)
        next_t = time.monotonic()
        second_started = time.time()
        worst_late = 0.0
        n = 0
        while not self.closing:
            delay = next_t - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
            now = time.monotonic()
            worst_late = max(worst_late, now - next_t)
            if now - next_t > MAX_BEHIND_S:
                next_t += int((now - next_t - MAX_BEHIND_S) / FRAME_S) * FRAME_S
            if self.answer_due is not None and now >= self.answer_due:
                self.answer_due = None
                frames, voiced = clips[self.rng.randrange(len(clips))]
                self.speech = list(reversed(frames))
                self.speech_voiced_left = voiced + 1
            if self.speech:
                ws.send(self.speech.pop())
                self.speech_voiced_left -= 1
                if self.speech_voiced_left == 0:
                    self.answer_end = time.monotonic()  # the candidate has stopped talking
            else:
                ws.send(SILENCE_MSG)
            self.frames_this_second += 1
            if n % PING_EVERY_FRAMES == ping_phase:
                ws.send(f'{{"type":"interview.ping","client_time_ms":{time.monotonic() * 1000:.3f},"ping_id":"p{n}"}}')
            if time.time() - second_started >= 1.0:
                self._fire("WS", "audio (worst send lateness in 1 s)", second_started, worst_late * 1000,
                           length=self.frames_this_second)
                self.frames_this_second = 0
                worst_late = 0.0
                second_started = time.time()
            n += 1
            next_t += FRAME_S
        self.stop()

    def on_stop(self) -> None:
        self.closing = True
        if getattr(self, "ws", None) is not None:
            try:
                self.ws.close()  # type: ignore[union-attr]
            except Exception:
                pass
