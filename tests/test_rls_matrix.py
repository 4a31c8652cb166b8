"""Row-level security at the SQL level: the matrix over every tenant table, the doors (the
SECURITY DEFINER functions), and proof that the matrix notices a broken policy."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from launcher.embedded_postgres import EmbeddedPostgres
from tests.conftest import Database, TenantWorld, create_database
from tests.rls_matrix import (
    TABLES,
    Seed,
    catalogue_violations,
    catalogue_violations_on,
    matrix_violations,
    rls_violations,
    seed_tenant,
)


async def test_shared_database_has_no_rls_violations(
        database: Database, world: TenantWorld, other_world: TenantWorld) -> None:
    # world/other_world: rows made through the API by other tenants are there to be leaked.
    assert await rls_violations(database.owner_dsn, database.service_dsn) == []


@dataclass
class Fresh:
    name: str
    owner_dsn: str
    service_dsn: str


async def _fresh(postgres: EmbeddedPostgres, database: Database) -> AsyncIterator[Fresh]:
    name = f"rls_{secrets.token_hex(4)}"
    # The role is cluster-wide: keep the shared database's service password.
    await create_database(postgres, name, database.service_password)
    try:
        yield Fresh(name, database.owner_dsn_for(name), database.service_dsn_for(name))
    finally:
        conn = await asyncpg.connect(postgres.owner_dsn())
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture
async def fresh(postgres: EmbeddedPostgres, database: Database) -> AsyncIterator[Fresh]:
    """A migrated database of its own: no control service (and no outbox delivery loop) uses it."""
    async for db in _fresh(postgres, database):
        yield db


@pytest.fixture(scope="module")
async def doors_db(postgres: EmbeddedPostgres, database: Database) -> AsyncIterator[Fresh]:
    """One for the door tests, which each seed tenants of their own and change no schema."""
    async for db in _fresh(postgres, database):
        yield db


async def _owner_execute(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


# --- A broken policy is caught -------------------------------------------------------------------


async def test_matrix_catches_a_permissive_policy(fresh: Fresh) -> None:
    assert await rls_violations(fresh.owner_dsn, fresh.service_dsn) == []  # the baseline is clean
    # With RLS forced, dropping the policy alone would deny everything; a permissive one leaks.
    await _owner_execute(
        fresh.owner_dsn,
        "DROP POLICY tenant_isolation ON templates",
        "CREATE POLICY leak ON templates TO interview_service USING (true) WITH CHECK (true)")
    matrix = await matrix_violations(fresh.owner_dsn, fresh.service_dsn)
    assert matrix, "a leaking templates policy went unnoticed"
    assert all(v.startswith("templates:") for v in matrix), matrix
    assert "templates: tenant A sees 1 row(s) of other tenants" in matrix
    assert "templates: tenant B sees tenant A's row(s)" in matrix
    assert "templates: tenant A updating tenant B's rows: 1" in matrix
    assert any(v.startswith("templates: tenant A inserting a row of tenant B: accepted") for v in matrix), matrix
    assert any(v.startswith("templates: tenant A deleting tenant B's rows:") for v in matrix), matrix
    assert "templates: no tenant ever set, 2 row(s) visible" in matrix
    assert await catalogue_violations(fresh.owner_dsn) == [
        "templates: policy leak USING (true) is not keyed on the tenant",
        "templates: policy leak WITH CHECK (true) is not keyed on the tenant",
    ]


async def test_matrix_catches_a_table_that_denies_everything(fresh: Fresh) -> None:
    """Forced RLS without a policy hides the tenant's own rows: the positive controls say so."""
    await _owner_execute(fresh.owner_dsn, "DROP POLICY tenant_isolation ON recordings")
    matrix = await matrix_violations(fresh.owner_dsn, fresh.service_dsn)
    assert "recordings: tenant A sees 0 of its own 1 row(s)" in matrix
    assert any(v.startswith("recordings: tenant B cannot insert its own row") for v in matrix), matrix
    # Other tables appear only because the invisible recordings block deleting their parents.
    assert all(v.startswith("recordings:") or "positive control" in v for v in matrix), matrix
    assert "recordings: no policy for interview_service" in await catalogue_violations(fresh.owner_dsn)


