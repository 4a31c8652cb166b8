"""Surviving crashes: a real fault in the middle of a real interview, driven by the official
`openai` SDK with its own reconnection on, then the stored transcript checked item by item
against what the candidate was told (every turn told stored exactly once, in order, nothing
invented).

- the edge process is killed with SIGKILL and a new one started on the same port;
- the actor process serving three interviews is killed with SIGKILL (Ray restarts it);
- the control service is stopped and started again while a transcript write is due;
- the candidate's network is cut (a TCP proxy resets the connection and refuses new ones) for
  less than the grace period, and for longer.

Each runs once in the normal suite; `test_crash_recovery_figures` (slow) repeats them and prints
the p50 of the time from the fault to the interview flowing again, recorded in docs/live-path.md.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import difflib
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from websockets.exceptions import ConnectionClosed

from actors import registry
from control.server import RunningControl, start_control
from edge.server import RunningEdge, start_edge
from interview.v1 import (
    invitation_service_pb2,
    resources_pb2,
    session_service_pb2,
    template_service_pb2,
)
from interview_core.config import Settings
from launcher.embedded_postgres import free_port
from launcher.supervisor import wait_for_port
from tests.conftest import SHARED, Api, TenantWorld
from tests.sdk_candidate import FRAME_BYTES, read_wav, sdk_client, silence
from tests.tcp_proxy import TcpProxy
from tests.test_live_resilience import status, transcript

REPO = Path(__file__).resolve().parents[1]
INT, CAND = resources_pb2.SPEAKER_INTERVIEWER, resources_pb2.SPEAKER_CANDIDATE
QUESTIONS = ["Name a tool you like.", "Why that one?"]
SPEED = 4.0  # the candidate's audio, times real time (the interviewer speaks at real time)
ANSWER = read_wav(SHARED / "audio" / "candidate_intro.wav")[: 24000 * 2 * 3]  # 3 s of speech


# -- the candidate ---------------------------------------------------------------------------------

class Candidate:
    """A person at the official SDK's realtime client, its reconnection on: streams audio all the
    time (silence, or an answer once a question has been asked whole), records every event with
    the time it arrived. `holds[n]`, when given, is waited for before answering question n."""

    def __init__(self, base: str, key: str, session_id: str, *, answers: int = len(QUESTIONS),
                 holds: dict[int, asyncio.Event] | None = None) -> None:
        self.base, self.key, self.session_id = base, key, session_id
        self._answers = [ANSWER] * answers
        self.holds = holds or {}
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.reconnects: list[tuple[float, int]] = []  # (when, close code)
        self.dropped_audio = 0  # audio the SDK's send queue had no room for while reconnecting
        self._waiters: list[tuple[Callable[[dict[str, Any]], bool], asyncio.Future[float]]] = []
        self.task: asyncio.Task[None] | None = None

    def start(self, timeout_s: float = 90.0) -> Candidate:
        self.task = asyncio.create_task(self.run(timeout_s))
        return self

    def when(self, predicate: Callable[[dict[str, Any]], bool]) -> asyncio.Future[float]:
        """The time of the next event matching `predicate`."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))
        return future

    def first_after(self, t: float, predicate: Callable[[dict[str, Any]], bool]) -> float | None:
        return next((at for at, e in self.events if at > t and predicate(e)), None)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for _, e in self.events if e["type"] == kind]

    @property
    def ended(self) -> str | None:
        ended = self.of_type("interview.ended")
        return str(ended[-1]["reason"]) if ended else None

    def told(self) -> list[tuple[int, str]]:
        """The turns the candidate was told were over, in order: their own (transcription
        completed) and the interviewer's (response.done, completed)."""
        out: list[tuple[int, str]] = []
        for _, e in self.events:
            if e["type"] == "conversation.item.input_audio_transcription.completed":
                out.append((CAND, str(e.get("transcript", ""))))
            elif e["type"] == "response.done" and e["response"]["status"] == "completed":
                out.append((INT, str(e["response"]["output"][0]["content"][0]["transcript"])))
        return out

    def _seen(self, at: float, event: dict[str, Any]) -> None:
        self.events.append((at, event))
        for waiter in list(self._waiters):
            predicate, future = waiter
            if not future.done() and predicate(event):
                future.set_result(at)
                self._waiters.remove(waiter)

    async def run(self, timeout_s: float) -> None:
        to_say = bytearray()
        asked = 0
        answering: list[asyncio.Task[None]] = []

        def reconnecting(event: Any) -> None:
            self.reconnects.append((time.monotonic(), event.close_code))

        async def answer(question: int) -> None:
            gate = self.holds.get(question)
            if gate is not None:
                await gate.wait()
            if self._answers:
                to_say.extend(self._answers.pop(0) + silence(1.0))

        client = sdk_client(self.base, self.key)
        async with client.realtime.connect(call_id=self.session_id, on_reconnecting=reconnecting) as conn:
            async def speak() -> None:
                chunk, interval = FRAME_BYTES * 5, 0.1 / SPEED
                next_at = time.monotonic()
                while True:
                    piece = bytes(to_say[:chunk]) or silence(0.1)
                    del to_say[:chunk]
                    try:
                        await conn.input_audio_buffer.append(audio=base64.b64encode(piece).decode())
                    except (openai.WebSocketQueueFullError, ConnectionClosed):
                        # The connection died under this send, or the SDK's queue (1 MiB) is full
                        # while it reconnects: like a microphone's, audio of the outage is gone.
                        self.dropped_audio += 1
                    next_at += interval
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))

            speaker = asyncio.create_task(speak())
            try:
                async with asyncio.timeout(timeout_s):
                    async for event in conn:
                        data = event.model_dump(exclude_none=True) if hasattr(event, "model_dump") else dict(event)
                        self._seen(time.monotonic(), data)
                        if data["type"] == "response.done" and data["response"]["status"] == "completed":
                            asked += 1
                            answering.append(asyncio.create_task(answer(asked)))
                        if data["type"] == "interview.ended":
                            break
            except TimeoutError:
                tail = [e["type"] for _, e in self.events[-12:]]
                raise AssertionError(f"interview stalled; reconnects={self.reconnects}; last events {tail}") from None
            finally:
                for task in [speaker, *answering]:
                    task.cancel()


