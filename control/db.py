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


async def _keep_session(_conn: asyncpg.Connection[Record]) -> None:
    """What a connection needs before it goes back to the pool, beyond the rollback of an open
    transaction that asyncpg always does: nothing. Every transaction sets the tenant, the admin
    flag and the statement timeout itself, transaction-locally, and nothing here creates session
    state (no SET, LISTEN, advisory locks or cursors on pooled connections; the Listener has its
    own). asyncpg's default reset query (RESET ALL, UNLISTEN *, ...) would cost a round trip a
    transaction for nothing."""


def _begin(tenant_id: uuid.UUID | None, platform_admin: bool, budget_s: float) -> str:
    """BEGIN and the transaction's settings as one simple query (two statements in one message,
    which the extended protocol cannot carry, so the values are literals). Each is rendered from a
    typed value, never from caller text: a UUID re-parsed here, a fixed word, an integer."""
    tenant = str(uuid.UUID(str(tenant_id))) if tenant_id else ""
    admin = "on" if platform_admin else "off"
    return (f"BEGIN; SELECT set_config('app.tenant_id', '{tenant}', true),"
            f" set_config('app.platform_admin', '{admin}', true),"
            f" set_config('statement_timeout', '{int(budget_s * 1000)}ms', true)")


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
                reset=_keep_session,
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
                # One round trip begins the transaction and sets the tenant, the admin flag and the
                # statement timeout, transaction-locally.
                await conn.execute(_begin(tenant_id, platform_admin, budget))
                try:
                    yield conn
                except BaseException:
                    if not conn.is_closed():
                        await conn.execute("ROLLBACK")
                    raise
                await conn.execute("COMMIT")
        except PlatformError:
            raise
        except BaseException as exc:
            raise self._translate(exc, timeout_s) from exc

    async def fetch_scoped(self, query: str, *args: object, timeout_s: float | None = None) -> list[Record]:
        """One statement outside an explicit transaction, for an `app_*` function that sets the
        tenant itself before it reads (migrations/0002): one round trip instead of three."""
        budget = self._settings.db_statement_timeout_s
        if timeout_s is not None:
            budget = max(0.001, min(budget, timeout_s))
        try:
            async with self._pool.acquire(timeout=min(budget, self._settings.db_acquire_timeout_s)) as conn:
                return list(await conn.fetch(query, *args, timeout=budget))
        except PlatformError:
            raise
        except BaseException as exc:
            raise self._translate(exc, timeout_s) from exc

    def _translate(self, exc: BaseException, timeout_s: float | None) -> BaseException:
        if isinstance(exc, TimeoutError):
            if timeout_s is not None and timeout_s <= self._settings.db_acquire_timeout_s:
                # The caller's deadline, not the server's own limit, ran out.
                return PlatformError(ErrorCode.DEADLINE_EXCEEDED, "deadline passed waiting for the database")
            return PlatformError(ErrorCode.UNAVAILABLE, "no database connection available in time")
        return translate_error(exc) or exc

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
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())  # type: ignore[misc]
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
