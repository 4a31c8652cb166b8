"""The row-level security matrix: can one tenant touch another tenant's rows through SQL?

`rls_violations(owner_dsn, service_dsn)` seeds two fresh tenants with rows in every tenant table
(as the owner), then, connected as interview_service, checks for each tenant and each table:

- its own rows are visible, updatable, deletable and insertable (positive controls, so a table
  that denies everything does not pass for the wrong reason; a tenant's own tenants row need only
  be visible);
- the other tenant's rows are invisible, not updatable, not deletable, and a row carrying the
  other tenant's id (or moving an own row to it) is rejected by row-level security;
- with no tenant set every table is empty and rejects writes; with only the platform-admin flag,
  only tenants, a read of email_outbox and idempotency rows without a tenant are reachable.

It also checks the catalogue: RLS enabled and forced on every tenant table, policies that are
keyed on the tenant, and an interview_service role that is no superuser, has no BYPASSRLS, owns
nothing and reaches no table without RLS.

It returns human-readable violations (empty: secure). Every write the service makes is rolled
back; the seeded rows are deleted again at the end, so it can run against a shared database.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

SERVICE_ROLE = "interview_service"
MATRIX_METHOD = "RlsMatrix"  # idempotency_keys.method of the seeded rows

# Deleting children before parents: the order of the own-rows delete control and of cleanup.
DELETE_ORDER = [
    "idempotency_keys", "email_outbox", "recordings", "transcript_items", "interview_sessions",
    "interview_invitations", "tenant_candidate_profiles", "tenant_candidates", "templates", "api_keys",
    "tenants",
]
# Every table holding tenant data, with the column naming its tenant (None: candidates, whose
# visibility follows tenant_candidates).
TENANT_COLUMN: dict[str, str | None] = {
    "tenants": "id", "api_keys": "tenant_id", "templates": "tenant_id", "candidates": None,
    "tenant_candidates": "tenant_id", "tenant_candidate_profiles": "tenant_id",
    "interview_invitations": "tenant_id", "interview_sessions": "tenant_id", "transcript_items": "tenant_id",
    "recordings": "tenant_id", "email_outbox": "tenant_id", "idempotency_keys": "tenant_id",
}
TABLES = list(TENANT_COLUMN)
# What the platform-admin flag (without a tenant) may read.
ADMIN_READABLE = {"tenants", "email_outbox", "idempotency_keys"}


def _rand() -> bytes:
    return secrets.token_bytes(32)


@dataclass
class Seed:
    """One tenant's seeded rows."""

    label: str
    tenant: uuid.UUID = field(default_factory=uuid.uuid4)
    api_key: uuid.UUID = field(default_factory=uuid.uuid4)
    template: uuid.UUID = field(default_factory=uuid.uuid4)
    candidate: uuid.UUID = field(default_factory=uuid.uuid4)
    candidate2: uuid.UUID = field(default_factory=uuid.uuid4)  # linked, no profile yet
    invitation: uuid.UUID = field(default_factory=uuid.uuid4)
    invitation2: uuid.UUID = field(default_factory=uuid.uuid4)  # no session yet
    session: uuid.UUID = field(default_factory=uuid.uuid4)
    recording: uuid.UUID = field(default_factory=uuid.uuid4)
    outbox: uuid.UUID = field(default_factory=uuid.uuid4)
    idempotency_hash: bytes = field(default_factory=_rand)

    def insert_row(self, table: str, spare_candidate: uuid.UUID) -> tuple[str, list[Any]]:
        """A new row of `table` that is valid for this tenant (its parents exist), but for RLS."""
        t = self.tenant
        rows: dict[str, tuple[str, list[Any]]] = {
            # No tenant may create a tenant: for tenants this is a new id whoever asks.
            "tenants": ("INSERT INTO tenants (id, display_name) VALUES ($1, 'rls matrix')", [uuid.uuid4()]),
            "api_keys": ("INSERT INTO api_keys (tenant_id, secret_prefix, secret_hash) VALUES ($1, 'rlsm', $2)",
                         [t, _rand()]),
            "templates": ("INSERT INTO templates (tenant_id, role, questions, time_limit_seconds, language, voice)"
                          " VALUES ($1, 'r', ARRAY['q'], 60, 'en', 'alloy')", [t]),
            "candidates": ("INSERT INTO candidates (email) VALUES ($1)",
                           [f"rlsm-{uuid.uuid4().hex}@example.com"]),
            "tenant_candidates": ("INSERT INTO tenant_candidates (tenant_id, candidate_id, status)"
                                  " VALUES ($1, $2, 'new')", [t, spare_candidate]),
            "tenant_candidate_profiles": ("INSERT INTO tenant_candidate_profiles (tenant_id, candidate_id,"
                                          " full_name) VALUES ($1, $2, 'x')", [t, self.candidate2]),
            "interview_invitations": (
                "INSERT INTO interview_invitations (tenant_id, candidate_id, template_id, template_snapshot,"
                " token_hash, expires_at) VALUES ($1, $2, $3, '{}'::jsonb, $4, now() + interval '1 day')",
                [t, self.candidate, self.template, _rand()]),
            "interview_sessions": (
                "INSERT INTO interview_sessions (tenant_id, candidate_id, invitation_id, template_id,"
                " template_snapshot) VALUES ($1, $2, $3, $4, '{}'::jsonb)",
                [t, self.candidate, self.invitation2, self.template]),
            "transcript_items": ("INSERT INTO transcript_items (tenant_id, session_id, sequence, speaker, text)"
                                 " VALUES ($1, $2, 2, 'candidate', 'x')", [t, self.session]),
            "recordings": ("INSERT INTO recordings (tenant_id, session_id, provider) VALUES ($1, $2, 'rlsm')",
                           [t, self.session]),
            "email_outbox": ("INSERT INTO email_outbox (tenant_id, invitation_id, to_email, subject, text_body,"
                             " html_body, status) VALUES ($1, $2, 'x@example.com', 's', 't', 'h', 'sent')",
                             [t, self.invitation]),
            "idempotency_keys": ("INSERT INTO idempotency_keys (tenant_id, method, key_hash, request_hash)"
                                 " VALUES ($1, $2, $3, $4)", [t, MATRIX_METHOD, _rand(), _rand()]),
        }
        return rows[table]


