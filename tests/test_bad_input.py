"""Bad input on every RPC of the control plane.

Each bad request is refused with the right gRPC status and the stable error code in the trailing
metadata (`interview-error-code`); no call ever ends UNKNOWN (every call in this file goes through
`invoke`, which asserts it); and a refused request changes nothing.

Most cases are rows of the tables below (caller, RPC, request, expected status and code), run
against one shared tenant whose state the refused requests must not change. Cases that need state
of their own (expired, revoked and used invitations, session transitions, transcript sequences,
idempotency) have their own tests further down.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from control.server import RunningControl
from interview.v1 import candidate_service_pb2 as cand
from interview.v1 import invitation_service_pb2 as inv
from interview.v1 import outbox_service_pb2 as box
from interview.v1 import resources_pb2 as pb
from interview.v1 import session_service_pb2 as sess
from interview.v1 import template_service_pb2 as tmpl
from interview.v1 import tenant_service_pb2 as ten
from interview_core.config import Settings
from interview_core.errors import ErrorCode, PlatformError
from tests.conftest import Api, Database, TenantWorld, bearer, error_code_of, make_tenant

S = grpc.StatusCode
Expected = tuple[grpc.StatusCode, str]

INVALID: Expected = (S.INVALID_ARGUMENT, "INVALID_ARGUMENT")
BAD_PAGE_TOKEN: Expected = (S.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")
NOT_FOUND: Expected = (S.NOT_FOUND, "NOT_FOUND")
DENIED: Expected = (S.PERMISSION_DENIED, "PERMISSION_DENIED")
UNAUTHENTICATED: Expected = (S.UNAUTHENTICATED, "UNAUTHENTICATED")
EXISTS: Expected = (S.ALREADY_EXISTS, "ALREADY_EXISTS")
KEY_REUSED: Expected = (S.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
INVALID_STATE: Expected = (S.FAILED_PRECONDITION, "INVALID_STATE")
EXPIRED: Expected = (S.FAILED_PRECONDITION, "INVITATION_EXPIRED")
REVOKED: Expected = (S.FAILED_PRECONDITION, "INVITATION_REVOKED")
USED: Expected = (S.FAILED_PRECONDITION, "INVITATION_USED")

MALFORMED_ID = "not-a-uuid"
UNKNOWN_ID = "6f1c1f0e-1d2b-4c3a-8e9f-000000000001"
LIMITS = Settings()
MAX_PAGE_SIZE = LIMITS.max_page_size
STREAM_TIMEOUT_S = 5.0

SERVICES: dict[str, Any] = {
    "tenants": ten.DESCRIPTOR.services_by_name["TenantService"],
    "templates": tmpl.DESCRIPTOR.services_by_name["TemplateService"],
    "candidates": cand.DESCRIPTOR.services_by_name["CandidateService"],
    "invitations": inv.DESCRIPTOR.services_by_name["InvitationService"],
    "sessions": sess.DESCRIPTOR.services_by_name["SessionService"],
    "outbox": box.DESCRIPTOR.services_by_name["OutboxService"],
}
MODULES: dict[str, Any] = {"tenants": ten, "templates": tmpl, "candidates": cand, "invitations": inv,
                           "sessions": sess, "outbox": box}
ALL_RPCS = [f"{attr}.{m.name}" for attr, svc in SERVICES.items() for m in svc.methods]


def empty_request(rpc: str) -> Message:
    attr, name = rpc.split(".")
    return getattr(MODULES[attr], SERVICES[attr].methods_by_name[name].input_type.name)()  # type: ignore[no-any-return]


def is_streaming(rpc: str) -> bool:
    attr, name = rpc.split(".")
    return bool(SERVICES[attr].methods_by_name[name].server_streaming)


# --- calling -----------------------------------------------------------------------------------


async def invoke(api: Api, rpc: str, request: Message, *, metadata: Any = None, deadline_s: float | None = None) -> Any:
    """Every call in this file goes through here: whatever the outcome, it is never UNKNOWN.

    A server-streaming call returns the list of its messages.
    """
    attr, name = rpc.split(".")
    method = getattr(getattr(api, attr), name)
    md = api.md if metadata is None else metadata
    try:
        if is_streaming(rpc):  # a stream wrongly accepted would run on: bound it
            return [m async for m in method(request, metadata=md, timeout=deadline_s or STREAM_TIMEOUT_S)]
        return await method(request, metadata=md, timeout=deadline_s)
    except grpc.aio.AioRpcError as exc:
        assert exc.code() != S.UNKNOWN, f"{rpc} ended UNKNOWN: {exc.details()}"
        raise


async def expect(api: Api, rpc: str, request: Message, expected: Expected, *,
                 metadata: Any = None) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await invoke(api, rpc, request, metadata=metadata)
    err = info.value
    assert (err.code(), error_code_of(err)) == expected, f"{rpc}: {err.code()} {err.details()!r}"
    retryable = dict(err.trailing_metadata() or ()).get("interview-retryable")
    assert retryable == "false", f"{rpc}: interview-retryable={retryable!r} for a client error"
    return err


# --- one shared tenant for the tables -------------------------------------------------------------


def template(**changes: Any) -> pb.Template:
    fields: dict[str, Any] = dict(role="Engineer", questions=["Why us?"], time_limit_seconds=600,
                                  language="en-US", voice="alloy", instructions="Be kind.")
    fields.update(changes)
    return pb.Template(**fields)


def item(sequence: int = 1, **changes: Any) -> pb.TranscriptItem:
    fields: dict[str, Any] = dict(sequence=sequence, speaker=pb.SPEAKER_CANDIDATE, text=f"turn {sequence}",
                                  audio_start_ms=sequence * 1000, audio_end_ms=sequence * 1000 + 500)
    fields.update(changes)
    return pb.TranscriptItem(**fields)


def new_email() -> str:
    return f"bad-input-{uuid.uuid4().hex[:10]}@example.com"


async def invite(world: TenantWorld, candidate_id: str = "") -> inv.CreateInvitationResponse:
    return await invoke(world.api, "invitations.CreateInvitation", inv.CreateInvitationRequest(
        candidate_id=candidate_id or world.candidate.id, template_id=world.template.id))  # type: ignore[no-any-return]


async def redeem(service: Api, token: str, user_id: str = "") -> inv.RedeemInvitationResponse:
    return await invoke(service, "invitations.RedeemInvitation",  # type: ignore[no-any-return]
                        inv.RedeemInvitationRequest(token=token, user_id=user_id))


async def new_session(world: TenantWorld, service: Api, candidate_id: str = "") -> pb.Session:
    return (await redeem(service, (await invite(world, candidate_id)).token)).session


async def set_status(service: Api, session_id: str, status: int) -> pb.Session:
    return await invoke(service, "sessions.UpdateSessionStatus",  # type: ignore[no-any-return]
                        sess.UpdateSessionStatusRequest(session_id=session_id, status=status))


async def transcript(api: Api, session_id: str) -> list[tuple[int, str]]:
    got = await invoke(api, "sessions.GetTranscript", sess.GetTranscriptRequest(session_id=session_id))
    return [(i.sequence, i.text) for i in got.items]


@dataclass
class Ctx:
    admin: Api
    service: Api
    world: TenantWorld
    other: TenantWorld
    invitation: inv.CreateInvitationResponse  # pending, never redeemed
    session: pb.Session  # ready, no transcript
    other_session: pb.Session
    other_api_key_id: str
    lab: TenantWorld  # for the tests below the tables that make sessions of their own

    def caller(self, who: str) -> Api:
        return {"tenant": self.world.api, "other": self.other.api, "admin": self.admin,
                "service": self.service}[who]


@pytest.fixture(scope="module")
async def ctx(admin: Api, service: Api) -> Ctx:
    world, other = await make_tenant(admin), await make_tenant(admin)
    other_key = await invoke(admin, "tenants.CreateApiKey", ten.CreateApiKeyRequest(tenant_id=other.tenant.id))
    return Ctx(admin, service, world, other, await invite(world), await new_session(world, service),
               await new_session(other, service), other_key.api_key.id, await make_tenant(admin))


@pytest.fixture
async def owner_conn(database: Database) -> Any:
    conn = await asyncpg.connect(database.owner_dsn)
    try:
        yield conn
    finally:
        await conn.close()


# --- the tables: one row per bad request ----------------------------------------------------------

Make = Callable[[Ctx], Message]


def case(id: str, caller: str, rpc: str, make: Make, expected: Expected) -> Any:
    return pytest.param(caller, rpc, make, expected, id=id)


LONG_EMAIL = "a" * 64 + "@" + ".".join(["b" * 63] * 3) + ".com"  # 260 characters
BAD_EMAILS = ["plainaddress", "a@b", "@example.com", "a@", "a@@example.com", "a b@example.com",
              "a@example..com", "a@-example.com", "a@exa_mple.com", "a" * 65 + "@example.com", LONG_EMAIL,
              "a\x00b@example.com", "a@example.com, b@example.com"]

TENANT_CASES = [
    case("create-no-name", "admin", "tenants.CreateTenant", lambda c: ten.CreateTenantRequest(), INVALID),
    case("create-blank-name", "admin", "tenants.CreateTenant",
         lambda c: ten.CreateTenantRequest(display_name="   "), INVALID),
    case("create-name-201", "admin", "tenants.CreateTenant",
         lambda c: ten.CreateTenantRequest(display_name="x" * 201), INVALID),
    case("create-name-control-char", "admin", "tenants.CreateTenant",
         lambda c: ten.CreateTenantRequest(display_name="Acme\x00Corp"), INVALID),
    case("create-name-newline", "admin", "tenants.CreateTenant",
         lambda c: ten.CreateTenantRequest(display_name="Acme\nCorp"), INVALID),
    case("create-as-tenant", "tenant", "tenants.CreateTenant",
         lambda c: ten.CreateTenantRequest(display_name="Acme"), DENIED),
    case("create-as-service", "service", "tenants.CreateTenant",
         lambda c: ten.CreateTenantRequest(display_name="Acme"), DENIED),
    case("get-admin-no-id", "admin", "tenants.GetTenant", lambda c: ten.GetTenantRequest(), INVALID),
    case("get-admin-malformed-id", "admin", "tenants.GetTenant",
         lambda c: ten.GetTenantRequest(tenant_id=MALFORMED_ID), INVALID),
    case("get-admin-unknown-id", "admin", "tenants.GetTenant",
         lambda c: ten.GetTenantRequest(tenant_id=UNKNOWN_ID), NOT_FOUND),
    case("get-tenant-malformed-id", "tenant", "tenants.GetTenant",
         lambda c: ten.GetTenantRequest(tenant_id=MALFORMED_ID), INVALID),
    case("get-other-tenant", "tenant", "tenants.GetTenant",
         lambda c: ten.GetTenantRequest(tenant_id=c.other.tenant.id), DENIED),
    case("get-as-service", "service", "tenants.GetTenant",
         lambda c: ten.GetTenantRequest(tenant_id=c.world.tenant.id), DENIED),
    case("list-as-tenant", "tenant", "tenants.ListTenants", lambda c: ten.ListTenantsRequest(), DENIED),
    case("list-as-service", "service", "tenants.ListTenants", lambda c: ten.ListTenantsRequest(), DENIED),
    case("key-admin-no-tenant", "admin", "tenants.CreateApiKey", lambda c: ten.CreateApiKeyRequest(), INVALID),
    case("key-admin-malformed-tenant", "admin", "tenants.CreateApiKey",
         lambda c: ten.CreateApiKeyRequest(tenant_id=MALFORMED_ID), INVALID),
    case("key-admin-unknown-tenant", "admin", "tenants.CreateApiKey",
         lambda c: ten.CreateApiKeyRequest(tenant_id=UNKNOWN_ID), NOT_FOUND),
    case("key-name-201", "tenant", "tenants.CreateApiKey",
         lambda c: ten.CreateApiKeyRequest(display_name="k" * 201), INVALID),
    case("key-name-control-char", "tenant", "tenants.CreateApiKey",
         lambda c: ten.CreateApiKeyRequest(display_name="k\x07"), INVALID),
    case("key-other-tenant", "tenant", "tenants.CreateApiKey",
         lambda c: ten.CreateApiKeyRequest(tenant_id=c.other.tenant.id), DENIED),
    case("key-as-service", "service", "tenants.CreateApiKey",
         lambda c: ten.CreateApiKeyRequest(tenant_id=c.world.tenant.id), DENIED),
    case("revoke-no-id", "tenant", "tenants.RevokeApiKey", lambda c: ten.RevokeApiKeyRequest(), INVALID),
    case("revoke-malformed-id", "tenant", "tenants.RevokeApiKey",
         lambda c: ten.RevokeApiKeyRequest(api_key_id=MALFORMED_ID), INVALID),
    case("revoke-unknown-id", "tenant", "tenants.RevokeApiKey",
         lambda c: ten.RevokeApiKeyRequest(api_key_id=UNKNOWN_ID), NOT_FOUND),
    case("revoke-other-tenants-key", "tenant", "tenants.RevokeApiKey",
         lambda c: ten.RevokeApiKeyRequest(api_key_id=c.other_api_key_id), NOT_FOUND),
    case("revoke-other-tenants-key-named", "tenant", "tenants.RevokeApiKey",
         lambda c: ten.RevokeApiKeyRequest(tenant_id=c.other.tenant.id, api_key_id=c.other_api_key_id), DENIED),
    case("revoke-admin-no-tenant", "admin", "tenants.RevokeApiKey",
         lambda c: ten.RevokeApiKeyRequest(api_key_id=c.other_api_key_id), INVALID),
    case("revoke-admin-wrong-tenant", "admin", "tenants.RevokeApiKey",
         lambda c: ten.RevokeApiKeyRequest(tenant_id=c.world.tenant.id, api_key_id=c.other_api_key_id), NOT_FOUND),
    case("revoke-as-service", "service", "tenants.RevokeApiKey",
         lambda c: ten.RevokeApiKeyRequest(api_key_id=c.other_api_key_id), DENIED),
]

TEMPLATE_CASES = [
    case("create-no-template", "tenant", "templates.CreateTemplate", lambda c: tmpl.CreateTemplateRequest(), INVALID),
    *[case(f"create-{name}", "tenant", "templates.CreateTemplate",
           lambda c, bad=bad: tmpl.CreateTemplateRequest(template=template(**bad)), INVALID)
      for name, bad in {
          "no-role": {"role": ""}, "blank-role": {"role": " \t "}, "role-201": {"role": "r" * 201},
          "role-newline": {"role": "Backend\nEngineer"}, "no-questions": {"questions": []},
          "101-questions": {"questions": ["Q?"] * (LIMITS.max_questions + 1)},
          "empty-question": {"questions": ["Why?", ""]}, "question-2001": {"questions": ["q" * 2001]},
          "question-nul": {"questions": ["Why\x00?"]}, "no-time-limit": {"time_limit_seconds": 0},
          "negative-time-limit": {"time_limit_seconds": -60},
          "time-limit-too-long": {"time_limit_seconds": LIMITS.max_time_limit_s + 1},
          "language-underscore": {"language": "en_US"}, "language-spaces": {"language": "en US"},
          "language-36": {"language": "a" * 36}, "voice-65": {"voice": "v" * 65},
          "voice-control-char": {"voice": "al\x1bloy"},
          "instructions-20001": {"instructions": "i" * (LIMITS.max_long_text_chars + 1)},
          "instructions-control-char": {"instructions": "Be kind.\x01"},
      }.items()],
    case("create-admin-no-tenant", "admin", "templates.CreateTemplate",
         lambda c: tmpl.CreateTemplateRequest(template=template()), INVALID),
    case("create-admin-malformed-tenant", "admin", "templates.CreateTemplate",
         lambda c: tmpl.CreateTemplateRequest(tenant_id=MALFORMED_ID, template=template()), INVALID),
    case("create-other-tenant", "tenant", "templates.CreateTemplate",
         lambda c: tmpl.CreateTemplateRequest(tenant_id=c.other.tenant.id, template=template()), DENIED),
    case("create-malformed-tenant", "tenant", "templates.CreateTemplate",
         lambda c: tmpl.CreateTemplateRequest(tenant_id=MALFORMED_ID, template=template()), INVALID),
    case("create-as-service", "service", "templates.CreateTemplate",
         lambda c: tmpl.CreateTemplateRequest(tenant_id=c.world.tenant.id, template=template()), DENIED),
    case("get-no-id", "tenant", "templates.GetTemplate", lambda c: tmpl.GetTemplateRequest(), INVALID),
    case("get-malformed-id", "tenant", "templates.GetTemplate",
         lambda c: tmpl.GetTemplateRequest(template_id=MALFORMED_ID), INVALID),
    case("get-unknown-id", "tenant", "templates.GetTemplate",
         lambda c: tmpl.GetTemplateRequest(template_id=UNKNOWN_ID), NOT_FOUND),
    case("get-other-tenants", "tenant", "templates.GetTemplate",
         lambda c: tmpl.GetTemplateRequest(template_id=c.other.template.id), NOT_FOUND),
    case("list-other-tenant", "tenant", "templates.ListTemplates",
         lambda c: tmpl.ListTemplatesRequest(tenant_id=c.other.tenant.id), DENIED),
    case("list-as-service", "service", "templates.ListTemplates",
         lambda c: tmpl.ListTemplatesRequest(tenant_id=c.world.tenant.id), DENIED),
    case("update-no-template", "tenant", "templates.UpdateTemplate", lambda c: tmpl.UpdateTemplateRequest(), INVALID),
    case("update-no-id", "tenant", "templates.UpdateTemplate",
         lambda c: tmpl.UpdateTemplateRequest(template=template()), INVALID),
    case("update-malformed-id", "tenant", "templates.UpdateTemplate",
         lambda c: tmpl.UpdateTemplateRequest(template=template(id=MALFORMED_ID)), INVALID),
    case("update-unknown-id", "tenant", "templates.UpdateTemplate",
         lambda c: tmpl.UpdateTemplateRequest(template=template(id=UNKNOWN_ID)), NOT_FOUND),
    case("update-other-tenants", "tenant", "templates.UpdateTemplate",
         lambda c: tmpl.UpdateTemplateRequest(template=template(id=c.other.template.id)), NOT_FOUND),
    *[case(f"update-mask-{path}", "tenant", "templates.UpdateTemplate",
           lambda c, path=path: tmpl.UpdateTemplateRequest(
               template=template(id=c.world.template.id), update_mask=FieldMask(paths=["role", path])), INVALID)
      for path in ("id", "tenant_id", "version", "create_time", "nonsense", "template.role", "")],
    case("update-role-blank", "tenant", "templates.UpdateTemplate",
         lambda c: tmpl.UpdateTemplateRequest(template=pb.Template(id=c.world.template.id),
                                              update_mask=FieldMask(paths=["role"])), INVALID),
    case("update-no-mask-all-cleared", "tenant", "templates.UpdateTemplate",
         lambda c: tmpl.UpdateTemplateRequest(template=pb.Template(id=c.world.template.id)), INVALID),
    case("update-time-limit-zero", "tenant", "templates.UpdateTemplate",
         lambda c: tmpl.UpdateTemplateRequest(template=template(id=c.world.template.id, time_limit_seconds=0),
                                              update_mask=FieldMask(paths=["time_limit_seconds"])), INVALID),
    case("update-101-questions", "tenant", "templates.UpdateTemplate",
         lambda c: tmpl.UpdateTemplateRequest(template=template(id=c.world.template.id, questions=["Q?"] * 101),
                                              update_mask=FieldMask(paths=["questions"])), INVALID),
    case("update-as-service", "service", "templates.UpdateTemplate",
         lambda c: tmpl.UpdateTemplateRequest(tenant_id=c.world.tenant.id, template=template(id=c.world.template.id)),
         DENIED),
]

CANDIDATE_CASES = [
    case("upsert-nothing", "tenant", "candidates.UpsertCandidate", lambda c: cand.UpsertCandidateRequest(), INVALID),
    case("upsert-name-only", "tenant", "candidates.UpsertCandidate",
         lambda c: cand.UpsertCandidateRequest(full_name="Ada"), INVALID),
    *[case(f"upsert-bad-email-{i}", "tenant", "candidates.UpsertCandidate",
           lambda c, email=email: cand.UpsertCandidateRequest(email=email, full_name="Ada"), INVALID)
      for i, email in enumerate(BAD_EMAILS)],
    case("upsert-external-id-201", "tenant", "candidates.UpsertCandidate",
         lambda c: cand.UpsertCandidateRequest(email=new_email(), external_id="e" * 201), INVALID),
    case("upsert-full-name-201", "tenant", "candidates.UpsertCandidate",
         lambda c: cand.UpsertCandidateRequest(email=new_email(), full_name="n" * 201), INVALID),
    case("upsert-full-name-control-char", "tenant", "candidates.UpsertCandidate",
         lambda c: cand.UpsertCandidateRequest(email=new_email(), full_name="Ada\x7f"), INVALID),
    case("upsert-unknown-external-id-no-email", "tenant", "candidates.UpsertCandidate",
         lambda c: cand.UpsertCandidateRequest(external_id="no-such-external-id"), INVALID),
    case("upsert-external-id-of-another-candidate", "tenant", "candidates.UpsertCandidate",
         lambda c: cand.UpsertCandidateRequest(email=new_email(), external_id=c.world.candidate.external_id), EXISTS),
    case("upsert-other-tenant", "tenant", "candidates.UpsertCandidate",
         lambda c: cand.UpsertCandidateRequest(tenant_id=c.other.tenant.id, email=new_email()), DENIED),
    case("upsert-admin-no-tenant", "admin", "candidates.UpsertCandidate",
         lambda c: cand.UpsertCandidateRequest(email=new_email()), INVALID),
    case("upsert-as-service", "service", "candidates.UpsertCandidate",
         lambda c: cand.UpsertCandidateRequest(tenant_id=c.world.tenant.id, email=new_email()), DENIED),
    case("get-no-id", "tenant", "candidates.GetCandidate", lambda c: cand.GetCandidateRequest(), INVALID),
    case("get-malformed-id", "tenant", "candidates.GetCandidate",
         lambda c: cand.GetCandidateRequest(candidate_id=MALFORMED_ID), INVALID),
    case("get-unknown-id", "tenant", "candidates.GetCandidate",
         lambda c: cand.GetCandidateRequest(candidate_id=UNKNOWN_ID), NOT_FOUND),
    case("get-other-tenants", "tenant", "candidates.GetCandidate",
         lambda c: cand.GetCandidateRequest(candidate_id=c.other.candidate.id), NOT_FOUND),
    case("list-other-tenant", "tenant", "candidates.ListCandidates",
         lambda c: cand.ListCandidatesRequest(tenant_id=c.other.tenant.id), DENIED),
    case("list-as-service", "service", "candidates.ListCandidates",
         lambda c: cand.ListCandidatesRequest(tenant_id=c.world.tenant.id), DENIED),
]


def create_invitation(c: Ctx, **changes: Any) -> inv.CreateInvitationRequest:
    fields: dict[str, Any] = dict(candidate_id=c.world.candidate.id, template_id=c.world.template.id)
    fields.update(changes)
    return inv.CreateInvitationRequest(**fields)


INVITATION_CASES = [
    case("create-no-candidate", "tenant", "invitations.CreateInvitation",
         lambda c: create_invitation(c, candidate_id=""), INVALID),
    case("create-malformed-candidate", "tenant", "invitations.CreateInvitation",
         lambda c: create_invitation(c, candidate_id=MALFORMED_ID), INVALID),
    case("create-unknown-candidate", "tenant", "invitations.CreateInvitation",
         lambda c: create_invitation(c, candidate_id=UNKNOWN_ID), NOT_FOUND),
    case("create-other-tenants-candidate", "tenant", "invitations.CreateInvitation",
         lambda c: create_invitation(c, candidate_id=c.other.candidate.id), NOT_FOUND),
    case("create-no-template", "tenant", "invitations.CreateInvitation",
         lambda c: create_invitation(c, template_id=""), INVALID),
    case("create-malformed-template", "tenant", "invitations.CreateInvitation",
         lambda c: create_invitation(c, template_id=MALFORMED_ID), INVALID),
    case("create-unknown-template", "tenant", "invitations.CreateInvitation",
         lambda c: create_invitation(c, template_id=UNKNOWN_ID), NOT_FOUND),
    case("create-other-tenants-template", "tenant", "invitations.CreateInvitation",
         lambda c: create_invitation(c, template_id=c.other.template.id), NOT_FOUND),
    *[case(f"create-ttl-{name}", "tenant", "invitations.CreateInvitation",
           lambda c, ttl=ttl: create_invitation(c, ttl=ttl), INVALID)
      for name, ttl in {"zero": Duration(), "59s": Duration(seconds=59),
                        "just-under-60s": Duration(seconds=59, nanos=999_999_999),
                        "negative": Duration(seconds=-3600),
                        "over-max": Duration(seconds=LIMITS.max_invitation_ttl_s + 1),
                        "huge": Duration(seconds=315_576_000_000)}.items()],
    case("create-other-tenant", "tenant", "invitations.CreateInvitation",
         lambda c: create_invitation(c, tenant_id=c.other.tenant.id), DENIED),
    case("create-as-service", "service", "invitations.CreateInvitation",
         lambda c: create_invitation(c, tenant_id=c.world.tenant.id), DENIED),
    case("get-no-id", "tenant", "invitations.GetInvitation", lambda c: inv.GetInvitationRequest(), INVALID),
    case("get-malformed-id", "tenant", "invitations.GetInvitation",
         lambda c: inv.GetInvitationRequest(invitation_id=MALFORMED_ID), INVALID),
    case("get-unknown-id", "tenant", "invitations.GetInvitation",
         lambda c: inv.GetInvitationRequest(invitation_id=UNKNOWN_ID), NOT_FOUND),
    case("get-other-tenants", "other", "invitations.GetInvitation",
         lambda c: inv.GetInvitationRequest(invitation_id=c.invitation.invitation.id), NOT_FOUND),
    case("list-malformed-candidate-filter", "tenant", "invitations.ListInvitations",
         lambda c: inv.ListInvitationsRequest(candidate_id=MALFORMED_ID), INVALID),
    case("list-as-service", "service", "invitations.ListInvitations",
         lambda c: inv.ListInvitationsRequest(tenant_id=c.world.tenant.id), DENIED),
    case("revoke-no-id", "tenant", "invitations.RevokeInvitation", lambda c: inv.RevokeInvitationRequest(), INVALID),
    case("revoke-malformed-id", "tenant", "invitations.RevokeInvitation",
         lambda c: inv.RevokeInvitationRequest(invitation_id=MALFORMED_ID), INVALID),
    case("revoke-unknown-id", "tenant", "invitations.RevokeInvitation",
         lambda c: inv.RevokeInvitationRequest(invitation_id=UNKNOWN_ID), NOT_FOUND),
    case("revoke-other-tenants", "other", "invitations.RevokeInvitation",
         lambda c: inv.RevokeInvitationRequest(invitation_id=c.invitation.invitation.id), NOT_FOUND),
    case("revoke-as-service", "service", "invitations.RevokeInvitation",
         lambda c: inv.RevokeInvitationRequest(invitation_id=c.invitation.invitation.id), DENIED),
    case("resend-no-id", "tenant", "invitations.ResendInvitation", lambda c: inv.ResendInvitationRequest(), INVALID),
    case("resend-malformed-id", "tenant", "invitations.ResendInvitation",
         lambda c: inv.ResendInvitationRequest(invitation_id=MALFORMED_ID), INVALID),
    case("resend-unknown-id", "tenant", "invitations.ResendInvitation",
         lambda c: inv.ResendInvitationRequest(invitation_id=UNKNOWN_ID), NOT_FOUND),
    case("resend-other-tenants", "other", "invitations.ResendInvitation",
         lambda c: inv.ResendInvitationRequest(invitation_id=c.invitation.invitation.id), NOT_FOUND),
    case("resend-ttl-59s", "tenant", "invitations.ResendInvitation",
         lambda c: inv.ResendInvitationRequest(invitation_id=c.invitation.invitation.id, ttl=Duration(seconds=59)),
         INVALID),
    case("resend-ttl-over-max", "tenant", "invitations.ResendInvitation",
         lambda c: inv.ResendInvitationRequest(invitation_id=c.invitation.invitation.id,
                                               ttl=Duration(seconds=LIMITS.max_invitation_ttl_s + 1)), INVALID),
    case("resend-as-service", "service", "invitations.ResendInvitation",
         lambda c: inv.ResendInvitationRequest(invitation_id=c.invitation.invitation.id), DENIED),
    case("lookup-no-token", "service", "invitations.LookupInvitation",
         lambda c: inv.LookupInvitationRequest(), INVALID),
    case("lookup-token-257", "service", "invitations.LookupInvitation",
         lambda c: inv.LookupInvitationRequest(token="t" * 257), INVALID),
    case("lookup-unknown-token", "service", "invitations.LookupInvitation",
         lambda c: inv.LookupInvitationRequest(token="unknown-" + uuid.uuid4().hex), NOT_FOUND),
    case("lookup-token-256-unknown", "service", "invitations.LookupInvitation",
         lambda c: inv.LookupInvitationRequest(token="t" * 256), NOT_FOUND),
    case("lookup-as-tenant", "tenant", "invitations.LookupInvitation",
         lambda c: inv.LookupInvitationRequest(token=c.invitation.token), DENIED),
    case("lookup-as-admin", "admin", "invitations.LookupInvitation",
         lambda c: inv.LookupInvitationRequest(token=c.invitation.token), DENIED),
    case("redeem-no-token", "service", "invitations.RedeemInvitation",
         lambda c: inv.RedeemInvitationRequest(), INVALID),
    case("redeem-token-257", "service", "invitations.RedeemInvitation",
         lambda c: inv.RedeemInvitationRequest(token="t" * 257), INVALID),
    case("redeem-unknown-token", "service", "invitations.RedeemInvitation",
         lambda c: inv.RedeemInvitationRequest(token="unknown-" + uuid.uuid4().hex), NOT_FOUND),
    case("redeem-malformed-user", "service", "invitations.RedeemInvitation",
         lambda c: inv.RedeemInvitationRequest(token=c.invitation.token, user_id=MALFORMED_ID), INVALID),
    case("redeem-unknown-user", "service", "invitations.RedeemInvitation",
         lambda c: inv.RedeemInvitationRequest(token=c.invitation.token, user_id=UNKNOWN_ID), NOT_FOUND),
    case("redeem-as-tenant", "tenant", "invitations.RedeemInvitation",
         lambda c: inv.RedeemInvitationRequest(token=c.invitation.token), DENIED),
    case("redeem-as-admin", "admin", "invitations.RedeemInvitation",
         lambda c: inv.RedeemInvitationRequest(token=c.invitation.token), DENIED),
]


def append(c: Ctx, *items: pb.TranscriptItem, session_id: str | None = None) -> sess.AppendTranscriptItemsRequest:
    return sess.AppendTranscriptItemsRequest(session_id=c.session.id if session_id is None else session_id,
                                             items=list(items))


SESSION_CASES = [
    case("get-no-id", "tenant", "sessions.GetSession", lambda c: sess.GetSessionRequest(), INVALID),
    case("get-malformed-id", "tenant", "sessions.GetSession",
         lambda c: sess.GetSessionRequest(session_id=MALFORMED_ID), INVALID),
    case("get-unknown-id", "tenant", "sessions.GetSession",
         lambda c: sess.GetSessionRequest(session_id=UNKNOWN_ID), NOT_FOUND),
    case("get-unknown-id-service", "service", "sessions.GetSession",
         lambda c: sess.GetSessionRequest(session_id=UNKNOWN_ID), NOT_FOUND),
    case("get-other-tenants", "tenant", "sessions.GetSession",
         lambda c: sess.GetSessionRequest(session_id=c.other_session.id), NOT_FOUND),
    case("get-other-tenant-named", "tenant", "sessions.GetSession",
         lambda c: sess.GetSessionRequest(tenant_id=c.other.tenant.id, session_id=c.other_session.id), DENIED),
    case("list-malformed-candidate-filter", "tenant", "sessions.ListSessions",
         lambda c: sess.ListSessionsRequest(candidate_id=MALFORMED_ID), INVALID),
    case("list-unknown-status", "tenant", "sessions.ListSessions",
         lambda c: sess.ListSessionsRequest(status=99), INVALID),  # type: ignore[arg-type]
    case("list-negative-status", "tenant", "sessions.ListSessions",
         lambda c: sess.ListSessionsRequest(status=-1), INVALID),  # type: ignore[arg-type]
    case("list-created-after-out-of-range", "tenant", "sessions.ListSessions",
         lambda c: sess.ListSessionsRequest(created_after=Timestamp(seconds=10**12)), INVALID),
    case("list-created-before-bad-nanos", "tenant", "sessions.ListSessions",
         lambda c: sess.ListSessionsRequest(created_before=Timestamp(seconds=0, nanos=-1)), INVALID),
    case("list-as-service", "service", "sessions.ListSessions",
         lambda c: sess.ListSessionsRequest(tenant_id=c.world.tenant.id), DENIED),
    case("transcript-no-id", "tenant", "sessions.GetTranscript", lambda c: sess.GetTranscriptRequest(), INVALID),
    case("transcript-malformed-id", "tenant", "sessions.GetTranscript",
         lambda c: sess.GetTranscriptRequest(session_id=MALFORMED_ID), INVALID),
    case("transcript-unknown-id", "tenant", "sessions.GetTranscript",
         lambda c: sess.GetTranscriptRequest(session_id=UNKNOWN_ID), NOT_FOUND),
    case("transcript-other-tenants", "tenant", "sessions.GetTranscript",
         lambda c: sess.GetTranscriptRequest(session_id=c.other_session.id), NOT_FOUND),
    case("transcript-negative-after", "tenant", "sessions.GetTranscript",
         lambda c: sess.GetTranscriptRequest(session_id=c.session.id, after_sequence=-1), INVALID),
    case("watch-no-id", "tenant", "sessions.WatchSession", lambda c: sess.WatchSessionRequest(), INVALID),
    case("watch-malformed-id", "tenant", "sessions.WatchSession",
         lambda c: sess.WatchSessionRequest(session_id=MALFORMED_ID), INVALID),
    case("watch-unknown-id", "tenant", "sessions.WatchSession",
         lambda c: sess.WatchSessionRequest(session_id=UNKNOWN_ID), NOT_FOUND),
    case("watch-other-tenants", "tenant", "sessions.WatchSession",
         lambda c: sess.WatchSessionRequest(session_id=c.other_session.id), NOT_FOUND),
    case("watch-negative-after", "tenant", "sessions.WatchSession",
         lambda c: sess.WatchSessionRequest(session_id=c.session.id, after_sequence=-1), INVALID),
    case("watch-other-tenant-named", "tenant", "sessions.WatchSession",
         lambda c: sess.WatchSessionRequest(tenant_id=c.other.tenant.id, session_id=c.other_session.id), DENIED),
    case("watch-unknown-id-service", "service", "sessions.WatchSession",
         lambda c: sess.WatchSessionRequest(session_id=UNKNOWN_ID), NOT_FOUND),
    case("watch-negative-after-service", "service", "sessions.WatchSession",
         lambda c: sess.WatchSessionRequest(session_id=c.session.id, after_sequence=-1), INVALID),
    case("end-no-id", "tenant", "sessions.EndSession", lambda c: sess.EndSessionRequest(), INVALID),
    case("end-malformed-id", "tenant", "sessions.EndSession",
         lambda c: sess.EndSessionRequest(session_id=MALFORMED_ID), INVALID),
    case("end-unknown-id", "tenant", "sessions.EndSession",
         lambda c: sess.EndSessionRequest(session_id=UNKNOWN_ID), NOT_FOUND),
    case("end-other-tenants", "tenant", "sessions.EndSession",
         lambda c: sess.EndSessionRequest(session_id=c.other_session.id), NOT_FOUND),
    case("end-other-tenant-named", "tenant", "sessions.EndSession",
         lambda c: sess.EndSessionRequest(tenant_id=c.other.tenant.id, session_id=c.other_session.id), DENIED),
    case("end-reason-501", "tenant", "sessions.EndSession",
         lambda c: sess.EndSessionRequest(session_id=c.session.id, reason="r" * 501), INVALID),
    case("end-reason-control-char", "tenant", "sessions.EndSession",
         lambda c: sess.EndSessionRequest(session_id=c.session.id, reason="bye\x1b[2J"), INVALID),
    case("end-admin-no-tenant", "admin", "sessions.EndSession",
         lambda c: sess.EndSessionRequest(session_id=c.session.id), INVALID),
    case("end-as-service", "service", "sessions.EndSession",
         lambda c: sess.EndSessionRequest(session_id=c.session.id), DENIED),
    case("status-no-id", "service", "sessions.UpdateSessionStatus",
         lambda c: sess.UpdateSessionStatusRequest(status=pb.SESSION_STATUS_IN_PROGRESS), INVALID),
    case("status-malformed-id", "service", "sessions.UpdateSessionStatus",
         lambda c: sess.UpdateSessionStatusRequest(session_id=MALFORMED_ID, status=pb.SESSION_STATUS_IN_PROGRESS),
         INVALID),
    case("status-unknown-id", "service", "sessions.UpdateSessionStatus",
         lambda c: sess.UpdateSessionStatusRequest(session_id=UNKNOWN_ID, status=pb.SESSION_STATUS_IN_PROGRESS),
         NOT_FOUND),
    case("status-unspecified", "service", "sessions.UpdateSessionStatus",
         lambda c: sess.UpdateSessionStatusRequest(session_id=c.session.id), INVALID),
    case("status-unknown-enum", "service", "sessions.UpdateSessionStatus",
         lambda c: sess.UpdateSessionStatusRequest(session_id=c.session.id, status=42), INVALID),  # type: ignore[arg-type]
    case("status-reason-501", "service", "sessions.UpdateSessionStatus",
         lambda c: sess.UpdateSessionStatusRequest(session_id=c.session.id, status=pb.SESSION_STATUS_ENDED,
                                                   reason="r" * 501), INVALID),
    case("status-reason-control-char", "service", "sessions.UpdateSessionStatus",
         lambda c: sess.UpdateSessionStatusRequest(session_id=c.session.id, status=pb.SESSION_STATUS_ENDED,
                                                   reason="done\x00"), INVALID),
    case("status-ready-to-completed", "service", "sessions.UpdateSessionStatus",
         lambda c: sess.UpdateSessionStatusRequest(session_id=c.session.id, status=pb.SESSION_STATUS_COMPLETED),
         INVALID_STATE),
    case("status-as-tenant", "tenant", "sessions.UpdateSessionStatus",
         lambda c: sess.UpdateSessionStatusRequest(session_id=c.session.id, status=pb.SESSION_STATUS_ENDED), DENIED),
    case("status-as-admin", "admin", "sessions.UpdateSessionStatus",
         lambda c: sess.UpdateSessionStatusRequest(session_id=c.session.id, status=pb.SESSION_STATUS_ENDED), DENIED),
    case("append-no-session", "service", "sessions.AppendTranscriptItems",
         lambda c: append(c, item(1), session_id=""), INVALID),
    case("append-malformed-session", "service", "sessions.AppendTranscriptItems",
         lambda c: append(c, item(1), session_id=MALFORMED_ID), INVALID),
    case("append-unknown-session", "service", "sessions.AppendTranscriptItems",
         lambda c: append(c, item(1), session_id=UNKNOWN_ID), NOT_FOUND),
    case("append-no-items", "service", "sessions.AppendTranscriptItems", lambda c: append(c), INVALID),
    case("append-101-items", "service", "sessions.AppendTranscriptItems",
         lambda c: append(c, *[item(n) for n in range(1, 102)]), INVALID),
    case("append-speaker-unspecified", "service", "sessions.AppendTranscriptItems",
         lambda c: append(c, item(1, speaker=pb.SPEAKER_UNSPECIFIED)), INVALID),
    case("append-speaker-unknown", "service", "sessions.AppendTranscriptItems",
         lambda c: append(c, item(1, speaker=7)), INVALID),
    case("append-sequence-zero", "service", "sessions.AppendTranscriptItems",
         lambda c: append(c, item(0)), INVALID),
    case("append-sequence-negative", "service", "sessions.AppendTranscriptItems",
         lambda c: append(c, item(-1)), INVALID),
    case("append-end-before-start", "service", "sessions.AppendTranscriptItems",
         lambda c: append(c, item(1, audio_start_ms=2000, audio_end_ms=1999)), INVALID),
    case("append-negative-start", "service", "sessions.AppendTranscriptItems",
         lambda c: append(c, item(1, audio_start_ms=-1, audio_end_ms=10)), INVALID),
    case("append-text-20001", "service", "sessions.AppendTranscriptItems",
         lambda c: append(c, item(1, text="t" * (LIMITS.max_long_text_chars + 1))), INVALID),
    case("append-text-nul", "service", "sessions.AppendTranscriptItems",
         lambda c: append(c, item(1, text="hello\x00")), INVALID),
    case("append-gap", "service", "sessions.AppendTranscriptItems", lambda c: append(c, item(2)), INVALID_STATE),
    case("append-as-tenant", "tenant", "sessions.AppendTranscriptItems", lambda c: append(c, item(1)), DENIED),
    case("append-as-admin", "admin", "sessions.AppendTranscriptItems", lambda c: append(c, item(1)), DENIED),
]

OUTBOX_CASES = [
    case("list-unknown-status", "tenant", "outbox.ListOutboxMessages",
         lambda c: box.ListOutboxMessagesRequest(status=9), INVALID),  # type: ignore[arg-type]
    case("list-other-tenant", "tenant", "outbox.ListOutboxMessages",
         lambda c: box.ListOutboxMessagesRequest(tenant_id=c.other.tenant.id), DENIED),
    case("list-malformed-tenant", "tenant", "outbox.ListOutboxMessages",
         lambda c: box.ListOutboxMessagesRequest(tenant_id=MALFORMED_ID), INVALID),
    case("list-admin-malformed-tenant", "admin", "outbox.ListOutboxMessages",
         lambda c: box.ListOutboxMessagesRequest(tenant_id=MALFORMED_ID), INVALID),
    case("list-as-service", "service", "outbox.ListOutboxMessages",
         lambda c: box.ListOutboxMessagesRequest(tenant_id=c.world.tenant.id), DENIED),
]

ALL_CASES = TENANT_CASES + TEMPLATE_CASES + CANDIDATE_CASES + INVITATION_CASES + SESSION_CASES + OUTBOX_CASES


@pytest.mark.parametrize(("caller", "rpc", "make", "expected"), ALL_CASES)
async def test_bad_request(ctx: Ctx, caller: str, rpc: str, make: Make, expected: Expected) -> None:
    await expect(ctx.caller(caller), rpc, make(ctx), expected)


def test_the_tables_cover_every_rpc() -> None:
    covered = {p.values[1] for p in ALL_CASES}
    assert covered == set(ALL_RPCS), f"RPCs without bad-input rows: {set(ALL_RPCS) - covered}"


async def test_refused_requests_left_the_shared_tenant_as_it_was(ctx: Ctx) -> None:
    """Runs after the tables (file order): none of their refused requests changed anything."""
    api = ctx.world.api
    got = await invoke(api, "templates.GetTemplate", tmpl.GetTemplateRequest(template_id=ctx.world.template.id))
    assert got == ctx.world.template
    session = await invoke(api, "sessions.GetSession", sess.GetSessionRequest(session_id=ctx.session.id))
    assert session.status == pb.SESSION_STATUS_READY
    assert await transcript(api, ctx.session.id) == []
    invitation = await invoke(api, "invitations.GetInvitation",
                              inv.GetInvitationRequest(invitation_id=ctx.invitation.invitation.id))
    assert invitation.status == pb.INVITATION_STATUS_PENDING and invitation.uses == 0
    candidates = await invoke(api, "candidates.ListCandidates", cand.ListCandidatesRequest())
    assert [c.id for c in candidates.candidates] == [ctx.world.candidate.id]
    assert (await invoke(api, "candidates.GetCandidate", cand.GetCandidateRequest(
        candidate_id=ctx.world.candidate.id))).external_id == ctx.world.candidate.external_id
    templates = await invoke(api, "templates.ListTemplates", tmpl.ListTemplatesRequest())
    assert [t.id for t in templates.templates] == [ctx.world.template.id]
    invitations = await invoke(api, "invitations.ListInvitations", inv.ListInvitationsRequest())
    assert len(invitations.invitations) == 2  # the pending one and the one redeemed for the session
    messages = await invoke(api, "outbox.ListOutboxMessages", box.ListOutboxMessagesRequest())
    assert list(messages.messages) == []
    other_key_alive = await invoke(ctx.other.api, "tenants.GetTenant", ten.GetTenantRequest())
    assert other_key_alive.id == ctx.other.tenant.id


# --- authentication ------------------------------------------------------------------------------

BAD_CREDENTIALS = {
    "no-metadata": (),
    "other-metadata-only": (("x-api-key", "ik_whatever"),),
    "basic-scheme": (("authorization", "Basic dXNlcjpwYXNzd29yZA=="),),
    "bearer-without-token": (("authorization", "Bearer"),),
    "unknown-key": bearer("ik_" + "x" * 43),
    "overlong-token": bearer("x" * 600),
}


@pytest.mark.parametrize("credential", BAD_CREDENTIALS)
@pytest.mark.parametrize("rpc", ALL_RPCS)
async def test_unauthenticated(admin: Api, rpc: str, credential: str) -> None:
    await expect(admin, rpc, empty_request(rpc), UNAUTHENTICATED, metadata=BAD_CREDENTIALS[credential])


@pytest.mark.parametrize("rpc", ALL_RPCS)
async def test_real_secret_without_bearer_scheme_is_unauthenticated(admin: Api, service: Api, rpc: str) -> None:
    for token in (admin.token, service.token):
        await expect(admin, rpc, empty_request(rpc), UNAUTHENTICATED, metadata=(("authorization", token),))
        await expect(admin, rpc, empty_request(rpc), UNAUTHENTICATED,
                     metadata=(("authorization", f"Token {token}"),))


async def test_revoked_key_is_unauthenticated(admin: Api) -> None:
    world = await make_tenant(admin)
    key = await invoke(world.api, "tenants.CreateApiKey", ten.CreateApiKeyRequest(display_name="doomed"))
    doomed = Api(admin.channel, key.secret)
    await invoke(doomed, "tenants.GetTenant", ten.GetTenantRequest())  # works, and is now cached
    await invoke(world.api, "tenants.RevokeApiKey", ten.RevokeApiKeyRequest(api_key_id=key.api_key.id))
    deadline = time.monotonic() + 3.0
    while True:  # the revocation reaches the key cache by NOTIFY, so allow it a moment
        try:
            await invoke(doomed, "tenants.GetTenant", ten.GetTenantRequest())
        except grpc.aio.AioRpcError:
            break
        assert time.monotonic() < deadline, "a revoked key still works after 3 s"
        await asyncio.sleep(0.05)
    for rpc in ALL_RPCS:
        await expect(doomed, rpc, empty_request(rpc), UNAUTHENTICATED)
    await invoke(world.api, "tenants.GetTenant", ten.GetTenantRequest())  # the tenant's other key still works


# --- sizes and pages -----------------------------------------------------------------------------


async def test_oversized_request_is_resource_exhausted(ctx: Ctx) -> None:
    big = template(instructions="i" * (LIMITS.grpc_max_message_bytes + 1024))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await invoke(ctx.world.api, "templates.CreateTemplate", tmpl.CreateTemplateRequest(template=big))
    # gRPC itself refuses the message before any handler runs, so no interview-error-code is set.
    assert info.value.code() == S.RESOURCE_EXHAUSTED
    big_batch = append(ctx, *[item(n, text="t" * 15_000) for n in range(1, 80)])
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await invoke(ctx.service, "sessions.AppendTranscriptItems", big_batch)
    assert info.value.code() == S.RESOURCE_EXHAUSTED
    # The connection and the service are fine afterwards, and nothing was saved.
    assert await transcript(ctx.world.api, ctx.session.id) == []
    templates = await invoke(ctx.world.api, "templates.ListTemplates", tmpl.ListTemplatesRequest())
    assert len(templates.templates) == 1


MALFORMED_BODIES = {
    "bad-utf8-string": b"\x12\x05\xff\xfe\xfd\xfc\xfb",  # field 2 (template_id), not UTF-8
    "truncated-string": b"\x12\x40abc",  # says 64 bytes follow, 3 do
    "bad-tag": b"\xff\xff\xff",
}


@pytest.mark.parametrize("body", MALFORMED_BODIES)
@pytest.mark.parametrize("method", ["/interview.v1.TemplateService/GetTemplate",
                                    "/interview.v1.SessionService/WatchSession"])
async def test_malformed_protobuf_bytes(ctx: Ctx, channel: grpc.aio.Channel, method: str, body: str) -> None:
    """Bytes that are not the request message: the client's fault, so INVALID_ARGUMENT, never UNKNOWN."""
    if method.endswith("WatchSession"):
        stream = channel.unary_stream(method)
        call: Any = stream(MALFORMED_BODIES[body], metadata=ctx.world.api.md, timeout=STREAM_TIMEOUT_S)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in call:
                pass
    else:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await channel.unary_unary(method)(MALFORMED_BODIES[body], metadata=ctx.world.api.md)
    err = info.value
    assert err.code() != S.UNKNOWN, f"malformed request bytes ended UNKNOWN: {err.details()}"
    assert (err.code(), error_code_of(err)) == INVALID, err.details()
    await invoke(ctx.world.api, "templates.GetTemplate", tmpl.GetTemplateRequest(template_id=ctx.world.template.id))


