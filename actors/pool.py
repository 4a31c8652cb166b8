"""The warm pool: one detached actor per cluster that keeps idle interview actors ready,
assigns them to sessions, and takes them back when interviews end.

Idle actors cost CPU (Ray wakes each one's core worker every 10 ms), so the pool keeps only
`warm_actors` idle; above that, returned actors are stopped. Assignments live in the registry
(Ray's key-value store), so a restarted pool or another edge finds them.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import ray
from ray.exceptions import RayTaskError

from actors import registry
from actors.interview_actor import InterviewWorker
from interview_core.config import Settings
from interview_core.errors import ErrorCode, PlatformError

log = logging.getLogger(__name__)

WORKER_OPTIONS: dict[str, Any] = {
    "lifetime": "detached",
    "max_restarts": -1,  # a crashed interview actor comes back under its name (see registry)
    "max_task_retries": 0,
    "num_cpus": 0,  # actors are I/O bound; CPU is shared by the frame loops, not reserved
    "max_concurrency": 1000,
}


class InterviewPool:
    def __init__(self, env: dict[str, str]) -> None:
        self._env = env
        self.settings = Settings.from_env(env)
        self._idle: list[str] = []
        self._busy: dict[str, str] = registry.all_sessions(self.settings.ray_namespace)  # session -> worker
        self._handles: dict[str, Any] = {}
        self._spawning = 0
        self._refill: asyncio.Task[None] | None = None

    def _handle(self, name: str) -> Any:
        if name not in self._handles:
            self._handles[name] = ray.get_actor(name, namespace=self.settings.ray_namespace)
        return self._handles[name]

    async def _spawn(self) -> str:
        name = f"interview-worker-{uuid.uuid4().hex[:12]}"
        handle = ray.remote(InterviewWorker).options(
            name=name, namespace=self.settings.ray_namespace, **WORKER_OPTIONS).remote(name, self._env)
        await handle.endpoint.remote()  # started and listening
        self._handles[name] = handle
        return name

    async def _fill(self) -> None:
        while len(self._idle) + self._spawning < self.settings.warm_actors:
            self._spawning += 1
            try:
                self._idle.append(await self._spawn())
            except Exception:
                log.exception("could not start an interview actor")
                await asyncio.sleep(1.0)
            finally:
                self._spawning -= 1

    def _schedule_fill(self) -> None:
        if self._refill is None or self._refill.done():
            self._refill = asyncio.get_running_loop().create_task(self._fill())

    async def ready(self) -> dict[str, int]:
        """Waits until the warm pool is full."""
        self._schedule_fill()
        assert self._refill is not None
        await self._refill
        return await self.stats()

    async def acquire(self, session_id: str) -> tuple[str, Any]:
        """The actor serving this session, assigning an idle one if it has none yet."""
        name = self._busy.get(session_id) or registry.worker_of(self.settings.ray_namespace, session_id)
        if name is None:
            if len(self._busy) >= self.settings.max_live_interviews:
                raise PlatformError(ErrorCode.RATE_LIMITED, "at capacity: try again later")
            name = self._idle.pop() if self._idle else await self._spawn()
            self._busy[session_id] = name
            registry.bind(self.settings.ray_namespace, session_id, name)
            self._schedule_fill()
        handle = self._handle(name)
        try:
            await handle.assign.remote(session_id)
        except RayTaskError as exc:
            # The worker is fine (the session could not start, e.g. it is over): take it back.
            registry.unbind(self.settings.ray_namespace, session_id, name)
            await self.release(name, session_id)
            raise exc.cause if isinstance(exc.cause, PlatformError) else exc from None
        except Exception:
            registry.unbind(self.settings.ray_namespace, session_id, name)
            self._busy.pop(session_id, None)
            self._handles.pop(name, None)
            ray.kill(handle)
            raise
        return name, handle

    async def release(self, name: str, session_id: str) -> None:
        if self._busy.get(session_id) == name:
            del self._busy[session_id]
        if len(self._idle) < self.settings.warm_actors:
            self._idle.append(name)  # recycled: no new process for the next interview
        else:
            handle = self._handles.pop(name, None)
            if handle is not None:
                ray.kill(handle)

    async def stats(self) -> dict[str, int]:
        return {"idle": len(self._idle), "live": len(self._busy), "warm_target": self.settings.warm_actors,
                "max_live": self.settings.max_live_interviews}

    async def shutdown(self) -> None:
        for name in list(self._idle) + list(self._busy.values()):
            handle = self._handles.get(name)
            if handle is not None:
                ray.kill(handle)
        self._idle.clear()
