"""SessionService: interview sessions and their transcripts, read by tenants and written by the
platform's own services (the edge and the actors, with the service credential)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

from control import convert
from control.auth import Principal, Role, require_service, tenant_scope
from control.context import ControlContext
from control.db import Connection
from control.grpc_boundary import Call, server_stream, unary
from control.pagination import decode, next_token
from interview.v1 import resources_pb2 as pb
from interview.v1 import session_service_pb2 as api
from interview.v1 import session_service_pb2_grpc as rpc
from interview_core.errors import ErrorCode, PlatformError, invalid, not_found

TERMINAL = frozenset({"completed", "abandoned", "ended"})
# Which statuses each status may move to. Setting the current status again is a no-op.
TRANSITIONS: dict[str, frozenset[str]] = {
    "ready": frozenset({"in_progress", "abandoned", "ended"}),
    "in_progress": frozenset({"completed", "abandoned", "ended"}),
}
MAX_ITEMS_PER_APPEND = 100
WATCH_POLL_S = 5.0
DEFAULT_END_REASON = "ended by the interviewer's company"  # a missed notice delays a watcher at most this long


class SessionServicer(rpc.SessionServiceServicer):
    def __init__(self, ctx: ControlContext) -> None:
        self.ctx = ctx
        self.gate = ctx.gate

    async def _tenant_of_session(self, principal: Principal, requested_tenant: str, session_id: uuid.UUID,
                                 time_left: float | None) -> uuid.UUID:
        """Tenant callers act on their own tenant; the service credential finds the session's."""
        if principal.role is not Role.SERVICE:
            return tenant_scope(principal, requested_tenant)
        async with self.ctx.db.transaction(timeout_s=time_left) as conn:
            tenant_id = await conn.fetchval("SELECT door_session_tenant($1)", session_id)
        if tenant_id is None:
            raise not_found("session")
        return tenant_id  # type: ignore[no-any-return]

    @unary
    async def GetSession(self, request: api.GetSessionRequest, call: Call) -> pb.Session:
        session_id = self.ctx.validator.id(request.session_id, "session_id")
        tenant_id = await self._tenant_of_session(call.principal, request.tenant_id, session_id, call.time_left())
        rows = await self.ctx.db.fetch_scoped("SELECT * FROM app_session_for_tenant($1, $2)", tenant_id, session_id,
                                              timeout_s=call.time_left())
        if not rows:
            raise not_found("session")
        return convert.session(rows[0])

    @unary
    async def ListSessions(self, request: api.ListSessionsRequest, call: Call) -> api.ListSessionsResponse:
        tenant_id = tenant_scope(call.principal, request.tenant_id)
        v = self.ctx.validator
        size = v.page_size(request.page_size)
        candidate_id = v.optional_id(request.candidate_id, "candidate_id")
        status = None
        if request.status:
            if request.status not in convert.SESSION_STATUS_NAME:
                raise invalid("status", "unknown status")
            status = convert.SESSION_STATUS_NAME[request.status]
        after = _timestamp(request, "created_after")
        before = _timestamp(request, "created_before")
        filters = ["sessions", candidate_id, status, after, before]
        cursor = decode(request.page_token, filters)
        async with self.ctx.db.transaction(tenant_id, timeout_s=call.time_left()) as conn:
            rows = await conn.fetch(
                "SELECT * FROM interview_sessions"
                " WHERE ($1::timestamptz IS NULL OR (created_at, id) > ($1, $2))"
                " AND ($3::uuid IS NULL OR candidate_id = $3) AND ($4::text IS NULL OR status = $4)"
                " AND ($5::timestamptz IS NULL OR created_at >= $5)"
                " AND ($6::timestamptz IS NULL OR created_at < $6)"
                " ORDER BY created_at, id LIMIT $7",
                cursor.created_at if cursor else None, cursor.id if cursor else None,
                candidate_id, status, after, before, size + 1)
        page, token = next_token(rows, size, filters)
        return api.ListSessionsResponse(sessions=[convert.session(r) for r in page], next_page_token=token)

    @unary
    async def GetTranscript(self, request: api.GetTranscriptRequest, call: Call) -> api.GetTranscriptResponse:
        session_id = self.ctx.validator.id(request.session_id, "session_id")
        tenant_id = await self._tenant_of_session(call.principal, request.tenant_id, session_id, call.time_left())
        if request.after_sequence < 0:
            raise invalid("after_sequence", "must not be negative")
        size = self.ctx.validator.page_size(request.page_size or self.ctx.settings.max_page_size)
        async with self.ctx.db.transaction(tenant_id, timeout_s=call.time_left()) as conn:
            if not await conn.fetchval("SELECT true FROM interview_sessions WHERE id = $1", session_id):
                raise not_found("session")
            rows = await _items_after(conn, session_id, request.after_sequence, size + 1)
        return api.GetTranscriptResponse(
            items=[convert.transcript_item(r) for r in rows[:size]], has_more=len(rows) > size)

    @server_stream
    async def WatchSession(
        self, request: api.WatchSessionRequest, call: Call
    ) -> AsyncIterator[api.WatchSessionResponse]:
        session_id = self.ctx.validator.id(request.session_id, "session_id")
        # The actors watch their session too (to hear of EndSession), with the service credential.
        tenant_id = await self._tenant_of_session(call.principal, request.tenant_id, session_id, call.time_left())
        if request.after_sequence < 0:
            raise invalid("after_sequence", "must not be negative")
        last_sequence = request.after_sequence
        last_status: str | None = None
        page = self.ctx.settings.max_page_size
        counted = None if call.principal.role is Role.SERVICE else tenant_id
        wake = self.ctx.session_events.subscribe(counted, str(session_id))
        try:
            while True:
                try:
                    await asyncio.wait_for(wake.wait(), timeout=WATCH_POLL_S)
                except TimeoutError:
                    pass
                wake.clear()
                async with self.ctx.db.transaction(tenant_id, timeout_s=call.time_left()) as conn:
                    session = await conn.fetchrow("SELECT * FROM interview_sessions WHERE id = $1", session_id)
                    if session is None:
                        raise not_found("session")
                    items = await _items_after(conn, session_id, last_sequence, page)
                if last_status is None:
                    last_status = session["status"]
                    yield api.WatchSessionResponse(session=convert.session(session))
                for item in items:
                    last_sequence = item["sequence"]
                    yield api.WatchSessionResponse(transcript_item=convert.transcript_item(item))
                if len(items) == page:
                    wake.set()  # more to read
                    continue
                if session["status"] != last_status:
                    last_status = session["status"]
                    yield api.WatchSessionResponse(session=convert.session(session))
                if session["status"] in TERMINAL:
                    return
        finally:
            self.ctx.session_events.unsubscribe(counted, str(session_id), wake)

    @unary
    async def EndSession(self, request: api.EndSessionRequest, call: Call) -> pb.Session:
        tenant_id = tenant_scope(call.principal, request.tenant_id)
        session_id = self.ctx.validator.id(request.session_id, "session_id")
        reason = self.ctx.validator.text(request.reason, "reason", max_chars=500) or DEFAULT_END_REASON
        async with self.ctx.db.transaction(tenant_id, timeout_s=call.time_left()) as conn:
            return await set_session_status(conn, session_id, "ended", reason)

    @unary
    async def UpdateSessionStatus(self, request: api.UpdateSessionStatusRequest, call: Call) -> pb.Session:
        require_service(call.principal)
        session_id = self.ctx.validator.id(request.session_id, "session_id")
        target = convert.SESSION_STATUS_NAME.get(request.status)
        if target is None:
            raise invalid("status", "required")
        reason = self.ctx.validator.text(request.reason, "reason", max_chars=500)
        tenant_id = await self._tenant_of_session(call.principal, "", session_id, call.time_left())
        async with self.ctx.db.transaction(tenant_id, timeout_s=call.time_left()) as conn:
            return await set_session_status(conn, session_id, target, reason)

    @unary
    async def AppendTranscriptItems(
        self, request: api.AppendTranscriptItemsRequest, call: Call
    ) -> api.AppendTranscriptItemsResponse:
        require_service(call.principal)
        session_id = self.ctx.validator.id(request.session_id, "session_id")
        if not request.items:
            raise invalid("items", "at least one item")
        if len(request.items) > MAX_ITEMS_PER_APPEND:
            raise invalid("items", f"at most {MAX_ITEMS_PER_APPEND} items a call")
        items = [self._validated_item(i, item) for i, item in enumerate(request.items)]
        tenant_id = await self._tenant_of_session(call.principal, "", session_id, call.time_left())
        inserted = duplicates = 0
        async with self.ctx.db.transaction(tenant_id, timeout_s=call.time_left()) as conn:
            # Serialises appends to one session, so the gap check below cannot race.
            if not await conn.fetchval(
                    "SELECT true FROM interview_sessions WHERE id = $1 FOR UPDATE", session_id):
                raise not_found("session")
            last = await conn.fetchval(
                "SELECT coalesce(max(sequence), 0) FROM transcript_items WHERE session_id = $1", session_id)
            for sequence, speaker, text, start_ms, end_ms in items:
                if sequence > last + 1:
                    raise PlatformError(ErrorCode.INVALID_STATE,
                                        f"items[]: sequence {sequence} leaves a gap after {last}",
                                        field="items")
                existing = await conn.fetchrow(
                    "SELECT speaker, text, audio_start_ms, audio_end_ms FROM transcript_items"
                    " WHERE session_id = $1 AND sequence = $2", session_id, sequence)
                if existing is not None:
                    if tuple(existing.values()) != (speaker, text, start_ms, end_ms):
                        raise PlatformError(ErrorCode.ALREADY_EXISTS,
                                            f"items[]: sequence {sequence} was saved with other content",
                                            field="items")
                    duplicates += 1
                    continue
                await conn.execute(
                    "INSERT INTO transcript_items (tenant_id, session_id, sequence, speaker, text,"
                    " audio_start_ms, audio_end_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    tenant_id, session_id, sequence, speaker, text, start_ms, end_ms)
                inserted += 1
                last = max(last, sequence)
        return api.AppendTranscriptItemsResponse(inserted=inserted, duplicates=duplicates, last_sequence=last)

    def _validated_item(self, index: int, item: pb.TranscriptItem) -> tuple[int, str, str, int, int]:
        field = f"items[{index}]"
        if item.sequence < 1:
            raise invalid(f"{field}.sequence", "must be 1 or more")
        speaker = convert.SPEAKER_NAME.get(item.speaker)
        if speaker is None:
            raise invalid(f"{field}.speaker", "required")
        text = self.ctx.validator.long_text(item.text, f"{field}.text")
        if item.audio_start_ms < 0 or item.audio_end_ms < item.audio_start_ms:
            raise invalid(f"{field}.audio_end_ms", "offsets must satisfy 0 <= start <= end")
        return item.sequence, speaker, text, item.audio_start_ms, item.audio_end_ms


def _timestamp(request: api.ListSessionsRequest, field: str) -> dt.datetime | None:
    if not request.HasField(field):  # type: ignore[arg-type]
        return None
    try:
        return getattr(request, field).ToDatetime(tzinfo=dt.UTC)  # type: ignore[no-any-return]
    except (ValueError, OverflowError):
        raise invalid(field, "not a valid timestamp") from None


async def _items_after(conn: Connection, session_id: uuid.UUID, after: int, limit: int) -> list[Any]:
    return list(await conn.fetch(
        "SELECT * FROM transcript_items WHERE session_id = $1 AND sequence > $2"
        " ORDER BY sequence LIMIT $3", session_id, after, limit))


async def set_session_status(conn: Connection, session_id: uuid.UUID, target: str, reason: str) -> pb.Session:
    row: Any = await conn.fetchrow("SELECT * FROM interview_sessions WHERE id = $1 FOR UPDATE", session_id)
    if row is None:
        raise not_found("session")
    current = row["status"]
    if current == target:
        return convert.session(row)
    if target not in TRANSITIONS.get(current, frozenset()):
        raise PlatformError(ErrorCode.INVALID_STATE, f"session is {current}; cannot become {target}")
    row = await conn.fetchrow(
        "UPDATE interview_sessions SET status = $2, end_reason = $3,"
        " started_at = CASE WHEN $2 = 'in_progress' THEN now() ELSE started_at END,"
        " ended_at = CASE WHEN $2 = ANY($4::text[]) THEN now() ELSE ended_at END"
        " WHERE id = $1 RETURNING *", session_id, target, reason, list(TERMINAL))
    if target == "completed":
        await conn.execute(
            "UPDATE tenant_candidates SET status = 'interviewed' WHERE candidate_id = $1", row["candidate_id"])
    return convert.session(row)



