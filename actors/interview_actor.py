"""The interview actor: a thin Ray adapter around `LiveSession`s.

Each actor process serves up to `interviews_per_actor` interviews, each a `LiveSession` of its
own (its audio buffer, engine, transcript and progress). Several per process because a process
is the expensive unit on a small machine: Ray wakes every actor process 100 times a second, and
the per-frame wake-up is paid per process, not per interview (docs/benchmarks.md). With
`interviews_per_actor=1` it is strictly one actor per interview.

Actors are created warm, before any session exists (listening, control channel open, speech
loaded), so a candidate never waits for a process to start or a model to load; the pool assigns
sessions to them and the binding goes in the registry. Each actor listens on its own TCP port
for the edges' frame streams: one connection per edge process, a channel per interview, each
opened with a one-time key (interview_core/stream_keys), so audio never costs a Ray call per
frame. If Ray restarts an actor (same name, same arguments), `resume()` finds its sessions in the
registry and rebuilds each from the database.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import ray

from actors import registry
from actors.engines import EngineFactory, OfflineEngineFactory
from actors.interview_flow import EndReason
from actors.live_session import TERMINAL, LiveSession
from interview_core import frame_stream as fs
from interview_core.config import Settings
from interview_core.control_client import ControlClient
from interview_core.errors import ErrorCode, PlatformError
from interview_core.loop_lag import LoopLag
from interview_core.stream_keys import StreamKeys

log = logging.getLogger(__name__)

POOL_NAME = "interview-pool"
CLOSE_BAD_KEY = 4003


class InterviewWorker:
    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.name = name
        self.settings = Settings.from_env(env)
        self._keys = StreamKeys(self.settings.secret_key)
        self._server: asyncio.Server | None = None
        self._address: tuple[str, int] | None = None
        self.lives: dict[str, LiveSession] = {}
        self._starting: dict[str, asyncio.Task[LiveSession]] = {}
        self._control: ControlClient | None = None
        self._speech: Any = None
        self._engines: EngineFactory | None = None
        self._lag: LoopLag | None = None
        self._pool: Any = None
        self._background: set[asyncio.Task[None]] = set()
        self._resume_checked = False  # see resume()

    # -- the stream server ---------------------------------------------------------------------
    async def _endpoint(self) -> tuple[str, int]:
        if self._address is None:
            loop = asyncio.get_running_loop()
            host = ray.util.get_node_ip_address()
            self._server = await loop.create_server(self._new_connection, host=host, port=0)
            sock = self._server.sockets[0]
            self._address = (host, int(sock.getsockname()[1]))
        return self._address

    def _new_connection(self) -> fs.FrameProtocol:
        """One edge process's connection: a channel per interview it serves here."""
        channels: dict[int, tuple[fs.Channel, LiveSession]] = {}

        def on_frame(kind: int, channel_id: int, payload: bytes) -> None:
            entry = channels.get(channel_id)
            if entry is not None:
                channel, live = entry
                if kind == fs.DETACH:
                    del channels[channel_id]
                    live.detach(channel)
                else:
                    live.on_frame(channel, kind, payload)
                return
            if kind != fs.HELLO:
                return  # for a channel already detached (frames cross on the wire)
            key, announced = fs.decode_hello(payload)
            session_id = self._keys.redeem(key) if key else None
            opened = self.lives.get(session_id) if session_id else None
            channel = fs.Channel(proto, channel_id)
            if opened is None:
                channel.close(CLOSE_BAD_KEY, "stream key not valid here")
                return
            channels[channel_id] = (channel, opened)
            opened.attach(channel, announced=announced)

        def on_lost(_exc: Exception | None) -> None:
            for channel, live in channels.values():
                live.detach(channel)
            channels.clear()

        proto = fs.FrameProtocol(on_frame, on_lost)
        return proto

    # -- what a worker holds ---------------------------------------------------------------------
    def _control_client(self) -> ControlClient:
        if self._control is None:
            self._control = ControlClient(self.settings.control_address, self.settings.service_token,
                                         timeout_s=self.settings.control_timeout_s)
        return self._control

    def _speech_kit(self) -> Any:
        if self._speech is None:
            from actors.speech_kit import OfflineSpeechKit

            self._speech = OfflineSpeechKit(transcribe=self.settings.offline_transcription)
        return self._speech

    def _engine_factory(self) -> EngineFactory:
        if self._engines is None:
            if self.settings.openai_api_key:
                # The OpenAI interviewer; its SDK is imported only by the workers that use it.
                from actors.openai_engine import OpenAIEngineFactory

                self._engines = OpenAIEngineFactory(self.settings)
            else:
                self._engines = OfflineEngineFactory(self.settings, self._speech_kit())
        return self._engines

    # -- calls from the pool ---------------------------------------------------------------------
    async def warm(self) -> tuple[str, int]:
        """Everything a first join would otherwise wait for; returns the stream address."""
        address = await self._endpoint()
        await asyncio.to_thread(self._engine_factory)
        await self._control_client().connect(self.settings.control_timeout_s)
        gc.freeze()  # the process's long-lived objects stay out of full collections (latency)
        if self._lag is None:
            self._lag = LoopLag()
            self._lag.start(f"interview actor {self.name}")
        return address

    async def assign(self, session_id: str) -> tuple[str, int]:
        """Starts serving the session (once; concurrent calls share the start); its address."""
        if session_id not in self.lives:
            task = self._starting.get(session_id)
            if task is None:
                if len(self.lives) + len(self._starting) >= self.settings.interviews_per_actor:
                    raise PlatformError(ErrorCode.RATE_LIMITED, "this worker is full")
                task = asyncio.create_task(self._start(session_id))
                self._starting[session_id] = task
                task.add_done_callback(lambda _t: self._starting.pop(session_id, None))
            await asyncio.shield(task)
        return await self._endpoint()

    async def _start(self, session_id: str) -> LiveSession:
        control = self._control_client()
        session = await control.get_session(session_id)
        if session.status in TERMINAL:
            raise PlatformError(ErrorCode.INVALID_STATE, "this interview is over")
        engines = self._engine_factory() if self._engines is not None else await asyncio.to_thread(
            self._engine_factory)
        live = LiveSession(session, control, engines, grace_s=self.settings.abandon_grace_s,
                           unjoined_s=self.settings.placed_unjoined_s, on_done=self._finished)
        await live.start()
        self.lives[session_id] = live
        return live

    async def resume(self) -> list[str]:
        """After a restart: serves again every session the registry says is ours. Sessions that
        cannot be resumed (over, or gone) are handed back. Only the first call in a process looks:
        every session bound later came through `assign` (the pool asks every few seconds)."""
        if self._resume_checked:
            return sorted(self.lives)
        ours = await asyncio.to_thread(registry.sessions_of, self.settings.ray_namespace, self.name)
        self._resume_checked = True
        missing = [s for s in ours if s not in self.lives and s not in self._starting]
        for session_id in missing:
            try:
                await self.assign(session_id)
                log.info("worker %s resumed session %s", self.name, session_id)
            except PlatformError as exc:
                log.warning("worker %s: session %s not resumed (%s)", self.name, session_id, exc.code.code)
                self._finished(session_id)
        return sorted(self.lives)

    async def end(self, session_id: str, reason: str) -> None:
        live = self.lives.get(session_id)
        if live is not None:
            live.end(EndReason(reason))

    async def stats(self) -> dict[str, Any]:
        return {"worker": self.name, "lives": [live.stats() for live in self.lives.values()],
                "loop_stalls": self._lag.stalls if self._lag else 0}

    def _finished(self, session_id: str) -> None:
        self.lives.pop(session_id, None)
        task = asyncio.get_running_loop().create_task(self._give_back(session_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _give_back(self, session_id: str) -> None:
        # Unbound here too, not only by the pool: an ended interview must not stay bound (and be
        # resumed) if the pool is restarting. Both are blocking calls: off the frame path's loop.
        await asyncio.to_thread(registry.unbind, self.settings.ray_namespace, session_id, self.name)
        if self._pool is None:
            self._pool = await asyncio.to_thread(ray.get_actor, POOL_NAME, namespace=self.settings.ray_namespace)
        self._pool.release.remote(self.name, session_id)
