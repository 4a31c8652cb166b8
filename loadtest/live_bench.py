"""`interview bench-live` (`python -m loadtest.live_bench`): the live path under load, in one run.

It starts a private stack exactly as `interview up` does (a subprocess, in a temporary data
directory, on free ports): embedded PostgreSQL, a Ray head, the control service and the edge, with
the offline interviewer and offline transcription OFF (the embedded default), and a warm actor
pool the size of the join burst. Other settings are the defaults, except the control service's
shutdown grace (1 s instead of 5, so the bench exits quickly) and, above 120 interviews, the cap
on live interviews. Through the control API and the edge it creates a tenant, a
template (many questions, a long time limit, so no interview finishes during the run), N
candidates and their invitations, and redeems them. Then:

(a) join burst: `--joins` candidates ask for their client secrets at once (which places their
    sessions), the pool refills the places they took, and two seconds later they connect at the
    same instant to the otherwise idle stack; each measures the time from starting its WebSocket
    connection to `session.created`, and to the interviewer's first audio.
(b) the rest connect (their actors are started on demand: not measured as joins), the warm pool
    refills, and 6 s later (new processes settle), a hold of `--duration` seconds starts: all N interviews
    stream a 20 ms `input_audio_buffer.append` event every 20 ms at real-time pace (absolute-time
    pacing: a late sender catches up, by at most 200 ms of audio), mostly silence, answering each
    question the interviewer asks with recorded speech (the WAV files in shared/audio), so the
    VAD and the interviewer work; and each sends an `interview.ping` every 0.5 s, echoed by its
    actor as `interview.pong`: the round trip of the real frame path, measured by the candidate.

At the end of the hold every candidate stops its audio and sends one last ping: its pong proves
every frame before it has reached the actor. With the connections still open, the bench asks
every interview actor (through Ray) how many audio frames it received, and compares that with
what the candidates sent: the difference is lost, whatever the cause. It also measures the
memory of the actor processes (USS and RSS, psutil) and the CPU each part used over the hold
window (psutil cpu_times deltas): the load generator, the edge, the live interview actors, the
idle warm actors, and the rest (Ray's own processes, the pool actor, control, PostgreSQL).

The load generator runs in `--load-procs` (2) spawned processes, each an asyncio loop with one
aiohttp WebSocket client per candidate, sending one append per 20 ms per candidate (nothing
coalesced, as a browser would).

Prints a table of the figures, the targets with PASS/FAIL and the command. Exit status: 0 if
every target was met, 1 if one was not, 2 if the bench could not run, 130 on Ctrl-C. Everything it
starts is stopped on exit (Ctrl-C and SIGTERM included).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import math
import multiprocessing
import os
import platform
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import wave
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from loadtest.shared_files import shared_dir

FRAME_S = 0.020
FRAME_BYTES = 960  # 20 ms of PCM16 mono at 24 kHz
PING_EVERY_FRAMES = 25  # one interview.ping per 0.5 s
MAX_BEHIND_S = 0.2  # a late sender catches up with at most this much audio; older frames are skipped
SILENCE_MSG = json.dumps({"type": "input_audio_buffer.append",
                          "audio": base64.b64encode(bytes(FRAME_BYTES)).decode()}, separators=(",", ":"))
DEFAULT_AUDIO_DIR = shared_dir() / "audio"

# The targets this bench checks.
TARGET_INTERVIEWS = 100
TARGET_P99_MS = 20.0
TARGET_JOIN_P50_MS = 50.0

QUESTIONS = [
    "Tell me about yourself and what you are working on now.",
    "Describe a hard bug you tracked down, and how you found it.",
    "How do you decide what to test in a new service?",
    "Tell me about a time you disagreed with a teammate, and what happened.",
    "How would you design a rate limiter for a public API?",
    "What is a project you are proud of, and why?",
    "How do you keep a database migration safe in production?",
    "Describe how you would debug a service that got slow overnight.",
    "What do you look for when you review someone else's code?",
    "How do you explain a technical trade-off to a non-technical colleague?",
]


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list (nan when empty)."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


# --- the simulated candidates (run in the load processes) ----------------------------------------

@dataclass
class CandidateSpec:
    session_id: str
    token: str
    burst: bool  # part of the join burst


@dataclass
class CandidateResult:
    session_id: str
    join_ms: float | None = None
    upgrade_ms: float | None = None  # of which: until the WebSocket upgrade
    first_audio_ms: float | None = None  # from the same start to the interviewer's first audio
    secret_ms: float | None = None  # the client secret before it (the edge places the session then)
    frames_sent: int = 0
    frames_in_window: int = 0
    frames_skipped: int = 0  # the sender fell more than MAX_BEHIND_S behind: never sent, not counted
    skipped_in_window: int = 0
    barrier_ok: bool = False  # the final pong came back
    error: str = ""
    closed_early: int | None = None  # the server closed the connection (close code) before the end
    ended: bool = False  # interview.ended arrived
    speech_started: int = 0
    turns_transcribed: int = 0
    questions_completed: int = 0
    audio_deltas: int = 0
    server_errors: int = 0
    first_server_error: str = ""


@dataclass
class ProcSummary:
    results: list[CandidateResult]
    pings: list[tuple[float, float]]  # (seconds since the hold started, round trip ms), inside the window
    lateness_ms: list[float]  # sampled send lateness inside the window (how late a frame left)
    turns_ms: list[float]  # end of an answer's speech -> the interviewer's next audio, inside the window


def _fast_type(data: str) -> str:
    """The event type: our server always writes `{"type":"...",` first."""
    if data.startswith('{"type":"'):
        end = data.find('"', 9)
        if end > 0:
            return data[9:end]
    try:
        return str(json.loads(data).get("type", ""))
    except (ValueError, AttributeError):
        return ""


class Candidate:
    def __init__(self, spec: CandidateSpec, clips: list[tuple[list[str], int]], rng: random.Random,
                 base_url: str) -> None:
        self.spec = spec
        self.result = CandidateResult(spec.session_id)
        self._clips = clips
        self._rng = rng
        self._url = f"{base_url}/v1/realtime?call_id={spec.session_id}"
        self._secret_url = f"{base_url.replace('ws://', 'http://', 1)}/v1/realtime/client_secrets"
        self.ws: Any = None
        self.secret = ""
        self._connect_t0 = 0.0  # perf_counter when the WebSocket connection started
        self.speech: list[str] = []  # frames still to say (reversed: pop() from the end)
        self.voiced_left = 0  # frames until the answer's last voiced frame has been sent
        self.answer_end: float | None = None  # when it was (monotonic)
        self.turns: list[float] = []  # ms from the end of an answer to the interviewer's next audio
        self.joined = asyncio.Event()
        self.barrier = asyncio.Event()
        self.stop_at = math.inf  # monotonic
        self.window = (math.inf, math.inf)  # monotonic start, end of the hold window
        self.pings: list[tuple[float, float]] = []
        self.lateness: list[float] = []
        self._closing = False
        self._reader: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._answer: asyncio.TimerHandle | None = None

    async def get_secret(self, http: Any) -> None:
        """As the SDK does before it connects: a client secret (the edge places the session then)."""
        t0 = time.perf_counter()
        try:
            async with http.post(self._secret_url, headers={"Authorization": f"Bearer {self.spec.token}"},
                                 json={}) as resp:
                body = await resp.json()
                if resp.status != 200:
                    raise RuntimeError(f"{resp.status} {body}")
            self.secret = str(body["value"])
            self.result.secret_ms = (time.perf_counter() - t0) * 1000
        except Exception as exc:
            self.result.error = f"client secret: {type(exc).__name__}: {exc}"

    async def join(self, http: Any) -> None:
        if not self.secret:
            await self.get_secret(http)
            if not self.secret:
                return
        t0 = self._connect_t0 = time.perf_counter()
        try:
            self.ws = await http.ws_connect(self._url, headers={"Authorization": f"Bearer {self.secret}"},
                                            autoping=True, compress=0, timeout=120, max_msg_size=0)
            self.result.upgrade_ms = (time.perf_counter() - t0) * 1000
        except Exception as exc:
            self.result.error = f"connect: {type(exc).__name__}: {exc}"
            return
        self._reader = asyncio.create_task(self._read())
        try:
            await asyncio.wait_for(self.joined.wait(), 120)
        except TimeoutError:
            self.result.error = self.result.error or "no session.created within 120 s"
            return
        self.result.join_ms = (time.perf_counter() - t0) * 1000
        self._sender = asyncio.create_task(self._send())

    async def _read(self) -> None:
        from aiohttp import WSMsgType

        ws = self.ws
        result = self.result
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                data: str = msg.data
                kind = _fast_type(data)
                if kind == "response.output_audio.delta":
                    result.audio_deltas += 1
                    if result.first_audio_ms is None:
                        result.first_audio_ms = (time.perf_counter() - self._connect_t0) * 1000
                    if self.answer_end is not None:
                        now = time.monotonic()
                        if self.window[0] <= now < self.window[1]:
                            self.turns.append((now - self.answer_end) * 1000)
                        self.answer_end = None
                elif kind == "interview.pong":
                    now_ms = time.monotonic() * 1000
                    event = json.loads(data)
                    sent_ms = float(event["client_time_ms"])
                    if event.get("ping_id") == "final":
                        self.barrier.set()
                    elif self.window[0] <= sent_ms / 1000 < self.window[1]:
                        self.pings.append((sent_ms / 1000 - self.window[0], now_ms - sent_ms))
                elif kind == "session.created":
                    self.joined.set()
                elif kind == "response.done":
                    event = json.loads(data)
                    if event.get("response", {}).get("status") == "completed":
                        result.questions_completed += 1
                        self._schedule_answer()
                elif kind == "input_audio_buffer.speech_started":
                    result.speech_started += 1
                elif kind == "conversation.item.input_audio_transcription.completed":
                    result.turns_transcribed += 1
                elif kind == "interview.ended":
                    result.ended = True
                elif kind == "error":
                    result.server_errors += 1
                    result.first_server_error = result.first_server_error or data[:300]
        except Exception as exc:
            result.error = result.error or f"receive: {type(exc).__name__}: {exc}"
        if not self._closing:
            result.closed_early = ws.close_code if ws.close_code is not None else -1
            reason = ws.exception()
            result.error = (f"closed by the server at {time.strftime('%H:%M:%S')}: code {result.closed_early}"
                            + (f" ({type(reason).__name__}: {reason})" if reason else "")
                            + (f"; before that: {result.error}" if result.error else ""))
        self.joined.set()  # wakes a join still waiting (it sees the error)
        self.barrier.set()

    def _schedule_answer(self) -> None:
        """Answers the question just asked after a human pause, with one of the recordings."""
        if self._answer is not None or self.speech or not self._clips:
            return
        delay = self._rng.uniform(0.5, 2.0)
        self._answer = asyncio.get_running_loop().call_later(delay, self._start_answer)

    def _start_answer(self) -> None:
        self._answer = None
        frames, last_voiced = self._clips[self._rng.randrange(len(self._clips))]
        self.speech = list(reversed(frames))
        self.voiced_left = last_voiced + 1

    async def _send(self) -> None:
        ws = self.ws
        result = self.result
        rng = self._rng
        ping_phase = rng.randrange(PING_EVERY_FRAMES)
        next_t = time.monotonic() + rng.uniform(0, FRAME_S)
        n = 0
        try:
            while True:
                delay = next_t - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if next_t >= self.stop_at or self._closing:
                    break
                now = time.monotonic()
                late = now - next_t
                if late > MAX_BEHIND_S:  # bounded catch-up: skip what is older than MAX_BEHIND_S
                    skipped = int((late - MAX_BEHIND_S) / FRAME_S)
                    if self.window[0] <= next_t < self.window[1]:
                        result.skipped_in_window += skipped
                    next_t += skipped * FRAME_S
                    result.frames_skipped += skipped
                in_window = self.window[0] <= next_t < self.window[1]
                if in_window and n % 5 == 0:
                    self.lateness.append(late * 1000)
                if self.speech:
                    await ws.send_str(self.speech.pop())
                    self.voiced_left -= 1
                    if self.voiced_left == 0:
                        self.answer_end = time.monotonic()  # the candidate has stopped talking
                else:
                    await ws.send_str(SILENCE_MSG)
                result.frames_sent += 1
                if in_window:
                    result.frames_in_window += 1
                if n % PING_EVERY_FRAMES == ping_phase:
                    await ws.send_str(f'{{"type":"interview.ping","client_time_ms":{time.monotonic() * 1000:.3f},'
                                      f'"ping_id":"p{n}"}}')
                n += 1
                next_t += FRAME_S
        except Exception as exc:
            if not self._closing:
                result.error = result.error or f"send: {type(exc).__name__}: {exc}"

    async def finish_audio(self, timeout_s: float) -> None:
        """Waits for the sender to stop at `stop_at`, then pings once more: when that pong is back,
        every frame sent before it has reached the actor (one ordered path)."""
        if self._sender is not None:
            with contextlib.suppress(Exception):
                await self._sender
        if self.ws is None or self.ws.closed or self.result.closed_early is not None:
            return
        try:
            await self.ws.send_str(f'{{"type":"interview.ping","client_time_ms":{time.monotonic() * 1000:.3f},'
                                   '"ping_id":"final"}')
            await asyncio.wait_for(self.barrier.wait(), timeout_s)
            self.result.barrier_ok = self.result.closed_early is None
        except (TimeoutError, Exception) as exc:
            self.result.error = self.result.error or f"final ping: {type(exc).__name__}"

    async def close(self) -> None:
        self._closing = True
        if self._answer is not None:
            self._answer.cancel()
        if self._sender is not None:
            self._sender.cancel()
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5)
        if self._reader is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._reader, 5)


def _frames_of(pcm: bytes) -> list[str]:
    out = []
    for offset in range(0, len(pcm) - len(pcm) % FRAME_BYTES, FRAME_BYTES):
        audio = base64.b64encode(pcm[offset:offset + FRAME_BYTES]).decode()
        out.append(f'{{"type":"input_audio_buffer.append","audio":"{audio}"}}')
    return out


def last_voiced(pcm: bytes, threshold: int = 500) -> int:
    """The index of the last 20 ms frame with a sample louder than `threshold` (of 32767)."""
    import array

    samples = array.array("h", pcm)
    per_frame = FRAME_BYTES // 2
    for index in range(len(samples) // per_frame - 1, -1, -1):
        chunk = samples[index * per_frame:(index + 1) * per_frame]
        if max(chunk) > threshold or -min(chunk) > threshold:
            return index
    return 0


def load_clips(audio_dir: Path) -> list[bytes]:
    """Candidate speech: the recordings in `audio_dir` (PCM16 24 kHz mono WAV), or, if there are
    none, a few answers synthesised with the offline speech kit."""
    clips = []
    for path in sorted(audio_dir.glob("*.wav")) if audio_dir.is_dir() else []:
        if "silence" in path.name:
            continue
        with wave.open(str(path), "rb") as wav:
            if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (24000, 1, 2):
                clips.append(wav.readframes(wav.getnframes()))
    if not clips:
        from actors.speech_kit import OfflineSpeechKit

        kit = OfflineSpeechKit(transcribe=False)
        clips = [kit.synthesize(text, "en-US") for text in (
            "Hi, thanks for having me. I have five years of experience building backend services.",
            "The hardest bug I found was a race between two workers writing the same row.",
            "I start with the behaviour users depend on, then the edges where data comes in.")]
    return clips


async def _load(specs: list[CandidateSpec], clip_pcm: list[bytes], base_url: str, seed: int,
                conn: Connection) -> None:
    import aiohttp

    loop = asyncio.get_running_loop()
    clips = [(_frames_of(pcm) + [SILENCE_MSG] * 5, last_voiced(pcm)) for pcm in clip_pcm]
    rng = random.Random(seed)
    candidates = [Candidate(s, clips, random.Random(rng.random()), base_url) for s in specs]
    gc.freeze()  # as the edge and the actors do: no full-collection stalls in the candidates' pace
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as http:
        conn.send(("ready", None))
        while True:
            command, arg = await loop.run_in_executor(None, conn.recv)
            if command == "secrets":  # the burst's client secrets (placements), all at once
                burst = [c for c in candidates if c.spec.burst]
                await asyncio.gather(*(c.get_secret(http) for c in burst))
                conn.send(("secrets", [asdict(c.result) for c in burst]))
            elif command == "join":  # the burst: all at one wall-clock instant
                burst = [c for c in candidates if c.spec.burst]
                await asyncio.sleep(max(0.0, arg - time.time()))
                await asyncio.gather(*(c.join(http) for c in burst))
                conn.send(("joined", [asdict(c.result) for c in burst]))
            elif command == "ramp":  # the rest, a few at a time
                rest = [c for c in candidates if not c.spec.burst]
                gate = asyncio.Semaphore(arg)

                async def join_gated(c: Candidate, gate: asyncio.Semaphore = gate) -> None:
                    async with gate:
                        await c.join(http)

                await asyncio.gather(*(join_gated(c) for c in rest))
                conn.send(("ramped", [asdict(c.result) for c in rest]))
            elif command == "hold":
                start_wall, end_wall = arg
                offset = time.monotonic() - time.time()
                window = (start_wall + offset, end_wall + offset)
                for c in candidates:
                    c.window = window
                    c.stop_at = window[1]
                await asyncio.sleep(max(0.0, end_wall - time.time()))
                await asyncio.gather(*(c.finish_audio(15.0) for c in candidates))
                pings = [p for c in candidates for p in c.pings]
                lateness = [x for c in candidates for x in c.lateness]
                turns = [x for c in candidates for x in c.turns]
                conn.send(("held", ProcSummary([c.result for c in candidates], pings, lateness, turns)))
            elif command == "close":
                await asyncio.gather(*(c.close() for c in candidates))
                conn.send(("closed", None))
                return


LOAD_NICE = -10  # the candidates' pace must not depend on the stack they load (they would be elsewhere)


def _load_process(specs: list[CandidateSpec], clip_pcm: list[bytes], base_url: str, seed: int,
                  conn: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator handles Ctrl-C and stops us
    with contextlib.suppress(OSError):  # needs privileges; without them the generator runs at normal priority
        os.setpriority(os.PRIO_PROCESS, 0, LOAD_NICE)
    try:
        asyncio.run(_load(specs, clip_pcm, base_url, seed, conn))
    except BaseException as exc:
        with contextlib.suppress(Exception):
            conn.send(("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


# --- the private stack -----------------------------------------------------------------------------

@dataclass
class PrivateStack:
    """`interview up` as a subprocess in its own temporary data directory, on free ports."""

    workdir: Path
    warm_interviews: int
    max_live: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    ports: dict[str, int] = field(default_factory=dict)
    credentials: dict[str, str] = field(default_factory=dict)
    seen_pids: set[int] = field(default_factory=set)  # everything the stack started, for the final sweep
    up_stop_s: float = 0.0  # how long `interview up` took to stop

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_file(self) -> Path:
        return self.workdir / "up.log"

    @property
    def edge_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['edge']}"

    @property
    def control_address(self) -> str:
        return f"127.0.0.1:{self.ports['control']}"

    @property
    def ray_address(self) -> str:
        return f"127.0.0.1:{self.ports['ray']}"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "launcher.cli", "up", "--data-dir", str(self.data_dir),
                "--control-port", str(self.ports["control"]), "--edge-port", str(self.ports["edge"]),
                "--pg-port", str(self.ports["pg"]), "--ray-port", str(self.ports["ray"]),
                "--warm-interviews", str(self.warm_interviews)]

    def start(self, timeout_s: float = 300.0) -> None:
        from launcher.embedded_postgres import free_port
        from launcher.supervisor import _die_with_parent

        self.ports = {name: free_port() for name in ("control", "edge", "pg", "ray")}
        # Embedded defaults: nothing of the caller's configuration leaks in.
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTERVIEW_") and k not in (
            "RAY_ADDRESS", "DATABASE_URL", "OPENAI_API_KEY", "SENDGRID_API_KEY", "APIVIDEO_API_KEY")}
        env["INTERVIEW_OFFLINE_TRANSCRIPTION"] = "false"
        # Not a default: the control service would wait 5 s for the actors' status watches on exit.
        env["INTERVIEW_SHUTDOWN_GRACE_S"] = "1"
        if self.max_live is not None:
            env["INTERVIEW_MAX_LIVE_INTERVIEWS"] = str(self.max_live)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen(self.argv(), env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True, preexec_fn=_die_with_parent,
                                         cwd=str(Path(__file__).resolve().parents[1]))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"`interview up` exited with {self.proc.returncode}:\n{self.tail()}")
            if "interview platform is up" in self.log_file.read_text(errors="replace"):
                break
            self.remember_pids()
            time.sleep(0.2)
        else:
            raise TimeoutError(f"`interview up` not ready after {timeout_s:.0f} s:\n{self.tail()}")
        self.credentials = json.loads((self.data_dir / "credentials.json").read_text())
        self.remember_pids()

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def processes(self) -> list[Any]:
        import psutil

        if self.proc is None:
            return []
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def remember_pids(self) -> None:
        import psutil

        for p in self.processes():
            with contextlib.suppress(psutil.Error):
                self.seen_pids.add(p.pid)
                # Keep the identity to never signal a recycled pid later.
                _CREATE_TIMES[p.pid] = p.create_time()

    def stop(self) -> None:
        import psutil

        self.remember_pids()
        t0 = time.monotonic()
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGINT)  # `interview up` stops its children in order
            try:
                self.proc.wait(60)
                self.up_stop_s = time.monotonic() - t0
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                self.proc.wait()
        # What outlived it (a Ray worker whose raylet went first, say): only processes it started.
        deadline = time.monotonic() + 10
        while True:
            alive = []
            for pid in self.seen_pids:
                with contextlib.suppress(psutil.Error):
                    p = psutil.Process(pid)
                    if p.create_time() == _CREATE_TIMES.get(pid) and p.status() != psutil.STATUS_ZOMBIE:
                        alive.append(p)
            if not alive:
                break
            for p in alive:
                with contextlib.suppress(psutil.Error):
                    p.send_signal(signal.SIGTERM if time.monotonic() < deadline else signal.SIGKILL)
            time.sleep(0.5)
            if time.monotonic() > deadline + 5:
                break


_CREATE_TIMES: dict[int, float] = {}


def ray_temp_dir(data_dir: Path) -> Path:
    from launcher.ray_head import short_temp_dir

    return short_temp_dir(data_dir)


# --- setting up the interviews -------------------------------------------------------------------

async def set_up(stack: PrivateStack, count: int, duration_s: float) -> list[tuple[str, str]]:
    """A tenant, a template, `count` candidates with an invitation each, redeemed at the edge:
    (session id, candidate access token) per interview."""
    import aiohttp
    import grpc

    from interview.v1 import (
        candidate_service_pb2,
        candidate_service_pb2_grpc,
        invitation_service_pb2,
        invitation_service_pb2_grpc,
        resources_pb2,
        template_service_pb2,
        template_service_pb2_grpc,
        tenant_service_pb2,
        tenant_service_pb2_grpc,
    )

    def md(token: str) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {token}"),)

    # Enough questions that nobody finishes within the run (a question and answer take >= 12 s).
    n_questions = min(100, max(len(QUESTIONS), math.ceil((duration_s + 180) / 8)))
    questions = [QUESTIONS[i % len(QUESTIONS)] if i < len(QUESTIONS) else f"Question {i + 1}. "
                 + QUESTIONS[i % len(QUESTIONS)] for i in range(n_questions)]
    time_limit = int(min(4 * 3600, max(3600, duration_s * 3 + 900)))
    async with grpc.aio.insecure_channel(stack.control_address) as ch:
        admin = md(stack.credentials["admin_token"])
        tenants = tenant_service_pb2_grpc.TenantServiceStub(ch)
        tenant = await tenants.CreateTenant(tenant_service_pb2.CreateTenantRequest(display_name="Live Bench Co"),
                                            metadata=admin, wait_for_ready=True, timeout=60)
        key = await tenants.CreateApiKey(
            tenant_service_pb2.CreateApiKeyRequest(tenant_id=tenant.id, display_name="live bench"), metadata=admin)
        api = md(key.secret)
        template = await template_service_pb2_grpc.TemplateServiceStub(ch).CreateTemplate(
            template_service_pb2.CreateTemplateRequest(template=resources_pb2.Template(
                role="Backend Engineer", questions=questions, time_limit_seconds=time_limit,
                language="en-US", voice="alloy", instructions="Be kind.")), metadata=api)
        candidates = candidate_service_pb2_grpc.CandidateServiceStub(ch)
        invitations = invitation_service_pb2_grpc.InvitationServiceStub(ch)
        gate = asyncio.Semaphore(8)

        async def one(i: int, http: aiohttp.ClientSession) -> tuple[str, str]:
            async with gate:
                upserted = await candidates.UpsertCandidate(candidate_service_pb2.UpsertCandidateRequest(
                    email=f"live-{i}-{uuid.uuid4().hex[:8]}@example.com", full_name=f"Candidate {i}"),
                    metadata=api, timeout=30)
                invitation = await invitations.CreateInvitation(invitation_service_pb2.CreateInvitationRequest(
                    candidate_id=upserted.candidate.id, template_id=template.id), metadata=api, timeout=30)
                async with http.post(f"{stack.edge_url}/v1/invitations/redeem",
                                     json={"token": invitation.token}) as resp:
                    body = await resp.json()
                    if resp.status != 200:
                        raise RuntimeError(f"redeem failed: {resp.status} {body}")
                return str(body["session_id"]), str(body["access_token"])

        async with aiohttp.ClientSession() as http:
            return list(await asyncio.gather(*(one(i, http) for i in range(count))))


# --- Ray: the pool and the workers ---------------------------------------------------------------

class _RayDriver:
    """The bench's own Ray driver on the stack's cluster: pool counts, worker stats and pids."""

    def __init__(self, address: str) -> None:
        import ray

        ray.init(address=address, namespace="interview", logging_level="ERROR", log_to_driver=False)
        self._ray = ray
        self.pool = ray.get_actor("interview-pool", namespace="interview")
        self._pids: dict[str, int] = {}

    def pool_stats(self) -> dict[str, int]:
        return dict(self._ray.get(self.pool.stats.remote(), timeout=30))

    def worker_names(self) -> list[str]:
        named = self._ray.util.list_named_actors(all_namespaces=True)
        return sorted(a["name"] for a in named
                      if a.get("namespace") == "interview" and a["name"].startswith("interview-worker-"))

    def workers(self) -> dict[str, tuple[int, dict[str, Any]]]:
        """name -> (pid, stats()) for every interview actor alive now."""
        ray = self._ray
        handles = {}
        for name in self.worker_names():
            with contextlib.suppress(Exception):
                handles[name] = ray.get_actor(name, namespace="interview")
        need_pid = [n for n in handles if n not in self._pids]
        pid_refs = {n: handles[n].__ray_call__.remote(lambda _self: os.getpid()) for n in need_pid}
        stat_refs = {n: h.stats.remote() for n, h in handles.items()}
        out: dict[str, tuple[int, dict[str, Any]]] = {}
        for name in handles:
            with contextlib.suppress(Exception):
                if name in pid_refs:
                    self._pids[name] = int(ray.get(pid_refs[name], timeout=30))
                out[name] = (self._pids[name], ray.get(stat_refs[name], timeout=30))
        return out


def _ray_process(address: str, log_path: str, conn: Connection) -> None:
    """Runs the bench's Ray driver in its own process: Ray's driver prints the cluster's warnings
    (worker start-up concurrency, say) to stdout, and keeps threads of its own; neither belongs in
    the coordinator."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    try:
        driver = _RayDriver(address)
        conn.send(("ok", None))
        while True:
            try:
                method, args = conn.recv()
            except EOFError:
                return
            if method == "close":
                return
            try:
                conn.send(("ok", getattr(driver, method)(*args)))
            except Exception as exc:
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
    except Exception as exc:
        with contextlib.suppress(Exception):
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        with contextlib.suppress(Exception):
            import ray

            ray.shutdown()


