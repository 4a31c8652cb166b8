"""InvitationService: secure, expiring, single-use links.

A token is 256 random bits, shown once (in the create or resend response) and stored only as a
hash; the queued email keeps the link encrypted until it is delivered. Looking an invitation up
never consumes it; only RedeemInvitation does, under a row lock, so concurrent redemptions give
exactly one success.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from google.protobuf.duration_pb2 import Duration

from control import convert
from control.auth import require_service, tenant_scope
from control.candidates import CANDIDATE_VIEW, fetch_candidate
from control.context import ControlContext
from control.db import Connection
from control.email_delivery import LINK_PURPOSE, OUTBOX_CHANNEL
from control.email_messages import invitation_email, invite_url
from control.grpc_boundary import Call, unary
from control.pagination import decode, next_token
from interview.v1 import invitation_service_pb2 as api
from interview.v1 import invitation_service_pb2_grpc as rpc
from interview.v1 import resources_pb2 as pb
from interview_core.credentials import hash_secret, hashes_match, new_invitation_token
from interview_core.errors import ErrorCode, PlatformError, invalid, not_found

MIN_TTL_S = 60


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class InvitationServicer(rpc.InvitationServiceServicer):
    def __init__(self, ctx: ControlContext) -> None:
        self.ctx = ctx
        self.gate = ctx.gate

    def _ttl(self, ttl: Duration, present: bool) -> dt.timedelta:
        if not present:
            return dt.timedelta(seconds=self.ctx.settings.invitation_ttl_s)
        seconds = ttl.seconds + ttl.nanos / 1e9
        if not MIN_TTL_S <= seconds <= self.ctx.settings.max_invitation_ttl_s:
            raise invalid("ttl", f"between {MIN_TTL_S} s and {self.ctx.settings.max_invitation_ttl_s} s")
        return dt.timedelta(seconds=seconds)

    async def _queue_email(self, conn: Connection, tenant_id: uuid.UUID, invitation: Any,
                           candidate: Any, token: str) -> None:
        tenant_name = await conn.fetchval("SELECT display_name FROM tenants WHERE id = $1", tenant_id)
        role = convert.template_from_snapshot(invitation["template_snapshot"]).role
        content = invitation_email(
            tenant_name=tenant_name, role=role, candidate_name=candidate["full_name"],
            expires=invitation["expires_at"].strftime("%Y-%m-%d %H:%M UTC"))
        sealed = self.ctx.box.seal(token.encode(), purpose=LINK_PURPOSE)
        await conn.execute(
            "INSERT INTO email_outbox (tenant_id, invitation_id, to_email, subject, text_body, html_body,"
            " link_ciphertext) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            tenant_id, invitation["id"], candidate["email"], content.subject, content.text_body,
            content.html_body, sealed)
        await conn.execute("SELECT pg_notify($1, '')", OUTBOX_CHANNEL)  # wakes the delivery loop

    @staticmethod
    async def _supersede_queued_email(conn: Connection, invitation_id: uuid.UUID, why: str) -> None:
        await conn.execute(
            "UPDATE email_outbox SET status = 'failed', last_error = $2, link_ciphertext = NULL"
            " WHERE invitation_id = $1 AND status = 'pending'", invitation_id, why)

    def _response(self, row: Any, token: str) -> api.CreateInvitationResponse:
        return api.CreateInvitationResponse(
            invitation=convert.invitation(row, _now()), token=token,
            invite_url=invite_url(self.ctx.settings.invite_base_url, token))

    @unary
    async def CreateInvitation(self, request: api.CreateInvitationRequest, call: Call) -> api.CreateInvitationResponse:
        tenant_id = tenant_scope(call.principal, request.tenant_id)
        v = self.ctx.validator
        candidate_id = v.id(request.candidate_id, "candidate_id")
        template_id = v.id(request.template_id, "template_id")
        ttl = self._ttl(request.ttl, request.HasField("ttl"))
        key = v.idempotency_key(request.idempotency_key)
        async with self.ctx.db.transaction(tenant_id, timeout_s=call.time_left()) as conn:
            replay = await self.ctx.idempotency.replay(
                conn, tenant_id, "CreateInvitation", key, request, api.CreateInvitationResponse)
            if replay is not None:
                return replay
            # One round trip finds the template and checks the candidate, one inserts the
            # invitation and marks the candidate invited (a data-modifying WITH always runs).
            template = await conn.fetchrow(
                "SELECT *, EXISTS(" + CANDIDATE_VIEW + " WHERE tc.candidate_id = $2) AS candidate_found"
                " FROM templates WHERE id = $1", template_id, candidate_id)
            if template is None:
                raise not_found("template")
            if not template["candidate_found"]:
                raise not_found("candidate")
            token = new_invitation_token()
            row = await conn.fetchrow(
                "WITH invited AS (UPDATE tenant_candidates SET status = 'invited'"
                " WHERE candidate_id = $2 AND status = 'new')"
                " INSERT INTO interview_invitations (tenant_id, candidate_id, template_id,"
                " template_snapshot, token_hash, expires_at, email_requested)"
                " VALUES ($1, $2, $3, $4::jsonb, $5, now() + $6, $7) RETURNING *",
                tenant_id, candidate_id, template_id, convert.template_snapshot(template),
                hash_secret(token), ttl, request.send_email)
            if request.send_email:
                candidate = await fetch_candidate(conn, candidate_id)
                await self._queue_email(conn, tenant_id, row, candidate, token)
            response = self._response(row, token)
            await self.ctx.idempotency.record(conn, tenant_id, "CreateInvitation", key, response)
        return response

    @unary
    async def GetInvitation(self, request: api.GetInvitationRequest, call: Call) -> pb.Invitation:
        tenant_id = tenant_scope(call.principal, request.tenant_id)
        invitation_id = self.ctx.validator.id(request.invitation_id, "invitation_id")
        async with self.ctx.db.transaction(tenant_id, timeout_s=call.time_left()) as conn:
            row = await conn.fetchrow("SELECT * FROM interview_invitations WHERE id = $1", invitation_id)
        if row is None:
            raise not_found("invitation")
        return convert.invitation(row, _now())

    @unary
    async def ListInvitations(self, request: api.ListInvitationsRequest, call: Call) -> api.ListInvitationsResponse:
        tenant_id = tenant_scope(call.principal, request.tenant_id)
        v = self.ctx.validator
        size = v.page_size(request.page_size)
        candidate_id = v.optional_id(request.candidate_id, "candidate_id")
        filters = ["invitations", candidate_id]
        cursor = decode(request.page_token, filters)
        async with self.ctx.db.transaction(tenant_id, timeout_s=call.time_left()) as conn:
            rows = await conn.fetch(
                "SELECT * FROM interview_invitations"
                " WHERE ($1::timestamptz IS NULL OR (created_at, id) > ($1, $2))"
                " AND ($3::uuid IS NULL OR candidate_id = $3)"
                " ORDER BY created_at, id LIMIT $4",
                cursor.created_at if cursor else None, cursor.id if cursor else None, candidate_id, size + 1)
        page, token = next_token(rows, size, filters)
        now = _now()
        return api.ListInvitationsResponse(
            invitations=[convert.invitation(r, now) for r in page], next_page_token=token)

    @unary
    async def RevokeInvitation(self, request: api.RevokeInvitationRequest, call: Call) -> pb.Invitation:
        tenant_id = tenant_scope(call.principal, request.tenant_id)
        invitation_id = self.ctx.validator.id(request.invitation_id, "invitation_id")
        async with self.ctx.db.transaction(tenant_id, timeout_s=call.time_left()) as conn:
            row = await conn.fetchrow(
                "SELECT * FROM interview_invitations WHERE id = $1 FOR UPDATE", invitation_id)
            if row is None:
                raise not_found("invitation")
            if row["status"] == "redeemed":
                raise PlatformError(ErrorCode.INVITATION_USED,
                                    "invitation already redeemed; end its session instead")
            if not row["revoked"]:
                row = await conn.fetchrow(
                    "UPDATE interview_invitations SET revoked = true, status = 'revoked',"
                    " revoked_at = now() WHERE id = $1 RETURNING *", invitation_id)
                await self._supersede_queued_email(conn, invitation_id, "invitation revoked")
        return convert.invitation(row, _now())

    @unary
    async def ResendInvitation(self, request: api.ResendInvitationRequest, call: Call) -> api.CreateInvitationResponse:
        tenant_id = tenant_scope(call.principal, request.tenant_id)
        invitation_id = self.ctx.validator.id(request.invitation_id, "invitation_id")
        ttl = self._ttl(request.ttl, request.HasField("ttl"))
        async with self.ctx.db.transaction(tenant_id, timeout_s=call.time_left()) as conn:
            row: Any = await conn.fetchrow(
                "SELECT * FROM interview_invitations WHERE id = $1 FOR UPDATE", invitation_id)
            if row is None:
                raise not_found("invitation")
            if row["revoked"]:
                raise PlatformError(ErrorCode.INVITATION_REVOKED, "invitation was revoked")
            if row["status"] == "redeemed":
                raise PlatformError(ErrorCode.INVITATION_USED, "invitation was already redeemed")
            token = new_invitation_token()
            row = await conn.fetchrow(
                "UPDATE interview_invitations SET token_hash = $2, expires_at = now() + $3,"
                " email_requested = email_requested OR $4 WHERE id = $1 RETURNING *",
                invitation_id, hash_secret(token), ttl, request.send_email)
            await self._supersede_queued_email(conn, invitation_id, "superseded by a resend")
            if request.send_email:
                candidate = await fetch_candidate(conn, row["candidate_id"])
                await self._queue_email(conn, tenant_id, row, candidate, token)
        return self._response(row, token)

    async def _find_by_token(self, token: str, time_left: float | None) -> tuple[uuid.UUID, uuid.UUID]:
        if not token or len(token) > 256:
            raise invalid("token", "required, at most 256 characters")
        digest = hash_secret(token)
        async with self.ctx.db.transaction(timeout_s=time_left) as conn:
            found = await conn.fetchrow(
                "SELECT invitation_id, tenant_id, token_hash FROM door_find_invitation($1)", digest)
        if found is None or not hashes_match(bytes(found["token_hash"]), digest):
            raise not_found("invitation")
        return found["tenant_id"], found["invitation_id"]

    @unary
    async def LookupInvitation(self, request: api.LookupInvitationRequest, call: Call) -> api.LookupInvitationResponse:
        require_service(call.principal)
        tenant_id, invitation_id = await self._find_by_token(request.token, call.time_left())
        async with self.ctx.db.transaction(tenant_id, timeout_s=call.time_left()) as conn:
            row = await conn.fetchrow("SELECT * FROM interview_invitations WHERE id = $1", invitation_id)
            tenant_name = await conn.fetchval("SELECT display_name FROM tenants WHERE id = $1", tenant_id)
        if row is None:
            raise not_found("invitation")
        invitation = convert.invitation(row, _now())
        return api.LookupInvitationResponse(
            invitation=invitation, tenant_display_name=tenant_name,
            redeemable=invitation.status == pb.INVITATION_STATUS_PENDING)

    @unary
    async def RedeemInvitation(self, request: api.RedeemInvitationRequest, call: Call) -> api.RedeemInvitationResponse:
        require_service(call.principal)
        user_id = self.ctx.validator.optional_id(request.user_id, "user_id")
        if request.external_account and user_id is None:
            raise invalid("user_id", "required with external_account")
        tenant_id, invitation_id = await self._find_by_token(request.token, call.time_left())
        async with self.ctx.db.transaction(tenant_id, timeout_s=call.time_left()) as conn:
            row = await conn.fetchrow(
                "SELECT * FROM interview_invitations WHERE id = $1 FOR UPDATE", invitation_id)
            if row is None:
                raise not_found("invitation")
            if row["revoked"]:
                raise PlatformError(ErrorCode.INVITATION_REVOKED, "invitation was revoked")
            candidate = await fetch_candidate(conn, row["candidate_id"])
            if row["status"] == "redeemed":
                if user_id is None or row["redeemed_by_user_id"] != user_id:
                    raise PlatformError(ErrorCode.INVITATION_USED, "invitation was already used")
                session: Any = await conn.fetchrow(
                    "SELECT * FROM interview_sessions WHERE id = $1", row["session_id"])
                return self._redeemed(session, candidate, user_id, first=False)
            if row["expires_at"] <= _now() or row["uses"] >= row["max_uses"]:
                raise PlatformError(ErrorCode.INVITATION_EXPIRED, "invitation has expired")
            if user_id is None:
                user_id = await conn.fetchval("SELECT door_ensure_user($1)", candidate["email"])
            elif request.external_account:
                if not await conn.fetchval("SELECT door_ensure_external_user($1, $2)",
                                           user_id, self._external_email(request.external_email)):
                    raise not_found("account")
            elif not await conn.fetchval("SELECT door_user_exists($1)", user_id):
                raise not_found("account")
            session = await conn.fetchrow(
                "INSERT INTO interview_sessions (tenant_id, candidate_id, invitation_id, template_id,"
                " template_snapshot, user_id) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
                tenant_id, row["candidate_id"], invitation_id, row["template_id"],
                row["template_snapshot"], user_id)
            await conn.execute(
                "UPDATE interview_invitations SET uses = uses + 1, status = 'redeemed', redeemed_at = now(),"
                " redeemed_by_user_id = $2, session_id = $3 WHERE id = $1",
                invitation_id, user_id, session["id"])
        return self._redeemed(session, candidate, user_id, first=True)

    def _external_email(self, value: str) -> str:
        """Kept with a new external account when it is a valid address; it is only informational
        (accounts are never matched by email), so an odd one is left off rather than refused."""
        try:
            return self.ctx.validator.email(value, "external_email", required=False)
        except PlatformError:
            return ""

    @staticmethod
    def _redeemed(session: Any, candidate: Any, user_id: uuid.UUID, *, first: bool) -> api.RedeemInvitationResponse:
        out = convert.session(session)
        return api.RedeemInvitationResponse(
            session=out, candidate=convert.candidate(candidate), template=out.template,
            user_id=str(user_id), first_redemption=first)
