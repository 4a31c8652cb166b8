"""The admin commands: tenants, API keys, templates, candidates, invitations, sessions and the email
outbox, through
the control service's gRPC API (never the database), so they work against any deployment.

Each command resolves its target (launcher/admin/connection.py), makes its calls, and prints a
short human answer, or with --json the resources in the proto3 JSON mapping. A failed call is
one line on stderr (with --json, a JSON object) and an exit code per class of error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from interview.v1 import (
    candidate_service_pb2,
    candidate_service_pb2_grpc,
    invitation_service_pb2,
    invitation_service_pb2_grpc,
    outbox_service_pb2,
    outbox_service_pb2_grpc,
    resources_pb2,
    session_service_pb2,
    session_service_pb2_grpc,
    template_service_pb2,
    template_service_pb2_grpc,
    tenant_service_pb2,
    tenant_service_pb2_grpc,
)
from interview_core.config import ConfigError, Settings
from launcher.admin import render
from launcher.admin.connection import (
    CALL_TIMEOUT_S,
    EXIT_USAGE,
    CommandError,
    Target,
    from_rpc_error,
    invalid_input,
)
from launcher.admin.template_file import build_template, check_fields, load_template_file, parse_duration

PROG = "interview"
SESSION_STATUSES = ("ready", "in_progress", "completed", "abandoned", "ended")


@dataclass
class Ctx:
    """One command's call: its arguments, where it calls, and where it writes."""

    args: argparse.Namespace
    target: Target
    channel: grpc.Channel
    out: TextIO

    @property
    def md(self) -> tuple[tuple[str, str]]:
        return self.target.metadata

    @property
    def tenant(self) -> str:
        return str(getattr(self.args, "tenant", None) or "")

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    @property
    def quiet(self) -> bool:
        return bool(getattr(self.args, "quiet", False))

    def tenants(self) -> tenant_service_pb2_grpc.TenantServiceStub:
        return tenant_service_pb2_grpc.TenantServiceStub(self.channel)

    def templates(self) -> template_service_pb2_grpc.TemplateServiceStub:
        return template_service_pb2_grpc.TemplateServiceStub(self.channel)

    def candidates(self) -> candidate_service_pb2_grpc.CandidateServiceStub:
        return candidate_service_pb2_grpc.CandidateServiceStub(self.channel)

    def invitations(self) -> invitation_service_pb2_grpc.InvitationServiceStub:
        return invitation_service_pb2_grpc.InvitationServiceStub(self.channel)

    def sessions(self) -> session_service_pb2_grpc.SessionServiceStub:
        return session_service_pb2_grpc.SessionServiceStub(self.channel)

    def outbox(self) -> outbox_service_pb2_grpc.OutboxServiceStub:
        return outbox_service_pb2_grpc.OutboxServiceStub(self.channel)

    def emit(self, message: Message) -> None:
        render.dump_json(render.to_json(message), self.out)

    def emit_list(self, messages: list[Any]) -> None:
        render.dump_json([render.to_json(m) for m in messages], self.out)

    def line(self, text: str = "") -> None:
        self.out.write(text + "\n")


Handler = Callable[[Ctx], int]


def settings_for(args: argparse.Namespace) -> Settings:
    data_dir = getattr(args, "data_dir", None)
    return Settings.from_env(data_dir=Path(data_dir)) if data_dir else Settings.from_env()


def run_command(handler: Handler, args: argparse.Namespace, *, tenant_scoped: bool) -> int:
    """Runs one admin command; every failure becomes one line (or JSON object) and an exit code."""
    as_json = bool(getattr(args, "json", False))
    try:
        target = Target.resolve(settings_for(args), address=args.address, token=args.token, tls=args.tls)
        with target.channel() as channel:
            try:
                return handler(Ctx(args, target, channel, sys.stdout))
            except grpc.RpcError as exc:
                raise from_rpc_error(exc, target, tenant_missing=tenant_scoped and not args.tenant) from None
    except CommandError as exc:
        error = exc
    except ConfigError as exc:
        error = CommandError(f"configuration error: {exc}", code="CONFIGURATION", exit_code=EXIT_USAGE)
    sys.stdout.flush()
    if as_json:
        render.dump_json(error.as_json(), sys.stderr)
    else:
        print(error.line(PROG), file=sys.stderr)
    return error.exit_code