async def seed_tenant(owner: asyncpg.Connection, s: Seed, spare_candidate: uuid.UUID | None = None) -> None:
    """Commits one row of every tenant table for `s` (and the unlinked `spare_candidate`, if given)."""
    tag = uuid.uuid4().hex[:10]
    async with owner.transaction():
        await owner.execute("INSERT INTO tenants (id, display_name) VALUES ($1, $2)", s.tenant, f"rls matrix {s.label}")
        await owner.execute("INSERT INTO api_keys (id, tenant_id, secret_prefix, secret_hash)"
                            " VALUES ($1, $2, 'rlsm', $3)", s.api_key, s.tenant, _rand())
        await owner.execute(
            "INSERT INTO templates (id, tenant_id, role, questions, time_limit_seconds, language, voice)"
            " VALUES ($1, $2, $3, ARRAY['secret question'], 60, 'en', 'alloy')", s.template, s.tenant,
            f"role of {s.label}")
        await owner.executemany("INSERT INTO candidates (id, email) VALUES ($1, $2)", [
            (s.candidate, f"rlsm-{tag}-{s.label.lower()}@example.com"),
            (s.candidate2, f"rlsm-{tag}-{s.label.lower()}2@example.com")])
        if spare_candidate is not None:
            await owner.execute("INSERT INTO candidates (id, email) VALUES ($1, $2)",
                                spare_candidate, f"rlsm-{tag}-spare@example.com")
        await owner.executemany(
            "INSERT INTO tenant_candidates (tenant_id, candidate_id, external_id, status) VALUES ($1, $2, $3, 'new')",
            [(s.tenant, s.candidate, f"ext-{s.label}"), (s.tenant, s.candidate2, None)])
        await owner.execute("INSERT INTO tenant_candidate_profiles (tenant_id, candidate_id, full_name)"
                            " VALUES ($1, $2, $3)", s.tenant, s.candidate, f"Person {s.label}")
        await owner.executemany(
            "INSERT INTO interview_invitations (id, tenant_id, candidate_id, template_id, template_snapshot,"
            " token_hash, expires_at) VALUES ($1, $2, $3, $4, '{}'::jsonb, $5, now() + interval '1 day')",
            [(s.invitation, s.tenant, s.candidate, s.template, _rand()),
             (s.invitation2, s.tenant, s.candidate, s.template, _rand())])
        await owner.execute(
            "INSERT INTO interview_sessions (id, tenant_id, candidate_id, invitation_id, template_id,"
            " template_snapshot) VALUES ($1, $2, $3, $4, $5, '{}'::jsonb)",
            s.session, s.tenant, s.candidate, s.invitation, s.template)
        await owner.execute("UPDATE interview_invitations SET session_id = $2, status = 'redeemed', uses = 1"
                            " WHERE id = $1", s.invitation, s.session)
        await owner.execute("INSERT INTO transcript_items (tenant_id, session_id, sequence, speaker, text)"
                            " VALUES ($1, $2, 1, 'interviewer', $3)", s.tenant, s.session, f"secret of {s.label}")
        await owner.execute("INSERT INTO recordings (id, tenant_id, session_id, provider) VALUES ($1, $2, $3, 'rlsm')",
                            s.recording, s.tenant, s.session)
        # 'sent', so a running delivery loop never claims it.
        await owner.execute(
            "INSERT INTO email_outbox (id, tenant_id, invitation_id, to_email, subject, text_body, html_body, status)"
            " VALUES ($1, $2, $3, $4, 's', 't', 'h', 'sent')",
            s.outbox, s.tenant, s.invitation, f"rlsm-{tag}-{s.label.lower()}@example.com")
        await owner.execute("INSERT INTO idempotency_keys (tenant_id, method, key_hash, request_hash)"
                            " VALUES ($1, $2, $3, $4)", s.tenant, MATRIX_METHOD, s.idempotency_hash, _rand())