def is_delta(e: dict[str, Any]) -> bool:
    return e["type"] == "response.output_audio.delta"


def asking(question: str) -> Callable[[dict[str, Any]], bool]:
    """The interviewer has started saying `question`."""
    return lambda e: e["type"] == "response.output_audio_transcript.delta" and question in e["delta"]


def is_done(e: dict[str, Any]) -> bool:
    return e["type"] == "response.done" and e["response"]["status"] == "completed"


def is_created(e: dict[str, Any]) -> bool:
    return e["type"] == "session.created"


# -- the transcript, item by item ------------------------------------------------------------------

@dataclass
class Tally:
    lost: int  # told, not stored
    duplicated: int  # stored more than once
    invented: int  # stored, never told


def reconcile(told: list[tuple[int, str]], items: list[resources_pb2.TranscriptItem]) -> Tally:
    stored = [(i.speaker, i.text) for i in items]
    matcher = difflib.SequenceMatcher(a=told, b=stored, autojunk=False)
    matched = sum(block.size for block in matcher.get_matching_blocks())
    extra = [s for tag, _, _, j1, j2 in matcher.get_opcodes() if tag in ("replace", "insert") for s in stored[j1:j2]]
    duplicated = sum(1 for s in extra if s in told)
    return Tally(lost=len(told) - matched, duplicated=duplicated, invented=len(extra) - duplicated)


