"""`interview up`: the whole stack as supervised child processes."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from control.email_delivery import CONSOLE_EMAIL_LOGGER
from control.migrate import migrate
from interview_core.config import Settings
from launcher.embedded_postgres import EmbeddedPostgres
from launcher.local_credentials import credentials_file, derive_service_url, with_local_credentials
from launcher.ray_head import RayHead, short_temp_dir
from launcher.supervisor import Child, Supervisor, wait_for_log_line, wait_for_port

log = logging.getLogger(__name__)


def resolve(settings: Settings) -> tuple[Settings, EmbeddedPostgres | None]:
    """Settings with credentials filled in and the database URLs decided."""
    settings = with_local_credentials(settings)
    pg = None
    owner_url = settings.database_url
    if not owner_url:
        pg = EmbeddedPostgres(settings.data_dir.resolve() / "postgres", settings.embedded_pg_port)
        pg.password_file.parent.mkdir(parents=True, exist_ok=True)
        pg.init()
        owner_url = pg.owner_dsn()
    service_url = settings.service_database_url or derive_service_url(owner_url, settings.service_db_password)
    return settings.replace(database_url=owner_url, service_database_url=service_url), pg


def prepare_database(settings: Settings, *, keep_running: bool,
                     supervisor: Supervisor | None = None) -> tuple[Settings, list[str], Callable[[], None]]:
    """Starts the embedded database if needed and applies migrations; returns the resolved
    settings, the migrations applied and how to stop a database started without a supervisor."""
    settings, pg = resolve(settings)
    stop: Callable[[], None] = lambda: None  # noqa: E731
    if pg is not None:
        if supervisor is not None:
            supervisor.start(Child("postgres", pg.command(), lambda p: pg.wait_ready(60, p),
                                   popen_kwargs=pg._run_as(), stop_signal=signal.SIGINT))
        else:
            proc = pg.popen()
            pg.wait_ready(60, proc)

            def stop() -> None:
                proc.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
                proc.wait(30)
    applied = asyncio.run(migrate(settings.database_url, service_password=settings.service_db_password))
    return settings, applied, stop


def _edge_ready(settings: Settings, supervisor: Supervisor, name: str, *,
                first: bool) -> Callable[[subprocess.Popen[bytes]], None]:
    if first:
        return lambda p: wait_for_port(settings.edge_host, settings.edge_port, 180, p)
    return lambda p: wait_for_log_line(supervisor.log_path(name), "edge listening", 180, p)


def start_stack(settings: Settings, supervisor: Supervisor) -> Settings:
    """Starts the database (embedded unless configured), a Ray head (unless RAY_ADDRESS is set), the
    control service and the edge under `supervisor`; returns the settings they run with. Used by
    `interview up` and by `interview demo` when no stack is running."""
    settings, _, _ = prepare_database(settings, keep_running=True, supervisor=supervisor)
    if not settings.ray_address:
        head = RayHead(port=settings.embedded_ray_port, temp_dir=short_temp_dir(settings.data_dir))
        head.temp_dir.mkdir(parents=True, exist_ok=True)
        supervisor.start(Child("ray", head.command(), lambda p: head.wait_ready(90, p),
                               env={**_base_env(), "RAY_USAGE_STATS_ENABLED": "0"}, stop_timeout_s=3.0))
        settings = settings.replace(ray_address=head.address)
    env = {**_base_env(), **settings.to_env()}
    supervisor.start(Child(
        "control", [sys.executable, "-m", "launcher.cli", "control"],
        lambda p: wait_for_port(settings.control_host, settings.control_port, 60, p),
        env=env, show_on_console=_worth_showing))
    for n in range(settings.edge_processes):
        # Several edges share the port (SO_REUSEPORT: the kernel spreads new connections), so
        # one busy event loop does not carry every candidate; the port is open once the first
        # listens, so the others are ready when their log says so.
        name = "edge" if n == 0 else f"edge-{n + 1}"
        supervisor.start(Child(
            name, [sys.executable, "-m", "launcher.cli", "edge"],
            _edge_ready(settings, supervisor, name, first=n == 0), env=env, show_on_console=_worth_showing))
    return settings


def run_stack(settings: Settings) -> int:
    supervisor = Supervisor(settings.data_dir / "logs")
    stop_requested = False

    def request_stop(_sig: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        settings = start_stack(settings, supervisor)
        _banner(settings)
        while not stop_requested:
            supervisor.poll()
            time.sleep(0.2)
    except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
        print(f"interview up: {exc} (logs in {settings.data_dir / 'logs'})", file=sys.stderr)
        return 1
    finally:
        print("stopping...", flush=True)
        supervisor.stop_all()
        print("stopped.", flush=True)
    return 0


def _worth_showing(line: str) -> bool:
    """Console email (the embedded outbox) and problems; routine logs stay in the log file."""
    return CONSOLE_EMAIL_LOGGER in line or " WARNING " in line or " ERROR " in line or "Traceback" in line


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("INTERVIEW_")}


def _banner(settings: Settings) -> None:
    from_env = Settings.from_env()
    db = "DATABASE_URL" if from_env.database_url else "embedded PostgreSQL"
    admin = "(from INTERVIEW_ADMIN_TOKEN)" if from_env.admin_token else settings.admin_token
    print(
        "\ninterview platform is up\n"
        f"  control service (gRPC)  {settings.control_address}\n"
        f"  edge (HTTP, WebSocket)  http://{settings.edge_host}:{settings.edge_port}"
        f"  (candidates: /v1/realtime?call_id=<session>)\n"
        f"  ray                     {settings.ray_address} ({settings.warm_interviews} interviews ready to start, "
        f"{settings.interviews_per_actor} per actor process)\n"
        f"  invitation links        {settings.invite_base_url}/i/<token>\n"
        f"  database                {db} (service role: interview_service)\n"
        f"  email                   {'SendGrid' if settings.sendgrid_api_key else 'outbox only: `interview outbox`'}\n"
        f"  admin token             {admin}\n"
        f"  credentials and logs    {credentials_file(settings.data_dir)}, {settings.data_dir / 'logs'}/\n"
        "Press Ctrl-C to stop.\n", flush=True)