LIST_RPCS: dict[str, tuple[str, Callable[[Ctx], Message]]] = {
    "ListTenants": ("admin", lambda c: ten.ListTenantsRequest()),
    "ListTemplates": ("tenant", lambda c: tmpl.ListTemplatesRequest()),
    "ListCandidates": ("tenant", lambda c: cand.ListCandidatesRequest()),
    "ListInvitations": ("tenant", lambda c: inv.ListInvitationsRequest()),
    "ListSessions": ("tenant", lambda c: sess.ListSessionsRequest()),
    "ListOutboxMessages": ("tenant", lambda c: box.ListOutboxMessagesRequest()),
    "GetTranscript": ("tenant", lambda c: sess.GetTranscriptRequest(session_id=c.session.id)),
}
RPC_OF = {name: next(r for r in ALL_RPCS if r.endswith("." + name)) for name in LIST_RPCS}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


GARBAGE_TOKENS = {
    "garbage": "garbage",
    "punctuation": "!!!***",
    "overlong": "A" * 600,
    "not-json": b64(b"not json at all"),
    "json-list": b64(b"[1, 2, 3]"),
    "json-string": b64(b'"token"'),
    "bad-time": b64(json.dumps({"t": "yesterday", "i": UNKNOWN_ID, "f": "0"}).encode()),
    "numeric-id": b64(json.dumps({"t": "2024-01-01T00:00:00+00:00", "i": 123, "f": "0"}).encode()),
    "object-id": b64(json.dumps({"t": "2024-01-01T00:00:00+00:00", "i": {"x": 1}, "f": "0"}).encode()),
    "numeric-time": b64(json.dumps({"t": 1700000000, "i": UNKNOWN_ID, "f": "0"}).encode()),
    "wrong-fingerprint": b64(json.dumps({"t": "2024-01-01T00:00:00+00:00", "i": UNKNOWN_ID, "f": "0"}).encode()),
}
PAGED_RPCS = [name for name in LIST_RPCS if name != "GetTranscript"]


