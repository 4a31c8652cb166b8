"""The per-interview actor: a thin Ray adapter around `LiveSession`.

Actors are created warm, before any session exists (so a candidate never waits for a process to
start), with a generic name; the pool assigns one to a session and the binding goes in the
registry. Each actor listens on its own TCP port for the edge's frame stream; the edge gets the
address and a one-time key through `attach()`, so audio never costs a Ray call per frame. After
an interview ends the actor is reset and returned to the pool. If Ray restarts an actor (same
name, same arguments), it finds its session in the registry and rebuilds from the database.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any

import ray

from actors import registry
from actors.interview_flow import EndReason
from actors.live_session import TERMINAL, LiveSession
from interview_core import frame_stream as fs
from interview_core.config import Settings
from interview_core.control_client import ControlClient
from interview_core.errors import ErrorCode, PlatformError

log = logging.getLogger(__name__)

POOL_NAME = "interview-pool"


class InterviewWorker:
    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.name = name
        self.settings = Settings.from_env(env)
        self._server: asyncio.Server | None = None
        self._address: tuple[str, int] | None = None
        self._keys: dict[str, float] = {}
        self.live: LiveSession | None = None
        self._control: ControlClient | None = None
        self._speech: Any = None
        self._lock = asyncio.Lock()

    # -- the stream server ---------------------------------------------------------------------
    async def endpoint(self) -> tuple[str, int]:
        """Where the edge connects; starts listening on first use (and after a restart)."""
        if self._address is None:
            loop = asyncio.get_running_loop()
            host = ray.util.get_node_ip_address()
            self._server = await loop.create_server(self._new_connection, host=host, port=0)
            sock = self._server.sockets[0]
            self._address = (host, int(sock.getsockname()[1]))
            restored = registry.session_of(self.settings.ray_namespace, self.name)
            if restored and self.live is None:
                log.info("worker %s restarted; resuming session %s", self.name, restored)
                await self.assign(restored)
        return self._address

    def _new_connection(self) -> fs.FrameProtocol:
        state: dict[str, Any] = {"live": None}

        def on_frame(kind: int, payload: bytes) -> None:
            live = state["live"]
            if live is not None:
                live.on_frame(proto, kind, payload)
                return
            key = payload.decode(errors="replace") if kind == fs.HELLO else ""
            expires = self._keys.pop(key, 0.0)
            if expires < time.monotonic() or self.live is None:
                proto.send(fs.encode_close(4003, "stream key not valid"))
                proto.close()
                return
            state["live"] = self.live
            self.live.attach(proto)

        def on_lost(_exc: Exception | None) -> None:
            live = state["live"]
            if live is not None:
                live.detach(proto)

        proto = fs.FrameProtocol(on_frame, on_lost)
        return proto

    # -- control calls from the pool and the edge ----------------------------------------------
    def _control_client(self) -> ControlClient:
        if self._control is None:
            self._control = ControlClient(self.settings.control_address, self.settings.service_token)
        return self._control

    def _speech_kit(self) -> Any:
        if self._speech is None:
            from actors.speech_kit import OfflineSpeechKit

            self._speech = OfflineSpeechKit(transcribe=self.settings.offline_transcription)
        return self._speech

    async def assign(self, session_id: str) -> None:
        async with self._lock:
            if self.live is not None:
                if self.live.session_id == session_id:
                    return
                raise PlatformError(ErrorCode.INVALID_STATE, "worker is serving another interview")
            session = await self._control_client().get_session(session_id)
            if session.status in TERMINAL:
                raise PlatformError(ErrorCode.INVALID_STATE, "this interview is over")
            live = LiveSession(session, self._control_client(), self._speech_kit(),
                               grace_s=self.settings.abandon_grace_s, on_done=self._finished)
            await live.start()
            self.live = live

    async def attach(self, session_id: str) -> dict[str, Any]:
        """A one-time key for the edge to open this interview's stream."""
        if self.live is None or self.live.session_id != session_id:
            raise PlatformError(ErrorCode.NOT_FOUND, "this worker does not serve that session")
        host, port = await self.endpoint()
        key = secrets.token_urlsafe(24)
        now = time.monotonic()
        self._keys = {k: t for k, t in self._keys.items() if t > now}
        self._keys[key] = now + self.settings.attach_key_ttl_s
        return {"host": host, "port": port, "key": key, "ended": self.live.flow.end_reason is not None}

    async def end(self, session_id: str, reason: str) -> None:
        if self.live is not None and self.live.session_id == session_id:
            self.live.end(EndReason(reason))

    async def stats(self) -> dict[str, Any]:
        return {"worker": self.name, "live": self.live.stats() if self.live else None}

    def _finished(self, session_id: str) -> None:
        self.live = None
        registry.unbind(self.settings.ray_namespace, session_id, self.name)
        pool = ray.get_actor(POOL_NAME, namespace=self.settings.ray_namespace)
        pool.release.remote(self.name, session_id)


def actor_class() -> Any:
    return ray.remote(InterviewWorker)
