"""The live path end to end: invitation, redemption, a whole interview through the official
`openai` SDK against the edge, one Ray actor per interview, the stored transcript."""

from __future__ import annotations

import aiohttp
import pytest

from interview.v1 import invitation_service_pb2, resources_pb2, session_service_pb2
from tests.conftest import SHARED, TenantWorld
from tests.sdk_candidate import client_secret, read_wav, run_interview

AUDIO = SHARED / "audio"


async def redeem(world: TenantWorld, edge_base: str) -> dict[str, object]:
    created = await world.api.invitations.CreateInvitation(
        invitation_service_pb2.CreateInvitationRequest(candidate_id=world.candidate.id,
                                                       template_id=world.template.id), metadata=world.api.md)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"http://{edge_base}/v1/invitations/redeem", json={"token": created.token}) as resp:
            assert resp.status == 200, await resp.text()
            body: dict[str, object] = await resp.json()
    return body


@pytest.fixture
def edge_base(edge: object) -> str:
    return f"127.0.0.1:{edge.port}"  # type: ignore[attr-defined]


async def test_whole_interview_through_the_official_sdk(world: TenantWorld, edge_base: str) -> None:
    redeemed = await redeem(world, edge_base)
    session_id = str(redeemed["session_id"])
    secret = await client_secret(edge_base, str(redeemed["access_token"]))
    answers = [read_wav(AUDIO / "candidate_intro.wav"), read_wav(AUDIO / "candidate_answer_project.wav")]
    run = await run_interview(edge_base, secret, session_id, answers, speed=1.0)  # real-time pace, as a person

    types = [e["type"] for e in run.events]
    # Placed at its client secret, the session is announced by the edge at once, and only then.
    assert types[0] == "session.created" and types.count("session.created") == 1
    announced = run.events[0]["session"]
    assert (announced["id"], announced["model"]) == (session_id, "offline-interviewer")
    assert run.of_type("interview.ended")[-1]["reason"] == "completed"
    assert len(run.of_type("input_audio_buffer.speech_started")) == 2
    assert len(run.of_type("conversation.item.input_audio_transcription.completed")) == 2
    assert run.of_type("response.output_audio.delta"), "the interviewer spoke"
    progress = run.of_type("interview.progress")
    assert {p["question_number"] for p in progress} >= {1, 2}

    transcript = await world.api.sessions.GetTranscript(
        session_service_pb2.GetTranscriptRequest(session_id=session_id), metadata=world.api.md)
    speakers = [i.speaker for i in transcript.items]
    assert speakers == [resources_pb2.SPEAKER_INTERVIEWER, resources_pb2.SPEAKER_CANDIDATE] * 2 + [
        resources_pb2.SPEAKER_INTERVIEWER]
    assert [i.sequence for i in transcript.items] == [1, 2, 3, 4, 5]
    assert world.template.questions[0] in transcript.items[0].text
    assert transcript.items[2].text == world.template.questions[1]
    candidate_turns = [i for i in transcript.items if i.speaker == resources_pb2.SPEAKER_CANDIDATE]
    # The intro is 8.5 s of speech: the stored turn's timing says so.
    assert 6000 < candidate_turns[0].audio_end_ms - candidate_turns[0].audio_start_ms < 10000
    session = await world.api.sessions.GetSession(
        session_service_pb2.GetSessionRequest(session_id=session_id), metadata=world.api.md)
    assert session.status == resources_pb2.SESSION_STATUS_COMPLETED