async def test_catalogue_catches_rls_not_forced_or_disabled(fresh: Fresh) -> None:
    await _owner_execute(
        fresh.owner_dsn,
        "ALTER TABLE recordings NO FORCE ROW LEVEL SECURITY",
        "ALTER TABLE api_keys DISABLE ROW LEVEL SECURITY",
        "CREATE TABLE notes (id serial PRIMARY KEY, tenant_id uuid)",
        "GRANT SELECT ON notes TO interview_service",
        "GRANT TRUNCATE ON email_outbox TO interview_service")
    catalogue = await catalogue_violations(fresh.owner_dsn)
    assert "recordings: row-level security is not forced" in catalogue
    assert "api_keys: row-level security is not enabled" in catalogue
    assert "api_keys: reachable by interview_service without row-level security" in catalogue
    assert "notes: has a tenant_id column but is not covered by the RLS matrix" in catalogue
    assert "notes: row-level security is not enabled" in catalogue
    assert "notes: reachable by interview_service without row-level security" in catalogue
    assert "email_outbox: interview_service has TRUNCATE, REFERENCES or TRIGGER" in catalogue
    # A disabled table also leaks, which the matrix sees; NO FORCE only matters to the owner.
    matrix = await matrix_violations(fresh.owner_dsn, fresh.service_dsn)
    assert "api_keys: tenant A sees tenant B's row(s)" in matrix
    assert all(v.startswith("api_keys:") for v in matrix), matrix


async def test_catalogue_catches_a_privileged_service_role(fresh: Fresh) -> None:
    conn = await asyncpg.connect(fresh.owner_dsn)
    try:
        tx = conn.transaction()
        await tx.start()
        try:  # rolled back: the role belongs to the whole cluster, the shared database included
            await conn.execute("ALTER ROLE interview_service BYPASSRLS")
            await conn.execute("ALTER TABLE templates OWNER TO interview_service")
            await conn.execute("CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'")
            violations = await catalogue_violations_on(conn)
        finally:
            await tx.rollback()
    finally:
        await conn.close()
    assert "role interview_service: rolbypassrls is true" in violations
    assert "role interview_service owns relation templates" in violations
    assert "function sneaky(): SECURITY DEFINER and callable by interview_service" in violations
    assert "function sneaky(): SECURITY DEFINER without a fixed search_path" in violations
    assert "function sneaky(): SECURITY DEFINER and executable by PUBLIC" in violations
    assert await catalogue_violations(fresh.owner_dsn) == []  # all undone


# --- The doors -----------------------------------------------------------------------------------


