"""CandidateService. A candidate is a person (one `candidates` row, found or created through the
database's door by email); what a tenant records about them lives in its own rows under RLS."""

from __future__ import annotations

import uuid
from typing import Any

from control import convert
from control.auth import tenant_scope
from control.context import ControlContext
from control.db import Connection
from control.grpc_boundary import Call, unary
from control.pagination import decode, next_token
from interview.v1 import candidate_service_pb2 as api
from interview.v1 import candidate_service_pb2_grpc as rpc
from interview.v1 import resources_pb2 as pb
from interview_core.errors import ErrorCode, PlatformError, invalid, not_found

CANDIDATE_VIEW = """
SELECT tc.tenant_id, tc.candidate_id, tc.external_id, tc.status, c.email,
       p.full_name, p.created_at, p.updated_at
FROM tenant_candidates tc
JOIN candidates c ON c.id = tc.candidate_id
JOIN tenant_candidate_profiles p ON p.tenant_id = tc.tenant_id AND p.candidate_id = tc.candidate_id
"""


async def fetch_candidate(conn: Connection, candidate_id: uuid.UUID) -> Any:
    return await conn.fetchrow(CANDIDATE_VIEW + " WHERE tc.candidate_id = $1", candidate_id)


class CandidateServicer(rpc.CandidateServiceServicer):
    def __init__(self, ctx: ControlContext) -> None:
        self.ctx = ctx
        self.gate = ctx.gate

    @unary
    async def UpsertCandidate(self, request: api.UpsertCandidateRequest, call: Call) -> api.UpsertCandidateResponse:
        tenant_id = tenant_scope(call.principal, request.tenant_id)
        v = self.ctx.validator
        email = v.email(request.email, required=False)
        external_id = v.text(request.external_id, "external_id", max_chars=200)
        full_name = v.text(request.full_name, "full_name", max_chars=200)
        if not email and not external_id:
            raise invalid("email", "email or external_id is required")
        key = v.idempotency_key(request.idempotency_key)
        async with self.ctx.db.transaction(tenant_id, timeout_s=call.time_left()) as conn:
            replay = await self.ctx.idempotency.replay(
                conn, tenant_id, "UpsertCandidate", key, request, api.UpsertCandidateResponse)
            if replay is not None:
                return replay
            by_external = None
            if external_id:
                by_external = await conn.fetchval(
                    "SELECT candidate_id FROM tenant_candidates WHERE external_id = $1", external_id)
            if email:
                candidate_id = await conn.fetchval("SELECT door_ensure_candidate($1)", email)
                if by_external is not None and by_external != candidate_id:
                    raise PlatformError(ErrorCode.ALREADY_EXISTS,
                                        "external_id belongs to another of this tenant's candidates",
                                        field="external_id")
            elif by_external is not None:
                candidate_id = by_external
            else:
                raise invalid("email", "required to create a candidate (no candidate has this external_id)")
            created = bool(await conn.fetchval(
                "INSERT INTO tenant_candidates (tenant_id, candidate_id, external_id, status)"
                " VALUES ($1, $2, nullif($3, ''), 'new') ON CONFLICT DO NOTHING RETURNING true",
                tenant_id, candidate_id, external_id))
            if created:
                await conn.execute(
                    "INSERT INTO tenant_candidate_profiles (tenant_id, candidate_id, full_name)"
                    " VALUES ($1, $2, $3)", tenant_id, candidate_id, full_name)
            else:
                if external_id:
                    await conn.execute(
                        "UPDATE tenant_candidates SET external_id = $2 WHERE candidate_id = $1",
                        candidate_id, external_id)
                await conn.execute(
                    "UPDATE tenant_candidate_profiles SET full_name = CASE WHEN $2 = '' THEN full_name"
                    " ELSE $2 END, updated_at = now() WHERE candidate_id = $1", candidate_id, full_name)
            row = await fetch_candidate(conn, candidate_id)
            response = api.UpsertCandidateResponse(candidate=convert.candidate(row), created=created)
            await self.ctx.idempotency.record(conn, tenant_id, "UpsertCandidate", key, response)
        return response

    @unary
    async def GetCandidate(self, request: api.GetCandidateRequest, call: Call) -> pb.Candidate:
        tenant_id = tenant_scope(call.principal, request.tenant_id)
        candidate_id = self.ctx.validator.id(request.candidate_id, "candidate_id")
        async with self.ctx.db.transaction(tenant_id, timeout_s=call.time_left()) as conn:
            row = await fetch_candidate(conn, candidate_id)
        if row is None:
            raise not_found("candidate")
        return convert.candidate(row)

    @unary
    async def ListCandidates(self, request: api.ListCandidatesRequest, call: Call) -> api.ListCandidatesResponse:
        tenant_id = tenant_scope(call.principal, request.tenant_id)
        size = self.ctx.validator.page_size(request.page_size)
        cursor = decode(request.page_token, ["candidates"])
        async with self.ctx.db.transaction(tenant_id, timeout_s=call.time_left()) as conn:
            rows = await conn.fetch(
                CANDIDATE_VIEW
                + " WHERE ($1::timestamptz IS NULL OR (p.created_at, p.candidate_id) > ($1, $2))"
                " ORDER BY p.created_at, p.candidate_id LIMIT $3",
                cursor.created_at if cursor else None, cursor.id if cursor else None, size + 1)
        page, token = next_token(rows, size, ["candidates"], id_column="candidate_id")
        return api.ListCandidatesResponse(candidates=[convert.candidate(r) for r in page], next_page_token=token)