def _listing(c: Ctx, items: list[Any], row: Callable[[Any], tuple[str, ...]], headers: tuple[str, ...],
             empty: str) -> int:
    """A list command's answer: the resources in JSON, or a table of `row(item)`."""
    if c.json:
        c.emit_list(items)
    else:
        render.table([row(x) for x in items], headers, c.out, empty=empty)
    return 0


def _pages(fetch: Callable[[str, int], tuple[list[Any], str]], limit: int) -> list[Any]:
    """Up to `limit` items (0: all) over as many pages as it takes."""
    out: list[Any] = []
    token = ""
    while True:
        want = 500 if limit <= 0 else min(500, limit - len(out))
        items, token = fetch(token, want)
        out.extend(items)
        if not token or (limit > 0 and len(out) >= limit):
            return out[:limit] if limit > 0 else out


# -- tenants and API keys -------------------------------------------------------------------------

def tenants_create(c: Ctx) -> int:
    tenant = c.tenants().CreateTenant(tenant_service_pb2.CreateTenantRequest(
        display_name=c.args.name, idempotency_key=c.args.idempotency_key or ""), metadata=c.md,
        timeout=CALL_TIMEOUT_S)
    if c.json:
        c.emit(tenant)
    elif c.quiet:
        c.line(tenant.id)
    else:
        c.line(f"created tenant {tenant.id} ({tenant.display_name})")
        c.line(f"next: interview keys create --tenant {tenant.id}")
    return 0


def tenants_list(c: Ctx) -> int:
    def fetch(token: str, size: int) -> tuple[list[Any], str]:
        r = c.tenants().ListTenants(tenant_service_pb2.ListTenantsRequest(page_size=size, page_token=token),
                                    metadata=c.md, timeout=CALL_TIMEOUT_S)
        return list(r.tenants), r.next_page_token

    return _listing(c, _pages(fetch, c.args.limit), lambda t: (t.id, t.display_name, render.when(t.create_time)),
                    ("ID", "NAME", "CREATED"), "no tenants yet: interview tenants create NAME")


def tenants_show(c: Ctx) -> int:
    tenant = c.tenants().GetTenant(tenant_service_pb2.GetTenantRequest(tenant_id=c.args.tenant_id or ""),
                                   metadata=c.md, timeout=CALL_TIMEOUT_S)
    if c.json:
        c.emit(tenant)
    else:
        c.line(f"tenant {tenant.id}")
        render.fields([("name", tenant.display_name), ("created", render.when(tenant.create_time))], c.out)
    return 0


def keys_create(c: Ctx) -> int:
    created = c.tenants().CreateApiKey(tenant_service_pb2.CreateApiKeyRequest(
        tenant_id=c.tenant, display_name=c.args.name or "", idempotency_key=c.args.idempotency_key or ""),
        metadata=c.md, timeout=CALL_TIMEOUT_S)
    key = created.api_key
    if c.json:
        c.emit(created)
    elif c.quiet:
        c.line(created.secret)
    else:
        c.line(f"created API key {key.id} for tenant {key.tenant_id}"
               + (f" ({key.display_name})" if key.display_name else ""))
        c.line(f"secret (shown this once; only its hash is kept): {created.secret}")
        c.line("use it: export INTERVIEW_TENANT_API_KEY=<secret>, or --token <secret>")
    return 0


def keys_revoke(c: Ctx) -> int:
    key = c.tenants().RevokeApiKey(tenant_service_pb2.RevokeApiKeyRequest(
        tenant_id=c.tenant, api_key_id=c.args.key_id), metadata=c.md, timeout=CALL_TIMEOUT_S)
    if c.json:
        c.emit(key)
    else:
        c.line(f"revoked API key {key.id} ({key.secret_prefix}...) at {render.when(key.revoke_time)}")
    return 0


# -- templates ------------------------------------------------------------------------------------

def template_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The file's fields, with any given flags on top."""
    fields = load_template_file(Path(args.file)) if args.file else {}
    flags: dict[str, Any] = {name: getattr(args, name) for name in ("role", "language", "voice", "instructions")
                             if getattr(args, name) is not None}
    if args.question:
        flags["questions"] = list(args.question)
    if args.time_limit is not None:
        flags["time_limit"] = args.time_limit
    return {**fields, **check_fields(flags)}


