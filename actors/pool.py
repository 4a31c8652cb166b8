"""The warm pool: one detached actor per cluster that keeps interview actors ready, places
sessions on them, and takes the places back when interviews end.

An actor serves up to `interviews_per_actor` interviews. The pool keeps `warm_interviews` free
places (fewer when the cap on live interviews leaves less room), so a burst that size starts
without waiting for a process, and packs sessions onto the
fullest actor that has room, so that idle actors (each costs CPU: Ray wakes every actor process
every 10 ms) stay idle and can be stopped. Bindings live in the registry (Ray's key-value
store), so a restarted pool, another edge or a restarted actor finds them; the pool also asks
busy actors now and then to resume what the registry says they serve, which is how a crashed
actor's interviews come back even before their candidates do.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import ray
from ray.exceptions import ActorUnavailableError, RayTaskError

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
        ns = self.settings.ray_namespace
        self._busy: dict[str, str] = registry.all_sessions(ns)  # session -> worker
        self._load: dict[str, int] = dict.fromkeys(registry.all_workers(ns), 0)  # worker -> sessions
        for worker in self._busy.values():
            self._load[worker] = self._load.get(worker, 0) + 1
        self._handles: dict[str, Any] = {}
        self._addresses: dict[str, tuple[str, int]] = {}
        self._spawning = 0
        self._waiting = 0  # placements waiting for an actor with room
        self._room = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def _per_actor(self) -> int:
        return self.settings.interviews_per_actor

    def _warm_target(self) -> int:
        """Free places worth keeping: never more than the cap on live interviews still allows
        (an idle process costs CPU the running interviews need)."""
        return min(self.settings.warm_interviews, max(0, self.settings.max_live_interviews - len(self._busy)))

    def _free(self) -> int:
        return sum(self._per_actor - n for n in self._load.values())

    def _handle(self, name: str) -> Any:
        if name not in self._handles:
            self._handles[name] = ray.get_actor(name, namespace=self.settings.ray_namespace)
        return self._handles[name]

    async def _spawn(self) -> str:
        name = f"interview-worker-{uuid.uuid4().hex[:12]}"
        handle = ray.remote(InterviewWorker).options(
            name=name, namespace=self.settings.ray_namespace, **WORKER_OPTIONS).remote(name, self._env)
        await asyncio.to_thread(registry.add_worker, self.settings.ray_namespace, name)
        self._handles[name] = handle
        try:
            self._addresses[name] = await handle.warm.remote()  # listening, channel open, speech loaded
        except Exception:
            self._stop(name)
            raise
        self._load[name] = 0
        return name

    def _stop(self, name: str) -> None:
        self._load.pop(name, None)
        self._addresses.pop(name, None)
        registry.remove_worker(self.settings.ray_namespace, name)
        handle = self._handles.pop(name, None)
        if handle is not None:
            ray.kill(handle)

    def _ensure_capacity(self) -> None:
        """Starts actors (in the background) until the free places, with those being started,
        cover the warm target and every placement waiting for room: a burst beyond the warm
        places starts one process per `interviews_per_actor` joins, not one per join."""
        loop = asyncio.get_running_loop()
        if self._supervisor is None:
            self._supervisor = loop.create_task(self._supervise())
        while self._free() + self._spawning * self._per_actor < self._warm_target() + self._waiting:
            self._spawning += 1  # counted now, so the next caller in this loop turn sees it
            task = loop.create_task(self._spawn_counted())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _spawn_counted(self) -> None:
        try:
            await self._spawn()
        except Exception:
            log.exception("could not start an interview actor")
            await asyncio.sleep(1.0)  # then whoever still needs room asks again
        finally:
            self._spawning -= 1
            async with self._room:
                self._room.notify_all()

    async def _room_for_one(self) -> str:
        """An actor with room, waiting for one to start if every actor is full."""
        self._waiting += 1
        try:
            async with asyncio.timeout(self.settings.actor_start_timeout_s):
                while (name := self._choose()) is None:
                    self._ensure_capacity()
                    async with self._room:
                        await self._room.wait()
        except TimeoutError:
            raise PlatformError(ErrorCode.UNAVAILABLE, "no interview actor could be started; retry") from None
        finally:
            self._waiting -= 1
        return name

    async def ready(self) -> dict[str, int]:
        """Waits until the warm places are there."""
        self._ensure_capacity()
        async with self._room:
            await self._room.wait_for(lambda: self._free() >= self._warm_target())
        return await self.stats()

    def _choose(self) -> str | None:
        """The fullest actor with room: keeps the others idle, to be stopped when not needed."""
        open_ = [(n, name) for name, n in self._load.items() if n < self._per_actor]
        return max(open_)[1] if open_ else None

    async def acquire(self, session_id: str) -> tuple[str, str, int]:
        """Where this session is served (worker, host, port), placing it if it is not yet."""
        name = self._busy.get(session_id)  # the pool's own view, loaded from the registry when it started
        if name is None:
            if len(self._busy) >= self.settings.max_live_interviews:
                raise PlatformError(ErrorCode.RATE_LIMITED, "at capacity: try again later")
            name = self._choose() or await self._room_for_one()
            self._busy[session_id] = name
            self._load[name] = self._load.get(name, 0) + 1
            # Off the pool's loop: the key-value store is a blocking call, and a burst of placements
            # must not queue behind each other's.
            await asyncio.to_thread(registry.bind, self.settings.ray_namespace, session_id, name)
            self._ensure_capacity()
        host, port = await self._assign(name, session_id)
        self._addresses[name] = (host, port)
        return name, host, port

    async def _assign(self, name: str, session_id: str) -> tuple[str, int]:
        handle = self._handle(name)
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.settings.actor_start_timeout_s
        while True:
            try:
                host, port = await handle.assign.remote(session_id)
                return host, port
            except RayTaskError as exc:
                # The worker is fine (the session could not start, e.g. it is over): take the place back.
                await self.release(name, session_id)
                raise exc.cause if isinstance(exc.cause, PlatformError) else exc from None
            except ActorUnavailableError:
                # Its process died and Ray is restarting it (max_restarts=-1): the same actor comes
                # back under its name and rebuilds its sessions from the database. Not a broken
                # actor: stopping it would end the restart that brings its interviews back.
                if loop.time() > give_up_at:
                    raise PlatformError(ErrorCode.UNAVAILABLE, "the interview's actor is restarting; retry") from None
                await asyncio.sleep(0.1)
            except Exception:
                log.exception("interview actor %s failed; stopping it", name)
                for session in [s for s, w in self._busy.items() if w == name]:
                    await self.release(name, session)
                self._stop(name)
                raise

    async def release(self, name: str, session_id: str) -> None:
        await asyncio.to_thread(registry.unbind, self.settings.ray_namespace, session_id, name)
        if self._busy.get(session_id) != name:
            return
        del self._busy[session_id]
        self._load[name] = max(0, self._load.get(name, 1) - 1)
        if self._load[name] == 0 and self._free() - self._per_actor >= self._warm_target():
            self._stop(name)  # enough room elsewhere: an idle process is not free

    async def _supervise(self) -> None:
        """Busy actors that Ray restarted resume their sessions even if no candidate returns."""
        while True:
            await asyncio.sleep(self.settings.supervise_interval_s)
            busy = {w for w in self._busy.values()}
            results = await asyncio.gather(*(self._handle(w).resume.remote() for w in busy),
                                           return_exceptions=True)
            for worker, result in zip(busy, results, strict=True):
                if isinstance(result, BaseException):
                    log.warning("interview actor %s did not answer the pool (%s)", worker, type(result).__name__)

    async def stats(self) -> dict[str, int]:
        return {"actors": len(self._load), "live": len(self._busy), "free": self._free(),
                "interviews_per_actor": self._per_actor, "warm_target": self._warm_target(),
                "max_live": self.settings.max_live_interviews}

    async def shutdown(self) -> None:
        for name in list(self._load):
            self._stop(name)
