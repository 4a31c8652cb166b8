"""Tenant isolation at the API: tenant A's key on tenant B's ids gets NOT_FOUND or
PERMISSION_DENIED, never B's data, and each credential reaches only its own methods."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from control.server import RunningControl
from interview.v1 import (
    candidate_service_pb2,
    invitation_service_pb2,
    outbox_service_pb2,
    resources_pb2,
    session_service_pb2,
    template_service_pb2,
    tenant_service_pb2,
)
from tests.conftest import Api, TenantWorld

DENIED = {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED}


@dataclass
class Victim:
    """Tenant B's world, with a unique marker in every field a leak would show."""

    world: TenantWorld
    key_id: str
    key_secret: str
    template: resources_pb2.Template
    candidate: resources_pb2.Candidate
    redeemed: invitation_service_pb2.CreateInvitationResponse
    pending: invitation_service_pb2.CreateInvitationResponse
    session: resources_pb2.Session
    secrets: list[str]  # B's data, none of which may appear in an error A gets

    @property
    def tenant_id(self) -> str:
        return self.world.tenant.id

    @property
    def api(self) -> Api:
        return self.world.api


@pytest.fixture
async def victim(other_world: TenantWorld, service: Api) -> Victim:
    b = other_world
    mark = uuid.uuid4().hex[:10]
    key = await b.api.tenants.CreateApiKey(
        tenant_service_pb2.CreateApiKeyRequest(display_name=f"b-key-{mark}"), metadata=b.api.md)
    template = await b.api.templates.CreateTemplate(
        template_service_pb2.CreateTemplateRequest(template=resources_pb2.Template(
            role=f"B role {mark}", questions=[f"B question {mark}?"], time_limit_seconds=300,
            language="en-US", voice="alloy", instructions=f"B instructions {mark}")), metadata=b.api.md)
    candidate = (await b.api.candidates.UpsertCandidate(
        candidate_service_pb2.UpsertCandidateRequest(
            email=f"b-person-{mark}@example.com", full_name=f"B Person {mark}", external_id=f"b-ext-{mark}"),
        metadata=b.api.md)).candidate

    async def invite(send_email: bool) -> invitation_service_pb2.CreateInvitationResponse:
        return await b.api.invitations.CreateInvitation(invitation_service_pb2.CreateInvitationRequest(
            candidate_id=candidate.id, template_id=template.id, send_email=send_email), metadata=b.api.md)

    redeemed, pending = await invite(False), await invite(True)
    session = (await service.invitations.RedeemInvitation(
        invitation_service_pb2.RedeemInvitationRequest(token=redeemed.token), metadata=service.md)).session
    await service.sessions.AppendTranscriptItems(session_service_pb2.AppendTranscriptItemsRequest(
        session_id=session.id, items=[resources_pb2.TranscriptItem(
            sequence=1, speaker=resources_pb2.SPEAKER_CANDIDATE, text=f"B transcript {mark}")]),
        metadata=service.md)
    secrets = [b.tenant.display_name, key.secret, key.api_key.secret_prefix, f"b-key-{mark}", template.role,
               template.questions[0], template.instructions, candidate.email, candidate.full_name,
               candidate.external_id, redeemed.token, pending.token, f"B transcript {mark}", session.user_id, mark]
    return Victim(b, key.api_key.id, key.secret, template, candidate, redeemed, pending, session, secrets)


def _error_text(err: grpc.aio.AioRpcError) -> str:
    parts = [err.details() or ""]
    parts += [f"{k}={v!r}" for k, v in (err.trailing_metadata() or ())]
    parts += [f"{k}={v!r}" for k, v in (err.initial_metadata() or ())]
    return "\n".join(parts)


