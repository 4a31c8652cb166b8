"""A local stand-in for SendGrid's v3 Mail Send endpoint (POST /v3/mail/send).

It speaks the vendor's wire protocol as far as our sender uses it: bearer authentication, a JSON
body checked against the vendor's published OpenAPI schema (../shared/specs/sendgrid-mail-v3.yaml),
202 with an X-Message-Id header on success, and SendGrid-shaped error bodies otherwise.

Anything our code sends that the real service would refuse (a body outside the schema, a wrong
key, a wrong path) is recorded in `violations` and answered 400/401/404, so tests fail loudly
instead of passing against a private dialect. Tests can make it fail on purpose (500, 429, 400),
and stop and restart it on the same port to simulate an outage.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import secrets
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from loadtest.shared_files import shared_dir

SPEC_PATH = shared_dir() / "specs" / "sendgrid-mail-v3.yaml"
SPEC_URI = "urn:sendgrid:mail-v3"
SEND_PATH = "/v3/mail/send"


@dataclass(frozen=True)
class SpecSchemas:
    """Validators for the Mail Send request body and the vendor's error body."""

    request: Draft202012Validator
    error: Draft202012Validator


@cache
def load_schemas(spec_path: Path = SPEC_PATH) -> SpecSchemas:
    spec = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    registry: Registry[Any] = Registry().with_resource(
        SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT202012))
    resolver = registry.resolver(base_uri=SPEC_URI)
    # The operation's requestBody is itself a (OpenAPI) $ref; follow it through the registry.
    pointer = "#/paths/" + SEND_PATH.replace("~", "~0").replace("/", "~1") + "/post/requestBody"
    body = resolver.lookup(pointer).contents
    while isinstance(body, dict) and "$ref" in body:
        pointer = body["$ref"]
        body = resolver.lookup(pointer).contents
    assert "application/json" in body["content"], "the spec's Mail Send body is not JSON?"

    def validator(ref: str) -> Draft202012Validator:
        return Draft202012Validator({"$ref": f"{SPEC_URI}{ref}"}, registry=registry,
                                    format_checker=Draft202012Validator.FORMAT_CHECKER)

    return SpecSchemas(request=validator(f"{pointer}/content/application~1json/schema"),
                       error=validator("#/components/schemas/ErrorResponse"))


def schema_errors(validator: Draft202012Validator, instance: Any) -> list[str]:
    return [f"{e.json_path}: {e.message}" for e in sorted(validator.iter_errors(instance), key=str)]


@dataclass(frozen=True)
class ReceivedMail:
    """One Mail Send request, whatever the answer was."""

    status: int
    payload: dict[str, Any]
    message_id: str = ""

    @property
    def to_emails(self) -> list[str]:
        return [to["email"] for p in self.payload.get("personalizations", []) for to in p.get("to", [])]

    @property
    def custom_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {}
        top = self.payload.get("custom_args")
        if isinstance(top, dict):
            args.update(top)
        for p in self.payload.get("personalizations", []):
            args.update(p.get("custom_args") or {})
        return args

    @property
    def outbox_id(self) -> str:
        return str(self.custom_args.get("outbox_id", ""))

    @property
    def subject(self) -> str:
        subjects = [p["subject"] for p in self.payload.get("personalizations", []) if "subject" in p]
        return str(subjects[0] if subjects else self.payload.get("subject", ""))

    def content(self, mime_type: str) -> str:
        values = [c["value"] for c in self.payload.get("content", []) if c.get("type") == mime_type]
        assert len(values) == 1, f"expected one {mime_type} part, got {len(values)}"
        return str(values[0])


@dataclass
class SendGridStandin:
    api_key: str
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port, chosen at the first start and kept for restarts
    schemas: SpecSchemas = field(default_factory=load_schemas)
    received: list[ReceivedMail] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    _fail_with: int | None = None
    _scripted: list[int] = field(default_factory=list)
    holding: int = 0  # requests received and held (see hold()), not yet answered
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None

    def __post_init__(self) -> None:
        self._released.set()

    @property
    def url(self) -> str:
        assert self.port, "start the stand-in first"
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._runner is not None

    @property
    def accepted(self) -> list[ReceivedMail]:
        return [m for m in self.received if m.status == 202]

    def accepted_for(self, *, to_email: str | None = None, outbox_id: str | None = None) -> list[ReceivedMail]:
        return [m for m in self.accepted
                if (to_email is None or to_email in m.to_emails) and (outbox_id is None or m.outbox_id == outbox_id)]

    def received_for(self, outbox_id: str) -> list[ReceivedMail]:
        return [m for m in self.received if m.outbox_id == outbox_id]

    def fail_with(self, status: int | None) -> None:
        """Answer every request with this error status until called with None."""
        self._fail_with = status

    def fail_next(self, *statuses: int) -> None:
        """Answer the next requests with these statuses, one each, then behave normally."""
        self._scripted.extend(statuses)

    def hold(self) -> None:
        """Keep valid requests waiting, unanswered, until release(): a send in flight."""
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def behave(self) -> None:
        self._fail_with = None
        self._scripted.clear()
        self.release()

    async def start(self) -> None:
        assert self._runner is None, "already running"
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        if not self.port:
            self.port = int(runner.addresses[0][1])
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
        body = {"errors": [{"message": message}]}
        # The stand-in's own answers must match the vendor's schema too.
        problems = schema_errors(self.schemas.error, body)
        if problems:
            self.violations.append(f"stand-in error body outside the spec: {problems}")
        return web.json_response(body, status=status, headers=headers)

    def _reject(self, status: int, payload: Any, violation: str) -> web.Response:
        self.violations.append(violation)
        self.received.append(ReceivedMail(status, payload if isinstance(payload, dict) else {}))
        return self._error(status, violation)

    async def _handle(self, request: web.Request) -> web.Response:
        if request.method != "POST" or request.path != SEND_PATH:
            return self._reject(404, {}, f"unexpected request {request.method} {request.path}")
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._reject(401, {}, "Authorization is not 'Bearer <the configured key>'")
        if request.content_type != "application/json":
            return self._reject(400, {}, f"Content-Type is {request.content_type!r}, not application/json")
        raw = await request.read()
        if request.headers.get("Content-Encoding", "").lower() == "gzip":
            raw = gzip.decompress(raw)
        try:
            payload = json.loads(raw)
        except ValueError:
            return self._reject(400, {}, "the body is not JSON")
        problems = schema_errors(self.schemas.request, payload)
        if problems:
            return self._reject(400, payload, f"Mail Send body outside the SendGrid spec: {problems}")

        if not self._released.is_set():
            self.holding += 1
            try:
                await self._released.wait()
            finally:
                self.holding -= 1
        status = self._scripted.pop(0) if self._scripted else self._fail_with
        if status is not None:
            self.received.append(ReceivedMail(status, payload))
            if status == 429:
                return self._error(429, "too many requests", headers={
                    "X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1"})
            return self._error(status, f"stand-in answering {status} on purpose")

        message_id = secrets.token_urlsafe(16)
        self.received.append(ReceivedMail(202, payload, message_id))
        return web.Response(status=202, headers={"X-Message-Id": message_id})
