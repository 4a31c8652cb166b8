"""The outbox delivery loop: sends queued email with retries and exponential backoff, so a
provider outage delays mail and loses none.

Messages are claimed through the database's outbox door with a lease (a sender that dies
mid-send has its claim lapse and the message is retried), then reported sent or failed. A
message is sent at least once; it is sent twice only if a process dies between the provider
accepting it and the outcome being recorded. A message whose link no longer works (the invitation
was resent, revoked, redeemed or expired meanwhile) is not sent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from dataclasses import dataclass
from typing import Any, Protocol

from control.db import Database
from control.email_messages import invite_url, render_link
from interview_core.config import Settings
from interview_core.credentials import SecretBox, hash_secret, hashes_match
from interview_core.errors import PlatformError

log = logging.getLogger(__name__)

LINK_PURPOSE = "invite-link"
OUTBOX_CHANNEL = "interview_outbox"
# The console sender logs under this name; `interview up` shows its records on the console.
CONSOLE_EMAIL_LOGGER = "interview.outbox"


@dataclass(frozen=True)
class OutgoingEmail:
    outbox_id: str
    tenant_id: str
    to_email: str
    subject: str
    text_body: str
    html_body: str


class DeliveryError(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class EmailSender(Protocol):
    name: str
    # Whether the queued link stays readable after delivery (the console outbox is the mailbox).
    keeps_link: bool

    async def send(self, email: OutgoingEmail) -> str:
        """Sends, returning the provider's message id; raises DeliveryError."""
        ...


class ConsoleSender:
    """The embedded default: the outbox is the mailbox; each message is also logged."""

    name = "console"
    keeps_link = True

    async def send(self, email: OutgoingEmail) -> str:
        logging.getLogger(CONSOLE_EMAIL_LOGGER).info(
            "email to %s (tenant %s, outbox %s): %s\n%s", email.to_email, email.tenant_id,
            email.outbox_id, email.subject, email.text_body)
        return f"console-{email.outbox_id}"


def make_sender(settings: Settings) -> EmailSender:
    if settings.sendgrid_api_key:
        from control.email_sendgrid import SendGridSender

        return SendGridSender(settings)
    return ConsoleSender()


def backoff_s(attempt: int, settings: Settings) -> float:
    """Exponential backoff with full jitter, capped."""
    ceiling = min(settings.outbox_backoff_max_s, settings.outbox_backoff_base_s * 2 ** max(0, attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


class OutboxDelivery:
    def __init__(self, settings: Settings, db: Database, box: SecretBox, sender: EmailSender) -> None:
        self._settings = settings
        self._db = db
        self._box = box
        self._sender = sender
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self._wake.set()

    def _token(self, row: Any) -> str:
        token = self._box.open(bytes(row["link_ciphertext"]), purpose=LINK_PURPOSE) \
            if row["link_ciphertext"] is not None else None
        if token is None:
            raise DeliveryError("the queued link cannot be read (secret key changed?)", retryable=False)
        return token.decode()

    def _render(self, row: Any, token: str) -> OutgoingEmail:
        url = invite_url(self._settings.invite_base_url, token)
        return OutgoingEmail(
            outbox_id=str(row["id"]), tenant_id=str(row["tenant_id"]), to_email=row["to_email"],
            subject=row["subject"], text_body=render_link(row["text_body"], url, escape_html=False),
            html_body=render_link(row["html_body"], url, escape_html=True))

    async def _check_link_still_open(self, row: Any, token: str) -> None:
        """Refuses to send a link that can no longer be used.

        Resend and revoke supersede queued mail, but a message that was being sent at that moment
        (or whose sender died holding its lease) escapes that and would otherwise go out later
        carrying a dead link.
        """
        if row["invitation_id"] is None:
            return
        async with self._db.transaction(row["tenant_id"]) as conn:
            invitation = await conn.fetchrow(
                "SELECT token_hash, status, expires_at FROM interview_invitations WHERE id = $1",
                row["invitation_id"])
        if invitation is None or not hashes_match(bytes(invitation["token_hash"]), hash_secret(token)):
            raise DeliveryError("superseded: the invitation has a newer link or is gone", retryable=False)
        if invitation["status"] != "pending":
            raise DeliveryError(f"not sent: the invitation is {invitation['status']}", retryable=False)
        if invitation["expires_at"] <= dt.datetime.now(dt.UTC):
            raise DeliveryError("not sent: the invitation has expired", retryable=False)

    async def _record_failure(self, row: Any, error: str, *, retryable: bool) -> None:
        give_up = not retryable or row["attempts"] >= self._settings.outbox_max_attempts
        delay = backoff_s(row["attempts"], self._settings)
        log.warning("email %s (tenant %s) attempt %d failed: %s%s", row["id"], row["tenant_id"],
                    row["attempts"], error, "; giving up" if give_up else f"; retry in {delay:.2f}s")
        async with self._db.transaction() as conn:
            await conn.execute("SELECT door_fail_outbox($1, $2, $3, $4)", row["id"], error, delay, give_up)

    async def _deliver_one(self, row: Any) -> bool:
        try:
            token = self._token(row)
            await self._check_link_still_open(row, token)
            provider_id = await self._sender.send(self._render(row, token))
        except DeliveryError as exc:
            await self._record_failure(row, str(exc), retryable=exc.retryable)
            return False
        except PlatformError as exc:  # the database, while checking the invitation
            await self._record_failure(row, exc.message, retryable=True)
            return False
        except Exception as exc:  # a sender bug must not strand the message until its lease lapses
            log.exception("email %s: unexpected error from the %s sender", row["id"], self._sender.name)
            await self._record_failure(row, f"unexpected error: {type(exc).__name__}", retryable=True)
            return False
        async with self._db.transaction() as conn:
            await conn.execute("SELECT door_complete_outbox($1, $2, $3, $4)",
                               row["id"], self._sender.name, provider_id, self._sender.keeps_link)
        return True

    async def _deliver_batch(self) -> tuple[int, int]:
        """Claims one batch and sends it; returns (claimed, sent)."""
        async with self._db.transaction() as conn:
            rows = await conn.fetch("SELECT * FROM door_claim_outbox($1, $2)",
                                    self._settings.outbox_batch_size, self._settings.outbox_lease_s)
        # Concurrently: sent one after another, a slow provider could keep the last of a batch
        # past its lease, and another instance would claim and send it a second time.
        results = await asyncio.gather(*(self._deliver_one(row) for row in rows), return_exceptions=True)
        sent = 0
        for row, result in zip(rows, results, strict=True):
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                # Recording the outcome failed (the database); the lease lapses and it is retried.
                log.warning("email %s: outcome not recorded: %s", row["id"], result)
            elif result:
                sent += 1
        return len(rows), sent

    async def deliver_due(self) -> int:
        """Sends what is due now; returns how many were sent."""
        return (await self._deliver_batch())[1]

    async def run_forever(self) -> None:
        while True:
            try:
                while (await self._deliver_batch())[0] >= self._settings.outbox_batch_size:
                    pass
            except PlatformError as exc:
                log.warning("outbox delivery paused: %s", exc.message)
            except Exception:  # the loop must outlive any one failure, or mail silently stops
                log.exception("outbox delivery failed; retrying at the next poll")
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._settings.outbox_poll_interval_s)
            except TimeoutError:
                pass
            self._wake.clear()