async def check_transcript(world: TenantWorld, candidate: Candidate, *, whole: bool = True) -> Tally:
    """The stored transcript is exactly what the candidate was told; a whole interview is
    Q1, A1, Q2, A2, closing, each question once; the audio timeline never goes back."""
    items = await transcript(world, candidate.session_id)
    told = candidate.told()
    tally = reconcile(told, items)
    assert [(i.speaker, i.text) for i in items] == told, f"stored {items} but told {told}"
    assert [i.sequence for i in items] == list(range(1, len(items) + 1))
    starts = [i.audio_start_ms for i in items]
    assert starts == sorted(starts), f"the timeline went back: {starts}"
    if whole:
        assert [i.speaker for i in items] == [INT, CAND, INT, CAND, INT]
        assert items[0].text.endswith(QUESTIONS[0]) and items[2].text == QUESTIONS[1]
        assert "last question" in items[4].text
    return tally


# -- interviews ------------------------------------------------------------------------------------

async def short_template(world: TenantWorld) -> str:
    template = await world.api.templates.CreateTemplate(
        template_service_pb2.CreateTemplateRequest(template=resources_pb2.Template(
            role="SRE", questions=QUESTIONS, time_limit_seconds=600, language="en-US", voice="alloy")),
        metadata=world.api.md)
    return str(template.id)


async def new_interview(world: TenantWorld, base: str, template_id: str) -> tuple[str, str, str]:
    """A redeemed invitation: (session id, access token, invitation token)."""
    created = await world.api.invitations.CreateInvitation(
        invitation_service_pb2.CreateInvitationRequest(candidate_id=world.candidate.id, template_id=template_id),
        metadata=world.api.md)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"http://{base}/v1/invitations/redeem", json={"token": created.token}) as resp:
            assert resp.status == 200, await resp.text()
            body = await resp.json()
    return str(body["session_id"]), str(body["access_token"]), created.token


@dataclass
class Outcome:
    """One fault: the time from it to the interview flowing again, and the transcript's tally."""

    scenario: str
    recovery_s: float
    tally: Tally
    extra: dict[str, float] = field(default_factory=dict)


# -- environments: each its own Ray namespace (its own pool, with its own settings) ----------------

async def tear_down_namespace(namespace: str) -> None:
    import ray

    from actors.interview_actor import POOL_NAME

    with contextlib.suppress(ValueError):
        pool = ray.get_actor(POOL_NAME, namespace=namespace)
        ours = registry.all_sessions(namespace)
        with contextlib.suppress(Exception):
            await pool.shutdown.remote()
        ray.kill(pool)
        for session_id, worker in ours.items():
            registry.unbind(namespace, session_id, worker)
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if actor["namespace"] == namespace and actor["name"].startswith("interview-worker-"):
            with contextlib.suppress(ValueError):
                ray.kill(ray.get_actor(actor["name"], namespace=namespace))


def crash_namespace(live_settings: Settings, kind: str, **changes: Any) -> Settings:
    return live_settings.replace(ray_namespace=f"interview-tests-crash-{kind}-{uuid.uuid4().hex[:6]}",
                                 supervise_interval_s=1.0, **changes)


