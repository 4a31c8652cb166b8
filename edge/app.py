"""The edge's HTTP side: the invitation page, redemption, client secrets, health and metrics.
The candidate WebSocket is in edge/candidate_socket.py."""

from __future__ import annotations

import dataclasses
import html
import json
import logging
import re
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from actors.cluster import Cluster
from edge.candidate_socket import CandidateSockets
from edge.candidate_tokens import ACCESS, CLIENT_SECRET, ISSUER, CandidateClaims, CandidateTokens
from edge.http_errors import error_response
from edge.supabase_auth import SupabaseVerifier, unverified_issuer
from interview.v1 import resources_pb2
from interview_core import realtime_protocol as rt
from interview_core.config import Settings
from interview_core.control_client import ControlClient
from interview_core.errors import ErrorCode, PlatformError, invalid
from interview_core.loop_lag import LoopLag

log = logging.getLogger(__name__)

_INVITE_PATH = re.compile(r"/i/[^/?\s]+")
OVER_BECAUSE = {
    resources_pb2.SESSION_STATUS_COMPLETED: "it was completed",
    resources_pb2.SESSION_STATUS_ABANDONED: "it was abandoned (the candidate was away longer than the grace period)",
    resources_pb2.SESSION_STATUS_ENDED: "the company ended it",
}


def redact_path(path: str) -> str:
    """Invitation tokens never reach a log."""
    return _INVITE_PATH.sub("/i/[redacted]", path)


class RedactingAccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info('%s "%s %s" %s %.1fms', request.remote, request.method, redact_path(request.path),
                         response.status, time * 1000)


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class Edge:
    def __init__(self, settings: Settings, control: ControlClient, cluster: Cluster) -> None:
        self.settings = settings
        self.control = control
        self.cluster = cluster
        self.tokens = CandidateTokens(settings.secret_key)
        self.supabase = SupabaseVerifier.from_settings(settings)  # None: Supabase sign-in is off
        self.sockets = CandidateSockets(self)
        self.lag = LoopLag()

    def candidate(self, request: web.Request, *, kinds: tuple[str, ...] = (ACCESS,)) -> CandidateClaims:
        token = bearer(request)
        if token is None:
            raise PlatformError(ErrorCode.UNAUTHENTICATED, "missing candidate credential")
        claims = self.tokens.verify(token)
        if claims.kind not in kinds:
            raise PlatformError(ErrorCode.PERMISSION_DENIED, "this credential cannot be used here")
        return claims

    async def redeeming_account(self, request: web.Request) -> tuple[str, bool, str]:
        """Whom a redemption is for: (account id, whether it is a Supabase user, its email).
        Not signed in: ("", False, "") and the control service uses the candidate's own account.
        A token that is not one of ours (by its unverified issuer, for routing only) is checked as
        a Supabase access token when Supabase sign-in is configured."""
        token = bearer(request)
        if token is None:
            return "", False, ""
        if self.supabase is not None and unverified_issuer(token) != ISSUER:
            user = await self.supabase.verify(token)
            return user.user_id, True, user.email
        return self.candidate(request).user_id, False, ""

    # -- routes ---------------------------------------------------------------------------------
    async def invitation_page(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        headers = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
                   "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'"}
        try:
            found = await self.control.lookup_invitation(token)
        except PlatformError as exc:
            if exc.retryable:
                return web.Response(status=503, headers={**headers, "Retry-After": "5"}, content_type="text/html",
                                    text=_page("Please try again", "<p>We could not open your invitation just now. "
                                               "Please try again in a moment.</p>"))
            return web.Response(status=404, headers=headers, content_type="text/html",
                                text=_page("Invitation not found",
                                           "<p>This invitation link is not valid. Check the email you received.</p>"))
        inv = found.invitation
        tenant, role = html.escape(found.tenant_display_name), html.escape(inv.template.role)
        if not found.redeemable:
            state = {resources_pb2.INVITATION_STATUS_REDEEMED: "has already been used",
                     resources_pb2.INVITATION_STATUS_REVOKED: "was withdrawn",
                     resources_pb2.INVITATION_STATUS_EXPIRED: "has expired"}.get(inv.status, "is not valid")
            body = f"<p>This invitation from <b>{tenant}</b> for <b>{role}</b> {state}.</p>"
            return web.Response(status=410, headers=headers, content_type="text/html", text=_page(tenant, body))
        minutes = max(1, inv.template.time_limit_seconds // 60)
        body = (f"<p><b>{tenant}</b> invites you to a spoken interview for <b>{role}</b>.</p>"
                f"<p>{len(inv.template.questions)} questions, up to {minutes} minutes. You will need a microphone.</p>"
                '<button id="start">Start the interview</button><p id="status"></p>'
                "<script>document.getElementById('start').onclick=async()=>{"
                "const r=await fetch('/v1/invitations/redeem',{method:'POST',headers:{'Content-Type':"
                "'application/json'},body:JSON.stringify({token:location.pathname.split('/').pop()})});"
                "const j=await r.json();document.getElementById('status').textContent=r.ok?"
                "'Your interview is ready (session '+j.session_id+').':j.error.message;};</script>")
        return web.Response(headers=headers, content_type="text/html", text=_page(f"{tenant}: {role}", body))

    async def redeem(self, request: web.Request) -> web.Response:
        try:
            body = await _json_body(request)
            token = body.get("token")
            if not isinstance(token, str) or not token or len(token) > 256:
                raise invalid("token", "required, a string of at most 256 characters")
            user_id, external, email = await self.redeeming_account(request)  # signed in: link this account
            redeemed = await self.control.redeem_invitation(token, user_id, external_account=external,
                                                            external_email=email)
        except PlatformError as exc:
            return error_response(exc)
        session = redeemed.session
        access, expires = self.tokens.issue(ACCESS, user_id=redeemed.user_id, session_id=session.id,
                                            tenant_id=session.tenant_id, ttl_s=self.settings.candidate_token_ttl_s)
        log.info("invitation redeemed: tenant %s session %s", session.tenant_id, session.id)
        return web.json_response({
            "session_id": session.id, "access_token": access, "expires_at": expires,
            "first_redemption": redeemed.first_redemption, "role": redeemed.template.role,
            "question_count": len(redeemed.template.questions),
            "time_limit_seconds": redeemed.template.time_limit_seconds,
            "realtime_url": f"/v1/realtime?call_id={session.id}"})

    async def client_secret(self, request: web.Request) -> web.Response:
        try:
            claims = self.candidate(request)
            if request.can_read_body:
                await _json_body(request)  # the session the client asks for: the server decides it
            session = await self.control.get_session(claims.session_id, retry=False)
            if session.status in OVER_BECAUSE:  # a candidate coming back to it is told why
                raise PlatformError(ErrorCode.INVALID_STATE, f"this interview is over: {OVER_BECAUSE[session.status]}")
        except PlatformError as exc:
            return error_response(exc)
        value, expires = self.tokens.issue(CLIENT_SECRET, user_id=claims.user_id, session_id=claims.session_id,
                                           tenant_id=claims.tenant_id, ttl_s=self.settings.client_secret_ttl_s)
        config = rt.SessionConfig(id=session.id, model=self.settings.interviewer_model,
                                  voice=session.template.voice or "alloy")
        await self.sockets.pre_place(claims.session_id, config)  # the join that follows is then quick
        created = json.loads(rt.encode_server_event(rt.SessionCreated(
            session=dataclasses.replace(config, expires_at=expires))))
        return web.json_response({"value": value, "expires_at": expires, "session": created["session"]})

    async def close(self, _app: web.Application) -> None:
        if self.supabase is not None:
            self.supabase.close()

    async def health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "live": self.sockets.live_count})

    async def metrics(self, _request: web.Request) -> web.Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > 64 * 1024:
        raise invalid("body", "larger than 64 KiB")
    try:
        body = await request.json()
    except web.HTTPRequestEntityTooLarge:
        raise invalid("body", "larger than 64 KiB") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise invalid("body", "not JSON") from None
    if not isinstance(body, dict):
        raise invalid("body", "must be a JSON object")
    return body


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
            "<meta name='viewport' content='width=device-width'></head>"
            f"<body style='font-family:sans-serif;max-width:40em;margin:2em auto'>{body}</body></html>")


def build_app(edge: Edge) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app.router.add_get("/i/{token}", edge.invitation_page)
    app.router.add_post("/v1/invitations/redeem", edge.redeem)
    app.router.add_post("/v1/realtime/client_secrets", edge.client_secret)
    app.router.add_get("/v1/realtime", edge.sockets.handle)
    app.router.add_get("/healthz", edge.health)
    app.router.add_get("/metrics", edge.metrics)
    app.on_shutdown.append(edge.sockets.shutdown)
    app.on_cleanup.append(edge.close)
    return app