async def expect_error(call: Awaitable[Any], codes: set[grpc.StatusCode] | grpc.StatusCode,
                       victim: Victim | None = None, *, also_secret: tuple[str, ...] = ()) -> grpc.aio.AioRpcError:
    """The call fails with one of `codes`, and its error shows none of the victim's data."""
    wanted = codes if isinstance(codes, set) else {codes}
    try:
        result = await call
    except grpc.aio.AioRpcError as err:
        assert err.code() in wanted, f"{err.code()}: {err.details()}"
        text = _error_text(err)
        for secret in [*(victim.secrets if victim else ()), *also_secret]:
            assert secret not in text, f"error leaks {secret!r}: {text}"
        return err
    raise AssertionError(f"expected {wanted}, got a response: {result}")


async def expect_stream_error(stream: Any, codes: set[grpc.StatusCode] | grpc.StatusCode,
                              victim: Victim) -> None:
    received: list[Any] = []

    async def drain() -> None:
        async for message in stream:
            received.append(message)

    await expect_error(drain(), codes, victim)
    assert received == [], f"the stream sent {received}"


# --- A's key on B's ids --------------------------------------------------------------------------


async def test_tenant_service_on_other_tenant(world: TenantWorld, victim: Victim) -> None:
    a = world.api
    await expect_error(a.tenants.GetTenant(
        tenant_service_pb2.GetTenantRequest(tenant_id=victim.tenant_id), metadata=a.md),
        grpc.StatusCode.PERMISSION_DENIED, victim)
    await expect_error(a.tenants.CreateApiKey(
        tenant_service_pb2.CreateApiKeyRequest(tenant_id=victim.tenant_id, display_name="evil"), metadata=a.md),
        grpc.StatusCode.PERMISSION_DENIED, victim)
    await expect_error(a.tenants.RevokeApiKey(
        tenant_service_pb2.RevokeApiKeyRequest(api_key_id=victim.key_id), metadata=a.md), DENIED, victim)
    await expect_error(a.tenants.RevokeApiKey(
        tenant_service_pb2.RevokeApiKeyRequest(tenant_id=victim.tenant_id, api_key_id=victim.key_id),
        metadata=a.md), grpc.StatusCode.PERMISSION_DENIED, victim)
    # B's key (never used before, so not cached) still authenticates: A's revoke did nothing.
    b_key = Api(a.channel, victim.key_secret)
    own = await b_key.tenants.GetTenant(tenant_service_pb2.GetTenantRequest(), metadata=b_key.md)
    assert own.id == victim.tenant_id
    mine = await a.tenants.GetTenant(tenant_service_pb2.GetTenantRequest(), metadata=a.md)
    assert mine.id == world.tenant.id


async def test_template_service_on_other_tenant(world: TenantWorld, victim: Victim) -> None:
    a = world.api
    await expect_error(a.templates.GetTemplate(
        template_service_pb2.GetTemplateRequest(template_id=victim.template.id), metadata=a.md), DENIED, victim)
    await expect_error(a.templates.UpdateTemplate(template_service_pb2.UpdateTemplateRequest(
        template=resources_pb2.Template(id=victim.template.id, role="hijacked"),
        update_mask=FieldMask(paths=["role"])), metadata=a.md), DENIED, victim)
    listed = await a.templates.ListTemplates(template_service_pb2.ListTemplatesRequest(), metadata=a.md)
    assert {t.id for t in listed.templates} == {world.template.id}
    after = await victim.api.templates.GetTemplate(
        template_service_pb2.GetTemplateRequest(template_id=victim.template.id), metadata=victim.api.md)
    assert (after.role, after.version) == (victim.template.role, victim.template.version)


async def test_candidate_service_on_other_tenant(world: TenantWorld, victim: Victim) -> None:
    a = world.api
    await expect_error(a.candidates.GetCandidate(
        candidate_service_pb2.GetCandidateRequest(candidate_id=victim.candidate.id), metadata=a.md), DENIED, victim)
    listed = await a.candidates.ListCandidates(candidate_service_pb2.ListCandidatesRequest(), metadata=a.md)
    assert {c.id for c in listed.candidates} == {world.candidate.id}
    # B's external id means nothing to A: upserting by it alone finds no candidate.
    await expect_error(a.candidates.UpsertCandidate(candidate_service_pb2.UpsertCandidateRequest(
        external_id=victim.candidate.external_id), metadata=a.md), grpc.StatusCode.INVALID_ARGUMENT, victim)