def templates_create(c: Ctx) -> int:
    try:
        template = build_template(template_fields(c.args))
    except CommandError as exc:
        if c.args.file and not exc.message.startswith("template file"):
            raise invalid_input(f"template file {c.args.file}: {exc.message}") from None
        raise
    created = c.templates().CreateTemplate(template_service_pb2.CreateTemplateRequest(
        tenant_id=c.tenant, template=template, idempotency_key=c.args.idempotency_key or ""),
        metadata=c.md, timeout=CALL_TIMEOUT_S)
    if c.json:
        c.emit(created)
    elif c.quiet:
        c.line(created.id)
    else:
        c.line(f"created template {created.id}: {created.role}, {len(created.questions)} questions, "
               f"{render.duration(created.time_limit_seconds)}")
    return 0


def templates_show(c: Ctx) -> int:
    template = c.templates().GetTemplate(template_service_pb2.GetTemplateRequest(
        tenant_id=c.tenant, template_id=c.args.template_id), metadata=c.md, timeout=CALL_TIMEOUT_S)
    if c.json:
        c.emit(template)
    else:
        render.template(template, c.out)
    return 0


def templates_list(c: Ctx) -> int:
    def fetch(token: str, size: int) -> tuple[list[Any], str]:
        r = c.templates().ListTemplates(template_service_pb2.ListTemplatesRequest(
            tenant_id=c.tenant, page_size=size, page_token=token), metadata=c.md, timeout=CALL_TIMEOUT_S)
        return list(r.templates), r.next_page_token

    return _listing(c, _pages(fetch, c.args.limit),
                    lambda t: (t.id, t.role, str(len(t.questions)), render.duration(t.time_limit_seconds),
                               str(t.version)),
                    ("ID", "ROLE", "QUESTIONS", "TIME LIMIT", "VERSION"),
                    "no templates yet: interview templates create FILE")


# -- candidates -----------------------------------------------------------------------------------

def candidates_add(c: Ctx) -> int:
    r = c.candidates().UpsertCandidate(candidate_service_pb2.UpsertCandidateRequest(
        tenant_id=c.tenant, email=c.args.email, full_name=c.args.name or "", external_id=c.args.external_id or "",
        idempotency_key=c.args.idempotency_key or ""), metadata=c.md, timeout=CALL_TIMEOUT_S)
    if c.json:
        c.emit(r)
    elif c.quiet:
        c.line(r.candidate.id)
    else:
        verb = "added" if r.created else "updated"
        c.line(f"{verb} candidate {r.candidate.id} ({r.candidate.email})")
    return 0


def candidates_list(c: Ctx) -> int:
    def fetch(token: str, size: int) -> tuple[list[Any], str]:
        r = c.candidates().ListCandidates(candidate_service_pb2.ListCandidatesRequest(
            tenant_id=c.tenant, page_size=size, page_token=token), metadata=c.md, timeout=CALL_TIMEOUT_S)
        return list(r.candidates), r.next_page_token

    return _listing(c, _pages(fetch, c.args.limit),
                    lambda x: (x.id, x.email, x.full_name, x.external_id, render.candidate_status(x.status)),
                    ("ID", "EMAIL", "NAME", "EXTERNAL ID", "STATUS"),
                    "no candidates yet: interview candidates add --email EMAIL")


def candidates_show(c: Ctx) -> int:
    x = c.candidates().GetCandidate(candidate_service_pb2.GetCandidateRequest(
        tenant_id=c.tenant, candidate_id=c.args.candidate_id), metadata=c.md, timeout=CALL_TIMEOUT_S)
    if c.json:
        c.emit(x)
    else:
        c.line(f"candidate {x.id}")
        render.fields([("email", x.email), ("name", x.full_name), ("external id", x.external_id),
                       ("status", render.candidate_status(x.status)), ("created", render.when(x.create_time))],
                      c.out)
    return 0


# -- invitations ----------------------------------------------------------------------------------

def invite(c: Ctx) -> int:
    request = invitation_service_pb2.CreateInvitationRequest(
        tenant_id=c.tenant, candidate_id=c.args.candidate, template_id=c.args.template,
        send_email=c.args.email, idempotency_key=c.args.idempotency_key or "")
    if c.args.ttl is not None:
        request.ttl.CopyFrom(Duration(seconds=parse_duration(c.args.ttl, "--ttl")))
    created = c.invitations().CreateInvitation(request, metadata=c.md, timeout=CALL_TIMEOUT_S)
    inv = created.invitation
    if c.json:
        c.emit(created)
    elif c.quiet:
        c.line(created.invite_url)
    else:
        c.line(f"invited candidate {inv.candidate_id} to template {inv.template_id} ({inv.template.role}, "
               f"version {inv.template.version}): invitation {inv.id}, valid until {render.when(inv.expire_time)}")
        if inv.email_requested:
            c.line("email queued (without SendGrid it stays in the outbox: interview outbox)")
        c.line(f"link (shown this once): {created.invite_url}")
    return 0