class EdgeProcess:
    """`python -m launcher.cli edge` as its own process, with the settings as its environment."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTERVIEW_")}
        env.update(self.settings.to_env())
        with open(self.log_path, "ab") as log:
            return subprocess.Popen([sys.executable, "-m", "launcher.cli", "edge"], cwd=REPO, env=env,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    async def start(self) -> None:
        self.proc = self._spawn()
        try:
            await asyncio.to_thread(wait_for_port, self.settings.edge_host, self.settings.edge_port, 120, self.proc)
        except Exception as exc:
            raise AssertionError(f"the edge did not start: {self.log_path.read_text()[-3000:]}") from exc

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@dataclass
class CrashEnv:
    """A pool whose interviews may crash: grace long enough for an edge process to restart,
    three interviews per actor process, a supervisor that looks every second."""

    settings: Settings
    log_dir: Path


@pytest.fixture(scope="module")
async def crash_env(live_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[CrashEnv]:
    settings = crash_namespace(live_settings, "proc", edge_port=free_port(), warm_interviews=3,
                               interviews_per_actor=3, abandon_grace_s=30.0)
    yield CrashEnv(settings, tmp_path_factory.mktemp("crash-logs"))
    await tear_down_namespace(settings.ray_namespace)


@pytest.fixture(scope="module")
async def net_env(live_settings: Settings) -> AsyncIterator[tuple[Settings, RunningEdge]]:
    """A short grace period (3 s), an edge in this process."""
    settings = crash_namespace(live_settings, "net", edge_port=0, warm_interviews=1, interviews_per_actor=3,
                               abandon_grace_s=3.0)
    running = await start_edge(settings)
    yield settings, running
    await running.stop()
    await tear_down_namespace(settings.ray_namespace)


@dataclass
class ControlEnv:
    control_settings: Settings  # the control service's own, on a fixed port
    settings: Settings  # the edge's and the actors'
    edge: RunningEdge
    control: RunningControl

    async def restart(self, down_s: float) -> tuple[float, float]:
        """Stops the control service, waits, starts it again on the same port: (down at, up at)."""
        await self.control.stop(0.2)
        down_at = time.monotonic()
        await asyncio.sleep(down_s)
        self.control = await start_control(self.control_settings, deliver_email=False)
        return down_at, time.monotonic()


@pytest.fixture(scope="module")
async def control_env(base_settings: Settings, live_settings: Settings) -> AsyncIterator[ControlEnv]:
    """A control service of its own (on a port that survives its restarts), and a pool and an edge
    that use it."""
    control_settings = base_settings.replace(control_port=free_port())
    control = await start_control(control_settings, deliver_email=False)
    settings = crash_namespace(live_settings, "ctl", control_port=control_settings.control_port, edge_port=0,
                               warm_interviews=1, interviews_per_actor=3)
    running = await start_edge(settings)
    env = ControlEnv(control_settings, settings, running, control)
    yield env
    await running.stop()
    await tear_down_namespace(settings.ray_namespace)
    await env.control.stop(0.5)


@pytest.fixture
async def short(world: TenantWorld) -> str:
    return await short_template(world)


# -- the scenarios (each returns what it measured; the tests assert on the way) -------------------

async def edge_dies(world: TenantWorld, template: str, env: CrashEnv, edges: list[EdgeProcess]) -> Outcome:
    """The edge process is SIGKILLed while the interviewer asks question 2; a new edge process
    starts on the same port; the SDK reconnects to it and the interview continues."""
    settings = env.settings
    base = f"127.0.0.1:{settings.edge_port}"
    session_id, access, _ = await new_interview(world, base, template)
    candidate = Candidate(base, access, session_id).start()
    await asyncio.wait_for(candidate.when(asking(QUESTIONS[1])), 60)
    worker_before = registry.worker_of(settings.ray_namespace, session_id)
    fault = time.monotonic()
    edges[-1].kill()
    replacement = EdgeProcess(settings, edges[-1].log_path)
    edges.append(replacement)
    await replacement.start()
    edge_ready = time.monotonic() - fault
    assert candidate.task is not None
    await asyncio.wait_for(candidate.task, 90)
    assert candidate.ended == "completed"
    assert candidate.reconnects, "the SDK reconnected by itself"
    assert registry.worker_of(settings.ray_namespace, session_id) in (worker_before, None), "the same actor served it"
    flowing = candidate.first_after(fault, is_delta)
    assert flowing is not None
    said = [e["delta"] for at, e in candidate.events if at > fault and e["type"] ==
            "response.output_audio_transcript.delta"]
    assert said[0] == QUESTIONS[1], "the question cut off is asked again, first"
    tally = await check_transcript(world, candidate)
    assert await status(world, session_id) == resources_pb2.SESSION_STATUS_COMPLETED
    return Outcome("edge killed", flowing - fault, tally, {"edge_ready_s": edge_ready})


async def actor_dies(world: TenantWorld, template: str, base: str, settings: Settings) -> list[Outcome]:
    """Three interviews in one actor process, each somewhere else: A while the interviewer asks
    question 2, B waiting for the answer to question 2, C waiting for the answer to question 1
    with its candidate's network down (C's connection goes through a proxy). The process is
    SIGKILLed; Ray restarts it under the same name; the pool's supervisor has it resume all three
    from the database (C before its candidate can come back); the candidates reconnect, and each
    interview goes on from where it was."""
    import ray

    ns = settings.ray_namespace
    host, port = base.rsplit(":", 1)
    proxy = TcpProxy(host, int(port))
    await proxy.start()
    try:
        ids = [await new_interview(world, base, template) for _ in range(3)]
        secrets = [await sdk_client(base, access).realtime.client_secrets.create() for _, access, _ in ids]
        workers = {registry.worker_of(ns, s) for s, _, _ in ids}
        assert len(workers) == 1 and None not in workers, f"placed on one actor process: {workers}"
        worker = str(workers.pop())
        hold_b, hold_c = asyncio.Event(), asyncio.Event()
        c = Candidate(f"127.0.0.1:{proxy.port}", secrets[2].value, ids[2][0], holds={1: hold_c}).start()
        b = Candidate(base, secrets[1].value, ids[1][0], holds={2: hold_b}).start()
        await asyncio.wait_for(asyncio.gather(
            c.when(is_done), b.when(lambda e: is_done(e) and QUESTIONS[1] in str(e))), 60)
        a = Candidate(base, secrets[0].value, ids[0][0]).start()
        await asyncio.wait_for(a.when(asking(QUESTIONS[1])), 60)

        handle = ray.get_actor(worker, namespace=ns)
        pid = await handle.__ray_call__.remote(lambda self: os.getpid())
        back = [x.when(is_created) for x in (a, b, c)]
        proxy.down()  # C's candidate is away
        fault = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        resumed = await resumed_on(handle, ids[2][0], timeout_s=30)
        resumed_s = resumed - fault
        proxy.up()
        await asyncio.wait_for(asyncio.gather(*back), 60)  # every candidate is back: B and C answer
        new_pid = await handle.__ray_call__.remote(lambda self: os.getpid())
        assert new_pid != pid, "Ray restarted the actor process (the same actor, a new process)"
        assert {registry.worker_of(ns, s) for s, _, _ in ids} == {worker}, "all three are still served there"
        hold_b.set()
        hold_c.set()
        await asyncio.wait_for(asyncio.gather(*(x.task for x in (a, b, c) if x.task)), 90)
    finally:
        await proxy.stop()
    assert {registry.worker_of(ns, s) for s, _, _ in ids} == {None}, "each place was given back at the end"
    outcomes = []
    for name, x in zip("ABC", (a, b, c), strict=True):
        assert x.ended == "completed", (name, x.ended)
        assert x.reconnects, f"{name}'s SDK reconnected by itself"
        tally = await check_transcript(world, x)
        assert await status(world, x.session_id) == resources_pb2.SESSION_STATUS_COMPLETED
        reconnected = x.first_after(fault, is_created)
        assert reconnected is not None
        flowing = x.first_after(fault, is_delta) if name == "A" else reconnected
        assert flowing is not None
        extra = {"reconnected_s": reconnected - fault, **({"resumed_s": resumed_s} if name == "C" else {})}
        outcomes.append(Outcome(f"actor killed ({name})", flowing - fault, tally, extra))
    said_a = [e["delta"] for at, e in a.events if at > fault and e["type"] == "response.output_audio_transcript.delta"]
    assert said_a[0] == QUESTIONS[1], "A: the question cut off is asked again, first"
    for x in (b, c):  # a question told whole is not asked again after the restart
        told_q = [t for s, t in x.told() if s == INT]
        assert len(told_q) == len(set(told_q)) == 3
    return outcomes


async def resumed_on(handle: Any, session_id: str, timeout_s: float) -> float:
    """When the (restarted) actor serves `session_id` again."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # the actor is restarting
            stats = await handle.stats.remote()
            if session_id in {live["session_id"] for live in stats["lives"]}:
                return time.monotonic()
        await asyncio.sleep(0.05)
    raise AssertionError(f"the restarted actor did not resume {session_id} in {timeout_s} s")