async def _cleanup(owner: asyncpg.Connection, seeds: list[Seed], candidates: list[uuid.UUID],
                   platform_key_hash: bytes | None) -> None:
    tenants = [s.tenant for s in seeds]
    async with owner.transaction():
        for table in DELETE_ORDER:
            column = TENANT_COLUMN[table]
            await owner.execute(f"DELETE FROM {table} WHERE {column} = ANY($1::uuid[])", tenants)
        await owner.execute("DELETE FROM candidates WHERE id = ANY($1::uuid[])", candidates)
        if platform_key_hash is not None:
            await owner.execute("DELETE FROM idempotency_keys WHERE tenant_id IS NULL AND method = $1"
                                " AND key_hash = $2", MATRIX_METHOD, platform_key_hash)


class _Rejected(Exception):
    pass


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


class _Matrix:
    def __init__(self, owner: asyncpg.Connection, svc: asyncpg.Connection) -> None:
        self.owner = owner
        self.svc = svc
        self.violations: list[str] = []

    def fail(self, message: str) -> None:
        self.violations.append(message)

    async def as_service(self, tenant: uuid.UUID | None, fn: Callable[[], Awaitable[Any]], *,
                         admin: bool = False) -> Any:
        """Runs `fn` in a service transaction with the tenant (and admin flag) set; always rolls back."""
        tx = self.svc.transaction()
        await tx.start()
        try:
            await self.svc.execute(
                "SELECT set_config('app.tenant_id', $1, true), set_config('app.platform_admin', $2, true)",
                str(tenant) if tenant else "", "on" if admin else "off")
            return await fn()
        finally:
            await tx.rollback()

    async def affected(self, tenant: uuid.UUID | None, sql: str, *args: Any, admin: bool = False) -> int | str:
        """Rows a statement affects, or the name of the error it raised."""
        try:
            return _count(await self.as_service(tenant, lambda: self.svc.execute(sql, *args), admin=admin))
        except asyncpg.PostgresError as exc:
            return f"{type(exc).__name__}: {exc}"

    async def expect_rls_rejects(self, what: str, tenant: uuid.UUID | None, sql: str, args: list[Any], *,
                                 admin: bool = False) -> None:
        try:
            status = await self.as_service(tenant, lambda: self.svc.execute(sql, *args), admin=admin)
        except asyncpg.InsufficientPrivilegeError:
            return
        except asyncpg.PostgresError as exc:
            self.fail(f"{what}: rejected by {type(exc).__name__} ({exc}), not by row-level security")
            return
        if _count(status):  # an UPDATE that finds no row writes nothing either
            self.fail(f"{what}: accepted ({status})")

    async def owner_count(self, table: str, where: str, *args: Any) -> int:
        return int(await self.owner.fetchval(f"SELECT count(*) FROM {table} WHERE {where}", *args))

    async def check_tenant(self, me: Seed, other: Seed, spare: uuid.UUID) -> None:
        who = f"tenant {me.label}"
        for table in TABLES:
            column = TENANT_COLUMN[table]
            if column is None:
                await self._check_candidates(me, other, spare)
                continue
            mine = await self.owner_count(table, f"{column} = $1", me.tenant)
            # Reads: all own rows, no foreign row (of the other tenant or anyone else).
            seen_own = await self.as_service(
                me.tenant, lambda t=table, c=column: self.svc.fetchval(f"SELECT count(*) FROM {t} WHERE {c} = $1",
                                                                       me.tenant))
            if seen_own != mine or mine == 0:
                self.fail(f"{table}: {who} sees {seen_own} of its own {mine} row(s)")
            seen_foreign = await self.as_service(
                me.tenant, lambda t=table, c=column: self.svc.fetchval(
                    f"SELECT count(*) FROM {t} WHERE {c} IS DISTINCT FROM $1", me.tenant))
            if seen_foreign:
                self.fail(f"{table}: {who} sees {seen_foreign} row(s) of other tenants")
            seen_other = await self.as_service(
                me.tenant, lambda t=table, c=column: self.svc.fetchval(f"SELECT count(*) FROM {t} WHERE {c} = $1",
                                                                       other.tenant))
            if seen_other:
                self.fail(f"{table}: {who} sees tenant {other.label}'s row(s)")
            # Updates and deletes of foreign rows touch nothing.
            n = await self.affected(me.tenant, f"UPDATE {table} SET {column} = {column} WHERE {column} = $1",
                                    other.tenant)
            if n != 0:
                self.fail(f"{table}: {who} updating tenant {other.label}'s rows: {n}")
            n = await self.affected(me.tenant, f"UPDATE {table} SET {column} = {column}"
                                               f" WHERE {column} IS DISTINCT FROM $1", me.tenant)
            if n != 0:
                self.fail(f"{table}: {who} updating other tenants' rows: {n}")
            n = await self.affected(me.tenant, f"DELETE FROM {table} WHERE {column} = $1", other.tenant)
            if n != 0:
                self.fail(f"{table}: {who} deleting tenant {other.label}'s rows: {n}")
            n = await self.affected(me.tenant, f"DELETE FROM {table} WHERE {column} IS DISTINCT FROM $1", me.tenant)
            if n != 0:
                self.fail(f"{table}: {who} deleting other tenants' rows: {n}")
            # Writes carrying the other tenant's id are rejected by RLS.
            sql, args = other.insert_row(table, spare)
            await self.expect_rls_rejects(f"{table}: {who} inserting a row of tenant {other.label}",
                                          me.tenant, sql, args)
            if table != "tenants":
                sql, args = me.insert_row(table, spare)
                await self.expect_rls_rejects(f"{table}: {who} inserting a row with a NULL tenant", me.tenant,
                                              sql, [None, *args[1:]])
                n = await self.affected(me.tenant, sql, *args)
                if n != 1:
                    self.fail(f"{table}: {who} cannot insert its own row (positive control): {n}")
            await self.expect_rls_rejects(
                f"{table}: {who} moving its own row to tenant {other.label}", me.tenant,
                f"UPDATE {table} SET {column} = $2 WHERE {column} = $1", [me.tenant, other.tenant])
            if table == "tenants":
                continue  # whether a tenant may rename or delete itself is a policy choice, not isolation
            # Own rows: updatable (positive control).
            n = await self.affected(me.tenant, f"UPDATE {table} SET {column} = {column} WHERE {column} = $1",
                                    me.tenant)
            if n != mine:
                self.fail(f"{table}: {who} updates {n} of its own {mine} row(s) (positive control)")
        await self._check_own_deletes(me)

    async def _check_candidates(self, me: Seed, other: Seed, spare: uuid.UUID) -> None:
        who = f"tenant {me.label}"
        linked = {r["candidate_id"] for r in await self.owner.fetch(
            "SELECT candidate_id FROM tenant_candidates WHERE tenant_id = $1", me.tenant)}
        visible = await self.as_service(me.tenant, lambda: self.svc.fetch("SELECT id FROM candidates"))
        visible_ids = {r["id"] for r in visible}
        if visible_ids - linked:
            self.fail(f"candidates: {who} sees {len(visible_ids - linked)} person(s) it has no link to")
        if linked - visible_ids:
            self.fail(f"candidates: {who} cannot see {len(linked - visible_ids)} of its own candidates")
        if other.candidate in visible_ids or spare in visible_ids:
            self.fail(f"candidates: {who} sees tenant {other.label}'s or an unlinked candidate")
        # People are created through door_ensure_candidate only: the service writes no row directly.
        for what, sql, args in [
            ("inserting", *me.insert_row("candidates", spare)),
            ("updating its own", "UPDATE candidates SET email = email WHERE id = $1", [me.candidate]),
            ("updating another's", "UPDATE candidates SET email = email WHERE id = $1", [other.candidate]),
            ("deleting its own", "DELETE FROM candidates WHERE id = $1", [me.candidate]),
            ("deleting another's", "DELETE FROM candidates WHERE id = $1", [other.candidate]),
        ]:
            await self.expect_rls_rejects(f"candidates: {who} {what} candidate row", me.tenant, sql, args)

    async def _check_own_deletes(self, me: Seed) -> None:
        """Deletes every own row, children first, in one transaction that is rolled back."""
        who = f"tenant {me.label}"
        tables = [t for t in DELETE_ORDER if t != "tenants"]
        expected = {t: await self.owner_count(t, f"{TENANT_COLUMN[t]} = $1", me.tenant) for t in tables}
        done: dict[str, int | str] = {}

        async def delete_all() -> None:
            for table in tables:
                try:
                    async with self.svc.transaction():  # a savepoint
                        done[table] = _count(await self.svc.execute(
                            f"DELETE FROM {table} WHERE {TENANT_COLUMN[table]} = $1", me.tenant))
                except asyncpg.PostgresError as exc:
                    done[table] = f"{type(exc).__name__}: {exc}"

        await self.as_service(me.tenant, delete_all)
        for table in tables:
            if done.get(table) != expected[table]:
                self.fail(f"{table}: {who} deleting all its own rows, children first (positive control):"
                          f" expected {expected[table]}, got {done.get(table)}")

    async def check_no_tenant(self, seeds: list[Seed], spare: uuid.UUID) -> None:
        # First on a connection that never set app.tenant_id (current_setting is NULL), then set to ''.
        for label, never_set in [("no tenant ever set", True), ("tenant set to ''", False)]:
            for table in TABLES:
                if never_set:
                    n = await self.svc.fetchval(f"SELECT count(*) FROM {table}")
                else:
                    n = await self.as_service(None, lambda t=table: self.svc.fetchval(f"SELECT count(*) FROM {t}"))
                if n:
                    self.fail(f"{table}: {label}, {n} row(s) visible")
        for table in TABLES:
            column = TENANT_COLUMN[table]
            sql, args = seeds[0].insert_row(table, spare)
            await self.expect_rls_rejects(f"{table}: inserting with no tenant set", None, sql, args)
            if column is not None:
                n = await self.affected(None, f"UPDATE {table} SET {column} = {column}")
                if n != 0:
                    self.fail(f"{table}: updating with no tenant set: {n}")
                n = await self.affected(None, f"DELETE FROM {table}")
                if n != 0:
                    self.fail(f"{table}: deleting with no tenant set: {n}")

    async def check_platform_admin(self, seeds: list[Seed], spare: uuid.UUID) -> None:
        who = "platform admin (no tenant)"
        for table in TABLES:
            column = TENANT_COLUMN[table]
            total = await self.owner.fetchval(f"SELECT count(*) FROM {table}")
            n = await self.as_service(None, lambda t=table: self.svc.fetchval(f"SELECT count(*) FROM {t}"), admin=True)
            if table in ("tenants", "email_outbox"):
                if n != total:
                    self.fail(f"{table}: {who} sees {n} of {total} row(s)")
            elif table == "idempotency_keys":
                tenanted = await self.as_service(None, lambda: self.svc.fetchval(
                    "SELECT count(*) FROM idempotency_keys WHERE tenant_id IS NOT NULL"), admin=True)
                if tenanted:
                    self.fail(f"{table}: {who} sees {tenanted} tenant row(s)")
                platform = await self.owner_count(table, "tenant_id IS NULL")
                if n - tenanted != platform or platform == 0:
                    self.fail(f"{table}: {who} sees {n - tenanted} of {platform} platform row(s) (positive control)")
                n = await self.affected(None, "INSERT INTO idempotency_keys (tenant_id, method, key_hash, request_hash)"
                                        " VALUES (NULL, $1, $2, $3)", MATRIX_METHOD, _rand(), _rand(), admin=True)
                if n != 1:
                    self.fail(f"{table}: {who} cannot insert a platform row (positive control): {n}")
            elif n:
                self.fail(f"{table}: {who} sees {n} row(s)")
            if column is None or table == "tenants":
                continue
            # Beyond tenants and NULL-tenant idempotency rows the flag grants no write.
            sql, args = seeds[0].insert_row(table, spare)
            await self.expect_rls_rejects(f"{table}: {who} inserting a tenant's row", None, sql, args, admin=True)
            n = await self.affected(None, f"UPDATE {table} SET {column} = {column} WHERE {column} IS NOT NULL",
                                    admin=True)
            if n != 0:
                self.fail(f"{table}: {who} updating tenants' rows: {n}")
            n = await self.affected(None, f"DELETE FROM {table} WHERE {column} IS NOT NULL", admin=True)
            if n != 0:
                self.fail(f"{table}: {who} deleting tenants' rows: {n}")