async def test_invitation_service_on_other_tenant(world: TenantWorld, victim: Victim) -> None:
    a = world.api
    for candidate_id, template_id in [(victim.candidate.id, world.template.id),
                                      (world.candidate.id, victim.template.id),
                                      (victim.candidate.id, victim.template.id)]:
        await expect_error(a.invitations.CreateInvitation(invitation_service_pb2.CreateInvitationRequest(
            candidate_id=candidate_id, template_id=template_id, send_email=True), metadata=a.md), DENIED, victim)
    for invitation in (victim.redeemed.invitation, victim.pending.invitation):
        await expect_error(a.invitations.GetInvitation(
            invitation_service_pb2.GetInvitationRequest(invitation_id=invitation.id), metadata=a.md), DENIED, victim)
        await expect_error(a.invitations.RevokeInvitation(
            invitation_service_pb2.RevokeInvitationRequest(invitation_id=invitation.id), metadata=a.md),
            DENIED, victim)
        await expect_error(a.invitations.ResendInvitation(
            invitation_service_pb2.ResendInvitationRequest(invitation_id=invitation.id, send_email=True),
            metadata=a.md), DENIED, victim)
    listed = await a.invitations.ListInvitations(invitation_service_pb2.ListInvitationsRequest(
        candidate_id=victim.candidate.id), metadata=a.md)
    assert list(listed.invitations) == []
    everything = await a.invitations.ListInvitations(invitation_service_pb2.ListInvitationsRequest(), metadata=a.md)
    assert list(everything.invitations) == []  # A created none: the attempts above made nothing
    # B's pending invitation is untouched: still pending, its token still the one that works.
    still = await victim.api.invitations.GetInvitation(
        invitation_service_pb2.GetInvitationRequest(invitation_id=victim.pending.invitation.id),
        metadata=victim.api.md)
    assert still.status == resources_pb2.INVITATION_STATUS_PENDING
    assert still.expire_time == victim.pending.invitation.expire_time
    # A's outbox holds none of B's mail.
    outbox = await a.outbox.ListOutboxMessages(outbox_service_pb2.ListOutboxMessagesRequest(), metadata=a.md)
    assert all(m.tenant_id == world.tenant.id for m in outbox.messages)
    assert not any(victim.candidate.email == m.to_email for m in outbox.messages)


async def test_session_service_on_other_tenant(world: TenantWorld, victim: Victim) -> None:
    a = world.api
    sid = victim.session.id
    await expect_error(a.sessions.GetSession(
        session_service_pb2.GetSessionRequest(session_id=sid), metadata=a.md), DENIED, victim)
    await expect_error(a.sessions.GetTranscript(
        session_service_pb2.GetTranscriptRequest(session_id=sid), metadata=a.md), DENIED, victim)
    await expect_stream_error(a.sessions.WatchSession(
        session_service_pb2.WatchSessionRequest(session_id=sid), metadata=a.md, timeout=10), DENIED, victim)
    by_candidate = await a.sessions.ListSessions(
        session_service_pb2.ListSessionsRequest(candidate_id=victim.candidate.id), metadata=a.md)
    assert list(by_candidate.sessions) == []
    everything = await a.sessions.ListSessions(session_service_pb2.ListSessionsRequest(), metadata=a.md)
    assert list(everything.sessions) == []
    # B itself still sees its session and transcript.
    transcript = await victim.api.sessions.GetTranscript(
        session_service_pb2.GetTranscriptRequest(session_id=sid), metadata=victim.api.md)
    assert [i.text for i in transcript.items] == [s for s in victim.secrets if s.startswith("B transcript")]