async def control_restarts(world: TenantWorld, template: str, env: ControlEnv, down_s: float = 2.0) -> Outcome:
    """The control service stops while the candidate answers question 1, and starts again 2 s
    later: the answer's transcript write waits and retries; the candidate is told their turn is
    over only once it is stored, and then the interview goes on."""
    base = f"127.0.0.1:{env.edge.port}"
    session_id, access, _ = await new_interview(world, base, template)
    candidate = Candidate(base, access, session_id).start()
    await asyncio.wait_for(candidate.when(lambda e: e["type"] == "input_audio_buffer.speech_started"), 60)
    stopped = candidate.when(lambda e: e["type"] == "input_audio_buffer.speech_stopped")
    down_at, up_at = await env.restart(down_s)
    assert stopped.done(), "the answer ended while the control service was down"
    assert candidate.task is not None
    await asyncio.wait_for(candidate.task, 90)
    assert candidate.ended == "completed"
    told_at = candidate.first_after(down_at, lambda e: e["type"] ==
                                    "conversation.item.input_audio_transcription.completed")
    assert told_at is not None and told_at > up_at, "the turn was told only once it could be stored"
    flowing = candidate.first_after(down_at, is_delta)
    assert flowing is not None
    tally = await check_transcript(world, candidate)
    assert await status(world, session_id) == resources_pb2.SESSION_STATUS_COMPLETED
    return Outcome("control restarted", flowing - down_at, tally,
                   {"down_s": up_at - down_at, "after_up_s": flowing - up_at})


