"""Shared fixtures: one embedded PostgreSQL and one control service per test run.

Tests isolate themselves by creating their own tenants (fresh ids), not by resetting the
database, so the expensive parts start once.
"""

from __future__ import annotations

import secrets
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc
import pytest

from control.migrate import migrate
from control.server import RunningControl, start_control
from interview.v1 import (
    candidate_service_pb2,
    candidate_service_pb2_grpc,
    invitation_service_pb2_grpc,
    outbox_service_pb2_grpc,
    resources_pb2,
    session_service_pb2_grpc,
    template_service_pb2,
    template_service_pb2_grpc,
    tenant_service_pb2,
    tenant_service_pb2_grpc,
)
from interview_core.config import Settings
from launcher.embedded_postgres import EmbeddedPostgres, free_port
from launcher.local_credentials import derive_service_url
from loadtest.shared_files import shared_dir

SHARED = shared_dir()


@dataclass(frozen=True)
class Database:
    pg: EmbeddedPostgres
    owner_dsn: str
    service_dsn: str
    service_password: str

    def owner_dsn_for(self, database: str) -> str:
        return self.pg.owner_dsn(database)

    def service_dsn_for(self, database: str) -> str:
        return derive_service_url(self.pg.owner_dsn(database), self.service_password)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(tmp_path_factory.mktemp("pg"), free_port())
    pg.init()
    proc = pg.popen()
    try:
        pg.wait_ready(60, proc)
        yield pg
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


async def create_database(pg: EmbeddedPostgres, name: str, service_password: str) -> None:
    """A fresh, migrated database on the shared server. `interview_service` is one role for the
    whole server: pass the session's `database.service_password`, or every other test's
    connections break."""
    conn = await asyncpg.connect(pg.owner_dsn())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    await migrate(pg.owner_dsn(name), service_password=service_password)


@pytest.fixture(scope="session")
async def database(postgres: EmbeddedPostgres) -> Database:
    password = secrets.token_urlsafe(16)
    await create_database(postgres, "interview_test", password)
    return Database(postgres, postgres.owner_dsn("interview_test"),
                    derive_service_url(postgres.owner_dsn("interview_test"), password), password)


