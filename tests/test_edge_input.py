"""The edge's candidate-facing input: the invitation page, redemption, client secrets, the refusals
of the candidate WebSocket before its upgrade, and what an open socket does with bad, oversized,
binary and flooding input. Every server event received here is checked against its schema
(OpenAI's `RealtimeServerEvent*`, or `INTERVIEW_EVENT_SCHEMAS` for ours)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import asyncpg
import pytest
from jsonschema import Draft202012Validator

from actors import registry
from actors.live_session import CLOSE_REPLACED
from edge.app import redact_path
from edge.candidate_tokens import ACCESS, CLIENT_SECRET
from edge.server import RunningEdge, start_edge
from interview.v1 import invitation_service_pb2, resources_pb2, session_service_pb2, template_service_pb2
from interview_core import realtime_protocol as rp
from interview_core.config import Settings
from tests.conftest import SHARED, Api, Database, TenantWorld, make_tenant
from tests.openai_spec import load_openai_spec
from tests.sdk_candidate import read_wav, sdk_client, silence

AUDIO = SHARED / "audio"
CHUNK = 4800  # 100 ms of PCM16 at 24 kHz


# -- schemas -------------------------------------------------------------------------------------

openai_spec = load_openai_spec


def check_server_event(obj: dict[str, Any]) -> None:
    kind = obj.get("type")
    assert isinstance(kind, str), obj
    if kind.startswith("interview."):
        Draft202012Validator(rp.INTERVIEW_EVENT_SCHEMAS[kind]).validate(obj)
        return
    spec = openai_spec()
    assert kind in spec.server_schema_by_type, f"not an OpenAI server event: {kind}"
    spec.validate(spec.server_schema_by_type[kind], obj)


# -- helpers -------------------------------------------------------------------------------------

@pytest.fixture
def base(edge: RunningEdge) -> str:
    return f"127.0.0.1:{edge.port}"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def invite(world: TenantWorld) -> invitation_service_pb2.CreateInvitationResponse:
    return await world.api.invitations.CreateInvitation(
        invitation_service_pb2.CreateInvitationRequest(candidate_id=world.candidate.id,
                                                       template_id=world.template.id), metadata=world.api.md)


async def post_redeem(http: aiohttp.ClientSession, base: str, token: str,
                      access: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {access}"} if access else {}
    async with http.post(f"http://{base}/v1/invitations/redeem", json={"token": token}, headers=headers) as resp:
        return resp.status, await resp.json()


async def new_session(http: aiohttp.ClientSession, base: str, world: TenantWorld) -> tuple[str, str]:
    """A fresh, redeemed interview: (session id, candidate access token)."""
    status, body = await post_redeem(http, base, (await invite(world)).token)
    assert status == 200, body
    return str(body["session_id"]), str(body["access_token"])


def assert_error(body: dict[str, Any], code: str, param: str | None = None) -> None:
    """OpenAI's error shape: {"error": {"message", "type", "code", "param"}}."""
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "code", "param"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if param is not None:
        assert body["error"]["param"] == param, body


def ws_url(base: str, session_id: str | None) -> str:
    return f"ws://{base}/v1/realtime" + (f"?call_id={session_id}" if session_id is not None else "")