def _tenant_requests(t: str, world: TenantWorld, victim: Victim) -> list[tuple[str, Callable[[Api], Any]]]:
    """Every tenant-scoped RPC, naming tenant `t` and otherwise valid for A's own ids."""
    template = resources_pb2.Template(role="R", questions=["Q?"], time_limit_seconds=60)
    return [
        ("GetTenant", lambda x: x.tenants.GetTenant(tenant_service_pb2.GetTenantRequest(tenant_id=t), metadata=x.md)),
        ("CreateApiKey", lambda x: x.tenants.CreateApiKey(
            tenant_service_pb2.CreateApiKeyRequest(tenant_id=t), metadata=x.md)),
        ("RevokeApiKey", lambda x: x.tenants.RevokeApiKey(
            tenant_service_pb2.RevokeApiKeyRequest(tenant_id=t, api_key_id=victim.key_id), metadata=x.md)),
        ("CreateTemplate", lambda x: x.templates.CreateTemplate(
            template_service_pb2.CreateTemplateRequest(tenant_id=t, template=template), metadata=x.md)),
        ("GetTemplate", lambda x: x.templates.GetTemplate(
            template_service_pb2.GetTemplateRequest(tenant_id=t, template_id=world.template.id), metadata=x.md)),
        ("ListTemplates", lambda x: x.templates.ListTemplates(
            template_service_pb2.ListTemplatesRequest(tenant_id=t), metadata=x.md)),
        ("UpdateTemplate", lambda x: x.templates.UpdateTemplate(template_service_pb2.UpdateTemplateRequest(
            tenant_id=t, template=resources_pb2.Template(id=world.template.id, role="X"),
            update_mask=FieldMask(paths=["role"])), metadata=x.md)),
        ("UpsertCandidate", lambda x: x.candidates.UpsertCandidate(candidate_service_pb2.UpsertCandidateRequest(
            tenant_id=t, email=victim.candidate.email), metadata=x.md)),
        ("GetCandidate", lambda x: x.candidates.GetCandidate(candidate_service_pb2.GetCandidateRequest(
            tenant_id=t, candidate_id=world.candidate.id), metadata=x.md)),
        ("ListCandidates", lambda x: x.candidates.ListCandidates(
            candidate_service_pb2.ListCandidatesRequest(tenant_id=t), metadata=x.md)),
        ("CreateInvitation", lambda x: x.invitations.CreateInvitation(invitation_service_pb2.CreateInvitationRequest(
            tenant_id=t, candidate_id=victim.candidate.id, template_id=victim.template.id), metadata=x.md)),
        ("GetInvitation", lambda x: x.invitations.GetInvitation(invitation_service_pb2.GetInvitationRequest(
            tenant_id=t, invitation_id=victim.pending.invitation.id), metadata=x.md)),
        ("ListInvitations", lambda x: x.invitations.ListInvitations(
            invitation_service_pb2.ListInvitationsRequest(tenant_id=t), metadata=x.md)),
        ("RevokeInvitation", lambda x: x.invitations.RevokeInvitation(invitation_service_pb2.RevokeInvitationRequest(
            tenant_id=t, invitation_id=victim.pending.invitation.id), metadata=x.md)),
        ("ResendInvitation", lambda x: x.invitations.ResendInvitation(invitation_service_pb2.ResendInvitationRequest(
            tenant_id=t, invitation_id=victim.pending.invitation.id), metadata=x.md)),
        ("GetSession", lambda x: x.sessions.GetSession(session_service_pb2.GetSessionRequest(
            tenant_id=t, session_id=victim.session.id), metadata=x.md)),
        ("ListSessions", lambda x: x.sessions.ListSessions(
            session_service_pb2.ListSessionsRequest(tenant_id=t), metadata=x.md)),
        ("GetTranscript", lambda x: x.sessions.GetTranscript(session_service_pb2.GetTranscriptRequest(
            tenant_id=t, session_id=victim.session.id), metadata=x.md)),
        ("ListOutboxMessages", lambda x: x.outbox.ListOutboxMessages(
            outbox_service_pb2.ListOutboxMessagesRequest(tenant_id=t), metadata=x.md)),
    ]