@pytest.fixture(scope="session")
def base_settings(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings.from_env(
        {},
        data_dir=tmp_path_factory.mktemp("data"),
        database_url=database.owner_dsn,
        service_database_url=database.service_dsn,
        control_port=0,
        admin_token="admin-" + secrets.token_urlsafe(24),
        service_token="service-" + secrets.token_urlsafe(24),
        secret_key=secrets.token_urlsafe(32),
        rate_limit_per_s=0,
        outbox_poll_interval_s=0.2,
    )


@pytest.fixture(scope="session")
async def control(base_settings: Settings) -> AsyncIterator[RunningControl]:
    running = await start_control(base_settings)
    yield running
    await running.stop(1.0)


@pytest.fixture(scope="session")
async def channel(control: RunningControl) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{control.port}") as ch:
        yield ch


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


@dataclass
class Api:
    """Stubs with one credential attached to every call."""

    channel: grpc.aio.Channel
    token: str

    @property
    def md(self) -> tuple[tuple[str, str]]:
        return bearer(self.token)

    @property
    def tenants(self) -> tenant_service_pb2_grpc.TenantServiceStub:
        return tenant_service_pb2_grpc.TenantServiceStub(self.channel)

    @property
    def templates(self) -> template_service_pb2_grpc.TemplateServiceStub:
        return template_service_pb2_grpc.TemplateServiceStub(self.channel)

    @property
    def candidates(self) -> candidate_service_pb2_grpc.CandidateServiceStub:
        return candidate_service_pb2_grpc.CandidateServiceStub(self.channel)

    @property
    def invitations(self) -> invitation_service_pb2_grpc.InvitationServiceStub:
        return invitation_service_pb2_grpc.InvitationServiceStub(self.channel)

    @property
    def sessions(self) -> session_service_pb2_grpc.SessionServiceStub:
        return session_service_pb2_grpc.SessionServiceStub(self.channel)

    @property
    def outbox(self) -> outbox_service_pb2_grpc.OutboxServiceStub:
        return outbox_service_pb2_grpc.OutboxServiceStub(self.channel)


@pytest.fixture(scope="session")
def admin(channel: grpc.aio.Channel, base_settings: Settings) -> Api:
    return Api(channel, base_settings.admin_token)


@pytest.fixture(scope="session")
def service(channel: grpc.aio.Channel, base_settings: Settings) -> Api:
    return Api(channel, base_settings.service_token)


@dataclass
class TenantWorld:
    """A tenant with an API key, a template and a candidate: what most tests start from."""

    tenant: resources_pb2.Tenant
    api: Api
    template: resources_pb2.Template
    candidate: resources_pb2.Candidate


async def make_tenant(admin: Api, name: str = "") -> TenantWorld:
    tenant = await admin.tenants.CreateTenant(
        tenant_service_pb2.CreateTenantRequest(display_name=name or f"Acme {uuid.uuid4().hex[:6]}"),
        metadata=admin.md)
    key = await admin.tenants.CreateApiKey(
        tenant_service_pb2.CreateApiKeyRequest(tenant_id=tenant.id, display_name="tests"), metadata=admin.md)
    api = Api(admin.channel, key.secret)
    template = await api.templates.CreateTemplate(
        template_service_pb2.CreateTemplateRequest(template=resources_pb2.Template(
            role="Backend Engineer", questions=["Tell me about yourself.", "Describe a hard bug."],
            time_limit_seconds=600, language="en-US", voice="alloy", instructions="Be kind.")),
        metadata=api.md)
    upserted = await api.candidates.UpsertCandidate(
        candidate_service_pb2.UpsertCandidateRequest(
            email=f"cand-{uuid.uuid4().hex[:8]}@example.com", full_name="Ada Lovelace", external_id="ext-1"),
        metadata=api.md)
    return TenantWorld(tenant, api, template, upserted.candidate)


@pytest.fixture
async def world(admin: Api) -> TenantWorld:
    return await make_tenant(admin)


@pytest.fixture
async def other_world(admin: Api) -> TenantWorld:
    return await make_tenant(admin)


def status_of(exc: BaseException) -> grpc.StatusCode:
    assert isinstance(exc, grpc.aio.AioRpcError), exc
    return exc.code()


def error_code_of(exc: grpc.aio.AioRpcError) -> str:
    for key, value in exc.trailing_metadata() or ():
        if key == "interview-error-code":
            return str(value)
    return ""




# -- the live path: one Ray head per test run, and an edge ----------------------------------

@pytest.fixture(scope="session")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import ray

    from launcher.ray_head import RayHead, short_temp_dir

    head = RayHead(port=free_port(), temp_dir=short_temp_dir(tmp_path_factory.mktemp("ray")))
    proc = head.popen()
    try:
        head.wait_ready(60, proc)
        ray.init(address=head.address, namespace="interview-tests", logging_level="WARNING", log_to_driver=False)
        yield head.address
    finally:
        ray.shutdown()
        head.stop(proc)


@pytest.fixture(scope="session")
def live_settings(base_settings: Settings, control: RunningControl, ray_head: str) -> Settings:
    return base_settings.replace(
        control_port=control.port, ray_address=ray_head, ray_namespace="interview-tests",
        edge_port=0, warm_interviews=2, abandon_grace_s=5.0, audio_rate_factor=50.0, turn_silence_ms=500)


@pytest.fixture(scope="session")
async def edge(live_settings: Settings) -> AsyncIterator[object]:
    from edge.server import start_edge

    running = await start_edge(live_settings)
    yield running
    await running.stop()


# -- the `interview` command (admin commands, demo): a data directory as `interview up` leaves it ---

CLI_ENV_CLEARED = ("INTERVIEW_TENANT_API_KEY", "INTERVIEW_ADMIN_TOKEN", "INTERVIEW_CONTROL_ADDRESS",
                   "INTERVIEW_CONTROL_HOST", "INTERVIEW_CONTROL_PORT", "INTERVIEW_DATA_DIR", "INTERVIEW_EDGE_HOST",
                   "INTERVIEW_EDGE_PORT", "OPENAI_API_KEY")


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


@dataclass(frozen=True)
class CliHome:
    """A data directory holding the admin token, as `interview up` writes it, beside the test
    run's control service: with INTERVIEW_DATA_DIR and INTERVIEW_CONTROL_PORT set, no flag is needed."""

    data_dir: Path
    control_port: int

    def env(self, **extra: str) -> dict[str, str]:
        """The variables a command on this machine would have (for run_cli and subprocesses)."""
        return {"INTERVIEW_DATA_DIR": str(self.data_dir), "INTERVIEW_CONTROL_PORT": str(self.control_port), **extra}

    def subprocess_env(self, **extra: str) -> dict[str, str]:
        import os

        base = {k: v for k, v in os.environ.items()
                if not k.startswith("INTERVIEW_") and k not in ("OPENAI_API_KEY", "DATABASE_URL", "RAY_ADDRESS")}
        return {**base, **self.env(**extra)}


@pytest.fixture(scope="session")
def cli_home(base_settings: Settings, control: RunningControl, tmp_path_factory: pytest.TempPathFactory) -> CliHome:
    import json

    data_dir = tmp_path_factory.mktemp("cli-home")
    (data_dir / "credentials.json").write_text(json.dumps({"admin_token": base_settings.admin_token}))
    return CliHome(data_dir, control.port)


async def run_cli(argv: list[str], env: dict[str, str] | None = None) -> CliResult:
    """`interview ARGV` in this process, in a thread (the control service and the edge run on this
    event loop), with stdout and stderr captured and only `env` of the CLI's variables set."""
    import asyncio
    import contextlib
    import io
    import os

    from launcher.cli import main

    def call() -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse: --help, usage errors
                code = exc.code if isinstance(exc.code, int) else 1
        return CliResult(code, out.getvalue(), err.getvalue())

    saved = {name: os.environ.get(name) for name in (*CLI_ENV_CLEARED, *(env or {}))}
    for name in CLI_ENV_CLEARED:
        os.environ.pop(name, None)
    os.environ.update(env or {})
    try:
        return await asyncio.to_thread(call)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
