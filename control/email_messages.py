"""The invitation email: subject, text and HTML, naming the tenant and linking to the edge's
invitation page. The link is rendered in at delivery time; the queued bodies hold a placeholder."""

from __future__ import annotations

import html
from dataclasses import dataclass

LINK_PLACEHOLDER = "{{invite_url}}"


@dataclass(frozen=True)
class EmailContent:
    subject: str
    text_body: str
    html_body: str


def invitation_email(*, tenant_name: str, role: str, candidate_name: str, expires: str) -> EmailContent:
    greeting = f"Hello {candidate_name}," if candidate_name else "Hello,"
    subject = f"{tenant_name} invites you to an interview for {role}"
    text = (
        f"{greeting}\n\n"
        f"{tenant_name} invites you to a spoken interview for the role of {role}, "
        "led by an AI interviewer. You will need a microphone and about the time the interview "
        "allows.\n\n"
        f"Start when you are ready: {LINK_PLACEHOLDER}\n\n"
        f"The link works once and until {expires}. If you did not expect this email, ignore it.\n"
    )
    e = html.escape
    html_body = (
        "<!doctype html><html><body style=\"font-family:sans-serif\">"
        f"<p>{e(greeting)}</p>"
        f"<p><strong>{e(tenant_name)}</strong> invites you to a spoken interview for the role of "
        f"<strong>{e(role)}</strong>, led by an AI interviewer. You will need a microphone.</p>"
        f"<p><a href=\"{LINK_PLACEHOLDER}\">Start the interview</a></p>"
        f"<p>The link works once and until {e(expires)}. If you did not expect this email, "
        "ignore it.</p></body></html>"
    )
    return EmailContent(subject, text, html_body)


def render_link(body: str, invite_url: str, *, escape_html: bool) -> str:
    return body.replace(LINK_PLACEHOLDER, html.escape(invite_url) if escape_html else invite_url)


def invite_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/i/{token}"