async def test_naming_another_tenant_is_permission_denied(world: TenantWorld, victim: Victim) -> None:
    a = world.api
    for name, make in _tenant_requests(victim.tenant_id, world, victim):
        err = await expect_error(make(a), grpc.StatusCode.PERMISSION_DENIED, victim)
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, name
    await expect_stream_error(a.sessions.WatchSession(session_service_pb2.WatchSessionRequest(
        tenant_id=victim.tenant_id, session_id=victim.session.id), metadata=a.md, timeout=10),
        grpc.StatusCode.PERMISSION_DENIED, victim)
    # A tenant that does not exist at all is no different from one that does.
    for name, make in _tenant_requests(str(uuid.uuid4()), world, victim):
        err = await expect_error(make(a), grpc.StatusCode.PERMISSION_DENIED, victim)
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, name


# --- Each credential reaches only its own methods ------------------------------------------------


async def test_tenant_key_cannot_call_admin_or_service_methods(world: TenantWorld, victim: Victim) -> None:
    a = world.api
    await expect_error(a.tenants.CreateTenant(
        tenant_service_pb2.CreateTenantRequest(display_name="mine now"), metadata=a.md),
        grpc.StatusCode.PERMISSION_DENIED, victim)
    await expect_error(a.tenants.ListTenants(tenant_service_pb2.ListTenantsRequest(), metadata=a.md),
                       grpc.StatusCode.PERMISSION_DENIED, victim)
    for token in (victim.pending.token, victim.redeemed.token):
        await expect_error(a.invitations.LookupInvitation(
            invitation_service_pb2.LookupInvitationRequest(token=token), metadata=a.md),
            grpc.StatusCode.PERMISSION_DENIED, victim)
        await expect_error(a.invitations.RedeemInvitation(
            invitation_service_pb2.RedeemInvitationRequest(token=token), metadata=a.md),
            grpc.StatusCode.PERMISSION_DENIED, victim)
    await expect_error(a.sessions.UpdateSessionStatus(session_service_pb2.UpdateSessionStatusRequest(
        session_id=victim.session.id, status=resources_pb2.SESSION_STATUS_ENDED, reason="evil"), metadata=a.md),
        grpc.StatusCode.PERMISSION_DENIED, victim)
    await expect_error(a.sessions.AppendTranscriptItems(session_service_pb2.AppendTranscriptItemsRequest(
        session_id=victim.session.id, items=[resources_pb2.TranscriptItem(
            sequence=2, speaker=resources_pb2.SPEAKER_CANDIDATE, text="injected")]), metadata=a.md),
        grpc.StatusCode.PERMISSION_DENIED, victim)
    # B's session and invitation are as they were.
    session = await victim.api.sessions.GetSession(
        session_service_pb2.GetSessionRequest(session_id=victim.session.id), metadata=victim.api.md)
    assert session.status == resources_pb2.SESSION_STATUS_READY
    transcript = await victim.api.sessions.GetTranscript(
        session_service_pb2.GetTranscriptRequest(session_id=victim.session.id), metadata=victim.api.md)
    assert len(transcript.items) == 1
    pending = await victim.api.invitations.GetInvitation(
        invitation_service_pb2.GetInvitationRequest(invitation_id=victim.pending.invitation.id),
        metadata=victim.api.md)
    assert pending.status == resources_pb2.INVITATION_STATUS_PENDING