async def network_drops(world: TenantWorld, template: str, settings: Settings, edge: RunningEdge,
                        down_s: float) -> tuple[Outcome, Candidate, str]:
    """The candidate's TCP connection is reset while the interviewer asks question 2, and the
    network stays down `down_s` (new connections reset too)."""
    proxy = TcpProxy("127.0.0.1", edge.port)
    await proxy.start()
    try:
        base = f"127.0.0.1:{proxy.port}"
        session_id, access, invitation = await new_interview(world, base, template)
        candidate = Candidate(base, access, session_id).start()
        await asyncio.wait_for(candidate.when(asking(QUESTIONS[1])), 60)
        fault = time.monotonic()
        proxy.down()
        await asyncio.sleep(down_s)
        proxy.up()
        assert candidate.task is not None
        await asyncio.wait_for(candidate.task, 90)
    finally:
        await proxy.stop()
    assert proxy.refused >= 1, "the SDK tried while the network was down"
    if candidate.ended == "completed":
        flowing = candidate.first_after(fault, is_delta)
        assert flowing is not None
        tally = await check_transcript(world, candidate)
        return Outcome(f"network down {down_s:g} s", flowing - fault, tally), candidate, invitation
    tally = await check_transcript(world, candidate, whole=False)
    ended_at = candidate.first_after(fault, lambda e: e["type"] == "interview.ended")
    assert ended_at is not None
    return Outcome(f"network down {down_s:g} s", ended_at - fault, tally), candidate, invitation


def assert_clean(outcome: Outcome, *, show: bool = True) -> None:
    if show:  # seen with `pytest -s`
        print(f"{outcome.scenario}: flowing again after {outcome.recovery_s:.2f} s; {outcome.tally}; {outcome.extra}")
    assert (outcome.tally.lost, outcome.tally.duplicated, outcome.tally.invented) == (0, 0, 0), outcome


