"""A live interview survives its candidate's connection dropping and the edge restarting; a
tenant can end it; offline transcription puts real words in the transcript. Each test checks the
stored transcript item by item."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from edge.server import RunningEdge, start_edge
from interview.v1 import resources_pb2, session_service_pb2
from interview_core.config import Settings
from launcher.embedded_postgres import free_port
from tests.conftest import SHARED, TenantWorld
from tests.sdk_candidate import read_wav, run_interview, silence
from tests.test_live_interview import redeem

AUDIO = SHARED / "audio"
INT, CAND = resources_pb2.SPEAKER_INTERVIEWER, resources_pb2.SPEAKER_CANDIDATE


async def transcript(world: TenantWorld, session_id: str) -> list[resources_pb2.TranscriptItem]:
    got = await world.api.sessions.GetTranscript(
        session_service_pb2.GetTranscriptRequest(session_id=session_id), metadata=world.api.md)
    return list(got.items)


async def status(world: TenantWorld, session_id: str) -> int:
    got = await world.api.sessions.GetSession(
        session_service_pb2.GetSessionRequest(session_id=session_id), metadata=world.api.md)
    return got.status


def assert_whole_interview(items: list[resources_pb2.TranscriptItem], world: TenantWorld) -> None:
    """Every turn once, in order, nothing invented: Q1, A1, Q2, A2, closing."""
    assert [i.sequence for i in items] == [1, 2, 3, 4, 5]
    assert [i.speaker for i in items] == [INT, CAND, INT, CAND, INT]
    assert world.template.questions[0] in items[0].text
    assert items[2].text == world.template.questions[1]
    assert "last question" in items[4].text


async def ws_events(ws: aiohttp.ClientWebSocketResponse) -> AsyncIterator[dict[str, Any]]:
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT:
            yield json.loads(msg.data)
        else:
            return


async def test_candidate_drops_and_reconnects(world: TenantWorld, edge: RunningEdge) -> None:
    base = f"127.0.0.1:{edge.port}"
    redeemed = await redeem(world, base)
    session_id, token = str(redeemed["session_id"]), str(redeemed["access_token"])
    url = f"ws://{base}/v1/realtime?call_id={session_id}"
    headers = {"Authorization": f"Bearer {token}"}
    answer = read_wav(AUDIO / "candidate_intro.wav") + silence(1.0)
    async with aiohttp.ClientSession() as http:
        # First connection: hear question 1, answer it, then drop while question 2 is being asked.
        ws = await http.ws_connect(url, headers=headers)
        answered = False
        async for event in ws_events(ws):
            if event["type"] == "response.done" and not answered:
                answered = True
                for i in range(0, len(answer), 4800):
                    await ws.send_str(json.dumps({"type": "input_audio_buffer.append",
                                                  "audio": base64.b64encode(answer[i:i + 4800]).decode()}))
                    await asyncio.sleep(0.02)
            if event["type"] == "response.output_audio.delta" and answered:
                break  # question 2 has started: drop now
        await ws.close()
        await asyncio.sleep(0.5)
        # Back with the same credential: the cut-off question 2 is asked again, then the rest.
    run = await run_interview(base, token, session_id, [read_wav(AUDIO / "candidate_answer_project.wav")], speed=4.0)
    assert len(run.of_type("session.created")) == 1  # announced by the actor: no client secret placed it
    assert run.of_type("interview.ended")[-1]["reason"] == "completed"
    said = [e["transcript"] for e in run.of_type("response.output_audio_transcript.done")]
    assert said[0] == world.template.questions[1], "the question cut off by the drop is asked again"
    assert all(world.template.questions[0] not in s for s in said), "question 1 is not asked twice"
    assert_whole_interview(await transcript(world, session_id), world)
    assert await status(world, session_id) == resources_pb2.SESSION_STATUS_COMPLETED


@pytest.fixture
async def own_edge(live_settings: Settings) -> AsyncIterator[tuple[Settings, list[RunningEdge]]]:
    settings = live_settings.replace(edge_port=free_port())
    edges = [await start_edge(settings)]
    yield settings, edges
    for running in edges:
        await running.stop()


async def test_sdk_reconnects_through_an_edge_restart(world: TenantWorld,
                                                      own_edge: tuple[Settings, list[RunningEdge]]) -> None:
    settings, edges = own_edge
    base = f"127.0.0.1:{settings.edge_port}"
    redeemed = await redeem(world, base)
    session_id, token = str(redeemed["session_id"]), str(redeemed["access_token"])
    restarted = asyncio.Event()

    async def restart_during_second_question(event: dict[str, Any], _conn: Any) -> None:
        if (event["type"] == "response.output_audio_transcript.delta" and not restarted.is_set()
                and event["delta"] == world.template.questions[1]):
            restarted.set()
            old = edges.pop()
            await old.stop()  # closes the candidate's socket with 1012
            edges.append(await start_edge(settings))

    answers = [read_wav(AUDIO / "candidate_intro.wav"), read_wav(AUDIO / "candidate_answer_project.wav")]
    run = await run_interview(base, token, session_id, answers, speed=4.0, reconnect=True,
                              on_event=restart_during_second_question)
    assert restarted.is_set() and run.reconnects >= 1
    assert run.of_type("interview.ended")[-1]["reason"] == "completed"
    assert_whole_interview(await transcript(world, session_id), world)


async def test_tenant_ends_a_live_interview(world: TenantWorld, edge: RunningEdge) -> None:
    base = f"127.0.0.1:{edge.port}"
    redeemed = await redeem(world, base)
    session_id, token = str(redeemed["session_id"]), str(redeemed["access_token"])
    ended = False

    async def end_after_first_answer(event: dict[str, Any], _conn: Any) -> None:
        nonlocal ended
        if event["type"] == "conversation.item.input_audio_transcription.completed" and not ended:
            ended = True
            await world.api.sessions.EndSession(
                session_service_pb2.EndSessionRequest(session_id=session_id, reason="position filled"),
                metadata=world.api.md)

    run = await run_interview(base, token, session_id, [read_wav(AUDIO / "candidate_intro.wav")] * 2, speed=4.0,
                              on_event=end_after_first_answer, timeout_s=30)
    assert run.of_type("interview.ended")[-1]["reason"] == "ended_by_tenant"
    items = await transcript(world, session_id)
    assert [i.speaker for i in items][:2] == [INT, CAND]
    session = await world.api.sessions.GetSession(
        session_service_pb2.GetSessionRequest(session_id=session_id), metadata=world.api.md)
    assert session.status == resources_pb2.SESSION_STATUS_ENDED and session.end_reason == "position filled"
    # Coming back to an ended interview says so and closes normally.
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"ws://{base}/v1/realtime?call_id={session_id}",
                                   headers={"Authorization": f"Bearer {token}"})
        events = [e async for e in ws_events(ws)]
        assert events[-1]["type"] == "interview.ended"
        assert ws.close_code == 1000


async def test_offline_transcription_hears_real_words(world: TenantWorld, live_settings: Settings) -> None:
    # Its own pool (another Ray namespace), with transcription on.
    settings = live_settings.replace(edge_port=0, offline_transcription=True, ray_namespace="interview-tests-asr",
                                     warm_interviews=1)
    running = await start_edge(settings)
    try:
        base = f"127.0.0.1:{running.port}"
        redeemed = await redeem(world, base)
        session_id, token = str(redeemed["session_id"]), str(redeemed["access_token"])
        answers = [read_wav(AUDIO / "candidate_intro.wav"), read_wav(AUDIO / "candidate_answer_project.wav")]
        run = await run_interview(base, token, session_id, answers, speed=4.0)
    finally:
        await running.stop()
    heard = [e["transcript"] for e in run.of_type("conversation.item.input_audio_transcription.completed")]
    items = await transcript(world, session_id)
    assert_whole_interview(items, world)
    first_answer = items[1].text.lower()
    assert first_answer == heard[0].lower()
    # "hi thanks for having me ... five years of experience building ..."
    assert sum(word in first_answer.split() for word in ("thanks", "having", "years", "experience")) >= 2


async def test_interviews_on_one_actor_share_one_stream_and_stay_apart(world: TenantWorld,
                                                                       live_settings: Settings) -> None:
    """Two interviews the pool packed onto one actor process travel on the edge's one connection
    to it, a channel each, with audio held 5 ms to be written together; each hears its own
    interview and stores its own transcript, and the one that drops leaves the other running."""
    from actors import registry
    from tests.sdk_candidate import client_secret

    settings = live_settings.replace(edge_port=free_port(), stream_flush_ms=5.0)
    running = await start_edge(settings)
    try:
        base = f"127.0.0.1:{running.port}"
        redeemed = [await redeem(world, base) for _ in range(2)]
        ids = [str(r["session_id"]) for r in redeemed]
        secrets = [await client_secret(base, str(r["access_token"])) for r in redeemed]
        assert len({registry.worker_of(settings.ray_namespace, s) for s in ids}) == 1, "packed onto one actor"
        answers = [read_wav(AUDIO / "candidate_intro.wav"), read_wav(AUDIO / "candidate_answer_project.wav")]
        token = str(redeemed[1]["access_token"])

        async def second_drops_then_returns() -> Any:
            async with aiohttp.ClientSession() as http:  # gone while hearing question 1
                ws = await http.ws_connect(f"ws://{base}/v1/realtime?call_id={ids[1]}",
                                           headers={"Authorization": f"Bearer {token}"})
                async for event in ws_events(ws):
                    if event["type"] == "response.output_audio.delta":
                        break
                await ws.close()
            return await run_interview(base, token, ids[1], answers, speed=4.0)

        first, second = await asyncio.gather(run_interview(base, secrets[0], ids[0], answers, speed=4.0),
                                             second_drops_then_returns())
        assert len(running.edge.sockets._streams) == 1, "one connection to the actor for both"
        for run, session_id in ((first, ids[0]), (second, ids[1])):
            assert {e["session"]["id"] for e in run.of_type("session.created")} == {session_id}
            assert run.of_type("interview.ended")[-1]["reason"] == "completed"
            assert_whole_interview(await transcript(world, session_id), world)
    finally:
        await running.stop()
