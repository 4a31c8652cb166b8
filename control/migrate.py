"""Applies migrations/*.sql in order, each once, recorded in schema_migrations.

Safe to run twice and from two processes at once: a transaction-level advisory lock serialises
runners, and each migration commits with its record. A migration whose file changed after it
was applied is an error, not a silent skip.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
from dataclasses import dataclass

import asyncpg

log = logging.getLogger(__name__)

_LOCK_ID = 0x1A7E_5EED  # any constant shared by all runners


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(RuntimeError):
    pass


def load_migrations() -> list[Migration]:
    files = importlib.resources.files("migrations")
    found = [Migration(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8"))
             for f in files.iterdir() if f.name.endswith(".sql")]
    return sorted(found, key=lambda m: m.version)


async def migrate(owner_dsn: str, *, service_password: str = "") -> list[str]:
    """Applies what is pending; returns the versions applied now."""
    applied_now: list[str] = []
    conn = await asyncpg.connect(owner_dsn)
    try:
        # Under the same lock as the migrations: IF NOT EXISTS alone races between two runners
        # (both see no table, one fails on the catalogue's unique index).
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY,"
                " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
    except BaseException:
        await conn.close()
        raise
    try:
        for migration in load_migrations():
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
                done = await conn.fetchval(
                    "SELECT checksum FROM schema_migrations WHERE version = $1", migration.version)
                if done is not None:
                    if done != migration.checksum:
                        raise MigrationError(f"migration {migration.version} changed after it was applied")
                    continue
                log.info("applying migration %s", migration.version)
                await conn.execute(migration.sql)
                await conn.execute("INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
                                   migration.version, migration.checksum)
                applied_now.append(migration.version)
        if service_password:
            # Quoted by format(%L) in the server, never by string concatenation here.
            await conn.execute(
                "DO $$ BEGIN EXECUTE format('ALTER ROLE interview_service PASSWORD %L', "
                + _literal(service_password) + "); END $$")
    finally:
        await conn.close()
    return applied_now


def _literal(value: str) -> str:
    if any(c in value for c in "'\\$\x00"):
        raise MigrationError("the service role password may not contain quotes, backslashes or $")
    return "'" + value + "'"
