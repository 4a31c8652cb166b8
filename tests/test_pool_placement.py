"""Placement on the warm pool: packing several interviews per actor process, starting one
process per `interviews_per_actor` joins in a burst, giving places back, and the one-time keys
that open an actor's frame stream."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import pytest

from actors import registry
from actors.cluster import Cluster
from interview_core import frame_stream as fs
from interview_core.config import Settings
from interview_core.errors import PlatformError
from interview_core.stream_keys import StreamKeys
from tests.conftest import TenantWorld
from tests.test_edge_input import new_session, other_namespace, workers_in  # noqa: F401 (fixture)


def test_stream_keys_open_once_for_their_session_only() -> None:
    now = [1000.0]
    edge, actor = StreamKeys("s" * 32, clock=lambda: now[0]), StreamKeys("s" * 32, clock=lambda: now[0])
    key = edge.mint("session-a", ttl_s=10)
    assert actor.redeem(key) == "session-a"
    assert actor.redeem(key) is None  # once
    forged = key.replace("session-a", "session-b", 1)
    assert actor.redeem(forged) is None  # the session is signed
    assert StreamKeys("t" * 32).redeem(edge.mint("session-a", 10)) is None  # another platform's secret
    late = edge.mint("session-a", ttl_s=10)
    now[0] += 11
    assert actor.redeem(late) is None  # expired
    for junk in ("", ".", "a.b.c.d", "session-a.notanumber.nonce." + "0" * 32, "x" * 500):
        assert actor.redeem(junk) is None


def test_frames_carry_their_channel_and_a_hello_its_key_and_announcement() -> None:
    frames: list[tuple[int, int, bytes]] = []
    parser = fs.FrameProtocol(lambda kind, channel, payload: frames.append((kind, channel, payload)),
                              lambda _exc: None)
    wire = (fs.encode_hello(7, "k.1.n.mac", announced=True) + fs.encode_frame(fs.AUDIO, 7, b"\x01\x00" * 480)
            + fs.encode_hello(9, "k2", announced=False) + fs.encode_close(9, 4003, "no"))
    for i in range(0, len(wire), 100):  # split anywhere, as TCP may
        parser.data_received(wire[i:i + 100])
    assert [(k, c) for k, c, _ in frames] == [(fs.HELLO, 7), (fs.AUDIO, 7), (fs.HELLO, 9), (fs.CLOSE, 9)]
    assert fs.decode_hello(frames[0][2]) == ("k.1.n.mac", True)
    assert fs.decode_hello(frames[2][2]) == ("k2", False)
    assert fs.decode_close(frames[3][2]) == (4003, "no")
    assert fs.decode_hello(b"") == ("", False)  # an empty HELLO opens nothing


def test_the_registry_lists_what_it_bound(ray_head: str) -> None:
    """A restarted actor resumes `sessions_of` itself, a restarted pool adopts `all_sessions` and
    `all_workers`: the listings must give back exactly the ids that were bound."""
    ns = f"registry-{uuid.uuid4().hex[:8]}"
    sessions = [str(uuid.uuid4()) for _ in range(3)]
    registry.add_worker(ns, "interview-worker-a")
    for session_id in sessions[:2]:
        registry.bind(ns, session_id, "interview-worker-a")
    registry.bind(ns, sessions[2], "interview-worker-b")
    assert sorted(registry.sessions_of(ns, "interview-worker-a")) == sorted(sessions[:2])
    assert registry.all_sessions(ns) == {sessions[0]: "interview-worker-a", sessions[1]: "interview-worker-a",
                                         sessions[2]: "interview-worker-b"}
    assert registry.all_workers(ns) == ["interview-worker-a"]
    registry.unbind(ns, sessions[0], "interview-worker-a")
    assert registry.sessions_of(ns, "interview-worker-a") == [sessions[1]]
    assert registry.worker_of(ns, sessions[0]) is None
    assert registry.all_sessions(f"other-{ns}") == {}


@pytest.fixture
async def packing(other_namespace: Settings) -> AsyncIterator[Settings]:  # noqa: F811
    yield other_namespace.replace(warm_interviews=0, interviews_per_actor=3, max_live_interviews=100)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_a_burst_starts_one_process_per_full_actor_and_packs_sessions(
        world: TenantWorld, edge: object, http: aiohttp.ClientSession, packing: Settings) -> None:
    from edge.server import RunningEdge

    assert isinstance(edge, RunningEdge)
    base = f"127.0.0.1:{edge.port}"
    sessions = [(await new_session(http, base, world))[0] for _ in range(7)]
    cluster = Cluster(packing)
    placements = await asyncio.gather(*(cluster.place(s) for s in sessions))
    per_worker = Counter(p.worker for p in placements)
    # No warm places: seven joins at once start ceil(7 / 3) = 3 processes, not seven, and fill them.
    assert sorted(per_worker.values()) == [1, 3, 3], per_worker
    assert len(workers_in(packing.ray_namespace)) == 3
    # Every place answers on its actor's stream address, and the registry agrees.
    for session_id, placement in zip(sessions, placements, strict=True):
        assert registry.worker_of(packing.ray_namespace, session_id) == placement.worker
        assert (await cluster.place(session_id)) == placement  # placing again finds it, no new place
    stats = await cluster.stats()
    assert (stats["actors"], stats["live"], stats["free"]) == (3, 7, 2)


async def test_placing_an_unknown_session_gives_its_place_back(packing: Settings) -> None:
    cluster = Cluster(packing)
    with pytest.raises(PlatformError) as raised:
        await cluster.place(str(uuid.uuid4()))
    assert raised.value.code.code == "NOT_FOUND"
    stats = await cluster.stats()
    assert stats["live"] == 0
