"""The Ray boundary for the edge: joins the cluster, finds or starts the warm pool, and places a
session on its actor. Ray's errors become platform errors here and nowhere else."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError, RayTaskError

from actors import registry
from actors.interview_actor import POOL_NAME
from actors.pool import InterviewPool
from interview_core.config import Settings
from interview_core.errors import ErrorCode, PlatformError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Placement:
    """Where a session's frame stream is served."""

    worker: str
    host: str
    port: int


def _translate(exc: BaseException) -> PlatformError:
    if isinstance(exc, RayTaskError) and isinstance(exc.cause, PlatformError):
        return exc.cause
    if isinstance(exc, PlatformError):
        return exc
    if isinstance(exc, RayActorError | GetTimeoutError):
        return PlatformError(ErrorCode.UNAVAILABLE, "the interview's actor is not reachable; retry")
    return PlatformError(ErrorCode.INTERNAL, f"cluster error: {type(exc).__name__}")


def connect(settings: Settings) -> None:
    """Joins the cluster (idempotent). RAY_ADDRESS, or `interview up`'s local head."""
    if ray.is_initialized():
        return
    address = settings.ray_address or f"127.0.0.1:{settings.embedded_ray_port}"
    ray.init(address=address, namespace=settings.ray_namespace, logging_level="WARNING",
             log_to_driver=False)


class Cluster:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._pool: Any = None

    async def pool(self) -> Any:
        if self._pool is None:
            self._pool = ray.remote(InterviewPool).options(
                name=POOL_NAME, namespace=self._settings.ray_namespace, get_if_exists=True,
                lifetime="detached", max_restarts=-1, num_cpus=0, max_concurrency=1000,
            ).remote(self._settings.to_env())
        return self._pool

    async def warm_up(self, timeout_s: float = 120.0) -> dict[str, int]:
        pool = await self.pool()
        try:
            stats: dict[str, int] = await asyncio.wait_for(pool.ready.remote(), timeout_s)
            return stats
        except (RayError, PlatformError) as exc:
            raise _translate(exc) from None

    async def place(self, session_id: str) -> Placement:
        """Places the session on an actor (or finds where it is): one call to the pool."""
        pool = await self.pool()
        try:
            name, host, port = await pool.acquire.remote(session_id)
        except (RayError, PlatformError) as exc:
            self._pool = None if isinstance(exc, RayActorError) else self._pool
            raise _translate(exc) from None
        return Placement(name, host, port)

    async def remember_secret(self, session_id: str, token_id: str) -> None:
        """A client secret that opened an interview stays good for reconnecting to it."""
        await asyncio.to_thread(registry.remember_secret, self._settings.ray_namespace, session_id, token_id)

    async def secret_opened(self, session_id: str, token_id: str) -> bool:
        return await asyncio.to_thread(registry.secret_opened, self._settings.ray_namespace, session_id, token_id)

    async def stats(self) -> dict[str, int]:
        pool = await self.pool()
        result: dict[str, int] = await pool.stats.remote()
        return result