@pytest.mark.parametrize("token", GARBAGE_TOKENS)
@pytest.mark.parametrize("name", PAGED_RPCS)
async def test_garbage_page_token(ctx: Ctx, name: str, token: str) -> None:
    caller, make = LIST_RPCS[name]
    request = make(ctx)
    request.page_token = GARBAGE_TOKENS[token]  # type: ignore[attr-defined]
    await expect(ctx.caller(caller), RPC_OF[name], request, BAD_PAGE_TOKEN)


@pytest.mark.parametrize("name", LIST_RPCS)
async def test_negative_page_size(ctx: Ctx, name: str) -> None:
    caller, make = LIST_RPCS[name]
    request = make(ctx)
    request.page_size = -1  # type: ignore[attr-defined]
    await expect(ctx.caller(caller), RPC_OF[name], request, INVALID)


@pytest.mark.parametrize("page_size", [MAX_PAGE_SIZE + 1, 2**31 - 1])
@pytest.mark.parametrize("name", LIST_RPCS)
async def test_page_size_above_maximum_is_clamped(ctx: Ctx, name: str, page_size: int) -> None:
    caller, make = LIST_RPCS[name]
    request = make(ctx)
    request.page_size = page_size  # type: ignore[attr-defined]
    await invoke(ctx.caller(caller), RPC_OF[name], request)