async def test_service_credential_cannot_call_tenant_methods(service: Api, victim: Victim) -> None:
    await expect_error(service.candidates.ListCandidates(
        candidate_service_pb2.ListCandidatesRequest(), metadata=service.md), grpc.StatusCode.PERMISSION_DENIED)
    await expect_error(service.candidates.ListCandidates(candidate_service_pb2.ListCandidatesRequest(
        tenant_id=victim.tenant_id), metadata=service.md), grpc.StatusCode.PERMISSION_DENIED, victim)
    await expect_error(service.templates.CreateTemplate(template_service_pb2.CreateTemplateRequest(
        tenant_id=victim.tenant_id, template=resources_pb2.Template(role="R", questions=["Q?"], time_limit_seconds=60)),
        metadata=service.md), grpc.StatusCode.PERMISSION_DENIED, victim)
    await expect_error(service.tenants.ListTenants(tenant_service_pb2.ListTenantsRequest(), metadata=service.md),
                       grpc.StatusCode.PERMISSION_DENIED, victim)
    await expect_error(service.tenants.CreateTenant(tenant_service_pb2.CreateTenantRequest(display_name="x"),
                                                    metadata=service.md), grpc.StatusCode.PERMISSION_DENIED)
    await expect_error(service.outbox.ListOutboxMessages(outbox_service_pb2.ListOutboxMessagesRequest(
        tenant_id=victim.tenant_id), metadata=service.md), grpc.StatusCode.PERMISSION_DENIED, victim)
    for name, make in _tenant_requests(victim.tenant_id, victim.world, victim):
        if name in ("GetSession", "GetTranscript"):
            continue  # the edge and the actors read sessions by id: allowed to the service
        err = await expect_error(make(service), grpc.StatusCode.PERMISSION_DENIED, victim)
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, name


@pytest.mark.parametrize("revoker", ["tenant", "admin"])
async def test_revoked_key_is_rejected_at_once(world: TenantWorld, admin: Api, control: RunningControl,
                                               revoker: str) -> None:
    """The process that revokes a key stops accepting it before RevokeApiKey returns.

    Other processes learn of it through a LISTEN/NOTIFY notice; the revoking one must not wait for
    its own notice, which can arrive after the client's next call. The listener is stopped here so
    that race is lost every time rather than now and then.
    """
    a = world.api
    created = await a.tenants.CreateApiKey(tenant_service_pb2.CreateApiKeyRequest(display_name="temp"),
                                           metadata=a.md)
    temp = Api(a.channel, created.secret)
    await temp.templates.ListTemplates(template_service_pb2.ListTemplatesRequest(), metadata=temp.md)  # cached now
    await control.listener.stop()
    try:
        if revoker == "tenant":
            await a.tenants.RevokeApiKey(
                tenant_service_pb2.RevokeApiKeyRequest(api_key_id=created.api_key.id), metadata=a.md)
        else:
            await admin.tenants.RevokeApiKey(tenant_service_pb2.RevokeApiKeyRequest(
                tenant_id=world.tenant.id, api_key_id=created.api_key.id), metadata=admin.md)
        await expect_error(temp.templates.ListTemplates(template_service_pb2.ListTemplatesRequest(),
                                                        metadata=temp.md),
                           grpc.StatusCode.UNAUTHENTICATED, also_secret=(created.secret,))
    finally:
        control.listener.start()
        await asyncio.wait_for(control.listener.connected.wait(), timeout=10)
    await expect_error(temp.tenants.GetTenant(tenant_service_pb2.GetTenantRequest(), metadata=temp.md),
                       grpc.StatusCode.UNAUTHENTICATED, also_secret=(created.secret,))
    # The key that revoked it still works.
    await a.templates.ListTemplates(template_service_pb2.ListTemplatesRequest(), metadata=a.md)


async def test_revoked_key_never_used_is_rejected(world: TenantWorld) -> None:
    a = world.api
    created = await a.tenants.CreateApiKey(tenant_service_pb2.CreateApiKeyRequest(), metadata=a.md)
    await a.tenants.RevokeApiKey(tenant_service_pb2.RevokeApiKeyRequest(api_key_id=created.api_key.id),
                                 metadata=a.md)
    temp = Api(a.channel, created.secret)
    await expect_error(temp.templates.ListTemplates(template_service_pb2.ListTemplatesRequest(), metadata=temp.md),
                       grpc.StatusCode.UNAUTHENTICATED, also_secret=(created.secret,))


# --- One person, two tenants ---------------------------------------------------------------------


