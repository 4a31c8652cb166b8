"""`interview demo --fast` end to end, as a real subprocess against the test run's stack (found
the way it finds `interview up`'s: the data directory's credentials and a health check), with the
transcript it stored read back over gRPC."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

import pytest

from interview.v1 import resources_pb2, session_service_pb2
from tests.conftest import Api, CliHome, TenantWorld, run_cli

REPO = Path(__file__).resolve().parents[1]
SHORT_TEMPLATE = """\
role: Demo Engineer
questions:
  - Tell me briefly about yourself.
time_limit: 2m
"""


@pytest.fixture
def edge_port(edge: object) -> int:
    return int(edge.port)  # type: ignore[attr-defined]


async def test_demo_fast_end_to_end(cli_home: CliHome, edge_port: int, admin: Api, tmp_path: Path) -> None:
    template = tmp_path / "short.yaml"
    template.write_text(SHORT_TEMPLATE)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "launcher.cli", "demo", "--fast", "--no-start", "--template", str(template),
        cwd=REPO, env=cli_home.subprocess_env(INTERVIEW_EDGE_PORT=str(edge_port)),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out_b, err_b = await asyncio.wait_for(proc.communicate(), 150)
    finally:
        if proc.returncode is None:
            proc.kill()
    out, err = out_b.decode(), err_b.decode()
    assert proc.returncode == 0, f"{out}\n{err}"

    assert "Using the running stack" in out
    conversation = out.split("--- the interview", 1)[1].split("--- the stored transcript", 1)[0]
    assert "answers spoken 4x faster than real time" in conversation
    assert re.search(r"\[0:\d\d\] question 1 of 1, (2:00|1:5\d) left", conversation), conversation
    assert re.search(r"\[0:\d\d\] interviewer: .*Tell me briefly about yourself\.", conversation), conversation
    assert re.search(r"\[0:\d\d\] candidate: +That is a good question", conversation), conversation
    assert re.search(r"\[0:\d\d\] interview ended: completed", conversation), conversation
    assert "interviewer: the offline scripted interviewer" in out

    session_id = re.search(r"^session (\S+): completed \(", out, re.M).group(1)  # type: ignore[union-attr]
    tenant_id = re.search(r"^tenant +Demo company \((\S+)\)", out, re.M).group(1)  # type: ignore[union-attr]
    stored = out.split("--- the stored transcript", 1)[1]
    transcript = await admin.sessions.GetTranscript(
        session_service_pb2.GetTranscriptRequest(tenant_id=tenant_id, session_id=session_id), metadata=admin.md)
    assert [i.speaker for i in transcript.items] == [
        resources_pb2.SPEAKER_INTERVIEWER, resources_pb2.SPEAKER_CANDIDATE, resources_pb2.SPEAKER_INTERVIEWER]
    assert "Tell me briefly about yourself." in transcript.items[0].text
    answer = transcript.items[1]
    assert 2000 < answer.audio_end_ms - answer.audio_start_ms < 10000  # the spoken answer's length
    for item in transcript.items:
        assert f"#{item.sequence}" in stored
    assert "of speech, not transcribed" in stored
    session = await admin.sessions.GetSession(
        session_service_pb2.GetSessionRequest(tenant_id=tenant_id, session_id=session_id), metadata=admin.md)
    assert session.status == resources_pb2.SESSION_STATUS_COMPLETED
    assert f"interview transcript {session_id} --tenant {tenant_id}" in out

    # The session is there for the other commands.
    r = await run_cli(["transcript", session_id, "--tenant", tenant_id], cli_home.env())
    assert r.code == 0 and "Tell me briefly about yourself." in r.out
    r = await run_cli(["sessions", "list", "--tenant", tenant_id, "--status", "completed"], cli_home.env())
    assert session_id in r.out


async def test_demo_without_a_stack_says_so(cli_home: CliHome, edge_port: int) -> None:
    # Nothing listens on port 1: with --no-start the demo says what is missing and starts nothing.
    r = await run_cli(["demo", "--no-start"], cli_home.env(INTERVIEW_CONTROL_PORT="1", INTERVIEW_EDGE_PORT="1"))
    assert r.code == 10 and "no stack is running at 127.0.0.1:1" in r.err and "interview up" in r.err
    # The control service answers, the edge does not.
    r = await run_cli(["demo", "--no-start", "--edge", "http://127.0.0.1:1"], cli_home.env())
    assert r.code == 10 and "answers but the edge at http://127.0.0.1:1 does not" in r.err
    r = await run_cli(["demo", "--speed", "500"], cli_home.env())
    assert r.code == 3 and "--speed" in r.err


async def test_demo_json_with_a_tenant_api_key(cli_home: CliHome, edge_port: int, world: TenantWorld,
                                               tmp_path: Path) -> None:
    # A tenant's key cannot create tenants: the demo runs in the key's own tenant.
    template = tmp_path / "short.json"
    template.write_text(json.dumps({"role": "Demo Engineer", "questions": ["Why this role?"], "time_limit": 120}))
    r = await run_cli(["demo", "--fast", "--no-start", "--json", "--template", str(template),
                       "--token", world.api.token], cli_home.env(INTERVIEW_EDGE_PORT=str(edge_port)))
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert summary["tenant_id"] == world.tenant.id and summary["end_reason"] == "completed"
    assert summary["interviewer_model"] == "offline-interviewer"
    assert summary["session"]["status"] == "SESSION_STATUS_COMPLETED"
    assert [i["speaker"] for i in summary["transcript"]] == [
        "SPEAKER_INTERVIEWER", "SPEAKER_CANDIDATE", "SPEAKER_INTERVIEWER"]
    assert summary["transcript"][0]["text"].endswith("Why this role?")