# -- the tests (one run each) ----------------------------------------------------------------------

@pytest.fixture
async def edge_processes(crash_env: CrashEnv) -> AsyncIterator[list[EdgeProcess]]:
    first = EdgeProcess(crash_env.settings, crash_env.log_dir / "edge.log")
    edges = [first]
    await first.start()
    yield edges
    for edge in edges:
        edge.stop()


async def test_the_edge_process_dies(world: TenantWorld, short: str, crash_env: CrashEnv,
                                     edge_processes: list[EdgeProcess]) -> None:
    outcome = await edge_dies(world, short, crash_env, edge_processes)
    assert_clean(outcome)


@pytest.fixture
async def crash_edge(crash_env: CrashEnv) -> AsyncIterator[RunningEdge]:
    running = await start_edge(crash_env.settings.replace(edge_port=0))
    yield running
    await running.stop()


async def test_the_actor_process_dies_with_three_interviews(world: TenantWorld, short: str, crash_env: CrashEnv,
                                                            crash_edge: RunningEdge) -> None:
    for outcome in await actor_dies(world, short, f"127.0.0.1:{crash_edge.port}", crash_env.settings):
        assert_clean(outcome)


async def test_the_control_service_restarts(world: TenantWorld, short: str, control_env: ControlEnv) -> None:
    assert_clean(await control_restarts(world, short, control_env))


async def test_the_network_drops_for_less_than_the_grace_period(
        world: TenantWorld, short: str, net_env: tuple[Settings, RunningEdge]) -> None:
    settings, edge = net_env
    outcome, candidate, _ = await network_drops(world, short, settings, edge, down_s=1.0)
    assert candidate.ended == "completed"
    assert_clean(outcome)


async def test_the_network_drops_for_longer_than_the_grace_period(
        world: TenantWorld, short: str, net_env: tuple[Settings, RunningEdge]) -> None:
    settings, edge = net_env
    outcome, candidate, invitation = await network_drops(world, short, settings, edge, down_s=5.0)
    # The SDK's own reconnection, after the grace period: told it is over, and why; it stops.
    assert candidate.ended == "abandoned"
    assert_clean(outcome)
    assert await status(world, candidate.session_id) == resources_pb2.SESSION_STATUS_ABANDONED
    assert [s for s, _ in candidate.told()] == [INT, CAND], "question 2 was cut off: it was not told"
    # A later return, while the invitation is still valid: the same account redeems it again and gets the
    # same session back, which says it was abandoned, however the candidate comes in.
    base = f"127.0.0.1:{edge.port}"
    access = candidate.key
    async with aiohttp.ClientSession() as http:
        async with http.post(f"http://{base}/v1/invitations/redeem", json={"token": invitation},
                             headers={"Authorization": f"Bearer {access}"}) as resp:
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["session_id"] == candidate.session_id
    with pytest.raises(openai.ConflictError) as refused:
        await sdk_client(base, access).realtime.client_secrets.create()
    assert "abandoned" in str(refused.value)
    back = Candidate(base, access, candidate.session_id)
    await back.run(timeout_s=20)
    assert [e["type"] for _, e in back.events] == ["interview.ended"]
    assert back.ended == "abandoned" and not back.reconnects