async def test_transcript_page_is_clamped_to_the_maximum(admin: Api, service: Api) -> None:
    world = await make_tenant(admin)
    session = await new_session(world, service)
    total = MAX_PAGE_SIZE + 1
    for start in range(1, total + 1, 100):  # 100 a call is the most allowed
        batch = [item(n) for n in range(start, min(start + 100, total + 1))]
        got = await invoke(service, "sessions.AppendTranscriptItems",
                           sess.AppendTranscriptItemsRequest(session_id=session.id, items=batch))
        assert got.inserted == len(batch)
    for size in (MAX_PAGE_SIZE + 1, 10**6, 0):
        page = await invoke(world.api, "sessions.GetTranscript",
                            sess.GetTranscriptRequest(session_id=session.id, page_size=size))
        assert (len(page.items), page.has_more) == (MAX_PAGE_SIZE, True)
    rest = await invoke(world.api, "sessions.GetTranscript",
                        sess.GetTranscriptRequest(session_id=session.id, after_sequence=MAX_PAGE_SIZE))
    assert ([i.sequence for i in rest.items], rest.has_more) == ([total], False)


async def test_page_token_from_other_filters_is_refused(admin: Api, service: Api) -> None:
    world = await make_tenant(admin)
    second = (await invoke(world.api, "candidates.UpsertCandidate",
                           cand.UpsertCandidateRequest(email=new_email()))).candidate
    for _ in range(2):
        await new_session(world, service)
    await new_session(world, service, second.id)
    api = world.api
    first = await invoke(api, "sessions.ListSessions",
                         sess.ListSessionsRequest(candidate_id=world.candidate.id, page_size=1))
    assert len(first.sessions) == 1 and first.next_page_token
    token = first.next_page_token
    for other_filters in (sess.ListSessionsRequest(candidate_id=second.id),
                          sess.ListSessionsRequest(),
                          sess.ListSessionsRequest(candidate_id=world.candidate.id, status=pb.SESSION_STATUS_READY),
                          sess.ListSessionsRequest(candidate_id=world.candidate.id,
                                                   created_after=Timestamp(seconds=1))):
        other_filters.page_token = token
        other_filters.page_size = 1
        await expect(api, "sessions.ListSessions", other_filters, BAD_PAGE_TOKEN)
    # With its own filters the token still works (a refused request consumed nothing).
    rest = await invoke(api, "sessions.ListSessions", sess.ListSessionsRequest(
        candidate_id=world.candidate.id, page_size=1, page_token=token))
    assert len(rest.sessions) == 1 and rest.sessions[0].id != first.sessions[0].id
    # The same for invitations' candidate filter.
    invitations = await invoke(api, "invitations.ListInvitations",
                               inv.ListInvitationsRequest(candidate_id=world.candidate.id, page_size=1))
    assert invitations.next_page_token
    await expect(api, "invitations.ListInvitations", inv.ListInvitationsRequest(
        candidate_id=second.id, page_size=1, page_token=invitations.next_page_token), BAD_PAGE_TOKEN)