# -- sessions -------------------------------------------------------------------------------------

def _timestamp(value: str | None, flag: str) -> Timestamp | None:
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise invalid_input(f"{flag}: {value!r} is not a date or time (try 2025-01-31 or 2025-01-31T09:00)") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time, as people mean it
    ts = Timestamp()
    ts.FromDatetime(moment.astimezone(dt.UTC))
    return ts


def sessions_list(c: Ctx) -> int:
    status = 0
    if c.args.status:
        status = resources_pb2.SessionStatus.Value("SESSION_STATUS_" + c.args.status.upper())
    after, before = _timestamp(c.args.since, "--since"), _timestamp(c.args.until, "--until")

    def fetch(token: str, size: int) -> tuple[list[Any], str]:
        request = session_service_pb2.ListSessionsRequest(
            tenant_id=c.tenant, page_size=size, page_token=token, candidate_id=c.args.candidate or "",
            status=status)  # type: ignore[arg-type]
        if after is not None:
            request.created_after.CopyFrom(after)
        if before is not None:
            request.created_before.CopyFrom(before)
        r = c.sessions().ListSessions(request, metadata=c.md, timeout=CALL_TIMEOUT_S)
        return list(r.sessions), r.next_page_token

    return _listing(c, _pages(fetch, c.args.limit),
                    lambda s: (s.id, render.session_status(s.status), s.candidate_id, s.template.role,
                               render.when(s.create_time)),
                    ("ID", "STATUS", "CANDIDATE", "ROLE", "CREATED"), "no sessions")


def sessions_show(c: Ctx) -> int:
    s = c.sessions().GetSession(session_service_pb2.GetSessionRequest(
        tenant_id=c.tenant, session_id=c.args.session_id), metadata=c.md, timeout=CALL_TIMEOUT_S)
    if c.json:
        c.emit(s)
    else:
        render.session(s, c.out)
    return 0


def read_transcript(stub: session_service_pb2_grpc.SessionServiceStub, md: tuple[tuple[str, str]], tenant: str,
                    session_id: str) -> list[resources_pb2.TranscriptItem]:
    items: list[resources_pb2.TranscriptItem] = []
    while True:
        r = stub.GetTranscript(session_service_pb2.GetTranscriptRequest(
            tenant_id=tenant, session_id=session_id, after_sequence=items[-1].sequence if items else 0),
            metadata=md, timeout=CALL_TIMEOUT_S)
        items.extend(r.items)
        if not r.has_more or not r.items:
            return items


def transcript(c: Ctx) -> int:
    items = read_transcript(c.sessions(), c.md, c.tenant, c.args.session_id)
    if c.json:
        c.emit_list(items)
        return 0
    if not items:
        c.line("no transcript yet")
    for item in items:
        c.line(f"{render.clock(item.create_time)}  {render.transcript_line(item)}")
    return 0


def watch_events(c: Ctx) -> Iterator[session_service_pb2.WatchSessionResponse]:
    stream: Iterator[session_service_pb2.WatchSessionResponse] = c.sessions().WatchSession(
        session_service_pb2.WatchSessionRequest(tenant_id=c.tenant, session_id=c.args.session_id,
                                                after_sequence=c.args.after), metadata=c.md)
    try:
        yield from stream
    finally:
        cancel = getattr(stream, "cancel", None)
        if cancel is not None:
            cancel()


def watch(c: Ctx) -> int:
    status = None
    for event in watch_events(c):
        if c.json:
            c.line(json.dumps(render.to_json(event), ensure_ascii=False))  # one object per line
            c.out.flush()
            continue
        if event.HasField("session"):
            s = event.session
            if status is None:
                c.line(f"session {s.id}: {s.template.role}, candidate {s.candidate_id} (Ctrl-C to stop watching)")
            if s.status != status:
                reason = f" ({s.end_reason})" if s.end_reason else ""
                c.line(f"{render.now_clock()}  status: {render.session_status(s.status)}{reason}")
            status = s.status
        else:
            item = event.transcript_item
            c.line(f"{render.clock(item.create_time)}  {render.transcript_line(item)}")
        c.out.flush()
    return 0


