"""The SendGrid boundary: sends one email through the official SDK and translates its errors.

The SDK is synchronous (urllib), so each send runs in a worker thread. 429 and 5xx responses
and network failures are retryable; other 4xx responses are not (the message itself is bad).
"""

from __future__ import annotations

import asyncio
import json
import urllib.error

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Content, CustomArg, Email, Mail, To

from control.email_delivery import DeliveryError, OutgoingEmail
from interview_core.config import Settings


def _error_detail(body: object) -> str:
    """The messages of a SendGrid error body ({"errors": [{"message": ...}]}), shortened."""
    try:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
        errors = json.loads(text).get("errors") or []
        messages = [str(e.get("message", "")) for e in errors if isinstance(e, dict)]
    except (ValueError, AttributeError):
        return ""
    return "; ".join(m for m in messages if m)[:300]


class SendGridSender:
    name = "sendgrid"
    keeps_link = False  # once delivered, the link lives only in the candidate's mailbox

    def __init__(self, settings: Settings) -> None:
        self._client = SendGridAPIClient(api_key=settings.sendgrid_api_key, host=settings.sendgrid_host)
        self._from = Email(settings.email_from, settings.email_from_name)
        self._timeout = settings.sendgrid_timeout_s

    def _mail(self, email: OutgoingEmail) -> Mail:
        mail = Mail(from_email=self._from, to_emails=To(email.to_email), subject=email.subject)
        mail.add_content(Content("text/plain", email.text_body))
        mail.add_content(Content("text/html", email.html_body))
        # Lets SendGrid's events be traced back to the outbox row. On the personalization: the
        # published schema types a message-level custom_args as a string, not an object.
        mail.add_custom_arg(CustomArg("outbox_id", email.outbox_id, p=0))
        return mail

    def _send_blocking(self, email: OutgoingEmail) -> str:
        try:
            response = self._client.client.mail.send.post(
                request_body=self._mail(email).get(), timeout=self._timeout)
        except HTTPError as exc:
            status = int(getattr(exc, "status_code", 0) or 0)
            retryable = status == 429 or status >= 500
            detail = _error_detail(getattr(exc, "body", b""))
            raise DeliveryError(f"sendgrid answered {status}{': ' + detail if detail else ''}",
                                retryable=retryable) from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise DeliveryError(f"sendgrid unreachable: {type(exc).__name__}", retryable=True) from None
        headers = getattr(response, "headers", None)
        message_id = headers.get("X-Message-Id", "") if headers is not None else ""
        return str(message_id or "")

    async def send(self, email: OutgoingEmail) -> str:
        return await asyncio.to_thread(self._send_blocking, email)