# --- deadlines -----------------------------------------------------------------------------------


async def test_watch_session_honours_its_deadline(ctx: Ctx, control: RunningControl) -> None:
    seen: list[Any] = []
    call = ctx.world.api.sessions.WatchSession(sess.WatchSessionRequest(session_id=ctx.session.id),
                                               metadata=ctx.world.api.md, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for event in call:
            seen.append(event)
    elapsed = time.monotonic() - started
    assert info.value.code() == S.DEADLINE_EXCEEDED
    assert 0.4 <= elapsed < 1.5, elapsed
    assert [e.WhichOneof("event") for e in seen] == ["session"]  # the live session's state, then nothing
    # The stream's watcher slot is given back.
    events = control.ctx.session_events
    for _ in range(100):
        if ctx.session.id not in events._watchers:
            break
        await asyncio.sleep(0.02)
    assert ctx.session.id not in events._watchers
    assert uuid.UUID(ctx.world.tenant.id) not in events._per_tenant


@pytest.mark.parametrize("deadline_s", [0.0, 0.000001, 0.0001, 0.001])
async def test_unary_call_with_too_short_deadline(ctx: Ctx, deadline_s: float) -> None:
    """A deadline shorter than the call can possibly take (a 220 kB request) ends DEADLINE_EXCEEDED."""
    heavy = tmpl.CreateTemplateRequest(template=template(
        questions=["q" * 2000] * LIMITS.max_questions, instructions="i" * LIMITS.max_long_text_chars))
    for _ in range(3):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await invoke(ctx.lab.api, "templates.CreateTemplate", heavy, deadline_s=deadline_s)
        assert info.value.code() == S.DEADLINE_EXCEEDED, info.value.details()


LIGHT_CALLS = [
    ("tenant", "templates.ListTemplates", lambda c: tmpl.ListTemplatesRequest()),
    ("tenant", "invitations.GetInvitation",
     lambda c: inv.GetInvitationRequest(invitation_id=c.invitation.invitation.id)),
    ("service", "sessions.GetSession", lambda c: sess.GetSessionRequest(session_id=c.session.id)),
    ("admin", "tenants.ListTenants", lambda c: ten.ListTenantsRequest()),
]


async def test_fast_calls_against_a_spent_deadline_end_ok_or_deadline_exceeded(ctx: Ctx) -> None:
    """The server may answer a fast call before the client's timer fires (gRPC lets that through), but a
    call that does not make it must end DEADLINE_EXCEEDED: never UNAVAILABLE, INTERNAL or UNKNOWN."""
    outcomes: collections.Counter[str] = collections.Counter()
    for caller, rpc, make in LIGHT_CALLS:
        for deadline_s in [0.0, 0.00005, 0.0002, 0.001] * 10:
            try:
                await invoke(ctx.caller(caller), rpc, make(ctx), deadline_s=deadline_s)
                outcomes["OK"] += 1
            except grpc.aio.AioRpcError as exc:
                outcomes[f"{exc.code().name}: {exc.details()} ({rpc})"] += 1
    assert all(o == "OK" or o.startswith("DEADLINE_EXCEEDED:") for o in outcomes), dict(outcomes)


async def test_deadline_spent_waiting_for_a_database_connection(admin: Api, control: RunningControl,
                                                                database: Database, owner_conn: Any) -> None:
    """Every pooled connection is busy (blocked on a row lock), so a call can get none before its deadline:
    that is DEADLINE_EXCEEDED, not UNAVAILABLE (which tells clients to retry a call whose time is up)."""
    world = await make_tenant(admin)
    api = world.api
    pool_size = control.ctx.settings.db_pool_max_size
    tx = owner_conn.transaction()
    await tx.start()
    await owner_conn.execute("SELECT 1 FROM templates WHERE id = $1 FOR UPDATE", uuid.UUID(world.template.id))
    blocked = [asyncio.create_task(invoke(api, "templates.UpdateTemplate", tmpl.UpdateTemplateRequest(
        template=pb.Template(id=world.template.id, role=f"Role {n}"), update_mask=FieldMask(paths=["role"])),
        deadline_s=10)) for n in range(pool_size)]
    watcher = await asyncpg.connect(database.owner_dsn)
    try:
        waiting = 0
        for _ in range(250):
            waiting = await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'interview-control'"
                " AND wait_event_type = 'Lock'")
            if waiting >= pool_size:
                break
            await asyncio.sleep(0.02)
        assert waiting == pool_size, "the blocked updates did not take every pooled connection"
        with pytest.raises(PlatformError) as error:  # the database layer itself, free of the client's timer
            async with control.ctx.db.transaction(uuid.UUID(world.tenant.id), timeout_s=0.2):
                pass
        assert error.value.code is ErrorCode.DEADLINE_EXCEEDED, error.value
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await invoke(api, "templates.GetTemplate", tmpl.GetTemplateRequest(template_id=world.template.id),
                         deadline_s=0.3)
        assert info.value.code() == S.DEADLINE_EXCEEDED, info.value.details()
    finally:
        await watcher.close()
        await tx.rollback()
    updated = await asyncio.gather(*blocked)
    assert sorted(u.version for u in updated) == list(range(2, pool_size + 2))