def wait_for_refill(view: RayView, *, live: int, timeout_s: float = 300.0) -> dict[str, int]:
    """Waits until the pool holds `live` interviews and has refilled its warm places."""
    deadline = time.monotonic() + timeout_s
    pool = view.pool_stats()
    while time.monotonic() < deadline:
        if pool["live"] >= live and pool["free"] >= pool["warm_target"]:
            break
        time.sleep(0.5)
        pool = view.pool_stats()
    return pool


class RayView:
    """Asks the Ray driver process for the pool's counts and the workers' stats and pids."""

    def __init__(self, address: str, log_path: Path) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, theirs = ctx.Pipe()
        self.proc = ctx.Process(target=_ray_process, args=(address, str(log_path), theirs),
                                name="live-bench-ray", daemon=True)
        self.proc.start()
        theirs.close()
        self._result(120)

    def _result(self, timeout_s: float) -> Any:
        try:
            if not self._conn.poll(timeout_s):
                raise TimeoutError("the bench's Ray driver did not answer")
            status, value = self._conn.recv()
        except (EOFError, OSError):
            raise RuntimeError("the bench's Ray driver exited (see ray-driver.log)") from None
        if status != "ok":
            raise RuntimeError(f"the bench's Ray driver: {value}")
        return value

    def _call(self, method: str, *args: Any, timeout_s: float = 120) -> Any:
        self._conn.send((method, args))
        return self._result(timeout_s)

    def pool_stats(self) -> dict[str, int]:
        return dict(self._call("pool_stats"))

    def workers(self) -> dict[str, tuple[int, dict[str, Any]]]:
        return dict(self._call("workers"))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.send(("close", ()))
        self.proc.join(15)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)