@dataclass
class Doors:
    owner: asyncpg.Connection
    svc: asyncpg.Connection
    a: Seed
    b: Seed

    async def as_tenant(self, tenant: uuid.UUID | None, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Runs a query as the service with the tenant set, in a transaction that commits."""
        async with self.svc.transaction():
            await self.svc.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant) if tenant else "")
            return list(await self.svc.fetch(sql, *args))


@pytest.fixture
async def doors(doors_db: Fresh) -> AsyncIterator[Doors]:
    owner = await asyncpg.connect(doors_db.owner_dsn)
    svc = await asyncpg.connect(doors_db.service_dsn)
    a, b = Seed("A"), Seed("B")
    await seed_tenant(owner, a)
    await seed_tenant(owner, b)
    try:
        yield Doors(owner, svc, a, b)
    finally:
        await svc.close()
        await owner.close()


def _columns(rows: list[asyncpg.Record]) -> list[str]:
    return list(rows[0].keys())


async def test_door_authenticate_api_key_returns_active_keys_only(doors: Doors) -> None:
    active, revoked, unknown = (secrets.token_bytes(32) for _ in range(3))
    await doors.owner.execute("UPDATE api_keys SET secret_hash = $2 WHERE id = $1", doors.a.api_key, active)
    revoked_id = await doors.owner.fetchval(
        "INSERT INTO api_keys (tenant_id, display_name, secret_prefix, secret_hash, revoked_at)"
        " VALUES ($1, 'old', 'rlsm', $2, now()) RETURNING id", doors.a.tenant, revoked)
    assert revoked_id
    for tenant in (None, doors.b.tenant):  # before a tenant is known, or whichever is set
        rows = await doors.as_tenant(tenant, "SELECT * FROM door_authenticate_api_key($1)", active)
        assert [tuple(r.values()) for r in rows] == [(doors.a.api_key, doors.a.tenant, active)]
        assert _columns(rows) == ["api_key_id", "tenant_id", "secret_hash"]  # no name, prefix or dates
        assert await doors.as_tenant(tenant, "SELECT * FROM door_authenticate_api_key($1)", revoked) == []
        assert await doors.as_tenant(tenant, "SELECT * FROM door_authenticate_api_key($1)", unknown) == []
    # The door is no way around RLS for the table itself.
    assert await doors.as_tenant(None, "SELECT * FROM api_keys") == []


async def test_door_find_invitation_returns_ids_and_hash_only(doors: Doors) -> None:
    token_hash = secrets.token_bytes(32)
    await doors.owner.execute("UPDATE interview_invitations SET token_hash = $2 WHERE id = $1",
                              doors.a.invitation2, token_hash)
    rows = await doors.as_tenant(None, "SELECT * FROM door_find_invitation($1)", token_hash)
    assert [tuple(r.values()) for r in rows] == [(doors.a.invitation2, doors.a.tenant, token_hash)]
    assert _columns(rows) == ["invitation_id", "tenant_id", "token_hash"]
    assert await doors.as_tenant(None, "SELECT * FROM door_find_invitation($1)", secrets.token_bytes(32)) == []
    assert await doors.as_tenant(None, "SELECT * FROM interview_invitations") == []


async def test_door_session_tenant_returns_just_the_tenant(doors: Doors) -> None:
    rows = await doors.as_tenant(None, "SELECT door_session_tenant($1) AS t", doors.a.session)
    assert rows[0]["t"] == doors.a.tenant
    rows = await doors.as_tenant(doors.b.tenant, "SELECT door_session_tenant($1) AS t", doors.a.session)
    assert rows[0]["t"] == doors.a.tenant
    rows = await doors.as_tenant(None, "SELECT door_session_tenant($1) AS t", uuid.uuid4())
    assert rows[0]["t"] is None
    result = await doors.owner.fetchval(
        "SELECT pg_get_function_result('door_session_tenant(uuid)'::regprocedure)")
    assert result == "uuid"


async def test_door_ensure_candidate_gives_one_id_per_person_and_no_visibility(doors: Doors) -> None:
    email = f"Shared-{uuid.uuid4().hex[:8]}@Example.com"
    [first] = await doors.as_tenant(doors.a.tenant, "SELECT door_ensure_candidate($1) AS id", email)
    [second] = await doors.as_tenant(doors.b.tenant, "SELECT door_ensure_candidate($1) AS id", email.lower())
    assert isinstance(first["id"], uuid.UUID) and first["id"] == second["id"]
    assert await doors.owner.fetchval("SELECT email FROM candidates WHERE id = $1", first["id"]) == email.lower()
    # Neither tenant has linked the person, so neither sees them.
    for tenant in (doors.a.tenant, doors.b.tenant, None):
        assert await doors.as_tenant(tenant, "SELECT * FROM candidates WHERE id = $1", first["id"]) == []
    # Tenant A asking for B's candidate by email learns the id (it knew the email), nothing more.
    b_email = await doors.owner.fetchval("SELECT email FROM candidates WHERE id = $1", doors.b.candidate)
    [found] = await doors.as_tenant(doors.a.tenant, "SELECT door_ensure_candidate($1) AS id", b_email)
    assert found["id"] == doors.b.candidate
    assert await doors.as_tenant(doors.a.tenant, "SELECT * FROM candidates WHERE id = $1", doors.b.candidate) == []
    assert await doors.as_tenant(doors.a.tenant, "SELECT * FROM tenant_candidates WHERE candidate_id = $1",
                                 doors.b.candidate) == []
    assert await doors.as_tenant(doors.a.tenant, "SELECT * FROM tenant_candidate_profiles WHERE candidate_id = $1",
                                 doors.b.candidate) == []
    # B still sees its own.
    assert len(await doors.as_tenant(doors.b.tenant, "SELECT * FROM candidates WHERE id = $1",
                                     doors.b.candidate)) == 1


async def test_door_ensure_user_and_user_exists(doors: Doors) -> None:
    email = f"user-{uuid.uuid4().hex[:8]}@example.com"
    [first] = await doors.as_tenant(doors.a.tenant, "SELECT door_ensure_user($1) AS id", email.upper())
    [second] = await doors.as_tenant(doors.b.tenant, "SELECT door_ensure_user($1) AS id", email)
    assert isinstance(first["id"], uuid.UUID) and first["id"] == second["id"]
    [exists] = await doors.as_tenant(None, "SELECT door_user_exists($1) AS e", first["id"])
    [missing] = await doors.as_tenant(None, "SELECT door_user_exists($1) AS e", uuid.uuid4())
    assert exists["e"] is True and missing["e"] is False


@pytest.mark.parametrize("sql", [
    "SELECT * FROM auth.users",
    "SELECT email FROM auth.users WHERE id = gen_random_uuid()",
    "SELECT * FROM schema_migrations",
    "INSERT INTO auth.users (email) VALUES ('x@example.com')",
    "UPDATE schema_migrations SET checksum = checksum",
    "TRUNCATE email_outbox",
])
async def test_service_cannot_reach_accounts_or_migrations(doors: Doors, sql: str) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await doors.as_tenant(doors.a.tenant, sql)


OTHER_TABLES = [t for t in TABLES if t != "email_outbox"] + ["auth.users", "schema_migrations"]


async def _fingerprint(owner: asyncpg.Connection) -> dict[str, str]:
    return {table: await owner.fetchval(
        f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t")
        for table in OTHER_TABLES}


async def test_outbox_doors_touch_only_the_outbox(doors: Doors) -> None:
    pending = {}
    for s in (doors.a, doors.b):
        pending[s.label] = await doors.owner.fetchval(
            "INSERT INTO email_outbox (tenant_id, invitation_id, to_email, subject, text_body, html_body,"
            " link_ciphertext) VALUES ($1, $2, 'p@example.com', 's', 't', 'h', '\\x01'::bytea) RETURNING id",
            s.tenant, s.invitation)
    before = await _fingerprint(doors.owner)

    claimed = await doors.as_tenant(None, "SELECT * FROM door_claim_outbox(10, 30)")
    # Only due, pending messages, across tenants (the seeded 'sent' ones are not claimed).
    assert {r["id"] for r in claimed} == set(pending.values())
    assert all(r["status"] == "sending" and r["attempts"] == 1 for r in claimed)
    assert await doors.as_tenant(None, "SELECT * FROM door_claim_outbox(10, 30)") == []  # leased

    await doors.as_tenant(None, "SELECT door_complete_outbox($1, 'test', 'msg-1', false)", pending["A"])
    await doors.as_tenant(None, "SELECT door_fail_outbox($1, 'boom', 60, false)", pending["B"])
    # Reporting on a message that is not being sent changes nothing.
    await doors.as_tenant(None, "SELECT door_complete_outbox($1, 'test', 'msg-2', false)", pending["B"])
    await doors.as_tenant(None, "SELECT door_fail_outbox($1, 'late', 0, true)", pending["A"])
    await doors.as_tenant(None, "SELECT door_complete_outbox($1, 'x', 'y', false)", doors.b.outbox)

    rows = {r["id"]: r for r in await doors.owner.fetch(
        "SELECT * FROM email_outbox WHERE id = ANY($1::uuid[])", [*pending.values(), doors.b.outbox])}
    a, b = rows[pending["A"]], rows[pending["B"]]
    assert (a["status"], a["provider"], a["provider_message_id"], a["link_ciphertext"], a["last_error"]) == \
        ("sent", "test", "msg-1", None, "")
    assert (b["status"], b["last_error"], bytes(b["link_ciphertext"])) == ("pending", "boom", b"\x01")
    assert b["lease_until"] is None and b["next_attempt_at"] > b["created_at"]
    assert (rows[doors.b.outbox]["status"], rows[doors.b.outbox]["provider"]) == ("sent", "")
    assert await doors.as_tenant(None, "SELECT * FROM door_claim_outbox(10, 30)") == []  # B backs off
    assert await _fingerprint(doors.owner) == before