async def test_call_blocked_past_its_deadline_ends_and_changes_nothing(admin: Api, owner_conn: Any) -> None:
    world = await make_tenant(admin)
    request = tmpl.UpdateTemplateRequest(template=pb.Template(id=world.template.id, role="Changed"),
                                         update_mask=FieldMask(paths=["role"]))
    tx = owner_conn.transaction()
    await tx.start()
    try:
        await owner_conn.execute("SELECT 1 FROM templates WHERE id = $1 FOR UPDATE", uuid.UUID(world.template.id))
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await invoke(world.api, "templates.UpdateTemplate", request, deadline_s=0.5)
        elapsed = time.monotonic() - started
        assert info.value.code() == S.DEADLINE_EXCEEDED
        assert elapsed < 1.5, elapsed
        await asyncio.sleep(0.3)
    finally:
        await tx.rollback()
    await asyncio.sleep(0.3)  # had the server kept waiting on the lock, it would write now
    got = await invoke(world.api, "templates.GetTemplate", tmpl.GetTemplateRequest(template_id=world.template.id))
    assert got == world.template
    updated = await invoke(world.api, "templates.UpdateTemplate", request, deadline_s=5)
    assert (updated.role, updated.version) == ("Changed", world.template.version + 1)


# --- idempotency ---------------------------------------------------------------------------------

CREATES: dict[str, tuple[str, Callable[[TenantWorld, str], Message]]] = {
    # name: (caller, request for a variant); the same variant is the same request.
    "CreateTenant": ("admin", lambda w, v: ten.CreateTenantRequest(display_name=f"Idem {v}")),
    "CreateApiKey": ("tenant", lambda w, v: ten.CreateApiKeyRequest(display_name=f"key {v}")),
    "CreateTemplate": ("tenant", lambda w, v: tmpl.CreateTemplateRequest(template=template(role=f"Role {v}"))),
    "UpsertCandidate": ("tenant", lambda w, v: cand.UpsertCandidateRequest(email=f"idem-{v}@example.com")),
    "CreateInvitation": ("tenant", lambda w, v: inv.CreateInvitationRequest(
        candidate_id=w.candidate.id, template_id=w.template.id, ttl=Duration(seconds=3600 + len(v)))),
}
CREATE_RPC = {name: next(r for r in ALL_RPCS if r.endswith("." + name)) for name in CREATES}


