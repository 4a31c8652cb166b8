"""TenantService: tenants (admin) and their API keys."""

from __future__ import annotations

from typing import Any

from control import convert
from control.auth import API_KEY_REVOKED_CHANNEL, Role, require_admin, tenant_scope
from control.context import ControlContext
from control.grpc_boundary import Call, unary
from control.pagination import decode, next_token
from interview.v1 import resources_pb2 as pb
from interview.v1 import tenant_service_pb2 as api
from interview.v1 import tenant_service_pb2_grpc as rpc
from interview_core.credentials import hash_secret, new_api_key_secret
from interview_core.errors import not_found


class TenantServicer(rpc.TenantServiceServicer):
    def __init__(self, ctx: ControlContext) -> None:
        self.ctx = ctx
        self.gate = ctx.gate

    @unary
    async def CreateTenant(self, request: api.CreateTenantRequest, call: Call) -> pb.Tenant:
        require_admin(call.principal)
        v = self.ctx.validator
        name = v.text(request.display_name, "display_name", required=True, max_chars=200)
        key = v.idempotency_key(request.idempotency_key)
        async with self.ctx.db.transaction(platform_admin=True, timeout_s=call.time_left()) as conn:
            replay = await self.ctx.idempotency.replay(conn, None, "CreateTenant", key, request, pb.Tenant)
            if replay is not None:
                return replay
            row = await conn.fetchrow(
                "INSERT INTO tenants (display_name) VALUES ($1) RETURNING *", name)
            tenant = convert.tenant(row)
            await self.ctx.idempotency.record(conn, None, "CreateTenant", key, tenant)
        return tenant

    @unary
    async def GetTenant(self, request: api.GetTenantRequest, call: Call) -> pb.Tenant:
        if call.principal.role is Role.ADMIN:
            tenant_id = self.ctx.validator.id(request.tenant_id, "tenant_id")
        else:
            tenant_id = tenant_scope(call.principal, request.tenant_id)
        async with self.ctx.db.transaction(tenant_id, timeout_s=call.time_left()) as conn:
            row = await conn.fetchrow("SELECT * FROM tenants WHERE id = $1", tenant_id)
        if row is None:
            raise not_found("tenant")
        return convert.tenant(row)

    @unary
    async def ListTenants(self, request: api.ListTenantsRequest, call: Call) -> api.ListTenantsResponse:
        require_admin(call.principal)
        size = self.ctx.validator.page_size(request.page_size)
        cursor = decode(request.page_token, ["tenants"])
        async with self.ctx.db.transaction(platform_admin=True, timeout_s=call.time_left()) as conn:
            rows = await conn.fetch(
                "SELECT * FROM tenants WHERE ($1::timestamptz IS NULL OR (created_at, id) > ($1, $2))"
                " ORDER BY created_at, id LIMIT $3",
                cursor.created_at if cursor else None, cursor.id if cursor else None, size + 1)
        page, token = next_token(rows, size, ["tenants"])
        return api.ListTenantsResponse(tenants=[convert.tenant(r) for r in page], next_page_token=token)

    @unary
    async def CreateApiKey(self, request: api.CreateApiKeyRequest, call: Call) -> api.CreateApiKeyResponse:
        tenant_id = tenant_scope(call.principal, request.tenant_id)
        v = self.ctx.validator
        name = v.text(request.display_name, "display_name", max_chars=200)
        key = v.idempotency_key(request.idempotency_key)
        async with self.ctx.db.transaction(tenant_id, timeout_s=call.time_left()) as conn:
            replay = await self.ctx.idempotency.replay(
                conn, tenant_id, "CreateApiKey", key, request, api.CreateApiKeyResponse)
            if replay is not None:
                return replay
            if not await conn.fetchval("SELECT true FROM tenants WHERE id = $1", tenant_id):
                raise not_found("tenant")
            secret = new_api_key_secret()
            row = await conn.fetchrow(
                "INSERT INTO api_keys (tenant_id, display_name, secret_prefix, secret_hash)"
                " VALUES ($1, $2, $3, $4) RETURNING *",
                tenant_id, name, secret[:8], hash_secret(secret))
            response = api.CreateApiKeyResponse(api_key=convert.api_key(row), secret=secret)
            await self.ctx.idempotency.record(conn, tenant_id, "CreateApiKey", key, response)
        return response

    @unary
    async def RevokeApiKey(self, request: api.RevokeApiKeyRequest, call: Call) -> pb.ApiKey:
        tenant_id = tenant_scope(call.principal, request.tenant_id)
        key_id = self.ctx.validator.id(request.api_key_id, "api_key_id")
        async with self.ctx.db.transaction(tenant_id, timeout_s=call.time_left()) as conn:
            row: Any = await conn.fetchrow(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING *",
                key_id)
            if row is None:
                raise not_found("api key")
            # Every control process drops the key from its cache when this commits.
            await conn.execute("SELECT pg_notify($1, $2)", API_KEY_REVOKED_CHANNEL, str(key_id))
        # This process stops accepting it now; the others when the notice reaches them.
        self.gate.authenticator.forget_api_key(str(key_id))
        return convert.api_key(row)