async def test_an_actor_that_died_after_its_goodbye_records_the_end(world: TenantWorld, short: str, service: Api,
                                                                    edge: RunningEdge) -> None:
    """The window between storing the closing words and recording the end: an actor that died
    there leaves the whole transcript stored and the session in progress. The next actor to take
    the session records the end, and the returning candidate is told it is over."""
    from actors.interview_flow import InterviewFlow

    base = f"127.0.0.1:{edge.port}"
    session_id, access, _ = await new_interview(world, base, short)
    flow = InterviewFlow(role="SRE", questions=QUESTIONS, time_limit_s=600)
    said = [(INT, f"Hello, and welcome to your interview for the role of SRE. {QUESTIONS[0]}"), (CAND, ""),
            (INT, QUESTIONS[1]), (CAND, ""), (INT, flow.closing_text)]
    await service.sessions.UpdateSessionStatus(session_service_pb2.UpdateSessionStatusRequest(
        session_id=session_id, status=resources_pb2.SESSION_STATUS_IN_PROGRESS), metadata=service.md)
    await service.sessions.AppendTranscriptItems(session_service_pb2.AppendTranscriptItemsRequest(
        session_id=session_id, items=[resources_pb2.TranscriptItem(
            sequence=n, speaker=speaker, text=text, audio_start_ms=n * 1000, audio_end_ms=n * 1000 + 500)  # type: ignore[arg-type]
            for n, (speaker, text) in enumerate(said, start=1)]), metadata=service.md)
    back = Candidate(base, access, session_id)
    await back.run(timeout_s=20)
    assert [e["type"] for _, e in back.events] == ["interview.ended"] and back.ended == "completed"
    assert await status(world, session_id) == resources_pb2.SESSION_STATUS_COMPLETED
    assert [(i.speaker, i.text) for i in await transcript(world, session_id)] == said


# -- the figures: every fault repeated (slow) -----------------------------------------------------

RUNS = int(os.environ.get("CRASH_RUNS", "5"))
SCENARIOS = os.environ.get("CRASH_SCENARIOS", "edge,actor,control,net").split(",")


def _summary(outcomes: list[Outcome]) -> str:
    recovery = [o.recovery_s for o in outcomes]
    lost = sum(o.tally.lost for o in outcomes)
    duplicated = sum(o.tally.duplicated for o in outcomes)
    invented = sum(o.tally.invented for o in outcomes)
    extras = {k: statistics.median(o.extra[k] for o in outcomes) for k in outcomes[0].extra}
    extra = " ".join(f"{k} p50 {v:.2f}" for k, v in extras.items())
    p50 = statistics.median(recovery)
    return (f"{outcomes[0].scenario.split(' (')[0]:<24} runs {len(outcomes):>2}  p50 {p50:6.2f} s"
            f"  min {min(recovery):6.2f}  max {max(recovery):6.2f}  lost {lost} duplicated {duplicated}"
            f" invented {invented}  {extra}")


@pytest.mark.slow
async def test_crash_recovery_figures(world: TenantWorld, short: str, crash_env: CrashEnv,
                                      edge_processes: list[EdgeProcess], control_env: ControlEnv,
                                      net_env: tuple[Settings, RunningEdge],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    results: dict[str, list[Outcome]] = {}
    for _ in range(RUNS if "edge" in SCENARIOS else 0):
        results.setdefault("edge", []).append(await edge_dies(world, short, crash_env, edge_processes))
    base = f"127.0.0.1:{crash_env.settings.edge_port}"  # the edge process started last
    for _ in range(RUNS if "actor" in SCENARIOS else 0):
        for outcome in await actor_dies(world, short, base, crash_env.settings):
            results.setdefault(f"actor {outcome.scenario[-2]}", []).append(outcome)
    for _ in range(RUNS if "control" in SCENARIOS else 0):
        results.setdefault("control", []).append(await control_restarts(world, short, control_env))
    settings, edge = net_env
    for down_s in (1.0, 5.0) if "net" in SCENARIOS else ():
        for _ in range(RUNS):
            outcome, _, _ = await network_drops(world, short, settings, edge, down_s)
            results.setdefault(f"net {down_s:g} s", []).append(outcome)
    with capsys.disabled():
        print("\nfault -> interview flowing again")
        for name, outcomes in results.items():
            print(f"  {name:<10} {_summary(outcomes)}")
    for outcomes in results.values():
        for outcome in outcomes:
            assert_clean(outcome, show=False)

