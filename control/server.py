"""The control service process: the gRPC server, the database listener and the outbox loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from control.auth import API_KEY_REVOKED_CHANNEL, Authenticator, RateLimiter
from control.candidates import CandidateServicer
from control.context import ControlContext
from control.db import Database, Listener
from control.email_delivery import OUTBOX_CHANNEL, EmailSender, OutboxDelivery, make_sender
from control.grpc_boundary import Gate, MalformedRequestInterceptor
from control.idempotency import Idempotency
from control.invitations import InvitationServicer
from control.outbox import OutboxServicer
from control.sessions import SessionServicer
from control.templates import TemplateServicer
from control.tenants import TenantServicer
from control.validation import Validator
from control.watch import SESSION_EVENTS_CHANNEL, SessionEvents
from interview.v1 import (
    candidate_service_pb2,
    candidate_service_pb2_grpc,
    invitation_service_pb2,
    invitation_service_pb2_grpc,
    outbox_service_pb2,
    outbox_service_pb2_grpc,
    session_service_pb2,
    session_service_pb2_grpc,
    template_service_pb2,
    template_service_pb2_grpc,
    tenant_service_pb2,
    tenant_service_pb2_grpc,
)
from interview_core.config import ConfigError, Settings
from interview_core.credentials import SecretBox

log = logging.getLogger(__name__)

SERVICE_NAMES = [
    tenant_service_pb2.DESCRIPTOR.services_by_name["TenantService"].full_name,
    template_service_pb2.DESCRIPTOR.services_by_name["TemplateService"].full_name,
    candidate_service_pb2.DESCRIPTOR.services_by_name["CandidateService"].full_name,
    invitation_service_pb2.DESCRIPTOR.services_by_name["InvitationService"].full_name,
    session_service_pb2.DESCRIPTOR.services_by_name["SessionService"].full_name,
    outbox_service_pb2.DESCRIPTOR.services_by_name["OutboxService"].full_name,
]


def service_dsn(settings: Settings) -> str:
    if settings.service_database_url:
        return settings.service_database_url
    raise ConfigError("INTERVIEW_SERVICE_DATABASE_URL is not set (`interview up` derives it)")


@dataclass
class RunningControl:
    server: grpc.aio.Server
    port: int
    ctx: ControlContext
    listener: Listener
    delivery: OutboxDelivery
    delivery_task: asyncio.Task[None] | None
    health: Any  # grpc_health's aio HealthServicer (untyped)

    async def stop(self, grace_s: float) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)
        if self.delivery_task:
            self.delivery_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.delivery_task
        await self.listener.stop()
        await self.ctx.db.close()


async def start_control(settings: Settings, *, sender: EmailSender | None = None,
                        deliver_email: bool = True) -> RunningControl:
    """Starts the service; returns once it is listening. Port 0 picks a free port."""
    if not settings.admin_token:
        raise ConfigError("INTERVIEW_ADMIN_TOKEN is not set")
    if not settings.secret_key:
        raise ConfigError("INTERVIEW_SECRET_KEY is not set")
    dsn = service_dsn(settings)
    db = await Database.connect(dsn, settings)
    box = SecretBox(settings.secret_key)
    authenticator = Authenticator(settings, db)
    events = SessionEvents(settings.max_watchers_per_tenant)
    ctx = ControlContext(
        settings=settings, db=db,
        gate=Gate(authenticator, RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)),
        validator=Validator(settings), idempotency=Idempotency(box), box=box, session_events=events)
    delivery = OutboxDelivery(settings, db, box, sender or make_sender(settings))

    def on_notify(channel: str, payload: str) -> None:
        if channel == SESSION_EVENTS_CHANNEL:
            events.notify(payload)
        elif channel == API_KEY_REVOKED_CHANNEL:
            authenticator.forget_api_key(payload)
        elif channel == OUTBOX_CHANNEL:
            delivery.wake()

    def on_reconnect() -> None:
        events.notify_all()
        authenticator.forget_all()

    listener = Listener(dsn, [SESSION_EVENTS_CHANNEL, API_KEY_REVOKED_CHANNEL, OUTBOX_CHANNEL],
                        on_notify, on_reconnect)
    listener.start()

    server = grpc.aio.server(
        interceptors=[MalformedRequestInterceptor("/interview.v1.")],
        maximum_concurrent_rpcs=settings.grpc_max_concurrent_rpcs,
        options=[
            ("grpc.max_receive_message_length", settings.grpc_max_message_bytes),
            ("grpc.max_send_message_length", settings.grpc_max_message_bytes * 4),
            ("grpc.so_reuseport", 0),
        ],
    )
    tenant_service_pb2_grpc.add_TenantServiceServicer_to_server(TenantServicer(ctx), server)
    template_service_pb2_grpc.add_TemplateServiceServicer_to_server(TemplateServicer(ctx), server)
    candidate_service_pb2_grpc.add_CandidateServiceServicer_to_server(CandidateServicer(ctx), server)
    invitation_service_pb2_grpc.add_InvitationServiceServicer_to_server(InvitationServicer(ctx), server)
    session_service_pb2_grpc.add_SessionServiceServicer_to_server(SessionServicer(ctx), server)
    outbox_service_pb2_grpc.add_OutboxServiceServicer_to_server(OutboxServicer(ctx), server)
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if settings.grpc_reflection:
        reflection.enable_server_reflection([*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    port = server.add_insecure_port(settings.control_address)
    if port == 0:
        raise OSError(f"cannot listen on {settings.control_address}")
    await server.start()
    await asyncio.wait_for(listener.connected.wait(), timeout=10)
    for name in ["", *SERVICE_NAMES]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    delivery_task = asyncio.create_task(delivery.run_forever(), name="outbox-delivery") if deliver_email else None
    return RunningControl(server, port, ctx, listener, delivery, delivery_task, health_servicer)


async def serve(settings: Settings) -> None:
    running = await start_control(settings)
    log.info("control service listening on %s:%d", settings.control_host, running.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("control service stopping")
    await running.stop(settings.shutdown_grace_s)
