"""The Locust scenario (loadtest/locustfile.py) run headless against the test stack: each user is
a candidate who is invited, redeems, joins and streams real-time audio, and every request event it
reports to Locust succeeds."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from interview_core.config import Settings
from tests.conftest import TenantWorld

REPO = Path(__file__).resolve().parents[1]
USERS = 3


async def test_locust_candidates_join_stream_and_measure(world: TenantWorld, edge: object,
                                                         live_settings: Settings) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERVIEW_")}
    env.update(INTERVIEW_CONTROL_ADDRESS=live_settings.control_address, INTERVIEW_TENANT_API_KEY=world.api.token,
               LOCUST_QUESTIONS="3")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "locust", "-f", str(REPO / "loadtest" / "locustfile.py"), "--headless",
        "-u", str(USERS), "-r", str(USERS), "-t", "8s", "--stop-timeout", "5", "--json", "--loglevel", "WARNING",
        "--host", f"http://127.0.0.1:{edge.port}",  # type: ignore[attr-defined]
        cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    stats = {s["name"]: s for s in json.loads(out)}
    assert proc.returncode == 0, err.decode()[-2000:]
    assert stats["POST /v1/invitations/redeem"]["num_requests"] == USERS
    assert stats["join (connect -> session.created)"]["num_requests"] == USERS
    assert stats["ping round trip"]["num_requests"] >= USERS * 5  # one every 0.5 s each
    assert all(s["num_failures"] == 0 for s in stats.values()), {n: s["num_failures"] for n, s in stats.items()}
