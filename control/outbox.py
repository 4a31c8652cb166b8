"""OutboxService: the queued invitation emails and whether they went out."""

from __future__ import annotations

from typing import Any

from control import convert
from control.auth import Role, tenant_scope
from control.context import ControlContext
from control.email_delivery import LINK_PURPOSE
from control.email_messages import invite_url, render_link
from control.grpc_boundary import Call, unary
from control.pagination import decode, next_token
from interview.v1 import outbox_service_pb2 as api
from interview.v1 import outbox_service_pb2_grpc as rpc
from interview.v1 import resources_pb2 as pb
from interview_core.errors import invalid

_STATUS_FILTER = {pb.OUTBOX_STATUS_PENDING: ["pending", "sending"], pb.OUTBOX_STATUS_SENT: ["sent"],
                  pb.OUTBOX_STATUS_FAILED: ["failed"]}


class OutboxServicer(rpc.OutboxServiceServicer):
    def __init__(self, ctx: ControlContext) -> None:
        self.ctx = ctx
        self.gate = ctx.gate

    def _text(self, row: Any) -> str:
        sealed = row["link_ciphertext"]
        token = self.ctx.box.open(bytes(sealed), purpose=LINK_PURPOSE) if sealed is not None else None
        link = invite_url(self.ctx.settings.invite_base_url, token.decode()) if token else "(link withheld)"
        return render_link(row["text_body"], link, escape_html=False)

    @unary
    async def ListOutboxMessages(self, request: api.ListOutboxMessagesRequest,
                                 call: Call) -> api.ListOutboxMessagesResponse:
        admin_all = call.principal.role is Role.ADMIN and not request.tenant_id
        tenant_id = None if admin_all else tenant_scope(call.principal, request.tenant_id)
        size = self.ctx.validator.page_size(request.page_size)
        statuses = None
        if request.status:
            if request.status not in _STATUS_FILTER:
                raise invalid("status", "unknown status")
            statuses = _STATUS_FILTER[request.status]
        filters = ["outbox", tenant_id, request.status]
        cursor = decode(request.page_token, filters)
        async with self.ctx.db.transaction(tenant_id, platform_admin=admin_all,
                                           timeout_s=call.time_left()) as conn:
            rows = await conn.fetch(
                "SELECT * FROM email_outbox WHERE ($1::timestamptz IS NULL OR (created_at, id) > ($1, $2))"
                " AND ($3::text[] IS NULL OR status = ANY($3)) ORDER BY created_at, id LIMIT $4",
                cursor.created_at if cursor else None, cursor.id if cursor else None, statuses, size + 1)
        page, token = next_token(rows, size, filters)
        return api.ListOutboxMessagesResponse(
            messages=[convert.outbox_message(r, self._text(r)) for r in page], next_page_token=token)