# -- the email outbox -----------------------------------------------------------------------------

def outbox(c: Ctx) -> int:
    def fetch(token: str, size: int) -> tuple[list[Any], str]:
        r = c.outbox().ListOutboxMessages(outbox_service_pb2.ListOutboxMessagesRequest(
            tenant_id=c.tenant, page_size=size, page_token=token), metadata=c.md, timeout=CALL_TIMEOUT_S)
        return list(r.messages), r.next_page_token

    messages = _pages(fetch, c.args.limit)
    if c.json:
        c.emit_list(messages)
        return 0
    if not messages:
        c.line("the outbox is empty")
    for m in messages:
        c.line(f"--- {render.when(m.create_time)}  {render.outbox_status(m.status)}  to {m.to_email}  "
               f"(tenant {m.tenant_id})")
        c.line(f"Subject: {m.subject}\n\n{m.text_body}")
    return 0


# -- registration ---------------------------------------------------------------------------------

def _parents() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    conn = argparse.ArgumentParser(add_help=False)
    g = conn.add_argument_group("connection")
    g.add_argument("--address", help="control service host:port (INTERVIEW_CONTROL_ADDRESS; default "
                   "INTERVIEW_CONTROL_HOST:INTERVIEW_CONTROL_PORT, 127.0.0.1:50051)")
    g.add_argument("--token", help="the platform admin token or a tenant API key (default: "
                   "INTERVIEW_TENANT_API_KEY, INTERVIEW_ADMIN_TOKEN, else the admin token `interview up` wrote)")
    g.add_argument("--tls", action="store_true", help="connect with TLS (a deployment behind a TLS proxy)")
    g.add_argument("--data-dir", help="where `interview up` keeps its credentials (INTERVIEW_DATA_DIR, "
                   "default .interview)")
    conn.add_argument("--json", action="store_true", help="print JSON (proto3 JSON mapping) for scripts")
    tenant = argparse.ArgumentParser(add_help=False)
    tenant.add_argument("--tenant", help="the tenant id: required with the admin token; with a tenant API key, "
                        "the key's own tenant")
    return conn, tenant


def _quiet(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help=f"print only the {what}, for shell variables")
    p.add_argument("--idempotency-key", help="retrying with the same key returns the first result")


def _limit(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50; 0: all)")


