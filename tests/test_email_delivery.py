"""Invitation email end to end: CreateInvitation over gRPC, the outbox in PostgreSQL, the delivery
loop, the official SendGrid SDK, and a local SendGrid stand-in that checks every request against
the vendor's published schema.

The shared `control` fixture runs its own (console) delivery loop on the shared database, which
would take these messages, so the SendGrid tests run their own database and control service.
"""

from __future__ import annotations

import asyncio
import html
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import grpc
import pytest

from control.email_delivery import make_sender
from control.email_sendgrid import SendGridSender
from control.server import RunningControl, start_control
from interview.v1 import (
    candidate_service_pb2,
    invitation_service_pb2,
    outbox_service_pb2,
    resources_pb2,
)
from interview_core.config import Settings
from tests.conftest import Api, Database, TenantWorld, create_database, make_tenant
from tests.sendgrid_standin import ReceivedMail, SendGridStandin

API_KEY = "SG.test-key"
PUBLIC_BASE = "https://interviews.example.test"
ROLE = "Backend Engineer"  # make_tenant's template
WAIT_S = 10.0

SENT = resources_pb2.OUTBOX_STATUS_SENT
PENDING = resources_pb2.OUTBOX_STATUS_PENDING
FAILED = resources_pb2.OUTBOX_STATUS_FAILED

T = TypeVar("T")


# --- fixtures -----------------------------------------------------------------------------------

@dataclass
class Mail:
    """The SendGrid stand-in and a control service of our own that delivers to it."""

    standin: SendGridStandin
    admin: Api
    settings: Settings
    running: RunningControl


@pytest.fixture(scope="module")
async def standin() -> AsyncIterator[SendGridStandin]:
    server = SendGridStandin(api_key=API_KEY)
    await server.start()
    try:
        yield server
    finally:
        server.behave()
        await server.stop()