def keyed(name: str, world: TenantWorld, variant: str, key: str) -> Message:
    request = CREATES[name][1](world, variant)
    request.idempotency_key = key  # type: ignore[attr-defined]
    return request


@pytest.mark.parametrize("name", CREATES)
async def test_same_idempotency_key_same_request_same_response(admin: Api, name: str) -> None:
    world = await make_tenant(admin)
    caller = admin if CREATES[name][0] == "admin" else world.api
    key, variant = f"idem-{uuid.uuid4()}", uuid.uuid4().hex[:8]
    first = await invoke(caller, CREATE_RPC[name], keyed(name, world, variant, key))
    again = await invoke(caller, CREATE_RPC[name], keyed(name, world, variant, key))
    assert again == first
    if name == "CreateInvitation":
        assert (again.invitation.id, again.token) == (first.invitation.id, first.token)
        listed = await invoke(world.api, "invitations.ListInvitations", inv.ListInvitationsRequest())
        assert [i.id for i in listed.invitations] == [first.invitation.id]
    if name == "CreateTenant":
        assert again.id == first.id
    if name == "CreateTemplate":
        listed = await invoke(world.api, "templates.ListTemplates", tmpl.ListTemplatesRequest())
        assert sorted(t.id for t in listed.templates) == sorted([world.template.id, first.id])
    # A different request under the same key is refused and creates nothing.
    await expect(caller, CREATE_RPC[name], keyed(name, world, variant + "-other", key), KEY_REUSED)
    # The same key in another tenant is another key.
    if CREATES[name][0] == "tenant":
        other = await make_tenant(admin)
        elsewhere = await invoke(other.api, CREATE_RPC[name], keyed(name, other, variant, key))
        assert elsewhere != first


async def test_idempotent_invitation_replays_a_working_token(admin: Api, service: Api) -> None:
    world = await make_tenant(admin)
    request = inv.CreateInvitationRequest(candidate_id=world.candidate.id, template_id=world.template.id,
                                          idempotency_key="retry-1")
    first = await invoke(world.api, "invitations.CreateInvitation", request)
    again = await invoke(world.api, "invitations.CreateInvitation", request)
    assert (again.invitation.id, again.token, again.invite_url) == (first.invitation.id, first.token, first.invite_url)
    redeemed = await redeem(service, again.token)
    assert redeemed.session.invitation_id == first.invitation.id


async def test_refused_create_does_not_use_up_its_idempotency_key(admin: Api) -> None:
    world = await make_tenant(admin)
    key = "retry-after-fix"
    bad = inv.CreateInvitationRequest(candidate_id=world.candidate.id, template_id=UNKNOWN_ID, idempotency_key=key)
    await expect(world.api, "invitations.CreateInvitation", bad, NOT_FOUND)
    await expect(world.api, "invitations.CreateInvitation", bad, NOT_FOUND)  # not a replay of an error
    good = inv.CreateInvitationRequest(candidate_id=world.candidate.id, template_id=world.template.id,
                                       idempotency_key=key)
    first = await invoke(world.api, "invitations.CreateInvitation", good)
    assert (await invoke(world.api, "invitations.CreateInvitation", good)).token == first.token
    bad_tenant = ten.CreateTenantRequest(display_name="", idempotency_key=key)
    await expect(admin, "tenants.CreateTenant", bad_tenant, INVALID)
    made = await invoke(admin, "tenants.CreateTenant",
                        ten.CreateTenantRequest(display_name="Fixed", idempotency_key=key))
    assert made.display_name == "Fixed"


MALFORMED_KEYS = {"space": "retry 1", "leading-space": " retry", "tab": "retry\t1", "201-chars": "k" * 201,
                  "non-ascii": "clé-1", "newline": "retry\n"}


@pytest.mark.parametrize("key", MALFORMED_KEYS)
@pytest.mark.parametrize("name", CREATES)
async def test_malformed_idempotency_key(ctx: Ctx, name: str, key: str) -> None:
    caller = ctx.admin if CREATES[name][0] == "admin" else ctx.lab.api
    await expect(caller, CREATE_RPC[name], keyed(name, ctx.lab, uuid.uuid4().hex[:8], MALFORMED_KEYS[key]), INVALID)


async def test_limits_are_inclusive(admin: Api, service: Api) -> None:
    """The largest accepted values, one past each of which the tables above are refused."""
    made = await invoke(admin, "tenants.CreateTenant", ten.CreateTenantRequest(
        display_name="é" * 200, idempotency_key="k" * 200))
    assert made.display_name == "é" * 200
    world = await make_tenant(admin)
    big = template(role="r" * 200, questions=["q" * 2000] * LIMITS.max_questions,
                   time_limit_seconds=LIMITS.max_time_limit_s, language="a" * 35, voice="v" * 64,
                   instructions="i" * LIMITS.max_long_text_chars)
    created = await invoke(world.api, "templates.CreateTemplate", tmpl.CreateTemplateRequest(template=big))
    assert len(created.questions) == LIMITS.max_questions
    for ttl in (60, LIMITS.max_invitation_ttl_s):
        await invoke(world.api, "invitations.CreateInvitation", inv.CreateInvitationRequest(
            candidate_id=world.candidate.id, template_id=world.template.id, ttl=Duration(seconds=ttl)))
    session = await new_session(world, service)
    got = await invoke(service, "sessions.AppendTranscriptItems", sess.AppendTranscriptItemsRequest(
        session_id=session.id, items=[item(n, text="t" * 150) for n in range(1, 101)]))
    assert (got.inserted, got.last_sequence) == (100, 100)
    await invoke(world.api, "candidates.UpsertCandidate", cand.UpsertCandidateRequest(
        email="a" * 64 + "@example.com", external_id="e" * 200, full_name="n" * 200))


# --- invitation tokens ---------------------------------------------------------------------------


async def lookup(service: Api, token: str) -> inv.LookupInvitationResponse:
    return await invoke(service, "invitations.LookupInvitation",  # type: ignore[no-any-return]
                        inv.LookupInvitationRequest(token=token))


async def sessions_of(world: TenantWorld) -> list[str]:
    listed = await invoke(world.api, "sessions.ListSessions", sess.ListSessionsRequest())
    return [s.id for s in listed.sessions]


async def test_expired_invitation(admin: Api, service: Api, owner_conn: Any) -> None:
    world = await make_tenant(admin)
    created = await invite(world)
    await owner_conn.execute("UPDATE interview_invitations SET expires_at = now() - interval '1 minute'"
                             " WHERE id = $1", uuid.UUID(created.invitation.id))
    looked = await lookup(service, created.token)
    assert (looked.invitation.status, looked.redeemable) == (pb.INVITATION_STATUS_EXPIRED, False)
    await expect(service, "invitations.RedeemInvitation", inv.RedeemInvitationRequest(token=created.token), EXPIRED)
    got = await invoke(world.api, "invitations.GetInvitation",
                       inv.GetInvitationRequest(invitation_id=created.invitation.id))
    assert (got.status, got.uses, got.session_id) == (pb.INVITATION_STATUS_EXPIRED, 0, "")
    assert await sessions_of(world) == []
    # Resending an expired invitation gives it a new life under a new token.
    resent = await invoke(world.api, "invitations.ResendInvitation",
                          inv.ResendInvitationRequest(invitation_id=created.invitation.id))
    await expect(service, "invitations.RedeemInvitation", inv.RedeemInvitationRequest(token=created.token), NOT_FOUND)
    assert (await redeem(service, resent.token)).first_redemption


async def test_revoked_invitation(admin: Api, service: Api) -> None:
    world = await make_tenant(admin)
    created = await invite(world)
    revoked = await invoke(world.api, "invitations.RevokeInvitation",
                           inv.RevokeInvitationRequest(invitation_id=created.invitation.id))
    assert revoked.status == pb.INVITATION_STATUS_REVOKED
    again = await invoke(world.api, "invitations.RevokeInvitation",
                         inv.RevokeInvitationRequest(invitation_id=created.invitation.id))
    assert again.revoke_time == revoked.revoke_time  # revoking twice is harmless
    looked = await lookup(service, created.token)
    assert (looked.invitation.status, looked.redeemable) == (pb.INVITATION_STATUS_REVOKED, False)
    await expect(service, "invitations.RedeemInvitation", inv.RedeemInvitationRequest(token=created.token), REVOKED)
    await expect(world.api, "invitations.ResendInvitation",
                 inv.ResendInvitationRequest(invitation_id=created.invitation.id, send_email=True), REVOKED)
    assert await sessions_of(world) == []
    messages = await invoke(world.api, "outbox.ListOutboxMessages", box.ListOutboxMessagesRequest())
    assert list(messages.messages) == []  # the refused resend queued no email


async def test_used_invitation(admin: Api, service: Api) -> None:
    world = await make_tenant(admin)
    created = await invite(world)
    first = await redeem(service, created.token)
    assert first.first_redemption
    await expect(service, "invitations.RedeemInvitation", inv.RedeemInvitationRequest(token=created.token), USED)
    # Another existing account may not take it over.
    stranger = (await invoke(world.api, "candidates.UpsertCandidate",
                             cand.UpsertCandidateRequest(email=new_email()))).candidate
    other_user = (await redeem(service, (await invite(world, stranger.id)).token)).user_id
    await expect(service, "invitations.RedeemInvitation",
                 inv.RedeemInvitationRequest(token=created.token, user_id=other_user), USED)
    # The account it was bound to gets its session back.
    back = await redeem(service, created.token, first.user_id)
    assert (back.first_redemption, back.session.id) == (False, first.session.id)
    looked = await lookup(service, created.token)
    assert (looked.invitation.status, looked.redeemable) == (pb.INVITATION_STATUS_REDEEMED, False)
    await expect(world.api, "invitations.ResendInvitation",
                 inv.ResendInvitationRequest(invitation_id=created.invitation.id), USED)
    await expect(world.api, "invitations.RevokeInvitation",
                 inv.RevokeInvitationRequest(invitation_id=created.invitation.id), USED)
    got = await invoke(world.api, "invitations.GetInvitation",
                       inv.GetInvitationRequest(invitation_id=created.invitation.id))
    assert (got.status, got.uses, got.session_id) == (pb.INVITATION_STATUS_REDEEMED, 1, first.session.id)
    assert len(await sessions_of(world)) == 2


