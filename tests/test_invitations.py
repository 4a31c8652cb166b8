"""Invitations: single use under concurrency, pinned templates, resend and revoke, pagination."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from interview.v1 import (
    candidate_service_pb2,
    invitation_service_pb2,
    resources_pb2,
    session_service_pb2,
    template_service_pb2,
)
from tests.conftest import Api, Database, TenantWorld, error_code_of


async def invite(world: TenantWorld, **kwargs: object) -> invitation_service_pb2.CreateInvitationResponse:
    return await world.api.invitations.CreateInvitation(
        invitation_service_pb2.CreateInvitationRequest(
            candidate_id=world.candidate.id, template_id=world.template.id, **kwargs),  # type: ignore[arg-type]
        metadata=world.api.md)


async def test_token_is_long_random_and_only_hashed(world: TenantWorld, database: Database) -> None:
    first, second = await invite(world), await invite(world)
    assert first.token != second.token
    assert len(first.token) >= 22  # >= 128 bits in base64url
    conn = await asyncpg.connect(database.owner_dsn)
    try:
        dump = await conn.fetchval("SELECT string_agg(row_to_json(i)::text, '') FROM interview_invitations i"
                                   " WHERE tenant_id = $1", uuid.UUID(world.tenant.id))
        outbox = await conn.fetchval("SELECT coalesce(string_agg(row_to_json(o)::text, ''), '') FROM email_outbox o")
    finally:
        await conn.close()
    assert first.token not in dump and second.token not in dump
    assert first.token not in outbox


async def test_fifty_concurrent_redemptions_give_exactly_one_success(world: TenantWorld, service: Api) -> None:
    created = await invite(world)

    async def redeem() -> grpc.StatusCode:
        try:
            await service.invitations.RedeemInvitation(
                invitation_service_pb2.RedeemInvitationRequest(token=created.token), metadata=service.md)
            return grpc.StatusCode.OK
        except grpc.aio.AioRpcError as exc:
            assert error_code_of(exc) == "INVITATION_USED"
            return exc.code()

    results = await asyncio.gather(*(redeem() for _ in range(50)))
    assert results.count(grpc.StatusCode.OK) == 1
    assert results.count(grpc.StatusCode.FAILED_PRECONDITION) == 49
    sessions = await world.api.sessions.ListSessions(
        session_service_pb2.ListSessionsRequest(candidate_id=world.candidate.id), metadata=world.api.md)
    assert len(sessions.sessions) == 1


async def test_the_bound_account_gets_its_session_back(world: TenantWorld, service: Api) -> None:
    created = await invite(world)
    first = await service.invitations.RedeemInvitation(
        invitation_service_pb2.RedeemInvitationRequest(token=created.token), metadata=service.md)
    again = await service.invitations.RedeemInvitation(
        invitation_service_pb2.RedeemInvitationRequest(token=created.token, user_id=first.user_id),
        metadata=service.md)
    assert again.session.id == first.session.id and not again.first_redemption
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await service.invitations.RedeemInvitation(
            invitation_service_pb2.RedeemInvitationRequest(
                token=created.token, user_id="00000000-0000-4000-8000-000000000000"), metadata=service.md)
    assert error_code_of(err.value) == "INVITATION_USED"


async def test_lookup_does_not_consume(world: TenantWorld, service: Api) -> None:
    created = await invite(world)
    for _ in range(3):
        found = await service.invitations.LookupInvitation(
            invitation_service_pb2.LookupInvitationRequest(token=created.token), metadata=service.md)
        assert found.redeemable and found.tenant_display_name == world.tenant.display_name
        assert found.invitation.template.role == world.template.role
    redeemed = await service.invitations.RedeemInvitation(
        invitation_service_pb2.RedeemInvitationRequest(token=created.token), metadata=service.md)
    assert redeemed.first_redemption
    found = await service.invitations.LookupInvitation(
        invitation_service_pb2.LookupInvitationRequest(token=created.token), metadata=service.md)
    assert not found.redeemable and found.invitation.status == resources_pb2.INVITATION_STATUS_REDEEMED


async def test_invitation_pins_the_template_as_sent(world: TenantWorld, service: Api) -> None:
    created = await invite(world)
    await world.api.templates.UpdateTemplate(
        template_service_pb2.UpdateTemplateRequest(
            template=resources_pb2.Template(id=world.template.id, questions=["A brand new question?"]),
            update_mask=FieldMask(paths=["questions"])), metadata=world.api.md)
    later = await invite(world)
    assert list(created.invitation.template.questions) == list(world.template.questions)
    assert list(later.invitation.template.questions) == ["A brand new question?"]
    assert later.invitation.template.version == created.invitation.template.version + 1
    redeemed = await service.invitations.RedeemInvitation(
        invitation_service_pb2.RedeemInvitationRequest(token=created.token), metadata=service.md)
    assert list(redeemed.template.questions) == list(world.template.questions)


async def test_resend_replaces_the_token(world: TenantWorld, service: Api) -> None:
    created = await invite(world)
    resent = await world.api.invitations.ResendInvitation(
        invitation_service_pb2.ResendInvitationRequest(invitation_id=created.invitation.id), metadata=world.api.md)
    assert resent.token != created.token and resent.invitation.id == created.invitation.id
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await service.invitations.RedeemInvitation(
            invitation_service_pb2.RedeemInvitationRequest(token=created.token), metadata=service.md)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    await service.invitations.RedeemInvitation(
        invitation_service_pb2.RedeemInvitationRequest(token=resent.token), metadata=service.md)


async def test_revoked_invitation_cannot_be_redeemed(world: TenantWorld, service: Api) -> None:
    created = await invite(world)
    revoked = await world.api.invitations.RevokeInvitation(
        invitation_service_pb2.RevokeInvitationRequest(invitation_id=created.invitation.id), metadata=world.api.md)
    assert revoked.status == resources_pb2.INVITATION_STATUS_REVOKED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await service.invitations.RedeemInvitation(
            invitation_service_pb2.RedeemInvitationRequest(token=created.token), metadata=service.md)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_code_of(err.value) == "INVITATION_REVOKED"


async def test_default_expiry_is_seven_days(world: TenantWorld) -> None:
    created = await invite(world)
    inv = created.invitation
    lifetime = inv.expire_time.ToSeconds() - inv.create_time.ToSeconds()
    assert abs(lifetime - 7 * 24 * 3600) < 5


async def test_list_pages_through_everything_once(world: TenantWorld) -> None:
    made = {(await invite(world)).invitation.id for _ in range(7)}
    seen: list[str] = []
    token = ""
    while True:
        page = await world.api.invitations.ListInvitations(
            invitation_service_pb2.ListInvitationsRequest(page_size=3, page_token=token), metadata=world.api.md)
        assert len(page.invitations) <= 3
        seen.extend(i.id for i in page.invitations)
        token = page.next_page_token
        if not token:
            break
    assert made <= set(seen) and len(seen) == len(set(seen))


async def test_candidate_status_follows_invitations(world: TenantWorld) -> None:
    got = await world.api.candidates.GetCandidate(
        candidate_service_pb2.GetCandidateRequest(candidate_id=world.candidate.id), metadata=world.api.md)
    assert got.status == resources_pb2.CANDIDATE_STATUS_NEW
    await invite(world)
    got = await world.api.candidates.GetCandidate(
        candidate_service_pb2.GetCandidateRequest(candidate_id=world.candidate.id), metadata=world.api.md)
    assert got.status == resources_pb2.CANDIDATE_STATUS_INVITED
