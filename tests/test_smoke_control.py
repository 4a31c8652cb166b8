"""The control plane end to end over a real gRPC connection: tenant to transcript."""

from __future__ import annotations

import grpc
import pytest

from interview.v1 import invitation_service_pb2, resources_pb2, session_service_pb2
from tests.conftest import Api, TenantWorld


async def test_invitation_to_transcript(world: TenantWorld, service: Api) -> None:
    created = await world.api.invitations.CreateInvitation(
        invitation_service_pb2.CreateInvitationRequest(
            candidate_id=world.candidate.id, template_id=world.template.id, send_email=True),
        metadata=world.api.md)
    assert created.invite_url.endswith("/i/" + created.token)
    assert created.invitation.status == resources_pb2.INVITATION_STATUS_PENDING

    redeemed = await service.invitations.RedeemInvitation(
        invitation_service_pb2.RedeemInvitationRequest(token=created.token), metadata=service.md)
    assert redeemed.first_redemption
    session_id = redeemed.session.id
    assert redeemed.template.questions == world.template.questions

    await service.sessions.AppendTranscriptItems(
        session_service_pb2.AppendTranscriptItemsRequest(session_id=session_id, items=[
            resources_pb2.TranscriptItem(sequence=1, speaker=resources_pb2.SPEAKER_INTERVIEWER,
                                         text="Tell me about yourself.", audio_start_ms=0, audio_end_ms=1500),
        ]), metadata=service.md)
    transcript = await world.api.sessions.GetTranscript(
        session_service_pb2.GetTranscriptRequest(session_id=session_id), metadata=world.api.md)
    assert [i.text for i in transcript.items] == ["Tell me about yourself."]

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await service.invitations.RedeemInvitation(
            invitation_service_pb2.RedeemInvitationRequest(token=created.token), metadata=service.md)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
