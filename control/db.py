"""The PostgreSQL boundary: the connection pool, tenant-scoped transactions, and the translation
of asyncpg's errors into platform errors. Nothing outside this module catches asyncpg errors.

Every transaction runs as the service role with the tenant set transaction-locally
(`app.tenant_id`), so row-level security, not only Python, keeps tenants apart.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

import asyncpg

from interview_core.config import Settings
from interview_core.errors import ErrorCode, PlatformError

log = logging.getLogger(__name__)

Record = asyncpg.Record
Connection: TypeAlias = "asyncpg.Connection[Record] | asyncpg.pool.PoolConnectionProxy[Record]"


def translate_error(exc: BaseException) -> PlatformError | None:
    """The platform error for a database error, or None if it is not one."""
    if isinstance(exc, asyncpg.UniqueViolationError):
        return PlatformError(ErrorCode.ALREADY_EXISTS, "already exists")
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return PlatformError(ErrorCode.NOT_FOUND, "a referenced resource was not found")
    if isinstance(exc, asyncpg.CheckViolationError | asyncpg.NotNullViolationError
                  | asyncpg.StringDataRightTruncationError | asyncpg.InvalidTextRepresentationError
                  | asyncpg.NumericValueOutOfRangeError | asyncpg.DataError):
        return PlatformError(ErrorCode.INVALID_ARGUMENT, "a value is out of range or malformed")
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        # Includes "new row violates row-level security policy".
        return PlatformError(ErrorCode.PERMISSION_DENIED, "not allowed")
    if isinstance(exc, asyncpg.QueryCanceledError):
        return PlatformError(ErrorCode.DEADLINE_EXCEEDED, "the database did not answer in time")
    if isinstance(exc, asyncpg.TooManyConnectionsError | asyncpg.CannotConnectNowError
                  | asyncpg.ConnectionDoesNotExistError | asyncpg.InterfaceError
                  | asyncpg.PostgresConnectionError | ConnectionError | OSError):
        return PlatformError(ErrorCode.UNAVAILABLE, "the database is unavailable")
    if isinstance(exc, asyncpg.SerializationError | asyncpg.DeadlockDetectedError):
        return PlatformError(ErrorCode.UNAVAILABLE, "conflict with a concurrent change; retry")
    if isinstance(exc, asyncpg.PostgresError):
        return PlatformError(ErrorCode.INTERNAL, "database error")
    return None


class Database:
    """A bounded pool of service-role connections."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings

    @classmethod
    async def connect(cls, dsn: str, settings: Settings) -> Database:
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=settings.db_pool_min_size,
                max_size=settings.db_pool_max_size,
                command_timeout=settings.db_statement_timeout_s,
                server_settings={"application_name": "interview-control"},
            )
        except BaseException as exc:
            translated = translate_error(exc)
            if translated is None:
                raise
            raise translated from exc
        assert pool is not None
        return cls(pool, settings)

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def transaction(
        self,
        tenant_id: uuid.UUID | None = None,
        *,
        platform_admin: bool = False,
        timeout_s: float | None = None,
    ) -> AsyncIterator[Connection]:
        """A transaction with the tenant (or platform admin) set; commits on success.

        `timeout_s` (the caller's remaining deadline) bounds waiting for a connection and every
        statement in the transaction.
        """
        budget = self._settings.db_statement_timeout_s
        if timeout_s is not None:
            budget = max(0.001, min(budget, timeout_s))
        try:
            async with self._pool.acquire(timeout=min(budget, self._settings.db_acquire_timeout_s)) as conn:
                async with conn.transaction():
                    # One round trip sets the tenant, the admin flag and the statement timeout.
                    await conn.execute(
                        "SELECT set_config('app.tenant_id', $1, true),"
                        " set_config('app.platform_admin', $2, true),"
                        " set_config('statement_timeout', $3, true)",
                        str(tenant_id) if tenant_id else "",
                        "on" if platform_admin else "off",
                        f"{int(budget * 1000)}ms",
                    )
                    yield conn
        except PlatformError:
            raise
        except TimeoutError as exc:
            raise PlatformError(ErrorCode.UNAVAILABLE, "no database connection available in time") from exc
        except BaseException as exc:
            translated = translate_error(exc)
            if translated is None:
                raise
            raise translated from exc

    async def run(
        self,
        fn: Callable[[Connection], Coroutine[Any, Any, Any]],
        *,
        tenant_id: uuid.UUID | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        async with self.transaction(tenant_id, timeout_s=timeout_s) as conn:
            return await fn(conn)


class Listener:
    """One dedicated connection LISTENing on a channel, reconnecting when it drops.

    The callback receives each notification's payload. Used for WatchSession's fan-out and API
    key revocations, so watchers cost no connection each.
    """

    def __init__(self, dsn: str, channels: list[str], on_notify: Callable[[str, str], None],
                 on_reconnect: Callable[[], None] | None = None) -> None:
        self._dsn = dsn
        self._channels = channels
        self._on_notify = on_notify
        self._on_reconnect = on_reconnect
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="db-listener")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def _callback(self, _conn: object, _pid: int, channel: str, payload: object) -> None:
        self._on_notify(channel, str(payload))

    async def _run(self) -> None:
        delay = 0.2
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn, server_settings={"application_name": "interview-listener"})
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c: lost.set())
                for channel in self._channels:
                    await conn.add_listener(channel, self._callback)
                self.connected.set()
                if self._on_reconnect:
                    self._on_reconnect()  # notifications may have been missed meanwhile
                delay = 0.2
                while not lost.is_set():
                    try:
                        await asyncio.wait_for(lost.wait(), timeout=5.0)
                    except TimeoutError:
                        await conn.execute("SELECT 1")  # notices a dead connection
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                if translate_error(exc) is None:
                    raise
                log.warning("database listener lost its connection; retrying in %.1fs", delay)
            finally:
                self.connected.clear()
                if conn is not None and not conn.is_closed():
                    await conn.close(timeout=1)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