def register(sub: Any) -> None:
    """Adds the admin commands to the `interview` command's subparsers."""
    conn, tenant = _parents()

    def command(parent: Any, name: str, handler: Handler, help_: str, example: str, *,
                tenant_scoped: bool = True) -> argparse.ArgumentParser:
        parents = [conn, tenant] if tenant_scoped else [conn]
        p: argparse.ArgumentParser = parent.add_parser(
            name, help=help_, description=help_[0].upper() + help_[1:] + ".", parents=parents,
            formatter_class=argparse.RawDescriptionHelpFormatter, epilog="example:\n" + example)
        p.set_defaults(func=lambda args: run_command(handler, args, tenant_scoped=tenant_scoped))
        return p

    def group(name: str, help_: str) -> Any:
        p = sub.add_parser(name, help=help_, description=help_[0].upper() + help_[1:] + ".")
        return p.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")

    g = group("tenants", "tenants (companies): create, list, show")
    p = command(g, "create", tenants_create, "create a tenant (needs the platform admin token)",
                '  TENANT=$(interview tenants create "Acme Corp" -q)', tenant_scoped=False)
    p.add_argument("name", help="the tenant's display name")
    _quiet(p, "tenant id")
    p = command(g, "list", tenants_list, "list tenants (needs the platform admin token)",
                "  interview tenants list --json", tenant_scoped=False)
    _limit(p)
    p = command(g, "show", tenants_show, "show a tenant (a tenant API key: its own)",
                "  interview tenants show $TENANT", tenant_scoped=False)
    p.add_argument("tenant_id", nargs="?", help="the tenant (default with an API key: the key's)")

    g = group("keys", "a tenant's API keys: create (the secret is shown once), revoke")
    p = command(g, "create", keys_create, "create an API key for a tenant",
                "  export INTERVIEW_TENANT_API_KEY=$(interview keys create --tenant $TENANT --name ats -q)")
    p.add_argument("--name", help="a name to tell keys apart")
    _quiet(p, "secret")
    p = command(g, "revoke", keys_revoke, "revoke an API key (it stops working at once)",
                "  interview keys revoke 3f6c0d2e-... --tenant $TENANT")
    p.add_argument("key_id", help="the key's id (from `keys create`)")

    g = group("templates", "interview templates: create, show, list")
    p = command(g, "create", templates_create, "create an interview template from a YAML or JSON file, or flags",
                "  interview templates create examples/template.yaml --tenant $TENANT\n"
                "  interview templates create --role 'Data Engineer' --question 'Tell me about yourself.' \\\n"
                "      --question 'What is a join?' --time-limit 10m --tenant $TENANT\n\n"
                "file fields: role, questions (a list, asked in order), time_limit (600, 10m, 1h) or\n"
                "time_limit_seconds, language (en-US), voice (alloy), instructions; flags override the file")
    p.add_argument("file", nargs="?", help="a .yaml/.yml or .json template file")
    p.add_argument("--role")
    p.add_argument("--question", action="append", help="a question (repeat, in order); replaces the file's")
    p.add_argument("--time-limit", help="600, 90s, 10m, 1h30m")
    p.add_argument("--language", help="BCP 47, e.g. en-US (default en-US)")
    p.add_argument("--voice", help="the interviewer's voice (default alloy)")
    p.add_argument("--instructions", help="extra instructions for the interviewer")
    _quiet(p, "template id")
    p = command(g, "show", templates_show, "show a template", "  interview templates show $TEMPLATE --tenant $TENANT")
    p.add_argument("template_id")
    p = command(g, "list", templates_list, "list a tenant's templates", "  interview templates list --tenant $TENANT")
    _limit(p)

    g = group("candidates", "a tenant's candidates: add, list, show")
    p = command(g, "add", candidates_add, "add a candidate (or update the one with this email or external id)",
                "  CANDIDATE=$(interview candidates add --email ada@example.com --name 'Ada Lovelace' "
                "--external-id ats-17 --tenant $TENANT -q)")
    p.add_argument("--email", required=True)
    p.add_argument("--name", help="full name")
    p.add_argument("--external-id", help="your own id for them (an ATS id)")
    _quiet(p, "candidate id")
    p = command(g, "list", candidates_list, "list a tenant's candidates",
                "  interview candidates list --tenant $TENANT")
    _limit(p)
    p = command(g, "show", candidates_show, "show a candidate",
                "  interview candidates show $CANDIDATE --tenant $TENANT")
    p.add_argument("candidate_id")

    p = command(sub, "invite", invite, "invite a candidate to an interview and print the link",
                "  interview invite --candidate $CANDIDATE --template $TEMPLATE --email --tenant $TENANT")
    p.add_argument("--candidate", required=True, help="the candidate's id")
    p.add_argument("--template", required=True, help="the template's id (the invitation pins its current version)")
    p.add_argument("--email", action="store_true", help="email the link to the candidate (SendGrid, or the outbox)")
    p.add_argument("--ttl", help="how long the link stays valid: 1h, 7d (default 7 days)")
    _quiet(p, "invitation link")

    g = group("sessions", "interview sessions: list, show")
    p = command(g, "list", sessions_list, "list a tenant's interview sessions (oldest first), with filters",
                "  interview sessions list --status completed --since 2025-01-31 --tenant $TENANT")
    p.add_argument("--candidate", help="only this candidate's")
    p.add_argument("--status", choices=SESSION_STATUSES)
    p.add_argument("--since", help="created at or after (ISO 8601 date or time; local time unless it says)")
    p.add_argument("--until", help="created before (ISO 8601)")
    _limit(p)
    p = command(g, "show", sessions_show, "show a session", "  interview sessions show $SESSION --tenant $TENANT")
    p.add_argument("session_id")

    p = command(sub, "transcript", transcript, "print a session's stored transcript, both sides, with times",
                "  interview transcript $SESSION --tenant $TENANT")
    p.add_argument("session_id")
    p = command(sub, "watch", watch, "follow a session live: its status and each turn as it is saved",
                "  interview watch $SESSION --tenant $TENANT")
    p.add_argument("session_id")
    p.add_argument("--after", type=int, default=0, help="skip transcript items up to this sequence number")

    p = command(sub, "outbox", outbox, "show queued and sent email (what SendGrid sent, or would send)",
                "  interview outbox --limit 5", tenant_scoped=False)
    p.add_argument("--tenant", help="only this tenant's messages (with a tenant API key: always its own)")
    p.add_argument("--limit", type=int, default=20, help="at most this many (default 20; 0: all)")
