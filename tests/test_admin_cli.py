"""The admin commands against the real control service: the walkthrough by hand, JSON output,
sessions and transcripts, live watching, and every error path as one line and its exit code."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import uuid
from pathlib import Path

import pytest

from interview.v1 import (
    invitation_service_pb2,
    outbox_service_pb2,
    resources_pb2,
    session_service_pb2,
    template_service_pb2,
)
from launcher.cli import build_parser
from tests.conftest import Api, CliHome, TenantWorld, run_cli

REPO = Path(__file__).resolve().parents[1]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ADMIN_COMMANDS = [
    ["tenants", "create"], ["tenants", "list"], ["tenants", "show"], ["keys", "create"], ["keys", "revoke"],
    ["templates", "create"], ["templates", "show"], ["templates", "list"], ["candidates", "add"],
    ["candidates", "list"], ["candidates", "show"], ["invite"], ["sessions", "list"], ["sessions", "show"],
    ["transcript"], ["watch"], ["outbox"], ["demo"], ["say"],
]


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


async def new_tenant(home: CliHome) -> str:
    r = await run_cli(["tenants", "create", f"Cli {uuid.uuid4().hex[:6]}", "-q"], home.env())
    assert r.code == 0, r.err
    return r.out.strip()


async def new_key(home: CliHome, tenant: str) -> str:
    r = await run_cli(["keys", "create", "--tenant", tenant, "--name", "tests", "-q"], home.env())
    assert r.code == 0, r.err
    return r.out.strip()


@pytest.mark.parametrize("command", ADMIN_COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*command, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "example:" in text and "interview " + command[0] in text
    assert "--json" in text


async def test_walkthrough_by_hand_with_no_flags(cli_home: CliHome, admin: Api) -> None:
    # The admin token comes from the data directory `interview up` wrote, the address from settings.
    tenant = await new_tenant(cli_home)
    assert UUID.fullmatch(tenant)
    secret = await new_key(cli_home, tenant)
    as_tenant = cli_home.env(INTERVIEW_TENANT_API_KEY=secret)  # from here on the key names the tenant

    r = await run_cli(["templates", "create", str(REPO / "examples" / "template.yaml"), "-q"], as_tenant)
    assert r.code == 0, r.err
    template = r.out.strip()
    r = await run_cli(["templates", "show", template], as_tenant)
    assert r.code == 0 and "Backend Engineer" in r.out and "1. Tell me about yourself." in r.out
    assert "10 min" in r.out
    r = await run_cli(["templates", "list"], as_tenant)
    assert template in r.out

    r = await run_cli(["candidates", "add", "--email", "Ada@Example.com", "--name", "Ada Lovelace",
                       "--external-id", "ats-17"], as_tenant)
    assert r.code == 0 and r.out.startswith("added candidate "), r.err
    candidate = UUID.search(r.out).group(0)  # type: ignore[union-attr]
    r = await run_cli(["candidates", "add", "--email", "ada@example.com", "--name", "Ada King", "-q"], as_tenant)
    assert r.out.strip() == candidate  # the same person: updated
    r = await run_cli(["candidates", "list"], as_tenant)
    assert "Ada King" in r.out and "ats-17" in r.out
    r = await run_cli(["candidates", "show", candidate], as_tenant)
    assert "ada@example.com" in r.out

    r = await run_cli(["invite", "--candidate", candidate, "--template", template], as_tenant)
    assert r.code == 0, r.err
    assert "valid until" in r.out
    link = r.out.strip().splitlines()[-1].split(": ", 1)[1]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/i/[A-Za-z0-9_-]{43}", link)

    r = await run_cli(["invite", "--candidate", candidate, "--template", template, "--email", "--ttl", "2d"],
                      as_tenant)
    assert r.code == 0 and "email queued" in r.out
    outbox = await admin.outbox.ListOutboxMessages(
        outbox_service_pb2.ListOutboxMessagesRequest(tenant_id=tenant), metadata=admin.md)
    assert [m.to_email for m in outbox.messages] == ["ada@example.com"]
    r = await run_cli(["outbox"], as_tenant)  # the key's own tenant's mail, as `interview outbox` shows it
    assert r.code == 0 and "sent  to ada@example.com" in r.out and "/i/" in r.out, r.out
    r = await run_cli(["outbox", "--json"], as_tenant)
    assert [m["toEmail"] for m in json.loads(r.out)] == ["ada@example.com"]

    r = await run_cli(["tenants", "show"], as_tenant)  # a key's own tenant
    assert tenant in r.out
    r = await run_cli(["sessions", "list"], as_tenant)
    assert r.code == 0 and r.out.strip() == "no sessions"


async def test_json_output_for_scripts(cli_home: CliHome) -> None:
    tenant = await new_tenant(cli_home)
    env = cli_home.env()
    r = await run_cli(["tenants", "list", "--limit", "0", "--json"], env)
    assert tenant in [t["id"] for t in json.loads(r.out)]
    r = await run_cli(["keys", "create", "--tenant", tenant, "--json"], env)
    created = json.loads(r.out)
    assert created["secret"] and created["apiKey"]["tenantId"] == tenant
    r = await run_cli(["templates", "create", "--tenant", tenant, "--role", "Data Engineer", "--question", "Why?",
                       "--question", "How?", "--time-limit", "90s", "--json"], env)
    template = json.loads(r.out)
    assert template["questions"] == ["Why?", "How?"] and template["timeLimitSeconds"] == 90
    assert template["language"] == "en-US" and template["version"] == "1"
    r = await run_cli(["candidates", "add", "--tenant", tenant, "--email", "json@example.com", "--json"], env)
    candidate = json.loads(r.out)
    assert candidate["created"] is True
    r = await run_cli(["invite", "--tenant", tenant, "--candidate", candidate["candidate"]["id"],
                       "--template", template["id"], "--json"], env)
    invitation = json.loads(r.out)
    assert invitation["inviteUrl"].endswith(invitation["token"])
    assert invitation["invitation"]["status"] == "INVITATION_STATUS_PENDING"
    r = await run_cli(["sessions", "list", "--tenant", tenant, "--json"], env)
    assert json.loads(r.out) == []


async def test_key_revoke_and_bad_credentials(cli_home: CliHome) -> None:
    tenant = await new_tenant(cli_home)
    r = await run_cli(["keys", "create", "--tenant", tenant, "--json"], cli_home.env())
    created = json.loads(r.out)
    secret, key_id = created["secret"], created["apiKey"]["id"]
    r = await run_cli(["keys", "revoke", key_id, "--tenant", tenant], cli_home.env())
    assert r.code == 0 and f"revoked API key {key_id}" in r.out and secret not in r.out

    r = await run_cli(["templates", "list"], cli_home.env(INTERVIEW_TENANT_API_KEY=secret))
    line = one_error_line(r.err)
    assert r.code == 7 and "(UNAUTHENTICATED)" in line and "INTERVIEW_TENANT_API_KEY" in line
    assert secret not in r.err

    wrong = "not-a-real-token-" + uuid.uuid4().hex
    r = await run_cli(["tenants", "list", "--token", wrong], cli_home.env())
    assert r.code == 7 and "--token" in one_error_line(r.err) and wrong not in r.err
    r = await run_cli(["tenants", "list", "--token", wrong, "--json"], cli_home.env())
    error = json.loads(r.err)["error"]
    assert error["code"] == "UNAUTHENTICATED" and error["exit_code"] == 7 and error["retryable"] is False


async def test_error_paths_are_one_line_and_a_distinct_exit_code(cli_home: CliHome, world: TenantWorld,
                                                                 other_world: TenantWorld) -> None:
    env = cli_home.env()
    tenant = world.tenant.id
    as_tenant = cli_home.env(INTERVIEW_TENANT_API_KEY=world.api.token)

    r = await run_cli(["templates", "show", str(uuid.uuid4()), "--tenant", tenant], env)
    assert r.code == 4 and "(NOT_FOUND)" in one_error_line(r.err)
    r = await run_cli(["transcript", str(uuid.uuid4()), "--tenant", tenant], env)
    assert r.code == 4 and "session not found" in one_error_line(r.err)
    r = await run_cli(["sessions", "show", "not-a-uuid", "--tenant", tenant], env)
    assert r.code == 3 and "(INVALID_ARGUMENT)" in one_error_line(r.err)
    # Another tenant's template is as unknown as a made-up one.
    r = await run_cli(["templates", "show", other_world.template.id], as_tenant)
    assert r.code == 4
    r = await run_cli(["templates", "list", "--tenant", other_world.tenant.id], as_tenant)
    assert r.code == 8 and "(PERMISSION_DENIED)" in one_error_line(r.err)
    r = await run_cli(["tenants", "create", "Nope"], as_tenant)  # admin only
    assert r.code == 8

    r = await run_cli(["templates", "list"], env)  # the admin token needs --tenant
    line = one_error_line(r.err)
    assert r.code == 3 and "--tenant" in line and "tenants list" in line

    r = await run_cli(["invite", "--candidate", world.candidate.id, "--template", world.template.id, "--ttl", "1s"],
                      as_tenant)
    assert r.code == 3 and "ttl" in one_error_line(r.err)
    r = await run_cli(["invite", "--candidate", world.candidate.id, "--template", world.template.id, "--ttl", "soon"],
                      as_tenant)
    assert r.code == 3 and "--ttl" in one_error_line(r.err)
    r = await run_cli(["sessions", "list", "--since", "yesterday"], as_tenant)
    assert r.code == 3 and "--since" in one_error_line(r.err)

    for command in (["tenants", "list"], ["outbox"]):
        r = await run_cli([*command, "--address", "127.0.0.1:1"], env)
        line = one_error_line(r.err)
        assert r.code == 10 and "cannot reach the control service at 127.0.0.1:1" in line and "(UNAVAILABLE)" in line
    r = await run_cli(["outbox", "--tenant", other_world.tenant.id], as_tenant)  # another tenant's mail
    assert r.code == 8 and "(PERMISSION_DENIED)" in one_error_line(r.err)

    r = await run_cli(["tenants", "list", "--data-dir", str(cli_home.data_dir / "nowhere")],
                      {"INTERVIEW_CONTROL_PORT": str(cli_home.control_port)})
    assert r.code == 2 and "no credential" in one_error_line(r.err)

    r = await run_cli(["templates", "show"], env)  # argparse: usage on stderr, exit 2
    assert r.code == 2 and "Traceback" not in r.err


@pytest.mark.parametrize(("name", "content", "problem"), [
    ("no-questions.yaml", "role: Engineer\ntime_limit: 10m\n", "missing questions"),
    ("unknown.yaml", "role: Engineer\nquestions: [\"Why?\"]\ntime_limit: 60\nmood: happy\n", "unknown field(s) mood"),
    ("syntax.yaml", "role: Engineer\nquestions: [\"Why?\"\n", "not valid YAML (line"),
    ("list.yaml", "- role: Engineer\n", "must be a mapping"),
    ("time.yaml", "role: Engineer\nquestions: [\"Why?\"]\ntime_limit: soon\n", "time_limit: 'soon' is not a duration"),
    ("empty-question.json", '{"role": "Engineer", "questions": ["Why?", ""], "time_limit_seconds": 60}',
     "questions[1]: must be non-empty text"),
    ("broken.json", '{"role": "Engineer",', "not valid JSON (line 1"),
    ("role.yaml", "role: 42\nquestions: [\"Why?\"]\ntime_limit: 60\n", "role: must be text"),
])
async def test_invalid_template_files(cli_home: CliHome, world: TenantWorld, tmp_path: Path, name: str,
                                      content: str, problem: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    r = await run_cli(["templates", "create", str(path), "--tenant", world.tenant.id], cli_home.env())
    line = one_error_line(r.err)
    assert r.code == 3, r.err
    assert f"template file {path}" in line and problem in line and "(INVALID_ARGUMENT)" in line


async def test_template_file_checked_by_the_service_too(cli_home: CliHome, world: TenantWorld,
                                                        tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    r = await run_cli(["templates", "create", str(missing), "--tenant", world.tenant.id], cli_home.env())
    assert r.code == 3 and "no such file" in one_error_line(r.err)
    path = tmp_path / "language.json"
    path.write_text(json.dumps({"role": "Engineer", "questions": ["Why?"], "time_limit": "1h", "language": "en US!"}))
    r = await run_cli(["templates", "create", str(path), "--tenant", world.tenant.id], cli_home.env())
    assert r.code == 3 and "template.language" in one_error_line(r.err)
    # Flags complete or override a file.
    r = await run_cli(["templates", "create", str(path), "--language", "de-DE", "--role", "Ingenieur",
                       "--tenant", world.tenant.id, "--json"], cli_home.env())
    assert r.code == 0, r.err
    created = json.loads(r.out)
    assert (created["role"], created["language"], created["timeLimitSeconds"]) == ("Ingenieur", "de-DE", 3600)


async def redeemed_session(world: TenantWorld, service: Api) -> str:
    created = await world.api.invitations.CreateInvitation(invitation_service_pb2.CreateInvitationRequest(
        candidate_id=world.candidate.id, template_id=world.template.id), metadata=world.api.md)
    redeemed = await service.invitations.RedeemInvitation(
        invitation_service_pb2.RedeemInvitationRequest(token=created.token), metadata=service.md)
    return str(redeemed.session.id)


def turn(sequence: int, speaker: int, text: str, start_ms: int, end_ms: int) -> resources_pb2.TranscriptItem:
    return resources_pb2.TranscriptItem(sequence=sequence, speaker=speaker, text=text,  # type: ignore[arg-type]
                                        audio_start_ms=start_ms, audio_end_ms=end_ms)


async def test_sessions_transcript_and_watch(cli_home: CliHome, world: TenantWorld, service: Api) -> None:
    session_id = await redeemed_session(world, service)
    env = cli_home.env(INTERVIEW_TENANT_API_KEY=world.api.token)
    await service.sessions.UpdateSessionStatus(session_service_pb2.UpdateSessionStatusRequest(
        session_id=session_id, status=resources_pb2.SESSION_STATUS_IN_PROGRESS), metadata=service.md)
    await service.sessions.AppendTranscriptItems(session_service_pb2.AppendTranscriptItemsRequest(
        session_id=session_id, items=[turn(1, resources_pb2.SPEAKER_INTERVIEWER, "Tell me about yourself.", 0, 2100),
                                      turn(2, resources_pb2.SPEAKER_CANDIDATE, "", 2600, 11100)]),
        metadata=service.md)

    r = await run_cli(["sessions", "list", "--status", "in_progress"], env)
    assert session_id in r.out and "in_progress" in r.out
    r = await run_cli(["sessions", "list", "--candidate", world.candidate.id, "--since", "2000-01-01",
                       "--until", "2999-01-01T00:00+00:00", "--json"], env)
    assert [s["id"] for s in json.loads(r.out)] == [session_id]
    r = await run_cli(["sessions", "list", "--status", "completed"], env)
    assert session_id not in r.out
    r = await run_cli(["sessions", "show", session_id], env)
    assert "in_progress" in r.out and "Backend Engineer" in r.out

    r = await run_cli(["transcript", session_id], env)
    lines = r.out.strip().splitlines()
    assert re.search(r"#1 +0:00\.0-0:02\.1 +interviewer +Tell me about yourself\.$", lines[0]), lines
    assert re.search(r"#2 +0:02\.6-0:11\.1 +candidate +\(8\.5 s of speech, not transcribed\)$", lines[1]), lines

    # Watching live: what is there, then each change as it happens, until the session ends.
    watcher = asyncio.create_task(run_cli(["watch", session_id, "--json"], env))
    await asyncio.sleep(1.0)
    await service.sessions.AppendTranscriptItems(session_service_pb2.AppendTranscriptItemsRequest(
        session_id=session_id, items=[turn(3, resources_pb2.SPEAKER_INTERVIEWER, "Thank you. Goodbye.", 11600, 13000)]),
        metadata=service.md)
    await service.sessions.UpdateSessionStatus(session_service_pb2.UpdateSessionStatusRequest(
        session_id=session_id, status=resources_pb2.SESSION_STATUS_COMPLETED, reason="completed"),
        metadata=service.md)
    r = await asyncio.wait_for(watcher, 30)
    assert r.code == 0, r.err
    events = [json.loads(line) for line in r.out.splitlines()]
    assert [e["transcriptItem"]["sequence"] for e in events if "transcriptItem" in e] == ["1", "2", "3"]
    statuses = [e["session"]["status"] for e in events if "session" in e]
    assert statuses[0] == "SESSION_STATUS_IN_PROGRESS" and statuses[-1] == "SESSION_STATUS_COMPLETED"

    r = await run_cli(["watch", session_id, "--after", "2"], env)  # an ended session: what is stored, then done
    assert r.code == 0 and "status: completed (completed)" in r.out and "Goodbye." in r.out
    assert "Tell me about yourself." not in r.out


async def test_a_real_subprocess(cli_home: CliHome, world: TenantWorld) -> None:
    async def interview(*argv: str, **env: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "launcher.cli", *argv, cwd=REPO, env=cli_home.subprocess_env(**env),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    code, out, err = await interview("candidates", "list", "--json", INTERVIEW_TENANT_API_KEY=world.api.token)
    assert code == 0, err
    assert [c["email"] for c in json.loads(out)] == [world.candidate.email]
    code, out, err = await interview("templates", "show", world.template.id, "--token", "x" * 40)
    assert code == 7 and out == ""
    assert one_error_line(err).startswith("interview: ") and "Traceback" not in err


async def test_templates_list_pages(cli_home: CliHome, world: TenantWorld) -> None:
    for i in range(3):
        await world.api.templates.CreateTemplate(template_service_pb2.CreateTemplateRequest(
            template=resources_pb2.Template(role=f"Role {i}", questions=["Q?"], time_limit_seconds=60)),
            metadata=world.api.md)
    env = cli_home.env(INTERVIEW_TENANT_API_KEY=world.api.token)
    r = await run_cli(["templates", "list", "--limit", "2", "--json"], env)
    assert len(json.loads(r.out)) == 2
    r = await run_cli(["templates", "list", "--limit", "0", "--json"], env)
    assert len(json.loads(r.out)) == 4