# --- CPU and memory ------------------------------------------------------------------------------

def _role(cmdline: list[str], name: str) -> str:
    text = " ".join(cmdline)
    if "launcher.cli edge" in text:
        return "edge"
    if "launcher.cli control" in text:
        return "control"
    if name.startswith("postgres") or "/postgres " in text or text.startswith("postgres"):
        return "postgres"
    if "InterviewWorker" in text:
        return "worker"
    if "InterviewPool" in text:
        return "pool"
    return "ray"


def cpu_snapshot(stack: PrivateStack, extra: dict[str, list[int]]) -> dict[int, tuple[str, float, float]]:
    """pid -> (role, create time, user+system CPU seconds), for the stack's tree and `extra`."""
    import psutil

    out: dict[int, tuple[str, float, float]] = {}
    for p in stack.processes():
        with contextlib.suppress(psutil.Error):
            with p.oneshot():
                t = p.cpu_times()
                out[p.pid] = (_role(p.cmdline(), p.name()), p.create_time(), t.user + t.system)
    for role, pids in extra.items():
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                p = psutil.Process(pid)
                t = p.cpu_times()
                out[pid] = (role, p.create_time(), t.user + t.system)
    return out


def machine_busy_s() -> tuple[float, float]:
    """Busy CPU seconds of the whole machine, and the part in interrupt handlers (loopback)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq + steal) / tick, (irq + softirq) / tick


def cpu_by_role(before: dict[int, tuple[str, float, float]], after: dict[int, tuple[str, float, float]],
                live_pids: set[int], seconds: float) -> dict[str, float]:
    """Cores used per role over the window (1.0 = one core busy)."""
    used: dict[str, float] = {}
    for pid, (role, created, cpu) in after.items():
        start = before.get(pid)
        delta = cpu - start[2] if start is not None and start[1] == created else cpu
        if role == "worker":
            role = "actors (live)" if pid in live_pids else "actors (idle)"
        used[role] = used.get(role, 0.0) + max(0.0, delta)
    return {role: value / seconds for role, value in used.items()}


def memory_of(pids: list[int]) -> tuple[float, float]:
    """Total USS and RSS (bytes) of these processes."""
    import psutil

    uss = rss = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            info = psutil.Process(pid).memory_full_info()
            uss += info.uss
            rss += info.rss
    return uss, rss


# --- the run ---------------------------------------------------------------------------------------

@dataclass
class Options:
    interviews: int
    joins: int
    duration_s: float
    load_procs: int
    warm_interviews: int
    audio_dir: Path
    json_path: Path | None
    keep: bool
    seed: int
    profile: bool = False
    answers: bool = True


def parse_args(argv: list[str] | None) -> Options:
    p = argparse.ArgumentParser(prog="interview bench-live", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--interviews", "-n", type=int, help="concurrent interviews held (default 100; --quick: 20)")
    p.add_argument("--joins", type=int, help="candidates joining at once in the burst (default 50; --quick: 10)")
    p.add_argument("--duration", type=float, help="seconds of the hold (default 60; --quick: 10)")
    p.add_argument("--quick", action="store_true", help="a CI-size run: 20 interviews, joins of 10, 10 s")
    p.add_argument("--warm-interviews", type=int,
                   help="interviews the pool keeps ready to start (default: the join burst size)")
    p.add_argument("--load-procs", type=int, default=2, help="load generator processes (default 2)")
    p.add_argument("--audio-dir", type=Path, default=Path(os.environ.get("INTERVIEW_BENCH_AUDIO", DEFAULT_AUDIO_DIR)),
                   help="candidate speech, PCM16 24 kHz mono WAV files (default shared/audio)")
    p.add_argument("--json", dest="json_path", type=Path, help="also write the figures to this file")
    p.add_argument("--keep", action="store_true", help="keep the temporary data directory (logs)")
    p.add_argument("--profile", action="store_true",
                   help="record py-spy profiles (raw collapsed stacks, per thread) of the edge, one live actor and "
                   "one load process during the hold, into the kept data directory (py-spy's own CPU shows as "
                   "'outside the bench')")
    p.add_argument("--no-answers", dest="answers", action="store_false",
                   help="candidates stream silence only (the interviewer asks its first question and waits): "
                   "isolates the cost of the audio path from the conversation's")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args(argv)
    interviews = a.interviews if a.interviews is not None else (20 if a.quick else 100)
    joins = a.joins if a.joins is not None else (10 if a.quick else 50)
    duration = a.duration if a.duration is not None else (10.0 if a.quick else 60.0)
    if interviews < 1 or joins < 1 or duration <= 0 or a.load_procs < 1:
        p.error("interviews, joins, duration and load processes must be positive")
    joins = min(joins, interviews)
    warm = a.warm_interviews if a.warm_interviews is not None else joins
    return Options(interviews, joins, duration, min(a.load_procs, interviews), warm, a.audio_dir,
                   a.json_path, a.keep or a.profile, a.seed, a.profile, a.answers)


def start_profiles(out_dir: Path, procs: dict[int, tuple[str, float, float]], live_pids: set[int],
                   load_pids: list[int], hold_s: float) -> list[subprocess.Popen[bytes]]:
    """py-spy on the edge, one live actor and one load process, for the middle of the hold."""
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None:
        print("  --profile: py-spy is not installed (pip install py-spy); not profiling", flush=True)
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = {"edge": next((pid for pid, (role, _, _) in procs.items() if role == "edge"), None),
               "actor": min(live_pids) if live_pids else None,
               "load": load_pids[0] if load_pids else None}
    seconds = max(1, int(min(30.0, hold_s - 2)))
    started = []
    for name, pid in targets.items():
        if pid is None:
            continue
        argv = [py_spy, "record", "--threads", "--nonblocking", "-r", "100", "-d", str(seconds), "-f", "raw",
                "-p", str(pid), "-o", str(out_dir / f"{name}-{pid}.txt")]
        started.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    print(f"  profiling {', '.join(n for n, p in targets.items() if p)} for {seconds} s into {out_dir}", flush=True)
    return started


class Coordinator:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.procs: list[multiprocessing.process.BaseProcess] = []
        self.pipes: list[Connection] = []
        self.closed = False

    def start_load(self, specs: list[CandidateSpec], clips: list[bytes], base_url: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        n = self.opts.load_procs
        for i in range(n):
            mine = specs[i::n]
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(target=_load_process, name=f"live-bench-load-{i}", daemon=True,
                               args=(mine, clips, base_url, self.opts.seed * 1000 + i, theirs))
            proc.start()
            theirs.close()  # the child has its own copy: EOF reaches us if it dies
            self.procs.append(proc)
            self.pipes.append(ours)
        self.expect("ready", 120)

    def send(self, command: str, arg: Any = None) -> None:
        for pipe in self.pipes:
            pipe.send((command, arg))

    def expect(self, reply: str, timeout_s: float) -> list[Any]:
        out = []
        for pipe in self.pipes:
            if not pipe.poll(timeout_s):
                raise TimeoutError(f"a load process did not answer {reply!r} in {timeout_s:.0f} s")
            got, value = pipe.recv()
            if got != reply:
                raise RuntimeError(f"a load process failed: {value}")
            out.append(value)
        return out

    def close(self) -> None:
        """Closes the candidates' connections (if not done yet) and stops the load processes."""
        if not self.closed and self.procs:
            self.closed = True
            with contextlib.suppress(Exception):
                self.send("close")
            for pipe in self.pipes:
                with contextlib.suppress(Exception):
                    if pipe.poll(15):
                        pipe.recv()
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        self.procs.clear()