async def test_resend_replaces_the_token(admin: Api, service: Api) -> None:
    world = await make_tenant(admin)
    created = await invite(world)
    resent = await invoke(world.api, "invitations.ResendInvitation",
                          inv.ResendInvitationRequest(invitation_id=created.invitation.id))
    assert resent.token != created.token and resent.invitation.id == created.invitation.id
    await expect(service, "invitations.LookupInvitation", inv.LookupInvitationRequest(token=created.token), NOT_FOUND)
    await expect(service, "invitations.RedeemInvitation", inv.RedeemInvitationRequest(token=created.token), NOT_FOUND)
    assert (await lookup(service, resent.token)).redeemable
    assert (await redeem(service, resent.token)).first_redemption


async def test_lookup_never_consumes(admin: Api, service: Api) -> None:
    world = await make_tenant(admin)
    created = await invite(world)
    for _ in range(3):
        looked = await lookup(service, created.token)
        assert (looked.invitation.status, looked.invitation.uses, looked.redeemable) == (
            pb.INVITATION_STATUS_PENDING, 0, True)
        assert looked.tenant_display_name == world.tenant.display_name
    assert (await redeem(service, created.token)).first_redemption
    assert not (await lookup(service, created.token)).redeemable


# --- session status ------------------------------------------------------------------------------

READY, IN_PROGRESS, COMPLETED, ABANDONED, ENDED = (
    pb.SESSION_STATUS_READY, pb.SESSION_STATUS_IN_PROGRESS, pb.SESSION_STATUS_COMPLETED,
    pb.SESSION_STATUS_ABANDONED, pb.SESSION_STATUS_ENDED)


@pytest.mark.parametrize(("path", "target"), [
    ([IN_PROGRESS, COMPLETED], IN_PROGRESS),
    ([IN_PROGRESS, COMPLETED], READY),
    ([IN_PROGRESS, COMPLETED], ABANDONED),
    ([IN_PROGRESS], READY),
    ([ABANDONED], IN_PROGRESS),
    ([ENDED], COMPLETED),
    ([IN_PROGRESS, ENDED], IN_PROGRESS),
], ids=lambda v: "-".join(pb.SessionStatus.Name(s)[15:].lower() for s in v) if isinstance(v, list)
    else pb.SessionStatus.Name(v)[15:].lower())
async def test_invalid_status_transition(ctx: Ctx, path: list[int], target: int) -> None:
    session = await new_session(ctx.lab, ctx.service)
    for status in path:
        before = await set_status(ctx.service, session.id, status)
    await expect(ctx.service, "sessions.UpdateSessionStatus",
                 sess.UpdateSessionStatusRequest(session_id=session.id, status=target, reason="nope"), INVALID_STATE)
    if path[-1] in (COMPLETED, ABANDONED):  # nor may the tenant end a finished session
        await expect(ctx.lab.api, "sessions.EndSession", sess.EndSessionRequest(session_id=session.id), INVALID_STATE)
    after = await invoke(ctx.lab.api, "sessions.GetSession", sess.GetSessionRequest(session_id=session.id))
    assert after == before
    # Setting the current status again is a no-op, not an error.
    assert (await set_status(ctx.service, session.id, path[-1])).status == path[-1]


# --- transcript items ----------------------------------------------------------------------------


async def append_items(ctx: Ctx, session_id: str, *items: pb.TranscriptItem) -> sess.AppendTranscriptItemsResponse:
    return await invoke(ctx.service, "sessions.AppendTranscriptItems",  # type: ignore[no-any-return]
                        sess.AppendTranscriptItemsRequest(session_id=session_id, items=list(items)))


async def test_append_with_a_gap_is_refused(ctx: Ctx) -> None:
    session = await new_session(ctx.lab, ctx.service)
    await expect(ctx.service, "sessions.AppendTranscriptItems", append(ctx, item(2), session_id=session.id),
                 INVALID_STATE)
    await append_items(ctx, session.id, item(1))
    await expect(ctx.service, "sessions.AppendTranscriptItems", append(ctx, item(3), session_id=session.id),
                 INVALID_STATE)
    assert await transcript(ctx.lab.api, session.id) == [(1, "turn 1")]


async def test_the_same_item_twice_is_a_duplicate_not_saved_twice(ctx: Ctx) -> None:
    session = await new_session(ctx.lab, ctx.service)
    first = await append_items(ctx, session.id, item(1), item(2))
    assert (first.inserted, first.duplicates, first.last_sequence) == (2, 0, 2)
    again = await append_items(ctx, session.id, item(2))
    assert (again.inserted, again.duplicates, again.last_sequence) == (0, 1, 2)
    overlap = await append_items(ctx, session.id, item(1), item(2), item(3))
    assert (overlap.inserted, overlap.duplicates, overlap.last_sequence) == (1, 2, 3)
    within = await append_items(ctx, session.id, item(4), item(4))
    assert (within.inserted, within.duplicates, within.last_sequence) == (1, 1, 4)
    assert await transcript(ctx.lab.api, session.id) == [(n, f"turn {n}") for n in range(1, 5)]


@pytest.mark.parametrize("change", [{"text": "something else"}, {"speaker": pb.SPEAKER_INTERVIEWER},
                                    {"audio_end_ms": 9999}], ids=["text", "speaker", "timing"])
async def test_same_sequence_other_content_is_already_exists(ctx: Ctx, change: dict[str, Any]) -> None:
    session = await new_session(ctx.lab, ctx.service)
    await append_items(ctx, session.id, item(1))
    await expect(ctx.service, "sessions.AppendTranscriptItems",
                 append(ctx, item(2), item(1, **change), session_id=session.id), EXISTS)
    assert await transcript(ctx.lab.api, session.id) == [(1, "turn 1")]  # item 2 of the batch was not saved


@pytest.mark.parametrize(("bad", "expected"), [
    (item(3, speaker=pb.SPEAKER_UNSPECIFIED), INVALID),
    (item(3, audio_start_ms=5000, audio_end_ms=10), INVALID),
    (item(3, text="x" * (LIMITS.max_long_text_chars + 1)), INVALID),
    (item(0), INVALID),
    (item(5), INVALID_STATE),
], ids=["speaker-unspecified", "end-before-start", "text-too-long", "sequence-zero", "gap"])
async def test_a_batch_with_one_bad_item_saves_none_of_it(ctx: Ctx, bad: pb.TranscriptItem, expected: Expected) -> None:
    session = await new_session(ctx.lab, ctx.service)
    await expect(ctx.service, "sessions.AppendTranscriptItems",
                 append(ctx, item(1), item(2), bad, item(4), session_id=session.id), expected)
    assert await transcript(ctx.lab.api, session.id) == []
    fixed = await append_items(ctx, session.id, item(1), item(2), item(3), item(4))
    assert (fixed.inserted, fixed.duplicates) == (4, 0)


async def test_more_than_100_items_is_refused_100_is_fine(ctx: Ctx) -> None:
    session = await new_session(ctx.lab, ctx.service)
    items = [item(n) for n in range(1, 102)]
    await expect(ctx.service, "sessions.AppendTranscriptItems", append(ctx, *items, session_id=session.id), INVALID)
    assert await transcript(ctx.lab.api, session.id) == []
    assert (await append_items(ctx, session.id, *items[:100])).inserted == 100


# --- nothing lost on bad input -------------------------------------------------------------------


@pytest.mark.parametrize(("paths", "changes", "expected"), [
    (["role", "version"], {"role": "Changed"}, INVALID),
    (["role", "time_limit_seconds"], {"role": "Changed", "time_limit_seconds": 0}, INVALID),
    (["questions", "instructions"], {"questions": ["New?"], "instructions": "\x00"}, INVALID),
    ([], {"role": "Changed"}, INVALID),  # no mask: every field, and the others are empty
    (["role"], {"role": "Changed", "id": UNKNOWN_ID}, NOT_FOUND),
], ids=["mask-with-output-field", "one-bad-value", "bad-instructions", "no-mask", "unknown-id"])
async def test_refused_update_leaves_the_template_as_it_was(ctx: Ctx, paths: list[str], changes: dict[str, Any],
                                                            expected: Expected) -> None:
    original = ctx.lab.template
    proposed = pb.Template(id=original.id, **{k: v for k, v in changes.items() if k != "id"})
    if "id" in changes:
        proposed.id = changes["id"]
    await expect(ctx.lab.api, "templates.UpdateTemplate",
                 tmpl.UpdateTemplateRequest(template=proposed, update_mask=FieldMask(paths=paths)), expected)
    got = await invoke(ctx.lab.api, "templates.GetTemplate", tmpl.GetTemplateRequest(template_id=original.id))
    assert got == original


async def test_refused_upsert_leaves_the_candidates_as_they_were(admin: Api) -> None:
    world = await make_tenant(admin)
    email = new_email()
    await expect(world.api, "candidates.UpsertCandidate", cand.UpsertCandidateRequest(
        email=email, external_id=world.candidate.external_id, full_name="Impostor"), EXISTS)
    listed = await invoke(world.api, "candidates.ListCandidates", cand.ListCandidatesRequest())
    assert list(listed.candidates) == [world.candidate]
    # The refused email is free to use afterwards.
    made = await invoke(world.api, "candidates.UpsertCandidate", cand.UpsertCandidateRequest(email=email))
    assert made.created and made.candidate.email == email


async def test_refused_invitations_create_nothing(admin: Api, service: Api) -> None:
    world = await make_tenant(admin)
    for request, expected in [
        (inv.CreateInvitationRequest(candidate_id=world.candidate.id, template_id=world.template.id,
                                     ttl=Duration(seconds=1), send_email=True), INVALID),
        (inv.CreateInvitationRequest(candidate_id=world.candidate.id, template_id=UNKNOWN_ID, send_email=True),
         NOT_FOUND),
        (inv.CreateInvitationRequest(candidate_id=UNKNOWN_ID, template_id=world.template.id, send_email=True),
         NOT_FOUND),
    ]:
        await expect(world.api, "invitations.CreateInvitation", request, expected)
    listed = await invoke(world.api, "invitations.ListInvitations", inv.ListInvitationsRequest())
    assert list(listed.invitations) == []
    messages = await invoke(world.api, "outbox.ListOutboxMessages", box.ListOutboxMessagesRequest())
    assert list(messages.messages) == []
    candidate = await invoke(world.api, "candidates.GetCandidate",
                             cand.GetCandidateRequest(candidate_id=world.candidate.id))
    assert candidate.status == pb.CANDIDATE_STATUS_NEW
