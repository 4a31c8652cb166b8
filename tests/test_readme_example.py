"""The README's candidate client, run as written: the README shows examples/candidate.py
verbatim (checked here), and the file takes a whole interview against the test run's edge."""

from __future__ import annotations

import asyncio
import re
import sys
import wave
from pathlib import Path

import pytest

from interview.v1 import (
    invitation_service_pb2,
    resources_pb2,
    session_service_pb2,
    template_service_pb2,
)
from launcher.cli import build_parser
from tests.conftest import CliHome, TenantWorld, run_cli

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "candidate.py"
BLOCK = re.compile(r"<!-- candidate-example: examples/candidate\.py -->\n```python\n(.*?)```\n", re.S)


def test_readme_shows_the_example_verbatim() -> None:
    readme = (REPO / "README.md").read_text()
    blocks = BLOCK.findall(readme)
    assert len(blocks) == 1, "README.md should show examples/candidate.py once, after its marker comment"
    assert blocks[0] == EXAMPLE.read_text(), "README.md's candidate example differs from examples/candidate.py"


def test_readme_walkthrough_uses_existing_files_and_commands(capsys: pytest.CaptureFixture[str]) -> None:
    readme = (REPO / "README.md").read_text()
    assert "interview demo" in readme
    for path in re.findall(r"\b(examples/[\w./-]+)", readme):
        assert (REPO / path).exists(), path
    invoked = re.findall(r"^(?:export )?(?:\w+=\$\()?interview ([a-z]+(?: [a-z]+)?)", readme, re.M)
    commands = {tuple(m.split()) for m in invoked}
    assert {("templates", "create"), ("keys", "create"), ("demo",)} <= commands
    for command in commands:
        with pytest.raises(SystemExit) as exited:  # each is a command the parser knows
            build_parser().parse_args([*command, "--help"])
        assert exited.value.code == 0, command
    capsys.readouterr()


async def test_readme_candidate_example_runs(cli_home: CliHome, world: TenantWorld, edge: object,
                                             tmp_path: Path) -> None:
    wav_path = tmp_path / "answer.wav"
    r = await run_cli(["say", "Hello, I am Ada. I build backend services in Python.", "-o", str(wav_path)],
                      cli_home.env())
    assert r.code == 0 and r.out.startswith(f"wrote {wav_path}: "), r.err
    with wave.open(str(wav_path), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (24000, 1, 2)
        spoken_ms = wav.getnframes() * 1000 // 24000
    assert 2000 < spoken_ms < 8000

    template = await world.api.templates.CreateTemplate(template_service_pb2.CreateTemplateRequest(
        template=resources_pb2.Template(role="Backend Engineer", questions=["Tell me about yourself."],
                                        time_limit_seconds=120)), metadata=world.api.md)
    created = await world.api.invitations.CreateInvitation(invitation_service_pb2.CreateInvitationRequest(
        candidate_id=world.candidate.id, template_id=template.id), metadata=world.api.md)
    link = f"http://127.0.0.1:{edge.port}/i/{created.token}"  # type: ignore[attr-defined]

    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLE), link, str(wav_path), cwd=tmp_path, env=cli_home.subprocess_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out_b, err_b = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        if proc.returncode is None:
            proc.kill()
    out, err = out_b.decode(), err_b.decode()
    assert proc.returncode == 0, f"{out}\n{err}"
    lines = out.splitlines()
    assert lines[0] == "question 1 of 1"
    assert lines[1].startswith("interviewer: ") and lines[1].endswith("Tell me about yourself.")
    assert lines[2] == "candidate: (speaks the WAV file)"
    session_id = lines[-1].rsplit(" ", 1)[1]
    assert lines[-1] == f"interview ended: completed - session {session_id}"

    transcript = await world.api.sessions.GetTranscript(
        session_service_pb2.GetTranscriptRequest(session_id=session_id), metadata=world.api.md)
    speakers = [i.speaker for i in transcript.items]
    assert speakers == [resources_pb2.SPEAKER_INTERVIEWER, resources_pb2.SPEAKER_CANDIDATE,
                        resources_pb2.SPEAKER_INTERVIEWER]
    answer = transcript.items[1]
    assert abs((answer.audio_end_ms - answer.audio_start_ms) - spoken_ms) < 1500  # the WAV, heard whole
