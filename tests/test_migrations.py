"""`interview migrate`'s runner: in order, once each, safe twice and from two processes at once."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import pytest

from control.migrate import MigrationError, load_migrations, migrate
from launcher.embedded_postgres import EmbeddedPostgres
from tests.conftest import Database


async def fresh_database(pg: EmbeddedPostgres) -> str:
    name = f"mig_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(pg.owner_dsn())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return pg.owner_dsn(name)


async def test_applies_all_in_order_once_then_nothing(postgres: EmbeddedPostgres) -> None:
    dsn = await fresh_database(postgres)
    versions = [m.version for m in load_migrations()]
    assert versions == sorted(versions) and versions
    assert await migrate(dsn) == versions
    assert await migrate(dsn) == []
    conn = await asyncpg.connect(dsn)
    try:
        recorded = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")]
    finally:
        await conn.close()
    assert recorded == versions


async def test_two_runners_at_once_apply_each_migration_once(postgres: EmbeddedPostgres) -> None:
    dsn = await fresh_database(postgres)
    results = await asyncio.gather(*(migrate(dsn) for _ in range(4)))
    applied = [v for result in results for v in result]
    assert sorted(applied) == [m.version for m in load_migrations()]


async def test_changed_applied_migration_is_an_error(postgres: EmbeddedPostgres) -> None:
    dsn = await fresh_database(postgres)
    await migrate(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = $1",
                           load_migrations()[0].version)
    finally:
        await conn.close()
    with pytest.raises(MigrationError):
        await migrate(dsn)


async def test_service_role_is_unprivileged(database: Database, postgres: EmbeddedPostgres) -> None:
    conn = await asyncpg.connect(postgres.owner_dsn("interview_test"))
    try:
        role = await conn.fetchrow(
            "SELECT rolsuper, rolbypassrls, rolcreatedb, rolcreaterole FROM pg_roles"
            " WHERE rolname = 'interview_service'")
        owned = await conn.fetchval(
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner"
            " WHERE r.rolname = 'interview_service'")
    finally:
        await conn.close()
    assert tuple(role.values()) == (False, False, False, False)
    assert owned == 0
