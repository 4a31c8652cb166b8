"""Sessions: status moves, idempotent transcript appends, filters, and WatchSession live."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from interview.v1 import invitation_service_pb2, resources_pb2, session_service_pb2
from tests.conftest import Api, TenantWorld

S = resources_pb2


async def new_session(world: TenantWorld, service: Api) -> str:
    created = await world.api.invitations.CreateInvitation(
        invitation_service_pb2.CreateInvitationRequest(candidate_id=world.candidate.id, template_id=world.template.id),
        metadata=world.api.md)
    redeemed = await service.invitations.RedeemInvitation(
        invitation_service_pb2.RedeemInvitationRequest(token=created.token), metadata=service.md)
    return redeemed.session.id


def item(seq: int, text: str, speaker: int = S.SPEAKER_CANDIDATE) -> resources_pb2.TranscriptItem:
    return resources_pb2.TranscriptItem(sequence=seq, speaker=speaker, text=text,  # type: ignore[arg-type]
                                        audio_start_ms=seq * 1000, audio_end_ms=seq * 1000 + 900)


async def append(service: Api, session_id: str, *items: resources_pb2.TranscriptItem
                 ) -> session_service_pb2.AppendTranscriptItemsResponse:
    return await service.sessions.AppendTranscriptItems(
        session_service_pb2.AppendTranscriptItemsRequest(session_id=session_id, items=list(items)),
        metadata=service.md)


async def set_status(service: Api, session_id: str, status: int, reason: str = "") -> resources_pb2.Session:
    return await service.sessions.UpdateSessionStatus(
        session_service_pb2.UpdateSessionStatusRequest(session_id=session_id, status=status, reason=reason),  # type: ignore[arg-type]
        metadata=service.md)


async def test_status_lifecycle_sets_times(world: TenantWorld, service: Api) -> None:
    session_id = await new_session(world, service)
    started = await set_status(service, session_id, S.SESSION_STATUS_IN_PROGRESS)
    assert started.HasField("start_time") and not started.HasField("end_time")
    again = await set_status(service, session_id, S.SESSION_STATUS_IN_PROGRESS)  # idempotent
    assert again.start_time == started.start_time
    done = await set_status(service, session_id, S.SESSION_STATUS_COMPLETED, "last question answered")
    assert done.status == S.SESSION_STATUS_COMPLETED and done.HasField("end_time")
    assert done.end_reason == "last question answered"


async def test_transcript_appends_are_idempotent_and_ordered(world: TenantWorld, service: Api) -> None:
    session_id = await new_session(world, service)
    first = await append(service, session_id, item(1, "Hello", S.SPEAKER_INTERVIEWER), item(2, "Hi there"))
    assert (first.inserted, first.duplicates, first.last_sequence) == (2, 0, 2)
    # A retry after a lost response, overlapping with new items.
    retry = await append(service, session_id, item(2, "Hi there"), item(3, "I build databases"))
    assert (retry.inserted, retry.duplicates, retry.last_sequence) == (1, 1, 3)
    transcript = await world.api.sessions.GetTranscript(
        session_service_pb2.GetTranscriptRequest(session_id=session_id), metadata=world.api.md)
    assert [(i.sequence, i.text) for i in transcript.items] == [(1, "Hello"), (2, "Hi there"), (3, "I build databases")]
    assert transcript.items[0].speaker == S.SPEAKER_INTERVIEWER
    tail = await world.api.sessions.GetTranscript(
        session_service_pb2.GetTranscriptRequest(session_id=session_id, after_sequence=1, page_size=1),
        metadata=world.api.md)
    assert [i.sequence for i in tail.items] == [2] and tail.has_more


async def test_list_sessions_filters(world: TenantWorld, service: Api) -> None:
    a = await new_session(world, service)
    b = await new_session(world, service)
    await set_status(service, b, S.SESSION_STATUS_IN_PROGRESS)
    md = world.api.md
    everything = await world.api.sessions.ListSessions(session_service_pb2.ListSessionsRequest(), metadata=md)
    assert {a, b} <= {s.id for s in everything.sessions}
    live = await world.api.sessions.ListSessions(
        session_service_pb2.ListSessionsRequest(status=S.SESSION_STATUS_IN_PROGRESS), metadata=md)
    assert [s.id for s in live.sessions] == [b]
    future = Timestamp()
    future.GetCurrentTime()
    future.seconds += 3600
    later = await world.api.sessions.ListSessions(
        session_service_pb2.ListSessionsRequest(created_after=future), metadata=md)
    assert list(later.sessions) == []
    before = await world.api.sessions.ListSessions(
        session_service_pb2.ListSessionsRequest(created_before=future, candidate_id=world.candidate.id), metadata=md)
    assert {a, b} == {s.id for s in before.sessions}


async def test_watch_session_streams_status_and_items_live(world: TenantWorld, service: Api) -> None:
    session_id = await new_session(world, service)
    await append(service, session_id, item(1, "Welcome", S.SPEAKER_INTERVIEWER))
    stream = world.api.sessions.WatchSession(
        session_service_pb2.WatchSessionRequest(session_id=session_id), metadata=world.api.md, timeout=20)
    received: list[session_service_pb2.WatchSessionResponse] = []

    async def read() -> None:
        async for event in stream:
            received.append(event)

    reader = asyncio.create_task(read())

    async def wait_for(count: int) -> None:
        for _ in range(200):
            if len(received) >= count:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"only {len(received)} events: {received}")

    await wait_for(2)  # the session as it is, then the existing item
    assert received[0].session.status == S.SESSION_STATUS_READY
    assert received[1].transcript_item.text == "Welcome"
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await set_status(service, session_id, S.SESSION_STATUS_IN_PROGRESS)
    await append(service, session_id, item(2, "Thanks for having me"))
    await wait_for(4)
    assert loop.time() - t0 < 2.0, "live changes must arrive by notification, not by the slow poll"
    kinds = [e.WhichOneof("event") for e in received[2:4]]
    assert sorted(kinds) == ["session", "transcript_item"]
    await set_status(service, session_id, S.SESSION_STATUS_COMPLETED)
    await asyncio.wait_for(reader, timeout=5)  # the stream ends with the session
    assert received[-1].session.status == S.SESSION_STATUS_COMPLETED
    texts = [e.transcript_item.text for e in received if e.WhichOneof("event") == "transcript_item"]
    assert texts == ["Welcome", "Thanks for having me"]


async def test_watch_resumes_after_a_sequence(world: TenantWorld, service: Api) -> None:
    session_id = await new_session(world, service)
    await append(service, session_id, item(1, "one"), item(2, "two"), item(3, "three"))
    await set_status(service, session_id, S.SESSION_STATUS_ENDED, "stopped by recruiter")
    events = [e async for e in world.api.sessions.WatchSession(
        session_service_pb2.WatchSessionRequest(session_id=session_id, after_sequence=2),
        metadata=world.api.md, timeout=10)]
    assert [e.transcript_item.text for e in events if e.HasField("transcript_item")] == ["three"]
    assert events[0].session.status == S.SESSION_STATUS_ENDED


async def test_unknown_session_watch_is_not_found(world: TenantWorld) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in world.api.sessions.WatchSession(
                session_service_pb2.WatchSessionRequest(session_id="5b0a3c3e-7f55-4e4f-9a51-2f7e0b1d2c3a"),
                metadata=world.api.md, timeout=5):
            pass
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