@pytest.fixture(scope="module")
async def email_control(database: Database, base_settings: Settings,
                        standin: SendGridStandin) -> AsyncIterator[Mail]:
    # The service role is cluster-wide: migrating with any other password would lock the shared
    # control service (and every other test) out of its own database.
    await create_database(database.pg, "interview_email", database.service_password)
    owner_dsn = database.owner_dsn_for("interview_email")
    settings = base_settings.replace(
        database_url=owner_dsn, service_database_url=database.service_dsn_for("interview_email"),
        sendgrid_api_key=API_KEY, sendgrid_host=standin.url, sendgrid_timeout_s=5.0,
        public_base_url=PUBLIC_BASE, outbox_backoff_base_s=0.05, outbox_backoff_max_s=0.5,
        outbox_poll_interval_s=0.1, outbox_max_attempts=100)
    running = await start_control(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield Mail(standin, Api(channel, settings.admin_token), settings, running)
    finally:
        await running.stop(1.0)


@pytest.fixture
def mail(email_control: Mail) -> Iterator[Mail]:
    """Per test: a well-behaved stand-in before, and no protocol violations after."""
    email_control.standin.behave()
    yield email_control
    email_control.standin.behave()
    violations = list(email_control.standin.violations)
    email_control.standin.violations.clear()
    assert not violations, f"requests the real SendGrid would refuse: {violations}"


# --- helpers ------------------------------------------------------------------------------------

async def eventually(probe: Callable[[], Awaitable[T | None]], what: str, *,
                     standin: SendGridStandin | None = None, timeout_s: float = WAIT_S) -> T:
    """Polls `probe` until it returns something truthy; fails after `timeout_s` (or at once on a
    protocol violation seen by the stand-in)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        if standin is not None and standin.violations:
            pytest.fail(f"requests the real SendGrid would refuse: {standin.violations}")
        result = await probe()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


async def list_outbox(admin: Api, tenant_id: str,
                      status: resources_pb2.OutboxStatus.ValueType = resources_pb2.OUTBOX_STATUS_UNSPECIFIED,
                      ) -> list[resources_pb2.OutboxMessage]:
    response = await admin.outbox.ListOutboxMessages(
        outbox_service_pb2.ListOutboxMessagesRequest(tenant_id=tenant_id, status=status, page_size=500),
        metadata=admin.md)
    assert not response.next_page_token
    return list(response.messages)


async def wait_outbox(mail: Mail, tenant_id: str, what: str,
                      done: Callable[[list[resources_pb2.OutboxMessage]], bool]) -> list[resources_pb2.OutboxMessage]:
    async def probe() -> list[resources_pb2.OutboxMessage] | None:
        messages = await list_outbox(mail.admin, tenant_id)
        return messages if done(messages) else None

    return await eventually(probe, what, standin=mail.standin)


def by_invitation(messages: list[resources_pb2.OutboxMessage], invitation_id: str) -> list[resources_pb2.OutboxMessage]:
    return [m for m in messages if m.invitation_id == invitation_id]


async def add_candidate(world: TenantWorld) -> resources_pb2.Candidate:
    upserted = await world.api.candidates.UpsertCandidate(
        candidate_service_pb2.UpsertCandidateRequest(
            email=f"cand-{uuid.uuid4().hex[:8]}@example.com", full_name="Grace Hopper"),
        metadata=world.api.md)
    return upserted.candidate


async def invite(world: TenantWorld, candidate: resources_pb2.Candidate | None = None, *,
                 send_email: bool = True) -> invitation_service_pb2.CreateInvitationResponse:
    return await world.api.invitations.CreateInvitation(
        invitation_service_pb2.CreateInvitationRequest(
            candidate_id=(candidate or world.candidate).id, template_id=world.template.id, send_email=send_email),
        metadata=world.api.md)


def only(items: list[T], what: str) -> T:
    assert len(items) == 1, f"expected exactly one {what}, got {len(items)}: {items}"
    return items[0]


# --- SendGrid -----------------------------------------------------------------------------------

def test_sendgrid_sender_is_chosen_when_a_key_is_configured(base_settings: Settings) -> None:
    assert isinstance(make_sender(base_settings.replace(sendgrid_api_key=API_KEY)), SendGridSender)
    assert not isinstance(make_sender(base_settings.replace(sendgrid_api_key="")), SendGridSender)


async def test_invitation_email_is_delivered_through_sendgrid(mail: Mail) -> None:
    tenant_name = f"O'Brien & Daughters {uuid.uuid4().hex[:6]}"  # needs escaping in HTML
    world = await make_tenant(mail.admin, tenant_name)
    created = await invite(world)
    assert created.invite_url == f"{PUBLIC_BASE}/i/{created.token}"

    async def sent() -> list[resources_pb2.OutboxMessage]:
        return await list_outbox(mail.admin, world.tenant.id, SENT)

    message = only(await eventually(sent, "the email to be marked sent", standin=mail.standin), "sent message")
    assert only(await list_outbox(mail.admin, world.tenant.id), "outbox message").id == message.id

    email: ReceivedMail = only(mail.standin.accepted_for(to_email=world.candidate.email), "delivered email")
    assert email.to_emails == [world.candidate.email]
    assert email.payload["from"]["email"] == mail.settings.email_from
    assert email.outbox_id == message.id

    text, html_part = email.content("text/plain"), email.content("text/html")
    assert tenant_name in email.subject and ROLE in email.subject
    assert tenant_name in text and ROLE in text
    assert html.escape(tenant_name) in html_part and tenant_name not in html_part and ROLE in html_part
    assert created.invite_url in text
    assert f'href="{html.escape(created.invite_url)}"' in html_part
    assert "{{" not in text + html_part, "a placeholder was left unrendered"

    assert message.provider == "sendgrid"
    assert message.attempts == 1 and not message.last_error
    assert message.invitation_id == created.invitation.id
    assert message.to_email == world.candidate.email
    # Delivered through a real provider: the link lives only in the candidate's mailbox now.
    assert created.token not in message.text_body
    assert "(link withheld)" in message.text_body


async def test_no_email_requested_queues_nothing(mail: Mail) -> None:
    world = await make_tenant(mail.admin)
    quiet = await invite(world, send_email=False)
    assert quiet.invite_url.endswith("/i/" + quiet.token)
    # The outbox row is written in the invitation's transaction, so "nothing queued" is final.
    assert await list_outbox(mail.admin, world.tenant.id) == []

    # And nothing reaches SendGrid for that candidate once the loop has delivered later mail.
    other = await add_candidate(world)
    loud = await invite(world, other)
    messages = await wait_outbox(mail, world.tenant.id, "the second email to be sent",
                                 lambda ms: len(ms) == 1 and ms[0].status == SENT)
    assert messages[0].invitation_id == loud.invitation.id
    assert mail.standin.accepted_for(to_email=world.candidate.email) == []
    assert len(mail.standin.accepted_for(to_email=other.email)) == 1


async def test_outage_delays_email_and_loses_none(mail: Mail) -> None:
    world = await make_tenant(mail.admin)
    candidates = [world.candidate, *[await add_candidate(world) for _ in range(4)]]
    port = mail.standin.port
    await mail.standin.stop()
    try:
        created = [await invite(world, c) for c in candidates]
        # Each one tried (twice: so retried, with backoff), none delivered, none given up.
        queued = await wait_outbox(
            mail, world.tenant.id, "every email to be retried during the outage",
            lambda ms: len(ms) == 5 and all(m.attempts >= 2 and m.status == PENDING for m in ms))
        assert all("unreachable" in m.last_error for m in queued), [m.last_error for m in queued]
        assert all(mail.standin.accepted_for(to_email=c.email) == [] for c in candidates)
    finally:
        if not mail.standin.running:
            await mail.standin.start()
    assert mail.standin.port == port

    delivered = await wait_outbox(mail, world.tenant.id, "every email to be delivered after the outage",
                                  lambda ms: len(ms) == 5 and all(m.status == SENT for m in ms))
    for candidate, invitation in zip(candidates, created, strict=True):
        message = only(by_invitation(delivered, invitation.invitation.id), "message per invitation")
        email = only(mail.standin.accepted_for(to_email=candidate.email), f"email to {candidate.email}")
        assert only(mail.standin.accepted_for(outbox_id=message.id), f"email for {message.id}") is email
        assert invitation.invite_url in email.content("text/plain")
        assert message.attempts >= 2 and not message.last_error


async def test_retryable_errors_are_retried_until_accepted(mail: Mail) -> None:
    world = await make_tenant(mail.admin)
    mail.standin.fail_next(500, 429)
    created = await invite(world)
    [message] = await wait_outbox(mail, world.tenant.id, "the email to be sent after 500 and 429",
                                  lambda ms: len(ms) == 1 and ms[0].status == SENT)
    assert [r.status for r in mail.standin.received_for(message.id)] == [500, 429, 202]
    assert message.attempts == 3 and not message.last_error
    email = only(mail.standin.accepted_for(to_email=world.candidate.email), "delivered email")
    assert created.invite_url in email.content("text/plain")


async def test_rejected_email_fails_without_retrying(mail: Mail) -> None:
    world = await make_tenant(mail.admin)
    mail.standin.fail_with(400)
    await invite(world)
    [message] = await wait_outbox(mail, world.tenant.id, "the rejected email to be marked failed",
                                  lambda ms: len(ms) == 1 and ms[0].status == FAILED)
    assert "400" in message.last_error and "on purpose" in message.last_error, message.last_error
    assert message.attempts == 1
    # Given up for good: longer than the longest backoff later, still one request and one attempt.
    await asyncio.sleep(mail.settings.outbox_backoff_max_s + 3 * mail.settings.outbox_poll_interval_s)
    assert len(mail.standin.received_for(message.id)) == 1
    [message] = await list_outbox(mail.admin, world.tenant.id)
    assert message.status == FAILED and message.attempts == 1
    assert mail.standin.accepted_for(to_email=world.candidate.email) == []


async def test_resend_and_revoke_supersede_queued_email(mail: Mail) -> None:
    world = await make_tenant(mail.admin)
    resent_to, revoked_to = world.candidate, await add_candidate(world)
    mail.standin.fail_with(500)  # keeps both queued, retrying
    first = await invite(world, resent_to)
    doomed = await invite(world, revoked_to)
    await wait_outbox(mail, world.tenant.id, "both emails to be tried and still queued",
                      lambda ms: len(ms) == 2 and all(m.attempts >= 1 and m.status == PENDING for m in ms))

    resent = await world.api.invitations.ResendInvitation(
        invitation_service_pb2.ResendInvitationRequest(invitation_id=first.invitation.id, send_email=True),
        metadata=world.api.md)
    assert resent.token != first.token
    await world.api.invitations.RevokeInvitation(
        invitation_service_pb2.RevokeInvitationRequest(invitation_id=doomed.invitation.id), metadata=world.api.md)

    # Still failing, so neither old email can have slipped out: both must end given up. (One that
    # was in flight at the resend or revoke is given up at its next attempt rather than at once.)
    def old_ones_given_up(ms: list[resources_pb2.OutboxMessage]) -> bool:
        return len(ms) == 3 and all(m.status == FAILED for m in ms if m.id != newest(ms).id)

    messages = await wait_outbox(mail, world.tenant.id, "the superseded emails to be given up", old_ones_given_up)
    old, new = by_invitation(messages, first.invitation.id)  # listed oldest first
    revoked = only(by_invitation(messages, doomed.invitation.id), "revoked invitation's message")
    assert "supersede" in old.last_error, old.last_error
    assert "revoked" in revoked.last_error, revoked.last_error
    assert new.status == PENDING

    mail.standin.behave()
    messages = await wait_outbox(mail, world.tenant.id, "the resent email to be sent",
                                 lambda ms: any(m.status == SENT for m in ms))
    assert [m.status for m in messages] == [FAILED, FAILED, SENT]  # oldest first: old, revoked, new
    assert messages[2].id == new.id
    email = only(mail.standin.accepted_for(to_email=resent_to.email), "email after the resend")
    assert email.outbox_id == new.id
    text = email.content("text/plain")
    assert resent.invite_url in text and first.token not in text
    assert mail.standin.accepted_for(to_email=revoked_to.email) == []


def newest(messages: list[resources_pb2.OutboxMessage]) -> resources_pb2.OutboxMessage:
    return max(messages, key=lambda m: (m.create_time.seconds, m.create_time.nanos))


async def test_resend_while_the_old_email_is_in_flight_never_sends_the_dead_link(mail: Mail) -> None:
    world = await make_tenant(mail.admin)
    mail.standin.hold()
    first = await invite(world)

    async def in_flight() -> bool:
        return mail.standin.holding == 1

    await eventually(in_flight, "the first email to reach SendGrid", standin=mail.standin)
    resent = await world.api.invitations.ResendInvitation(
        invitation_service_pb2.ResendInvitationRequest(invitation_id=first.invitation.id, send_email=True),
        metadata=world.api.md)
    # The resend cannot supersede a message being sent. Its send fails after all; the retry must
    # not go out with the link the resend killed.
    mail.standin.fail_with(500)
    mail.standin.release()
    [old, new] = await wait_outbox(mail, world.tenant.id, "the old email to be given up",
                                   lambda ms: len(ms) == 2 and ms[0].status == FAILED)
    assert old.invitation_id == new.invitation_id == first.invitation.id
    assert old.attempts == 2 and "newer link" in old.last_error, (old.attempts, old.last_error)

    mail.standin.behave()
    [old, new] = await wait_outbox(mail, world.tenant.id, "the resent email to be sent",
                                   lambda ms: len(ms) == 2 and ms[1].status == SENT)
    assert old.status == FAILED
    email = only(mail.standin.accepted_for(to_email=world.candidate.email), "delivered email")
    assert email.outbox_id == new.id and resent.invite_url in email.content("text/plain")
    assert all(first.token not in m.content("text/plain") for m in mail.standin.accepted)


# --- the default console sender (the shared control service) ------------------------------------

async def test_console_sender_keeps_the_link_in_the_outbox(admin: Api) -> None:
    world = await make_tenant(admin)
    created = await invite(world)

    async def sent() -> list[resources_pb2.OutboxMessage]:
        return await list_outbox(admin, world.tenant.id, SENT)

    message = only(await eventually(sent, "the console sender to mark the email sent"), "sent message")
    assert message.provider == "console"
    assert message.invitation_id == created.invitation.id
    assert message.to_email == world.candidate.email
    assert world.tenant.display_name in message.subject
    # The console outbox is the mailbox: the rendered link stays readable there.
    assert created.invite_url in message.text_body
    assert "{{invite_url}}" not in message.text_body