async def test_person_invited_by_two_tenants_keeps_separate_views(world: TenantWorld, victim: Victim) -> None:
    a, b = world.api, victim.api
    email = f"shared-{uuid.uuid4().hex[:8]}@example.com"
    in_a = (await a.candidates.UpsertCandidate(candidate_service_pb2.UpsertCandidateRequest(
        email=email, full_name="Name Given By A", external_id="a-ext"), metadata=a.md)).candidate
    upsert_b = await b.candidates.UpsertCandidate(candidate_service_pb2.UpsertCandidateRequest(
        email=email.upper(), full_name="Name Given By B", external_id="b-ext"), metadata=b.md)
    in_b = upsert_b.candidate
    assert upsert_b.created  # new to B, though the person existed
    assert in_a.id == in_b.id
    assert (in_a.full_name, in_a.external_id, in_a.tenant_id) == ("Name Given By A", "a-ext", world.tenant.id)
    assert (in_b.full_name, in_b.external_id, in_b.tenant_id) == ("Name Given By B", "b-ext", victim.tenant_id)

    # A updates its view and invites the person; B's view is unchanged.
    again = await a.candidates.UpsertCandidate(candidate_service_pb2.UpsertCandidateRequest(
        email=email, full_name="Renamed By A", external_id="a-ext-2"), metadata=a.md)
    assert not again.created and again.candidate.id == in_a.id
    await a.invitations.CreateInvitation(invitation_service_pb2.CreateInvitationRequest(
        candidate_id=in_a.id, template_id=world.template.id), metadata=a.md)

    seen_by_a = await a.candidates.GetCandidate(
        candidate_service_pb2.GetCandidateRequest(candidate_id=in_a.id), metadata=a.md)
    seen_by_b = await b.candidates.GetCandidate(
        candidate_service_pb2.GetCandidateRequest(candidate_id=in_b.id), metadata=b.md)
    assert (seen_by_a.full_name, seen_by_a.external_id, seen_by_a.status) == \
        ("Renamed By A", "a-ext-2", resources_pb2.CANDIDATE_STATUS_INVITED)
    assert (seen_by_b.full_name, seen_by_b.external_id, seen_by_b.status, seen_by_b.tenant_id) == \
        ("Name Given By B", "b-ext", resources_pb2.CANDIDATE_STATUS_NEW, victim.tenant_id)
    assert seen_by_b.update_time == in_b.update_time

    # Each list shows the tenant's own view only, and B sees none of A's invitations of the person.
    for api, name in ((a, "Renamed By A"), (b, "Name Given By B")):
        listed = await api.candidates.ListCandidates(candidate_service_pb2.ListCandidatesRequest(), metadata=api.md)
        views = [c for c in listed.candidates if c.id == in_a.id]
        assert [c.full_name for c in views] == [name]
    b_invites = await b.invitations.ListInvitations(
        invitation_service_pb2.ListInvitationsRequest(candidate_id=in_b.id), metadata=b.md)
    assert list(b_invites.invitations) == []
    # Upserting by the other tenant's external id finds nothing (external ids are per tenant).
    err = await expect_error(a.candidates.UpsertCandidate(candidate_service_pb2.UpsertCandidateRequest(
        external_id="b-ext"), metadata=a.md), grpc.StatusCode.INVALID_ARGUMENT)
    assert "Name Given By B" not in _error_text(err)


async def test_same_idempotency_key_in_two_tenants_is_two_requests(world: TenantWorld, victim: Victim) -> None:
    key = f"idem-{uuid.uuid4().hex}"
    results = []
    for api, role in ((world.api, "A role"), (victim.api, "B role")):
        results.append(await api.templates.CreateTemplate(template_service_pb2.CreateTemplateRequest(
            template=resources_pb2.Template(role=role, questions=["Q?"], time_limit_seconds=60),
            idempotency_key=key), metadata=api.md))
    a_t, b_t = results
    assert a_t.id != b_t.id
    assert (a_t.tenant_id, a_t.role) == (world.tenant.id, "A role")
    assert (b_t.tenant_id, b_t.role) == (victim.tenant_id, "B role")
    replay = await world.api.templates.CreateTemplate(template_service_pb2.CreateTemplateRequest(
        template=resources_pb2.Template(role="A role", questions=["Q?"], time_limit_seconds=60),
        idempotency_key=key), metadata=world.api.md)
    assert replay.id == a_t.id