def auth(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


async def refused(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> int:
    """The HTTP status of a WebSocket handshake the edge refuses before the upgrade."""
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        ws = await http.ws_connect(url, **kwargs)
        await ws.close()
    return info.value.status


class Live:
    """A raw candidate socket: every server event it receives is checked against its schema."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self.close_frame: int | None = None  # the code in the server's close frame
        self._pings = 0

    async def send(self, event: dict[str, Any] | str) -> None:
        await self.ws.send_str(event if isinstance(event, str) else json.dumps(event))

    async def next(self, wait_s: float) -> dict[str, Any] | None:
        """The next event, or None once the socket is closed (see `ws.close_code`)."""
        msg = await self.ws.receive(wait_s)
        if msg.type == aiohttp.WSMsgType.TEXT:
            obj: dict[str, Any] = json.loads(msg.data)
            check_server_event(obj)
            self.events.append(obj)
            return obj
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED), msg
        if msg.type == aiohttp.WSMsgType.CLOSE:
            self.close_frame = int(msg.data)
        return None

    async def expect(self, kind: str | Callable[[dict[str, Any]], bool], wait_s: float = 10.0) -> dict[str, Any]:
        """Skips the interviewer's chatter until an event of this type (or matching this test)."""
        match = kind if callable(kind) else (lambda e: e["type"] == kind)
        deadline = time.monotonic() + wait_s
        while True:
            event = await self.next(max(0.01, deadline - time.monotonic()))
            if event is None:
                raise AssertionError(f"closed with {self.ws.close_code} while waiting for {kind}")
            if match(event):
                return event
            assert event["type"] != "error", f"unexpected error while waiting for {kind}: {event}"

    async def expect_error(self, code: str, event_id: str | None, param: str | None = None) -> dict[str, Any]:
        event = await self.expect("error")
        assert event["error"]["code"] == code, event
        assert event["error"]["event_id"] == event_id, event
        if param is not None:
            assert event["error"]["param"] == param, event
        return event

    async def still_open(self) -> None:
        """A ping goes through the actor and comes back: the connection carries on."""
        self._pings += 1
        ping_id = f"ping-{self._pings}"
        await self.send({"type": "interview.ping", "event_id": f"e-{ping_id}", "client_time_ms": 1.5,
                         "ping_id": ping_id})
        pong = await self.expect("interview.pong")
        assert (pong["ping_id"], pong["client_time_ms"]) == (ping_id, 1.5)

    async def closed(self, wait_s: float = 10.0) -> int | None:
        """Reads (and checks) what is left until the server closes; the code the server closed with
        (the one in its close frame: what the official SDK decides on)."""
        deadline = time.monotonic() + wait_s
        while await self.next(max(0.01, deadline - time.monotonic())) is not None:
            pass
        return self.close_frame if self.close_frame is not None else self.ws.close_code

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]


async def connect(http: aiohttp.ClientSession, base: str, session_id: str, credential: str,
                  **kwargs: Any) -> Live:
    headers = {**auth(credential), **kwargs.pop("headers", {})}
    live = Live(await http.ws_connect(ws_url(base, session_id), headers=headers, **kwargs))
    await live.expect("session.created")
    return live


def append(pcm: bytes, event_id: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}
    if event_id is not None:
        event["event_id"] = event_id
    return event


# -- the invitation page -------------------------------------------------------------------------

async def get_page(http: aiohttp.ClientSession, base: str, token: str) -> tuple[int, str, aiohttp.ClientResponse]:
    async with http.get(f"http://{base}/i/{token}") as resp:
        return resp.status, await resp.text(), resp


def assert_page_headers(resp: aiohttp.ClientResponse) -> None:
    assert resp.content_type == "text/html"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["Cache-Control"] == "no-store"


async def test_invitation_page_names_tenant_and_role_and_never_consumes(
        world: TenantWorld, base: str, http: aiohttp.ClientSession) -> None:
    created = await invite(world)
    for _ in range(3):
        status, text, resp = await get_page(http, base, created.token)
        assert status == 200, text
        assert_page_headers(resp)
        assert world.tenant.display_name in text and world.template.role in text
    status, body = await post_redeem(http, base, created.token)
    assert status == 200 and body["first_redemption"] is True, body
    status, text, resp = await get_page(http, base, created.token)
    assert status == 410 and "already been used" in text
    assert_page_headers(resp)


async def test_invitation_page_for_unknown_revoked_and_expired_tokens(
        world: TenantWorld, base: str, http: aiohttp.ClientSession, database: Database) -> None:
    for unknown in (secrets.token_urlsafe(32), "x"):
        status, text, resp = await get_page(http, base, unknown)
        assert status == 404 and "not valid" in text
        assert_page_headers(resp)
    revoked = await invite(world)
    await world.api.invitations.RevokeInvitation(
        invitation_service_pb2.RevokeInvitationRequest(invitation_id=revoked.invitation.id), metadata=world.api.md)
    status, text, resp = await get_page(http, base, revoked.token)
    assert status == 410 and "withdrawn" in text and world.template.role in text
    assert_page_headers(resp)
    expired = await invite(world)
    conn = await asyncpg.connect(database.owner_dsn)
    try:
        await conn.execute("UPDATE interview_invitations SET expires_at = now() - interval '1 minute' WHERE id = $1",
                           uuid.UUID(expired.invitation.id))
    finally:
        await conn.close()
    status, text, resp = await get_page(http, base, expired.token)
    assert status == 410 and "expired" in text
    assert_page_headers(resp)


async def test_invitation_page_with_an_overlong_token_is_not_found(base: str, http: aiohttp.ClientSession) -> None:
    """A token the control plane refuses as malformed (over 256 characters) is still just a link
    that is not valid: 404, not 503 (which tells the candidate the service is down)."""
    status, text, resp = await get_page(http, base, "a" * 300)
    assert status == 404, (status, text)
    assert_page_headers(resp)


async def test_invitation_page_escapes_what_tenants_wrote(admin: Api, base: str, http: aiohttp.ClientSession) -> None:
    world = await make_tenant(admin, name='Acme <script>alert("t")</script> & Co')
    template = await world.api.templates.CreateTemplate(
        template_service_pb2.CreateTemplateRequest(template=resources_pb2.Template(
            role="<img src=x onerror=alert(1)>", questions=["Why?"], time_limit_seconds=300, language="en-US")),
        metadata=world.api.md)
    created = await world.api.invitations.CreateInvitation(
        invitation_service_pb2.CreateInvitationRequest(candidate_id=world.candidate.id, template_id=template.id),
        metadata=world.api.md)
    status, text, _resp = await get_page(http, base, created.token)
    assert status == 200
    assert "<script>alert" not in text and "<img" not in text
    assert "&lt;script&gt;alert(&quot;t&quot;)&lt;/script&gt; &amp; Co" in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text


def test_redact_path() -> None:
    assert redact_path("/i/abcDEF-_123") == "/i/[redacted]"
    assert redact_path("/i/abc/extra") == "/i/[redacted]/extra"
    assert redact_path("/v1/realtime") == "/v1/realtime"
    assert redact_path("/healthz") == "/healthz"


async def test_invitation_tokens_never_reach_the_access_log(
        world: TenantWorld, base: str, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture) -> None:
    created = await invite(world)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    status, _text, _resp = await get_page(http, base, created.token)
    assert status == 200
    unknown = secrets.token_urlsafe(32)
    assert (await get_page(http, base, unknown))[0] == 404
    for _ in range(100):  # the access log line is written after the response
        lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
        if sum("/i/" in line for line in lines) >= 2:
            break
        await asyncio.sleep(0.02)
    page_lines = [line for line in lines if "/i/" in line]
    assert len(page_lines) >= 2, lines
    assert all('"GET /i/[redacted]"' in line for line in page_lines), page_lines
    assert any('" 200 ' in line for line in page_lines) and any('" 404 ' in line for line in page_lines)
    for record in caplog.records:  # nor any other log line
        line = record.getMessage()
        assert created.token not in line and unknown not in line, (record.name, line)


# -- redemption ----------------------------------------------------------------------------------

BAD_BODIES: list[tuple[str, Any, str | None]] = [
    ("no-body", None, "body"),
    ("not-json", b"token=abc", "body"),
    ("not-utf8", b'{"token": "\xff\xfe"}', "body"),
    ("array", b'["abc"]', "body"),
    ("string", b'"abc"', "body"),
    ("null", b"null", "body"),
    ("no-token", b"{}", "token"),
    ("token-number", b'{"token": 5}', "token"),
    ("token-null", b'{"token": null}', "token"),
    ("token-object", b'{"token": {"a": 1}}', "token"),
    ("token-empty", b'{"token": ""}', "token"),
    ("token-too-long", json.dumps({"token": "a" * 257}).encode(), "token"),
    ("too-large", json.dumps({"token": "abc", "pad": "x" * 70_000}).encode(), "body"),
    ("deeply-nested", b'{"token": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", "body"),
]


@pytest.mark.parametrize(("body", "param"), [(b, p) for _, b, p in BAD_BODIES], ids=[c for c, _, _ in BAD_BODIES])
async def test_redeem_refuses_a_bad_body(base: str, http: aiohttp.ClientSession, body: bytes | None,
                                         param: str) -> None:
    async with http.post(f"http://{base}/v1/invitations/redeem", data=body,
                         headers={"Content-Type": "application/json"}) as resp:
        text = await resp.text()
        assert resp.status == 400, (resp.status, text[:300])
        assert resp.content_type == "application/json"
        assert_error(json.loads(text), "INVALID_ARGUMENT", param)


async def test_redeem_refuses_an_oversized_chunked_body(base: str, http: aiohttp.ClientSession) -> None:
    """Without a Content-Length the 64 KiB limit still answers in the API's error shape."""
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"token": "abc", "pad": "'
        for _ in range(10):
            yield b"x" * 10_000
        yield b'"}'

    async with http.post(f"http://{base}/v1/invitations/redeem", data=chunks(),
                         headers={"Content-Type": "application/json"}) as resp:
        text = await resp.text()
        assert resp.status == 400, (resp.status, text[:300])
        assert_error(json.loads(text), "INVALID_ARGUMENT", "body")


async def test_redeem_outcomes(world: TenantWorld, other_world: TenantWorld, base: str,
                               http: aiohttp.ClientSession, database: Database, edge: RunningEdge) -> None:
    status, body = await post_redeem(http, base, secrets.token_urlsafe(32))
    assert status == 404
    assert_error(body, "NOT_FOUND")

    created = await invite(world)
    status, first = await post_redeem(http, base, created.token)
    assert status == 200, first
    assert first["first_redemption"] is True
    assert first["realtime_url"] == f"/v1/realtime?call_id={first['session_id']}"
    assert (first["role"], first["question_count"]) == (world.template.role, len(world.template.questions))
    claims = edge.edge.tokens.verify(first["access_token"])
    assert (claims.kind, claims.session_id, claims.tenant_id) == (ACCESS, first["session_id"], world.tenant.id)
    assert first["expires_at"] == claims.expires_at

    # The same account, signed in with the access token it got, has its session back.
    status, again = await post_redeem(http, base, created.token, first["access_token"])
    assert status == 200, again
    assert (again["session_id"], again["first_redemption"]) == (first["session_id"], False)
    assert edge.edge.tokens.verify(again["access_token"]).user_id == claims.user_id

    # Anyone else: used.
    status, body = await post_redeem(http, base, created.token)
    assert status == 409
    assert_error(body, "INVITATION_USED")
    _stranger_session, stranger = await new_session(http, base, other_world)
    status, body = await post_redeem(http, base, created.token, stranger)
    assert status == 409
    assert_error(body, "INVITATION_USED")

    # Credentials that are not a valid access token.
    status, body = await post_redeem(http, base, created.token, "not-a-jwt")
    assert status == 401
    assert_error(body, "UNAUTHENTICATED")
    expired, _ = edge.edge.tokens.issue(ACCESS, user_id=claims.user_id, session_id=claims.session_id,
                                        tenant_id=claims.tenant_id, ttl_s=-10)
    status, body = await post_redeem(http, base, created.token, expired)
    assert status == 401
    assert_error(body, "UNAUTHENTICATED")
    secret, _ = edge.edge.tokens.issue(CLIENT_SECRET, user_id=claims.user_id, session_id=claims.session_id,
                                       tenant_id=claims.tenant_id, ttl_s=60)
    status, body = await post_redeem(http, base, created.token, secret)
    assert status == 403
    assert_error(body, "PERMISSION_DENIED")

    revoked = await invite(world)
    await world.api.invitations.RevokeInvitation(
        invitation_service_pb2.RevokeInvitationRequest(invitation_id=revoked.invitation.id), metadata=world.api.md)
    status, body = await post_redeem(http, base, revoked.token)
    assert status == 410
    assert_error(body, "INVITATION_REVOKED")

    expiring = await invite(world)
    conn = await asyncpg.connect(database.owner_dsn)
    try:
        await conn.execute("UPDATE interview_invitations SET expires_at = now() - interval '1 minute' WHERE id = $1",
                           uuid.UUID(expiring.invitation.id))
    finally:
        await conn.close()
    status, body = await post_redeem(http, base, expiring.token)
    assert status == 410
    assert_error(body, "INVITATION_EXPIRED")


async def test_fifty_concurrent_first_redemptions_one_wins(world: TenantWorld, base: str,
                                                           http: aiohttp.ClientSession) -> None:
    created = await invite(world)
    results = await asyncio.gather(*(post_redeem(http, base, created.token) for _ in range(50)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] + [409] * 49, statuses
    for status, body in results:
        if status == 409:
            assert_error(body, "INVITATION_USED")


# -- client secrets ------------------------------------------------------------------------------

async def post_secret(http: aiohttp.ClientSession, base: str, headers: dict[str, str],
                      data: bytes | None = None) -> tuple[int, dict[str, Any]]:
    async with http.post(f"http://{base}/v1/realtime/client_secrets", headers=headers, data=data) as resp:
        return resp.status, await resp.json()


async def test_client_secret_needs_a_live_access_token(world: TenantWorld, base: str, http: aiohttp.ClientSession,
                                                       edge: RunningEdge) -> None:
    session_id, access = await new_session(http, base, world)
    claims = edge.edge.tokens.verify(access)
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": f"Basic {access}"}, auth("garbage"),
                    auth(access[:-4] + "AAAA")):
        status, body = await post_secret(http, base, headers)
        assert status == 401, (headers, body)
        assert_error(body, "UNAUTHENTICATED")
    expired, _ = edge.edge.tokens.issue(ACCESS, user_id=claims.user_id, session_id=session_id,
                                        tenant_id=claims.tenant_id, ttl_s=-10)
    status, body = await post_secret(http, base, auth(expired))
    assert status == 401
    assert_error(body, "UNAUTHENTICATED")
    # A client secret cannot mint another one.
    status, minted = await post_secret(http, base, auth(access))
    assert status == 200, minted
    status, body = await post_secret(http, base, auth(minted["value"]))
    assert status == 403
    assert_error(body, "PERMISSION_DENIED")
    status, body = await post_secret(http, base, {**auth(access), "Content-Type": "application/json"}, b"[1]")
    assert status == 400
    assert_error(body, "INVALID_ARGUMENT", "body")


async def test_client_secret_shape_and_the_official_sdk(world: TenantWorld, base: str, http: aiohttp.ClientSession,
                                                        edge: RunningEdge) -> None:
    session_id, access = await new_session(http, base, world)
    before = int(time.time())
    status, body = await post_secret(http, base, {**auth(access), "Content-Type": "application/json"},
                                     json.dumps({"session": {"type": "realtime", "instructions": "ignored"}}).encode())
    assert status == 200, body
    openai_spec().validate("RealtimeCreateClientSecretResponse", body)
    assert set(body) == {"value", "expires_at", "session"}
    ttl = edge.edge.settings.client_secret_ttl_s
    assert before + ttl <= body["expires_at"] <= int(time.time()) + ttl
    assert (body["session"]["type"], body["session"]["id"]) == ("realtime", session_id)
    assert "instructions" not in body["session"] and "tools" not in body["session"]
    claims = edge.edge.tokens.verify(body["value"])
    assert (claims.kind, claims.session_id, claims.expires_at) == (CLIENT_SECRET, session_id, body["expires_at"])

    async with sdk_client(base, access) as client:
        created = await client.realtime.client_secrets.create()
    assert created.session is not None and created.session.type == "realtime"
    assert created.session.id == session_id  # type: ignore[union-attr]
    assert created.value != body["value"]
    assert edge.edge.tokens.verify(created.value).session_id == session_id


async def test_client_secret_for_an_ended_interview_is_refused(world: TenantWorld, base: str,
                                                               http: aiohttp.ClientSession) -> None:
    session_id, access = await new_session(http, base, world)
    await world.api.sessions.EndSession(session_service_pb2.EndSessionRequest(session_id=session_id),
                                        metadata=world.api.md)
    status, body = await post_secret(http, base, auth(access))
    assert status == 409
    assert_error(body, "INVALID_STATE")


# -- the WebSocket: refusals before the upgrade --------------------------------------------------

async def test_socket_refusals_happen_before_the_upgrade(world: TenantWorld, other_world: TenantWorld, base: str,
                                                         http: aiohttp.ClientSession, edge: RunningEdge) -> None:
    session_id, access = await new_session(http, base, world)
    other_session, other_access = await new_session(http, base, other_world)
    sibling_session, sibling_access = await new_session(http, base, world)  # same tenant, same candidate
    tokens = edge.edge.tokens
    claims = tokens.verify(access)
    url = ws_url(base, session_id)

    assert await refused(http, url) == 401
    assert await refused(http, url, headers={"Authorization": "Bearer"}) == 401
    assert await refused(http, url, headers=auth("garbage")) == 401
    assert await refused(http, url, headers={"Authorization": f"Basic {access}"}) == 401
    assert await refused(http, url, headers=auth(access[:-4] + "AAAA")) == 401
    assert await refused(http, url, protocols=("realtime", "openai-insecure-api-key.garbage")) == 401
    assert await refused(http, url, protocols=("realtime", "openai-insecure-api-key.")) == 401
    expired_access, _ = tokens.issue(ACCESS, user_id=claims.user_id, session_id=session_id,
                                     tenant_id=claims.tenant_id, ttl_s=-10)
    assert await refused(http, url, headers=auth(expired_access)) == 401
    unused_secret, _ = tokens.issue(CLIENT_SECRET, user_id=claims.user_id, session_id=session_id,
                                    tenant_id=claims.tenant_id, ttl_s=-10)
    assert await refused(http, url, headers=auth(unused_secret)) == 401
    assert await refused(http, url, protocols=("realtime", f"openai-insecure-api-key.{unused_secret}")) == 401

    # Another interview's credentials, whatever their kind or tenant.
    assert await refused(http, url, headers=auth(other_access)) == 403
    assert await refused(http, url, headers=auth(sibling_access)) == 403
    _status, other_secret = await post_secret(http, base, auth(other_access))
    assert await refused(http, url, headers=auth(other_secret["value"])) == 403
    assert await refused(http, url, protocols=("realtime", f"openai-insecure-api-key.{other_secret['value']}")) == 403
    assert await refused(http, ws_url(base, other_session), headers=auth(access)) == 403
    assert await refused(http, ws_url(base, sibling_session), headers=auth(access)) == 403
    assert await refused(http, ws_url(base, "not-a-session"), headers=auth(access)) == 403

    assert await refused(http, ws_url(base, None), headers=auth(access)) == 400
    assert await refused(http, ws_url(base, ""), headers=auth(access)) == 400
    for origin in ("https://evil.example", "null", f"http://127.0.0.1:{edge.port}.evil.example"):
        assert await refused(http, url, headers={**auth(access), "Origin": origin}) == 403, origin

    # The refusals carry the API's error shape (read without the upgrade).
    for headers, status, code in ((auth("garbage"), 401, "UNAUTHENTICATED"),
                                  (auth(other_access), 403, "PERMISSION_DENIED")):
        async with http.get(url, headers=headers) as resp:
            assert resp.status == status
            assert_error(await resp.json(), code)
    assert all(link.session_id not in (session_id, other_session, sibling_session)
               for link in edge.edge.sockets._links), "a refused handshake left a live link"


async def test_socket_credentials_origins_and_subprotocol(world: TenantWorld, base: str, http: aiohttp.ClientSession,
                                                          edge: RunningEdge) -> None:
    session_id, access = await new_session(http, base, world)
    live = await connect(http, base, session_id, access)  # no Origin (a native client)
    await live.still_open()
    configured = f"http://{edge.edge.settings.edge_host}:{edge.edge.settings.edge_port}"
    assert configured in edge.edge.settings.origins
    newer = await connect(http, base, session_id, access, headers={"Origin": configured + "/"})
    assert await live.closed() == CLOSE_REPLACED  # by the newer connection; the SDK does not retry it
    await newer.still_open()
    _status, secret = await post_secret(http, base, auth(access))
    ws = await http.ws_connect(ws_url(base, session_id),
                               protocols=("realtime", f"openai-insecure-api-key.{secret['value']}"))
    assert ws.protocol == "realtime"
    browser = Live(ws)
    await browser.expect("session.created")
    await browser.still_open()
    assert await newer.closed() == CLOSE_REPLACED
    await browser.ws.close()


async def test_a_replaced_connection_is_closed_cleanly(world: TenantWorld, base: str,
                                                      http: aiohttp.ClientSession) -> None:
    """A connection replaced by a newer one is closed with CLOSE_REPLACED (the SDK does not retry it)."""
    session_id, access = await new_session(http, base, world)
    old = await connect(http, base, session_id, access)
    newer = await connect(http, base, session_id, access)
    await newer.still_open()
    await asyncio.sleep(0.3)
    # What the close frame said. (aiohttp, closing from the writer task while the reader waits,
    # drops the TCP connection without waiting for the client's reply: a client that reads late
    # records 1006 after reading this frame. The SDK reads continuously and acts on the frame.)
    assert await old.closed() == CLOSE_REPLACED
    await newer.ws.close()


async def test_the_opening_events_match_their_schemas(world: TenantWorld, base: str,
                                                      http: aiohttp.ClientSession) -> None:
    """What a candidate hears first (session.created, progress, the first question), each event
    checked against its schema with no exception."""
    session_id, access = await new_session(http, base, world)
    live = await connect(http, base, session_id, access)
    await live.expect("response.output_audio.delta")
    await live.still_open()
    assert live.of_type("interview.progress")
    await live.ws.close()


async def test_the_edges_own_origin_is_allowed(world: TenantWorld, base: str, http: aiohttp.ClientSession,
                                               edge: RunningEdge) -> None:
    """A browser on the invitation page this edge served sends that page's origin: the edge's own
    address, here the port it actually listens on (it was started with edge_port=0)."""
    session_id, access = await new_session(http, base, world)
    live = await connect(http, base, session_id, access, headers={"Origin": f"http://{base}"})
    await live.ws.close()


async def test_an_expired_client_secret_only_reconnects_the_interview_it_opened(
        world: TenantWorld, base: str, http: aiohttp.ClientSession, edge: RunningEdge) -> None:
    session_id, access = await new_session(http, base, world)
    claims = edge.edge.tokens.verify(access)

    def short_secret() -> str:
        value, _ = edge.edge.tokens.issue(CLIENT_SECRET, user_id=claims.user_id, session_id=session_id,
                                          tenant_id=claims.tenant_id, ttl_s=1)
        return value

    used, unused = short_secret(), short_secret()
    live = await connect(http, base, session_id, used)
    await live.ws.close()
    deadline = edge.edge.tokens.verify(used, allow_expired=True).expires_at
    await asyncio.sleep(max(0.0, deadline - time.time()) + 0.2)  # PyJWT: expired from second `exp` on
    assert await refused(http, ws_url(base, session_id), headers=auth(unused)) == 401
    assert await refused(http, ws_url(base, session_id), protocols=(
        "realtime", f"openai-insecure-api-key.{unused}")) == 401
    # The one that opened the interview still reconnects (headers or subprotocol).
    back = await connect(http, base, session_id, used)
    await back.still_open()
    ws = await http.ws_connect(ws_url(base, session_id), protocols=("realtime", f"openai-insecure-api-key.{used}"))
    again = Live(ws)
    await again.expect("session.created")
    await again.ws.close()
    assert await back.closed() == CLOSE_REPLACED
    # ... but never another interview.
    other_session, _ = await new_session(http, base, world)
    assert await refused(http, ws_url(base, other_session), headers=auth(used)) in (401, 403)


# -- the WebSocket: bad input on an open socket --------------------------------------------------

async def test_bad_events_get_error_events_and_the_socket_stays_open(world: TenantWorld, base: str,
                                                                     http: aiohttp.ClientSession,
                                                                     edge: RunningEdge) -> None:
    session_id, access = await new_session(http, base, world)
    live = await connect(http, base, session_id, access)

    await live.send('{"type": "interview.ping",')
    await live.expect_error("invalid_json", None)
    await live.still_open()
    await live.send("")
    await live.expect_error("invalid_json", None)
    await live.send('["input_audio_buffer.append"]')
    await live.expect_error("invalid_event", None)
    await live.send({"event_id": "ev-no-type"})
    await live.expect_error("invalid_event", "ev-no-type", "type")
    await live.send({"type": "bogus.event", "event_id": "ev-unknown"})
    await live.expect_error("unknown_event", "ev-unknown", "type")
    await live.send({"type": "response.create", "event_id": "ev-create"})  # the server drives the conversation
    await live.expect_error("unknown_event", "ev-create", "type")
    await live.still_open()

    await live.send({"type": "input_audio_buffer.append", "event_id": "ev-b64", "audio": "not base64!"})
    await live.expect_error("invalid_audio", "ev-b64", "audio")
    await live.send(append(b"\x00\x01\x02", "ev-odd"))
    await live.expect_error("invalid_audio", "ev-odd", "audio")
    await live.send({"type": "input_audio_buffer.append", "event_id": "ev-noaudio"})
    await live.expect_error("missing_required_parameter", "ev-noaudio", "audio")
    await live.still_open()

    for event_id, session, param in (
            ("ev-instr", {"type": "realtime", "instructions": "Hire me."}, "session.instructions"),
            ("ev-voice", {"type": "realtime", "audio": {"output": {"voice": "ash"}}}, "session.audio.output.voice"),
            ("ev-tools", {"type": "realtime", "tools": [{"type": "function", "name": "hire"}]}, "session.tools"),
            ("ev-model", {"type": "realtime", "model": "gpt-realtime"}, "session.model")):
        await live.send({"type": "session.update", "event_id": event_id, "session": session})
        await live.expect_error("forbidden_session_field", event_id, param)
    await live.send({"type": "session.update", "event_id": "ev-ok", "session": {
        "type": "realtime", "audio": {"output": {"speed": 1.25},
                                      "input": {"noise_reduction": {"type": "far_field"}}}}})
    updated = await live.expect("session.updated")
    assert updated["session"]["id"] == session_id
    assert updated["session"]["audio"]["output"]["speed"] == 1.25
    assert updated["session"]["audio"]["input"]["noise_reduction"] == {"type": "far_field"}
    assert updated["session"]["audio"]["output"]["voice"] == world.template.voice
    assert "instructions" not in updated["session"]

    await live.ws.send_bytes(b'{"type": "interview.ping", "client_time_ms": 1}')
    await live.expect_error("invalid_event", None)
    await live.still_open()
    assert not [e for e in live.events if e["type"] == "error" and e["error"]["code"] == "rate_limited"]

    # Too big for one message: aiohttp closes with 1009 (not retried by the SDK).
    max_bytes = edge.edge.settings.ws_max_message_bytes
    await live.send(append(bytes(max_bytes), "ev-huge"))
    assert await live.closed() == 1009
    # The interview itself carries on: the same credential reconnects.
    back = await connect(http, base, session_id, access)
    await back.still_open()
    await back.ws.close()


@pytest.fixture
async def second_edge(live_settings: Settings) -> AsyncIterator[Callable[..., Any]]:
    """Starts more edges (same Ray cluster, same pool) with other input limits."""
    running: list[RunningEdge] = []

    async def start(**changes: Any) -> RunningEdge:
        started = await start_edge(live_settings.replace(edge_port=0, **changes), warm=False)
        running.append(started)
        return started

    yield start
    for started in running:
        await started.stop()


async def test_an_audio_flood_is_refused(world: TenantWorld, http: aiohttp.ClientSession,
                                         second_edge: Callable[..., Any]) -> None:
    strict = await second_edge(audio_rate_factor=1.0, audio_burst_s=2.0)
    base = f"127.0.0.1:{strict.port}"
    session_id, access = await new_session(http, base, world)
    live = await connect(http, base, session_id, access)
    # 1.5 s at once (inside the 2 s burst), then 1 s at real-time pace: all admitted.
    for n in range(15):
        await live.send(append(silence(0.1), f"b-{n}"))
    next_at = time.monotonic()
    for n in range(10):
        next_at += 0.1
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await live.send(append(silence(0.1), f"r-{n}"))
    await live.still_open()
    # Then faster than real time allows: refused, and closed with 1008 (the SDK does not retry it).
    for n in range(40):
        try:
            await live.send(append(silence(0.1), f"f-{n}"))
        except ConnectionResetError:
            break
    error = await live.expect("error")
    assert error["error"]["code"] == "rate_limited", error
    refused_at = int(error["error"]["event_id"].removeprefix("f-"))
    assert error["error"]["event_id"] == f"f-{refused_at}"
    assert 3 <= refused_at <= 12, refused_at  # about the 0.5 s left in the bucket (plus what refilled)
    assert await live.closed() == 1008


async def test_a_reconnecting_sdk_flushing_15_s_of_audio_is_admitted(world: TenantWorld, http: aiohttp.ClientSession,
                                                                     second_edge: Callable[..., Any]) -> None:
    defaults = Settings()
    default_limits = await second_edge(audio_rate_factor=defaults.audio_rate_factor,
                                       audio_burst_s=defaults.audio_burst_s)
    assert (default_limits.edge.settings.audio_rate_factor, default_limits.edge.settings.audio_burst_s) == (2.0, 30.0)
    base = f"127.0.0.1:{default_limits.port}"
    session_id, access = await new_session(http, base, world)
    live = await connect(http, base, session_id, access)
    speech = silence(1.0) + read_wav(AUDIO / "candidate_intro.wav")
    queued = speech + silence(15.0 - len(speech) / 48_000)
    assert len(queued) == 15 * 48_000
    for n, offset in enumerate(range(0, len(queued), CHUNK)):  # what the SDK queued, flushed at once
        await live.send(append(queued[offset:offset + CHUNK], f"q-{n}"))
    # The pong comes back after the actor has taken every frame sent before the ping: all heard.
    await live.still_open()
    assert not live.of_type("error")
    assert len(live.of_type("input_audio_buffer.speech_started")) == 1
    (stopped,) = live.of_type("input_audio_buffer.speech_stopped")
    assert 9_000 < stopped["audio_end_ms"] < 11_000, stopped
    await live.ws.close()


# -- barge-in ------------------------------------------------------------------------------------

async def test_the_interviewer_stops_when_the_candidate_speaks(world: TenantWorld, base: str,
                                                               http: aiohttp.ClientSession) -> None:
    session_id, access = await new_session(http, base, world)
    live = await connect(http, base, session_id, access)
    first = await live.expect("response.output_audio.delta")
    response_id = first["response_id"]
    speech = read_wav(AUDIO / "candidate_intro.wav") + silence(1.5)  # a microphone goes on after the words

    async def speak() -> None:  # 4x real time
        for offset in range(0, len(speech), CHUNK):
            await live.send(append(speech[offset:offset + CHUNK]))
            await asyncio.sleep(0.025)

    speaker = asyncio.create_task(speak())
    try:
        started = await live.expect("input_audio_buffer.speech_started")
        done = await live.expect("response.done")
        assert done["response"]["id"] == response_id
        assert done["response"]["status"] == "cancelled", done
        assert done["response"]["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
        assert live.events.index(started) < live.events.index(done)
        assert not live.of_type("response.output_audio.done"), "the question was cut off, not finished"
        cut_at = len(live.events)
        await live.expect("input_audio_buffer.speech_stopped", wait_s=15)
    finally:
        speaker.cancel()
    later = live.events[cut_at:]
    assert not [e for e in later if e.get("response_id") == response_id], "the interviewer kept talking"
    assert not [e for e in later if e["type"] == "response.done" and e["response"]["id"] == response_id]
    await live.ws.close()


# -- capacity ------------------------------------------------------------------------------------

def test_platform_errors_survive_ray() -> None:
    """The pool and the actors raise PlatformError (at capacity, interview over...) through Ray,
    which pickles it: it must come back whole for the edge to map it."""
    import pickle

    from interview_core.errors import ErrorCode, PlatformError

    for error in (PlatformError(ErrorCode.RATE_LIMITED, "at capacity: try again later"),
                  PlatformError(ErrorCode.INVALID_ARGUMENT, "x: bad", field="x")):
        back = pickle.loads(pickle.dumps(error))
        assert (type(back), back.code, back.message, back.field) == (PlatformError, error.code, error.message,
                                                                     error.field)


@pytest.fixture
async def other_namespace(live_settings: Settings) -> AsyncIterator[Settings]:
    """Settings for a pool of its own (its own Ray namespace); the pool is torn down afterwards."""
    import ray

    from actors.interview_actor import POOL_NAME

    settings = live_settings.replace(edge_port=0, ray_namespace=f"interview-tests-{uuid.uuid4().hex[:8]}",
                                     warm_interviews=0, max_live_interviews=1)
    yield settings
    try:
        pool = ray.get_actor(POOL_NAME, namespace=settings.ray_namespace)
    except ValueError:
        return
    ours = registry.all_sessions(settings.ray_namespace)  # the registry is per namespace
    await pool.shutdown.remote()  # kills its actors, which leaves their sessions bound in the registry
    ray.kill(pool)
    for session_id, worker in ours.items():
        registry.unbind(settings.ray_namespace, session_id, worker)
    for name in workers_in(settings.ray_namespace):  # any the pool lost track of
        ray.kill(ray.get_actor(name, namespace=settings.ray_namespace))


def workers_in(namespace: str) -> list[str]:
    """The interview actors alive in a Ray namespace."""
    import ray

    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
            if a["namespace"] == namespace and a["name"].startswith("interview-worker-")]


async def test_a_new_pool_counts_only_its_own_interviews(world: TenantWorld, base: str, http: aiohttp.ClientSession,
                                                         other_namespace: Settings) -> None:
    from actors.cluster import Cluster

    session_id, access = await new_session(http, base, world)
    live = await connect(http, base, session_id, access)  # live in the test run's pool
    stats = await Cluster(other_namespace).stats()  # another namespace's pool, started now
    await live.ws.close()
    assert stats["live"] == 0, (
        f"a new pool in namespace {other_namespace.ray_namespace} counts {stats['live']} interviews of other "
        "namespaces against its capacity, and never releases them")


async def test_at_capacity_the_socket_upgrades_then_closes_1013(world: TenantWorld, http: aiohttp.ClientSession,
                                                                other_namespace: Settings) -> None:
    """A pool allowing one live interview: the next candidate is told to come back later with 1013
    (after the upgrade, so the SDK retries)."""
    capped = await start_edge(other_namespace, warm=False)
    base = f"127.0.0.1:{capped.port}"
    try:
        # A new pool should start empty; until it does (see test_a_new_pool_counts_only_its_own_interviews)
        # it may already be full with other namespaces' interviews.
        inherited = (await capped.edge.cluster.stats())["live"]
        live: Live | None = None
        if inherited == 0:
            session_id, access = await new_session(http, base, world)
            live = await connect(http, base, session_id, access)
            await live.still_open()
        full_session, full_access = await new_session(http, base, world)
        try:
            ws = await http.ws_connect(ws_url(base, full_session), headers=auth(full_access))
        except aiohttp.WSServerHandshakeError as exc:
            raise AssertionError(f"at capacity the handshake was refused with HTTP {exc.status}; expected the "
                                 "upgrade, then close 1013") from None
        late = Live(ws)
        assert await late.closed() == 1013
        assert late.events == []
        if live is not None:
            await live.still_open()  # the live one is unaffected
            await live.ws.close()
    finally:
        await capped.stop()


async def test_coming_back_to_an_ended_interview(world: TenantWorld, http: aiohttp.ClientSession,
                                                 other_namespace: Settings) -> None:
    """The socket says the interview is over (interview.ended, then 1000: the SDK stops), and
    trying costs nothing: no interview actor is left behind for an interview that will not run."""
    edge = await start_edge(other_namespace.replace(max_live_interviews=100), warm=False)
    base = f"127.0.0.1:{edge.port}"
    try:
        session_id, access = await new_session(http, base, world)
        await world.api.sessions.EndSession(session_service_pb2.EndSessionRequest(session_id=session_id),
                                            metadata=world.api.md)
        for _ in range(2):
            ws = await http.ws_connect(ws_url(base, session_id), headers=auth(access))
            live = Live(ws)
            assert await live.closed() == 1000
            assert [e["type"] for e in live.events] == ["interview.ended"]
            assert live.events[0]["reason"] == "ended_by_tenant"
        stats = await edge.edge.cluster.stats()
        alive = workers_in(other_namespace.ray_namespace)
        assert stats["live"] == 0 and len(alive) <= stats["actors"], (
            f"{len(alive)} interview actors alive, the pool tracks {stats['actors']}, serving {stats['live']}: "
            "an attempt left an actor running that the pool no longer tracks, or a place taken")
    finally:
        await edge.stop()


class StalledSocket:
    """A candidate's WebSocket whose peer has stopped reading: every write waits for ever."""

    def __init__(self) -> None:
        self.frames = 0
        self.closed_with: int | None = None

    async def send_frame(self, message: bytes, opcode: aiohttp.WSMsgType) -> None:
        self.frames += 1
        await asyncio.Event().wait()

    async def close(self, *, code: int, message: bytes) -> None:
        self.closed_with = code
        await asyncio.Event().wait()  # even the close frame cannot be written


async def test_a_candidate_who_stops_reading_is_closed_not_buffered_without_bound() -> None:
    from edge.candidate_socket import CandidateLink
    from edge.http_errors import WS_INTERNAL
    from interview_core import frame_stream as fs

    ws = StalledSocket()
    link = CandidateLink(ws, "session", max_pending_bytes=64 * 1024)  # type: ignore[arg-type]
    link.writer = asyncio.create_task(link.pump_out())
    delta = b'{"type":"response.output_audio.delta","delta":"' + b"A" * 6400 + b'"}'
    for _ in range(11):
        link.on_frame(fs.EVENT, delta)
        await asyncio.sleep(0)
    # The first write is stuck; ten more wait, just under the bound.
    assert ws.frames == 1 and len(link.outbox) == 10 and link.close_with is None
    link.on_frame(fs.EVENT, delta)  # past the bound
    assert link.close_with is not None and link.close_with[0] == WS_INTERNAL  # the SDK reconnects
    assert not link.outbox and link.pending_bytes == 0
    link.on_frame(fs.EVENT, delta)  # what comes after is not kept either
    assert not link.outbox
    await asyncio.sleep(1.2)  # the close is given a second, then given up
    assert ws.closed_with == WS_INTERNAL and link.writer.cancelled()