async def catalogue_violations(owner_dsn: str) -> list[str]:
    """What the catalogue says about RLS and the service role, read as the owner."""
    conn = await asyncpg.connect(owner_dsn)
    try:
        return await catalogue_violations_on(conn)
    finally:
        await conn.close()


async def catalogue_violations_on(conn: asyncpg.Connection) -> list[str]:
    """The same, on an open owner connection (which may be inside a transaction)."""
    violations: list[str] = []
    role = await conn.fetchrow(
        "SELECT oid, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolreplication"
        " FROM pg_roles WHERE rolname = $1", SERVICE_ROLE)
    if role is None:
        return [f"role {SERVICE_ROLE} does not exist"]
    for flag in ("rolsuper", "rolbypassrls", "rolcreaterole", "rolcreatedb", "rolreplication"):
        if role[flag]:
            violations.append(f"role {SERVICE_ROLE}: {flag} is true")
    for r in await conn.fetch("SELECT m.roleid::regrole::text AS name FROM pg_auth_members m"
                              " WHERE m.member = $1", role["oid"]):
        violations.append(f"role {SERVICE_ROLE}: member of role {r['name']}")
    for r in await conn.fetch("SELECT c.oid::regclass::text AS name FROM pg_class c WHERE c.relowner = $1",
                              role["oid"]):
        violations.append(f"role {SERVICE_ROLE} owns relation {r['name']}")
    for r in await conn.fetch("SELECT p.oid::regprocedure::text AS name FROM pg_proc p WHERE p.proowner = $1",
                              role["oid"]):
        violations.append(f"role {SERVICE_ROLE} owns function {r['name']}")
    for r in await conn.fetch("SELECT nspname FROM pg_namespace WHERE nspowner = $1", role["oid"]):
        violations.append(f"role {SERVICE_ROLE} owns schema {r['nspname']}")
    for r in await conn.fetch("SELECT typname FROM pg_type WHERE typowner = $1", role["oid"]):
        violations.append(f"role {SERVICE_ROLE} owns type {r['typname']}")

    tenant_tables = {r["relname"] for r in await conn.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped"
        " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')")} | {"tenants", "candidates"}
    for name in sorted(tenant_tables - set(TABLES)):
        violations.append(f"{name}: has a tenant_id column but is not covered by the RLS matrix")
    rls = {r["relname"]: r for r in await conn.fetch(
        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')")}
    for name in sorted(tenant_tables):
        row = rls.get(name)
        if row is None:
            violations.append(f"{name}: table missing")
            continue
        if not row["relrowsecurity"]:
            violations.append(f"{name}: row-level security is not enabled")
        if not row["relforcerowsecurity"]:
            violations.append(f"{name}: row-level security is not forced")
    # Any table, view or sequence the service can reach must be an RLS-protected tenant table.
    for r in await conn.fetch(
            "SELECT c.relname, c.relkind::text AS relkind, c.relrowsecurity FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'"
            " AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
            " AND has_table_privilege($1, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')", SERVICE_ROLE):
        if r["relkind"] not in ("r", "p") or not r["relrowsecurity"]:
            violations.append(f"{r['relname']}: reachable by {SERVICE_ROLE} without row-level security")
    for r in await conn.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"
            " AND has_table_privilege($1, c.oid, 'TRUNCATE, REFERENCES, TRIGGER')", SERVICE_ROLE):
        violations.append(f"{r['relname']}: {SERVICE_ROLE} has TRUNCATE, REFERENCES or TRIGGER")
    # Every policy that applies to the service must be keyed on the tenant or the admin flag.
    for r in await conn.fetch(
            "SELECT p.tablename, p.policyname, p.permissive, p.roles::text[] AS roles, p.qual, p.with_check"
            " FROM pg_policies p WHERE p.schemaname = 'public'"):
        if not ({SERVICE_ROLE, "public"} & set(r["roles"])):
            continue
        if r["permissive"] != "PERMISSIVE":
            continue  # a restrictive policy only narrows
        for part, expr in (("USING", r["qual"]), ("WITH CHECK", r["with_check"])):
            if expr is not None and "app_current_tenant()" not in expr and "app_is_platform_admin()" not in expr:
                violations.append(f"{r['tablename']}: policy {r['policyname']} {part} ({expr})"
                                  " is not keyed on the tenant")
    for table in sorted(tenant_tables):
        n = await conn.fetchval(
            "SELECT count(*) FROM pg_policies WHERE schemaname = 'public' AND tablename = $1"
            " AND ($2 = ANY(roles) OR 'public' = ANY(roles))", table, SERVICE_ROLE)
        if not n:
            violations.append(f"{table}: no policy for {SERVICE_ROLE}")
    # SECURITY DEFINER functions the service may call: the doors only, each with a fixed search_path.
    for r in await conn.fetch(
            "SELECT p.oid::regprocedure::text AS name, p.proname, p.proconfig FROM pg_proc p"
            " JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND has_function_privilege($1, p.oid, 'EXECUTE')", SERVICE_ROLE):
        if not r["proname"].startswith("door_"):
            violations.append(f"function {r['name']}: SECURITY DEFINER and callable by {SERVICE_ROLE}")
        if not any(c.startswith("search_path=") for c in r["proconfig"] or ()):
            violations.append(f"function {r['name']}: SECURITY DEFINER without a fixed search_path")
    for r in await conn.fetch(
            "SELECT p.oid::regprocedure::text AS name FROM pg_proc p"
            " JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a"
            "             WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')"):
        violations.append(f"function {r['name']}: SECURITY DEFINER and executable by PUBLIC")
    return violations


async def matrix_violations(owner_dsn: str, service_dsn: str) -> list[str]:
    """The behavioural matrix: seeds two tenants, probes as the service, cleans up."""
    owner = await asyncpg.connect(owner_dsn)
    svc: asyncpg.Connection | None = None
    a, b = Seed("A"), Seed("B")
    spare = uuid.uuid4()
    seeded: list[Seed] = []
    platform_key_hash: bytes | None = None
    try:
        for s in (a, b):
            await seed_tenant(owner, s, spare if s is a else None)
            seeded.append(s)
        # A platform-level idempotency row (as CreateTenant leaves): no tenant may see it.
        platform_key_hash = _rand()
        await owner.execute("INSERT INTO idempotency_keys (tenant_id, method, key_hash, request_hash)"
                            " VALUES (NULL, $1, $2, $3)", MATRIX_METHOD, platform_key_hash, _rand())
        svc = await asyncpg.connect(service_dsn)
        matrix = _Matrix(owner, svc)
        user = await svc.fetchval("SELECT current_user")
        if user != SERVICE_ROLE:
            return [f"the service DSN connects as {user}, not {SERVICE_ROLE}"]
        # Before anything sets app.tenant_id on this connection.
        await matrix.check_no_tenant(seeded, spare)
        await matrix.check_tenant(a, b, spare)
        await matrix.check_tenant(b, a, spare)
        await matrix.check_platform_admin(seeded, spare)
        return matrix.violations
    finally:
        if svc is not None:
            await svc.close()
        try:
            await _cleanup(owner, seeded, [x for s in seeded for x in (s.candidate, s.candidate2)] + [spare],
                           platform_key_hash)
        finally:
            await owner.close()


async def rls_violations(owner_dsn: str, service_dsn: str) -> list[str]:
    """Catalogue and matrix violations together; empty when tenants are kept apart."""
    return [*await catalogue_violations(owner_dsn), *await matrix_violations(owner_dsn, service_dsn)]
