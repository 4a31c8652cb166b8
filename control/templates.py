"""TemplateService: what an interview asks. Updates bump the version; invitations already sent
keep the version they pinned."""

from __future__ import annotations

from dataclasses import dataclass

from control import convert
from control.auth import tenant_scope
from control.context import ControlContext
from control.grpc_boundary import Call, unary
from control.pagination import decode, next_token
from control.validation import Validator
from interview.v1 import resources_pb2 as pb
from interview.v1 import template_service_pb2 as api
from interview.v1 import template_service_pb2_grpc as rpc
from interview_core.errors import invalid, not_found

UPDATABLE = ("role", "questions", "time_limit_seconds", "language", "voice", "instructions")
_LANGUAGE_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")


@dataclass(frozen=True)
class TemplateFields:
    role: str
    questions: list[str]
    time_limit_seconds: int
    language: str
    voice: str
    instructions: str


def validate_template(v: Validator, t: pb.Template) -> TemplateFields:
    role = v.text(t.role, "template.role", required=True, max_chars=200)
    if not t.questions:
        raise invalid("template.questions", "at least one question")
    if len(t.questions) > v.settings.max_questions:
        raise invalid("template.questions", f"at most {v.settings.max_questions} questions")
    questions = [v.text(q, f"template.questions[{i}]", required=True, max_chars=2000, multiline=True)
                 for i, q in enumerate(t.questions)]
    if not 0 < t.time_limit_seconds <= v.settings.max_time_limit_s:
        raise invalid("template.time_limit_seconds", f"between 1 and {v.settings.max_time_limit_s}")
    language = v.text(t.language or "en-US", "template.language", max_chars=35)
    if not set(language) <= _LANGUAGE_CHARS:
        raise invalid("template.language", "a BCP 47 tag such as en-US")
    voice = v.text(t.voice or "alloy", "template.voice", max_chars=64)
    instructions = v.long_text(t.instructions, "template.instructions")
    return TemplateFields(role, questions, t.time_limit_seconds, language, voice, instructions)


class TemplateServicer(rpc.TemplateServiceServicer):
    def __init__(self, ctx: ControlContext) -> None:
        self.ctx = ctx
        self.gate = ctx.gate

    @unary
    async def CreateTemplate(self, request: api.CreateTemplateRequest, call: Call) -> pb.Template:
        tenant_id = tenant_scope(call.principal, request.tenant_id)
        if not request.HasField("template"):
            raise invalid("template", "required")
        f = validate_template(self.ctx.validator, request.template)
        key = self.ctx.validator.idempotency_key(request.idempotency_key)
        async with self.ctx.db.transaction(tenant_id, timeout_s=call.time_left()) as conn:
            replay = await self.ctx.idempotency.replay(conn, tenant_id, "CreateTemplate", key, request, pb.Template)
            if replay is not None:
                return replay
            row = await conn.fetchrow(
                "INSERT INTO templates (tenant_id, role, questions, time_limit_seconds, language, voice,"
                " instructions) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
                tenant_id, f.role, f.questions, f.time_limit_seconds, f.language, f.voice, f.instructions)
            template = convert.template(row)
            await self.ctx.idempotency.record(conn, tenant_id, "CreateTemplate", key, template)
        return template

    @unary
    async def GetTemplate(self, request: api.GetTemplateRequest, call: Call) -> pb.Template:
        tenant_id = tenant_scope(call.principal, request.tenant_id)
        template_id = self.ctx.validator.id(request.template_id, "template_id")
        async with self.ctx.db.transaction(tenant_id, timeout_s=call.time_left()) as conn:
            row = await conn.fetchrow("SELECT * FROM templates WHERE id = $1", template_id)
        if row is None:
            raise not_found("template")
        return convert.template(row)

    @unary
    async def ListTemplates(self, request: api.ListTemplatesRequest, call: Call) -> api.ListTemplatesResponse:
        tenant_id = tenant_scope(call.principal, request.tenant_id)
        size = self.ctx.validator.page_size(request.page_size)
        cursor = decode(request.page_token, ["templates"])
        async with self.ctx.db.transaction(tenant_id, timeout_s=call.time_left()) as conn:
            rows = await conn.fetch(
                "SELECT * FROM templates WHERE ($1::timestamptz IS NULL OR (created_at, id) > ($1, $2))"
                " ORDER BY created_at, id LIMIT $3",
                cursor.created_at if cursor else None, cursor.id if cursor else None, size + 1)
        page, token = next_token(rows, size, ["templates"])
        return api.ListTemplatesResponse(templates=[convert.template(r) for r in page], next_page_token=token)

    @unary
    async def UpdateTemplate(self, request: api.UpdateTemplateRequest, call: Call) -> pb.Template:
        tenant_id = tenant_scope(call.principal, request.tenant_id)
        if not request.HasField("template"):
            raise invalid("template", "required")
        template_id = self.ctx.validator.id(request.template.id, "template.id")
        paths = list(request.update_mask.paths) or list(UPDATABLE)
        for path in paths:
            if path not in UPDATABLE:
                raise invalid("update_mask", f"cannot update {path!r}")
        async with self.ctx.db.transaction(tenant_id, timeout_s=call.time_left()) as conn:
            current = await conn.fetchrow("SELECT * FROM templates WHERE id = $1 FOR UPDATE", template_id)
            if current is None:
                raise not_found("template")
            merged = convert.template(current)
            for path in paths:
                if path == "questions":
                    del merged.questions[:]
                    merged.questions.extend(request.template.questions)
                else:
                    setattr(merged, path, getattr(request.template, path))
            f = validate_template(self.ctx.validator, merged)
            row = await conn.fetchrow(
                "UPDATE templates SET role = $2, questions = $3, time_limit_seconds = $4, language = $5,"
                " voice = $6, instructions = $7, version = version + 1, updated_at = now()"
                " WHERE id = $1 RETURNING *",
                template_id, f.role, f.questions, f.time_limit_seconds, f.language, f.voice, f.instructions)
        return convert.template(row)