def _machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import psutil

    mem = psutil.virtual_memory().total / 2**30
    return (f"{len(os.sched_getaffinity(0))} CPUs (nproc), {model or platform.machine()}, {mem:.0f} GiB, "
            f"{platform.system()} {platform.release()}")


def _versions() -> str:
    import aiohttp
    import ray

    return f"Python {platform.python_version()}, Ray {ray.__version__}, aiohttp {aiohttp.__version__}"


def run(opts: Options, command: str) -> tuple[int, dict[str, Any]]:
    workdir = Path(tempfile.mkdtemp(prefix="interview-live-bench-"))
    # The pool must admit every interview: raise the cap only when the run needs more.
    max_live = opts.interviews if opts.interviews > 120 else None
    stack = PrivateStack(workdir, warm_interviews=opts.warm_interviews, max_live=max_live)
    coord = Coordinator(opts)
    view: RayView | None = None
    figures: dict[str, Any] = {"command": command}
    try:
        clips = load_clips(opts.audio_dir) if opts.answers else []
        print(f"live bench: {opts.interviews} interviews, join burst of {opts.joins}, hold {opts.duration_s:g} s, "
              f"{opts.load_procs} load processes", flush=True)
        print(f"interviewer: offline (embedded default); offline transcription: OFF; "
              f"interviews ready to start: {opts.warm_interviews}; candidate speech: "
              f"{f'{len(clips)} recordings' if clips else 'none (--no-answers: silence only)'}", flush=True)
        t0 = time.monotonic()
        print(f"starting a private stack (`interview up` in {workdir})...", flush=True)
        stack.start()
        print(f"  up in {time.monotonic() - t0:.1f} s: edge {stack.edge_url}, control {stack.control_address}, "
              f"ray {stack.ray_address}", flush=True)
        t0 = time.monotonic()
        sessions = asyncio.run(set_up(stack, opts.interviews, opts.duration_s))
        print(f"  {len(sessions)} invitations created and redeemed in {time.monotonic() - t0:.1f} s", flush=True)
        view = RayView(stack.ray_address, workdir / "ray-driver.log")
        pool0 = view.pool_stats()
        print(f"  warm pool: {pool0}", flush=True)
        specs = [CandidateSpec(sid, token, burst=i < opts.joins) for i, (sid, token) in enumerate(sessions)]
        ws_base = stack.edge_url.replace("http://", "ws://")
        coord.start_load(specs, clips, ws_base)
        load_pids = [p.pid for p in coord.procs if p.pid is not None]
        niceness = {os.getpriority(os.PRIO_PROCESS, pid) for pid in load_pids}
        print(f"  load generator: {len(load_pids)} processes at nice {', '.join(map(str, sorted(niceness)))} "
              "(above the stack's priority where allowed, so a saturated stack cannot slow the candidates' pace)",
              flush=True)
        figures["load_nice"] = sorted(niceness)

        # (a) the join burst
        print(f"client secrets for the burst: {opts.joins} at once (each places its session)...", flush=True)
        coord.send("secrets")
        coord.expect("secrets", 180)
        # An otherwise idle stack for the joins: the places they took are refilled first (actor
        # processes starting would otherwise share the CPU with the burst).
        wait_for_refill(view, live=opts.joins)
        time.sleep(2.0)
        print(f"join burst: {opts.joins} candidates connect at once...", flush=True)
        coord.send("join", time.time() + 0.5)
        burst = [CandidateResult(**r) for part in coord.expect("joined", 180) for r in part]
        joins = sorted(r.join_ms for r in burst if r.join_ms is not None)

        # the rest, then a steady stack
        rest_n = opts.interviews - opts.joins
        ramp: list[CandidateResult] = []
        if rest_n:
            print(f"connecting the other {rest_n} (their actors start on demand)...", flush=True)
            t0 = time.monotonic()
            coord.send("ramp", 10)
            ramp = [CandidateResult(**r) for part in coord.expect("ramped", 600) for r in part]
            print(f"  connected in {time.monotonic() - t0:.1f} s", flush=True)
        not_joined = [r.error for r in [*burst, *ramp] if r.join_ms is None]
        if not_joined:
            raise RuntimeError(f"{len(not_joined)} candidate(s) could not join; the first: {not_joined[0]}")
        dropped_early = [r.error for r in [*burst, *ramp] if r.error]
        if dropped_early:
            print(f"  {len(dropped_early)} connection(s) dropped already; the first: {dropped_early[0]}", flush=True)
        print("waiting for the warm pool to refill...", flush=True)
        pool = wait_for_refill(view, live=opts.interviews)
        print(f"  pool: {pool}", flush=True)
        workers = view.workers()
        live_pids = {pid for pid, stats in workers.values() if stats.get("lives")}
        time.sleep(6.0)  # the processes the refill started settle (they disturbed the first seconds)

        # (b) the hold
        start_wall = time.time() + 0.5
        print(f"hold: {opts.interviews} interviews streaming for {opts.duration_s:g} s from "
              f"{time.strftime('%H:%M:%S', time.localtime(start_wall))}...", flush=True)
        end_wall = start_wall + opts.duration_s
        coord.send("hold", (start_wall, end_wall))
        extra = {"load generator": load_pids, "bench coordinator": [os.getpid(), view.proc.pid or 0]}
        time.sleep(max(0.0, start_wall - time.time()))
        cpu_before = cpu_snapshot(stack, extra)
        profilers = start_profiles(workdir / "profile", cpu_before, live_pids, load_pids,
                                   opts.duration_s) if opts.profile else []
        busy_before, irq_before = machine_busy_s()
        t_before = time.monotonic()
        time.sleep(max(0.0, end_wall - time.time()))
        for prof in profilers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                prof.wait(30)
        cpu_after = cpu_snapshot(stack, extra)
        busy_after, irq_after = machine_busy_s()
        window_s = time.monotonic() - t_before
        stack.remember_pids()
        summaries: list[ProcSummary] = coord.expect("held", 120)

        # Before anything closes: what every actor received, and what the actors weigh.
        workers = view.workers()
        pool_end = view.pool_stats()
        received = {live["session_id"]: int(live["frames_in"])
                    for _pid, stats in workers.values() for live in stats.get("lives", [])}
        live_pids = {pid for pid, stats in workers.values() if stats.get("lives")}
        idle_pids = [pid for pid, stats in workers.values() if not stats.get("lives")]
        live_uss, live_rss = memory_of(sorted(live_pids))
        idle_uss, _ = memory_of(idle_pids)
        edge_rss = sum(p.memory_info().rss for p in stack.processes()
                       if _role(p.cmdline(), p.name()) == "edge")
        coord.close()

        results = [r for s in summaries for r in s.results]
        burst_ids = {r.session_id for r in burst}
        first_audio = sorted(r.first_audio_ms for r in results
                             if r.session_id in burst_ids and r.first_audio_ms is not None)
        pings = sorted(rtt for s in summaries for _, rtt in s.pings)
        by_second: dict[int, list[float]] = {}
        for s in summaries:
            for at, rtt in s.pings:
                by_second.setdefault(int(at), []).append(rtt)
        enough = min(10, opts.interviews)  # pings in a second for its p99 to mean something
        worst = max(((percentile(sorted(v), 99), sec) for sec, v in by_second.items() if len(v) >= enough),
                    default=(float("nan"), -1))
        lateness = sorted(x for s in summaries for x in s.lateness_ms)
        turns = sorted(x for s in summaries for x in s.turns_ms)
        sent = sum(r.frames_sent for r in results)
        got = sum(received.get(r.session_id, 0) for r in results)
        missing_sessions = [r.session_id for r in results if r.session_id not in received]
        lost = sum(max(0, r.frames_sent - received.get(r.session_id, 0)) for r in results)
        extra_frames = sum(max(0, received.get(r.session_id, 0) - r.frames_sent) for r in results)
        dropped = [r for r in results if r.closed_early is not None or not r.barrier_ok]
        cpu = cpu_by_role(cpu_before, cpu_after, live_pids, window_s)
        machine = (busy_after - busy_before) / window_s
        irq = (irq_after - irq_before) / window_s
        accounted = sum(cpu.values())
        in_window = sum(r.frames_in_window for r in results)
        expected_window = opts.interviews * opts.duration_s / FRAME_S
        n_live = max(1, len(received))  # interviews, not processes: an actor serves several

        figures.update({
            "interviews": opts.interviews, "joins": opts.joins, "duration_s": opts.duration_s,
            "warm_interviews": opts.warm_interviews, "interviews_per_actor": pool0.get("interviews_per_actor"),
            "transcription": False, "answers": opts.answers,
            "load_procs": opts.load_procs,
            "machine": _machine(), "versions": _versions(),
            "join_p50_ms": percentile(joins, 50), "join_p99_ms": percentile(joins, 99),
            "join_max_ms": joins[-1] if joins else float("nan"), "joined": len(joins),
            "secret_p50_ms": percentile(sorted(r.secret_ms for r in burst if r.secret_ms is not None), 50),
            "secret_p99_ms": percentile(sorted(r.secret_ms for r in burst if r.secret_ms is not None), 99),
            "join_upgrade_p50_ms": percentile(sorted(r.upgrade_ms for r in burst if r.upgrade_ms is not None), 50),
            "join_first_audio_p50_ms": percentile(first_audio, 50),
            "join_first_audio_p99_ms": percentile(first_audio, 99),
            "ramp_join_p50_ms": percentile(sorted(r.join_ms for r in ramp if r.join_ms), 50),
            "ramp_join_max_ms": max((r.join_ms for r in ramp if r.join_ms), default=float("nan")),
            "frames_sent": sent, "frames_received": got, "frames_lost": lost, "frames_unexpected": extra_frames,
            "frames_in_window": in_window, "frames_expected_in_window": expected_window,
            "frames_skipped": sum(r.frames_skipped for r in results),
            "frames_skipped_in_window": sum(r.skipped_in_window for r in results),
            "sessions_without_stats": len(missing_sessions), "connections_dropped": len(dropped),
            "pings": len(pings), "ping_p50_ms": percentile(pings, 50), "ping_p99_ms": percentile(pings, 99),
            "ping_max_ms": pings[-1] if pings else float("nan"),
            "worst_second_p99_ms": worst[0], "worst_second": worst[1],
            "p99_by_second_ms": {sec: round(percentile(sorted(v), 99), 2) for sec, v in sorted(by_second.items())},
            "turns_timed": len(turns), "turn_p50_ms": percentile(turns, 50), "turn_p99_ms": percentile(turns, 99),
            "send_lateness_p50_ms": percentile(lateness, 50), "send_lateness_p99_ms": percentile(lateness, 99),
            "live_actors": len(live_pids), "idle_actors": len(idle_pids),
            "uss_per_interview_mib": live_uss / n_live / 2**20, "rss_per_interview_mib": live_rss / n_live / 2**20,
            "uss_per_idle_actor_mib": idle_uss / max(1, len(idle_pids)) / 2**20,
            "edge_rss_mib": edge_rss / 2**20,
            "cpu_cores": cpu, "cpu_machine_cores": machine, "cpu_irq_cores": irq,
            "cpu_outside_cores": max(0.0, machine - accounted - irq),
            "pool_before": pool0, "pool_at_end": pool_end,
            "speech_started": sum(r.speech_started for r in results),
            "turns_completed": sum(r.turns_transcribed for r in results),
            "questions_completed": sum(r.questions_completed for r in results),
            "audio_deltas": sum(r.audio_deltas for r in results),
            "interviews_ended": sum(1 for r in results if r.ended),
            "server_errors": sum(r.server_errors for r in results),
            "first_server_error": next((r.first_server_error for r in results if r.first_server_error), ""),
            "first_error": next((r.error for r in results if r.error), ""),
            "dropped_close_codes": sorted({str(r.closed_early) for r in results if r.closed_early is not None}),
        })
        ok = report(figures)
        return (0 if ok else 1), figures
    finally:
        coord.close()
        if view is not None:
            view.close()
        print("stopping the stack...", flush=True)
        t_stop = time.monotonic()
        stack.stop()
        print(f"  stopped in {time.monotonic() - t_stop:.1f} s (`interview up` itself: {stack.up_stop_s:.1f} s)",
              flush=True)
        if opts.keep:
            print(f"kept {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            shutil.rmtree(ray_temp_dir(stack.data_dir), ignore_errors=True)


def report(f: dict[str, Any]) -> bool:
    cpu: dict[str, float] = f["cpu_cores"]
    other_roles = ("ray", "pool", "control", "postgres")
    other = sum(cpu.get(r, 0.0) for r in other_roles)
    load = cpu.get("load generator", 0.0) + cpu.get("bench coordinator", 0.0)
    print()
    print(f"live path benchmark: {f['interviews']} interviews held {f['duration_s']:g} s, "
          f"join burst of {f['joins']}")
    print(f"machine:   {f['machine']}")
    print(f"versions:  {f['versions']}")
    print(f"settings:  embedded defaults, offline interviewer; offline transcription OFF; "
          f"{f['interviews_per_actor']} interviews per actor process, {f['warm_interviews']} ready to start; "
          f"load generator: {f['load_procs']} processes (nice "
          f"{','.join(map(str, f.get('load_nice', [])))}), asyncio + aiohttp, one append per 20 ms per candidate")
    speech = ("candidates answer every question with recorded speech, silence otherwise" if f["answers"]
              else "none: candidates stream silence only (--no-answers)")
    print(f"speech:    {speech}")
    print()
    rows = [
        ("join burst: connect -> session.created", f"p50 {f['join_p50_ms']:.1f} ms   p99 {f['join_p99_ms']:.1f} ms"
         f"   max {f['join_max_ms']:.1f} ms   ({f['joined']}/{f['joins']} joined; upgrade p50 "
         f"{f['join_upgrade_p50_ms']:.1f} ms)"),
        ("  connect -> the interviewer's first audio", f"p50 {f['join_first_audio_p50_ms']:.1f} ms   p99 "
         f"{f['join_first_audio_p99_ms']:.1f} ms"),
        ("  before it: the client secret (places it)", f"p50 {f['secret_p50_ms']:.1f} ms   p99 "
         f"{f['secret_p99_ms']:.1f} ms"),
        ("later joins (actor started on demand)", f"p50 {f['ramp_join_p50_ms']:.0f} ms   max "
         f"{f['ramp_join_max_ms']:.0f} ms" if f["interviews"] > f["joins"] else "none (all joined in the burst)"),
        ("audio frames sent by candidates", f"{f['frames_sent']:,}  ({f['frames_in_window']:,} in the window, "
         f"{f['frames_in_window'] / max(1.0, f['frames_expected_in_window']) * 100:.2f}% of real time)"),
        ("audio frames counted by the actors", f"{f['frames_received']:,}"),
        ("frames lost", f"{f['frames_lost']:,}   (connections dropped: {f['connections_dropped']}"
         f"{' with close codes ' + ', '.join(f['dropped_close_codes']) if f['dropped_close_codes'] else ''}, sessions "
         f"without stats: {f['sessions_without_stats']}; never sent, the sender too late: "
         f"{f['frames_skipped_in_window']:,} in the window, {f['frames_skipped']:,} in the whole run)"),
        ("ping round trip (candidate->actor->candidate)", f"p50 {f['ping_p50_ms']:.2f} ms   p99 "
         f"{f['ping_p99_ms']:.2f} ms   max {f['ping_max_ms']:.1f} ms   ({f['pings']:,} pings)"),
        ("  worst second's p99", f"{f['worst_second_p99_ms']:.2f} ms (second {f['worst_second']} of the hold)"),
        ("  load generator send lateness", f"p50 {f['send_lateness_p50_ms']:.2f} ms   p99 "
         f"{f['send_lateness_p99_ms']:.2f} ms"),
        ("turn: end of answer -> interviewer audio", f"p50 {f['turn_p50_ms']:.0f} ms   p99 "
         f"{f['turn_p99_ms']:.0f} ms   ({f['turns_timed']} turns; includes the 500 ms end-of-turn silence)"
         if f["turns_timed"] else "no answer ended inside the window"),
        ("memory per live interview (actor process)", f"USS {f['uss_per_interview_mib']:.1f} MiB   RSS "
         f"{f['rss_per_interview_mib']:.1f} MiB   ({f['live_actors']} busy actor processes; idle ones "
         f"{f['uss_per_idle_actor_mib']:.1f} MiB USS each; edge RSS {f['edge_rss_mib']:.0f} MiB)"),
        ("CPU over the hold, cores (1.0 = one core)", f"machine busy {f['cpu_machine_cores']:.2f} of "
         f"{len(os.sched_getaffinity(0))}"),
        ("  load generator (+ coordinator)", f"{load:.2f}"),
        ("  edge", f"{cpu.get('edge', 0.0):.2f}"),
        ("  interview actors, busy", f"{cpu.get('actors (live)', 0.0):.2f}  ({f['live_actors']} processes, "
         f"{cpu.get('actors (live)', 0.0) / max(1, f['interviews']) * 1000:.1f} ms CPU/s per interview)"),
        ("  interview actors, idle", f"{cpu.get('actors (idle)', 0.0):.2f}  ({f['idle_actors']} processes)"),
        ("  other", f"{other:.2f}  (Ray {cpu.get('ray', 0.0):.2f}, pool actor {cpu.get('pool', 0.0):.2f}, "
         f"control {cpu.get('control', 0.0):.2f}, postgres {cpu.get('postgres', 0.0):.2f})"),
        ("  kernel interrupts (loopback network)", f"{f['cpu_irq_cores']:.2f}"),
        ("  outside the bench (other users of the box)", f"{f['cpu_outside_cores']:.2f}"),
        ("conversation (whole run)", f"{f['questions_completed']} questions spoken, {f['speech_started']} "
         f"candidate turns heard, {f['turns_completed']} turns completed, {f['audio_deltas']:,} interviewer "
         f"audio deltas, {f['interviews_ended']} interviews ended, {f['server_errors']} error events"),
    ]
    width = max(len(r[0]) for r in rows) + 2
    for label, value in rows:
        print(f"{label:<{width}}{value}")
    if f["first_error"] or f["first_server_error"]:
        print(f"first problem: {f['first_error'] or f['first_server_error']}")
    print()
    realtime = (f["connections_dropped"] == 0 and f["frames_in_window"] >= 0.99 * f["frames_expected_in_window"])
    targets = [
        (f">= {TARGET_INTERVIEWS} concurrent real-time interviews",
         f"{f['interviews']} at {f['frames_in_window'] / max(1.0, f['frames_expected_in_window']) * 100:.1f}% "
         "of real time", f["interviews"] >= TARGET_INTERVIEWS and realtime),
        ("0 audio frames lost", f"{f['frames_lost']} lost",
         f["frames_lost"] == 0 and f["connections_dropped"] == 0 and f["sessions_without_stats"] == 0),
        (f"p99 added latency < {TARGET_P99_MS:g} ms", f"p99 {f['ping_p99_ms']:.2f} ms",
         f["ping_p99_ms"] < TARGET_P99_MS),
        (f"joins p50 < {TARGET_JOIN_P50_MS:g} ms", f"p50 {f['join_p50_ms']:.1f} ms",
         f["join_p50_ms"] < TARGET_JOIN_P50_MS),
    ]
    ok = True
    print("targets:")
    for name, measured, passed in targets:
        ok &= passed
        print(f"  {name:<40}{measured:<30}{'PASS' if passed else 'FAIL'}")
    f["targets"] = {name: passed for name, _, passed in targets}
    print()
    print(f"command:   {f['command']}")
    return ok


def _raise_interrupt(_sig: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    shown = argv if argv is not None else sys.argv[1:]
    command = "python -m loadtest.live_bench" + ("" if not shown else " " + shlex.join(shown))
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        code, figures = run(opts, command)
    except KeyboardInterrupt:
        print("\ninterrupted; everything it started is stopped", file=sys.stderr)
        return 130
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"bench-live: {exc}", file=sys.stderr)
        code, figures = 2, {"command": command, "error": str(exc)}
    finally:
        signal.signal(signal.SIGTERM, previous)
    if opts.json_path is not None:
        opts.json_path.write_text(json.dumps(figures, indent=2, default=str))
    return code


if __name__ == "__main__":
    sys.exit(main())
