"""`interview demo`: a whole interview in a minute, and `interview say`: a spoken answer as a WAV.

The demo uses the running stack (found as the admin commands find it: the data directory's
credentials, then a health check of the control service and the edge) or, when none is running,
starts one on embedded defaults and stops it afterwards. It creates a demo tenant, template,
candidate and invitation over gRPC, redeems the invitation at the edge and lets a simulated
candidate (launcher/demo_candidate.py, on the official `openai` SDK) take the interview, printing
the conversation as it happens, then the transcript as stored, read back over gRPC.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import sys
import time
import urllib.error
import urllib.request
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from interview.v1 import (
    candidate_service_pb2,
    candidate_service_pb2_grpc,
    invitation_service_pb2,
    invitation_service_pb2_grpc,
    resources_pb2,
    session_service_pb2,
    session_service_pb2_grpc,
    template_service_pb2,
    template_service_pb2_grpc,
    tenant_service_pb2,
    tenant_service_pb2_grpc,
)
from interview_core.config import ConfigError, Settings
from interview_core.errors import ErrorCode, ErrorKind
from launcher.admin import render
from launcher.admin.commands import read_transcript, settings_for
from launcher.admin.connection import (
    CALL_TIMEOUT_S,
    EXIT_BY_KIND,
    EXIT_FAILURE,
    EXIT_USAGE,
    CommandError,
    Target,
    from_rpc_error,
    invalid_input,
    stable_code,
)
from launcher.admin.template_file import build_template, load_template_file
from launcher.demo_candidate import OFFLINE_MODEL, Answer, CandidateError, Moment, redeem, run_candidate

DEMO_TENANT = "Demo company"
DEMO_TEMPLATE: dict[str, Any] = {
    "role": "Backend Engineer (demo)",
    "questions": [
        "Tell me briefly about yourself.",
        "Describe a hard bug you fixed.",
        "Why would you like this role?",
    ],
    "time_limit_seconds": 300,
    "language": "en-US",
    "voice": "alloy",
    "instructions": "A short, friendly demo interview: ask each question once and keep moving.",
}
DEMO_ANSWERS = [
    "Hi, I am Ada. I have built backend services in Python for six years, mostly APIs and data pipelines.",
    "A cache served stale prices after a deploy. The key ignored the currency, so I fixed the key and added a test.",
    "I enjoy real time systems, and this team builds the kind of product I want to work on.",
]
GENERIC_ANSWERS = [
    "That is a good question. I would start from what the users need, then keep the design simple.",
    "In my last project I did exactly that, and I learned to measure before changing anything.",
    "I would talk to the team first, agree on the goal, and then ship it in small steps.",
]
EXTRA_ANSWERS = ["I think I have covered that. Happy to go on to the next question."] * 3
DEMO_CANDIDATE = ("ada.demo@example.com", "Ada Lovelace (demo)", "demo-1")
FAST_SPEED = 4.0  # within the edge's default audio rate limit (2x sustained, 30 s burst)
HEALTH_TIMEOUT_S = 2.0


# -- finding (or starting) the stack --------------------------------------------------------------

def control_healthy(address: str) -> bool:
    try:
        with grpc.insecure_channel(address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""),
                                                               timeout=HEALTH_TIMEOUT_S)
    except grpc.RpcError:
        return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def edge_healthy(http_base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{http_base.rstrip('/')}/healthz", timeout=HEALTH_TIMEOUT_S) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


@dataclass
class Stack:
    address: str
    edge: str
    settings: Settings
    started_here: bool


def find_or_start_stack(args: argparse.Namespace, settings: Settings, out: TextIO) -> tuple[Stack, Any]:
    """The stack to use, and the supervisor of one started here (None when it was running)."""
    address = args.address or settings.admin_address or settings.control_address
    edge = (args.edge or f"http://{settings.edge_host}:{settings.edge_port}").rstrip("/")
    control_up = control_healthy(address)
    if control_up and edge_healthy(edge):
        return Stack(address, edge, settings, started_here=False), None
    if control_up:
        raise CommandError(f"the control service at {address} answers but the edge at {edge} does not",
                           code="UNAVAILABLE", exit_code=EXIT_BY_KIND[ErrorKind.UNAVAILABLE],
                           hint="is `interview up` still starting? (or pass --edge)")
    if args.no_start or args.address or settings.admin_address:
        raise CommandError(f"no stack is running at {address}", code="UNAVAILABLE",
                           exit_code=EXIT_BY_KIND[ErrorKind.UNAVAILABLE], hint="start one with `interview up`")
    from launcher.stack import start_stack
    from launcher.supervisor import Supervisor

    print("No stack is running here: starting one on embedded defaults (stopped when the demo ends; "
          f"logs in {settings.data_dir / 'logs'})...", file=out, flush=True)
    supervisor = Supervisor(settings.data_dir / "logs")
    try:
        small = settings.replace(warm_interviews=min(settings.warm_interviews, settings.interviews_per_actor))
        running = start_stack(small, supervisor)
    except (RuntimeError, TimeoutError, OSError) as exc:
        supervisor.stop_all()
        raise CommandError(f"could not start the stack: {exc}", code="UNAVAILABLE",
                           exit_code=EXIT_BY_KIND[ErrorKind.UNAVAILABLE],
                           hint=f"see the logs in {settings.data_dir / 'logs'}") from None
    except BaseException:
        supervisor.stop_all()
        raise
    return Stack(running.control_address, f"http://{running.edge_host}:{running.edge_port}", running, True), \
        supervisor


# -- the demo -------------------------------------------------------------------------------------

class ConversationPrinter:
    """Prints the conversation as it happens: question n of m, each side's turn, time left."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._streaming = False

    def _end_stream(self, suffix: str = "") -> None:
        if self._streaming:
            self.out.write(suffix + "\n")
            self._streaming = False

    def _line(self, m: Moment, text: str) -> None:
        self._end_stream()
        self.out.write(f"[{_mmss(m.at)}] {text}\n")

    def __call__(self, m: Moment) -> None:
        if m.kind == "progress":
            left = f", {_mmss(m.seconds_left)} left" if m.seconds_left is not None else ""
            self._line(m, f"question {m.question} of {m.of}{left}")
        elif m.kind == "interviewer_delta":
            if not self._streaming:
                self._end_stream()
                self.out.write(f"[{_mmss(m.at)}] interviewer: ")
                self._streaming = True
            self.out.write(m.text)
        elif m.kind == "interviewer_done":
            if self._streaming:
                self._end_stream(" [cut off]" if m.cut_off else "")
            elif m.text:
                self._line(m, f"interviewer: {m.text}" + (" [cut off]" if m.cut_off else ""))
        elif m.kind == "candidate":
            self._line(m, f"candidate:   {m.text} ({m.seconds:.1f} s of speech)")
        elif m.kind == "heard":
            heard = f'"{m.text}"' if m.text else f"{m.seconds:.1f} s of speech"
            self._line(m, f"             (the interviewer heard {heard})")
        elif m.kind == "reconnecting":
            self._line(m, "(the connection dropped; the SDK is reconnecting)")
        elif m.kind == "error":
            self._line(m, f"(the edge sent an error: {m.text})")
        elif m.kind == "ended":
            self._line(m, f"interview ended: {m.text}")
        self.out.flush()


def _mmss(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def _interviewer_name(model: str) -> str:
    if model == OFFLINE_MODEL:
        return "the offline scripted interviewer"
    return f"the OpenAI interviewer (model {model})"


def _synthesize(texts: list[str], language: str) -> list[Answer]:
    from actors.speech import SpeechEngineUnavailable
    from launcher.demo_candidate import synthesize_answers

    try:
        return synthesize_answers(texts, language)
    except SpeechEngineUnavailable as exc:
        raise CommandError(f"cannot synthesise the candidate's answers: {exc}", code="SPEECH_UNAVAILABLE",
                           exit_code=EXIT_FAILURE) from None


class Demo:
    def __init__(self, args: argparse.Namespace, stack: Stack, target: Target, channel: grpc.Channel,
                 out: TextIO) -> None:
        self.args = args
        self.stack = stack
        self.target = target
        self.channel = channel
        self.md = target.metadata
        self.out = out
        self.quiet = bool(args.json)

    def say(self, text: str = "") -> None:
        if not self.quiet:
            self.out.write(text + "\n")
            self.out.flush()

    def tenant(self) -> resources_pb2.Tenant:
        stub = tenant_service_pb2_grpc.TenantServiceStub(self.channel)
        if self.args.tenant:
            tenant: resources_pb2.Tenant = stub.GetTenant(tenant_service_pb2.GetTenantRequest(
                tenant_id=self.args.tenant), metadata=self.md, timeout=CALL_TIMEOUT_S)
            return tenant
        try:  # the same demo tenant every run: an idempotency key never expires
            tenant = stub.CreateTenant(tenant_service_pb2.CreateTenantRequest(
                display_name=DEMO_TENANT, idempotency_key="interview-demo:tenant:v1"),
                metadata=self.md, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as exc:
            if stable_code(exc) != ErrorCode.PERMISSION_DENIED.code:
                raise
            # A tenant's API key: the demo runs in the key's own tenant.
            tenant = stub.GetTenant(tenant_service_pb2.GetTenantRequest(), metadata=self.md,
                                    timeout=CALL_TIMEOUT_S)
        return tenant

    def template(self, tenant_id: str) -> tuple[resources_pb2.Template, list[str]]:
        if self.args.template:
            fields = load_template_file(Path(self.args.template))
            answers = [GENERIC_ANSWERS[i % len(GENERIC_ANSWERS)] for i in range(len(fields.get("questions", [])))]
        else:
            fields, answers = dict(DEMO_TEMPLATE), list(DEMO_ANSWERS)
        wanted = build_template(fields)
        key = "interview-demo:template:" + hashlib.sha256(wanted.SerializeToString(deterministic=True)).hexdigest()[:32]
        created: resources_pb2.Template = template_service_pb2_grpc.TemplateServiceStub(self.channel).CreateTemplate(
            template_service_pb2.CreateTemplateRequest(tenant_id=tenant_id, template=wanted, idempotency_key=key),
            metadata=self.md, timeout=CALL_TIMEOUT_S)
        return created, answers

    def candidate(self, tenant_id: str) -> resources_pb2.Candidate:
        email, name, external_id = DEMO_CANDIDATE
        r = candidate_service_pb2_grpc.CandidateServiceStub(self.channel).UpsertCandidate(
            candidate_service_pb2.UpsertCandidateRequest(tenant_id=tenant_id, email=email, full_name=name,
                                                         external_id=external_id),
            metadata=self.md, timeout=CALL_TIMEOUT_S)
        candidate: resources_pb2.Candidate = r.candidate
        return candidate

    def run(self) -> int:
        started = time.monotonic()
        tenant = self.tenant()
        template, answer_texts = self.template(tenant.id)
        candidate = self.candidate(tenant.id)
        invitation = invitation_service_pb2_grpc.InvitationServiceStub(self.channel).CreateInvitation(
            invitation_service_pb2.CreateInvitationRequest(tenant_id=tenant.id, candidate_id=candidate.id,
                                                           template_id=template.id),
            metadata=self.md, timeout=CALL_TIMEOUT_S)
        self.say(f"tenant      {tenant.display_name} ({tenant.id})")
        self.say(f"template    {template.role}: {len(template.questions)} questions, "
                 f"{render.duration(template.time_limit_seconds)} ({template.id})")
        self.say(f"candidate   {candidate.full_name} <{candidate.email}> ({candidate.id})")
        self.say(f"invitation  {invitation.invitation.id} (its link is redeemed by the simulated candidate)")

        language = template.language or "en-US"
        answers = _synthesize(answer_texts, language)
        extras = _synthesize(EXTRA_ANSWERS[:1], language) * len(EXTRA_ANSWERS)
        speed = self.args.speed or (FAST_SPEED if self.args.fast else 1.0)
        printer = ConversationPrinter(self.out)
        try:
            redeemed = asyncio.run(redeem(self.stack.edge, invitation.token))
            self.say(f"session     {redeemed.session_id}")
            pace = "real time" if speed == 1.0 else f"answers spoken {speed:g}x faster than real time"
            self.say(f"\n--- the interview ({pace}) ---")
            run = asyncio.run(run_candidate(
                self.stack.edge, redeemed.access_token, redeemed.session_id, answers, speed=speed,
                extra_answers=extras, report=(lambda _m: None) if self.quiet else printer,
                timeout_s=template.time_limit_seconds + 120.0))
        except CandidateError as exc:
            raise CommandError(str(exc), code="DEMO_FAILED", exit_code=EXIT_FAILURE) from None

        session = self._wait_until_over(tenant.id, redeemed.session_id)
        items = read_transcript(session_service_pb2_grpc.SessionServiceStub(self.channel), self.md, tenant.id,
                                redeemed.session_id)
        interviewer = _interviewer_name(run.model)
        if self.quiet:
            render.dump_json({
                "tenant_id": tenant.id, "template_id": template.id, "candidate_id": candidate.id,
                "invitation_id": invitation.invitation.id, "session_id": redeemed.session_id,
                "interviewer_model": run.model, "end_reason": run.end_reason,
                "session": render.to_json(session), "transcript": [render.to_json(i) for i in items],
                "seconds": round(time.monotonic() - started, 1)}, self.out)
            return 0 if run.end_reason == "completed" else EXIT_FAILURE
        self.say(f"\ninterviewer: {interviewer}")
        if run.model == OFFLINE_MODEL and self.stack.settings.openai_api_key and not self.stack.started_here:
            self.say("  (OPENAI_API_KEY is set here, but the running stack was started without it: restart "
                     "`interview up` with it to use OpenAI's)")
        elif run.model == OFFLINE_MODEL:
            self.say("  (set OPENAI_API_KEY before `interview up` to use the OpenAI interviewer instead)")
        self.say("\n--- the stored transcript (SessionService.GetTranscript) ---")
        for item in items:
            self.say(render.transcript_line(item))
        if any(i.speaker == resources_pb2.SPEAKER_CANDIDATE and not i.text for i in items):
            self.say("(candidate turns are stored with their timing; to transcribe them offline, start the stack "
                     "with INTERVIEW_OFFLINE_TRANSCRIPTION=true)")
        ended = f" ({session.end_reason})" if session.end_reason else ""
        self.say(f"\nsession {redeemed.session_id}: {render.session_status(session.status)}{ended}, "
                 f"{len(items)} transcript items, {time.monotonic() - started:.0f} s")
        if not self.stack.started_here:
            flag = f" --tenant {tenant.id}" if self.target.credential.is_admin is not False else ""
            self.say("look at it with:")
            self.say(f"  interview sessions show {redeemed.session_id}{flag}")
            self.say(f"  interview transcript {redeemed.session_id}{flag}")
        else:
            self.say("(the stack started for the demo stops now; its data stays: `interview up`, then "
                     f"`interview transcript {redeemed.session_id} --tenant {tenant.id}`)")
        return 0 if run.end_reason == "completed" else EXIT_FAILURE

    def _wait_until_over(self, tenant_id: str, session_id: str, timeout_s: float = 15.0) -> resources_pb2.Session:
        """The session once its end is stored (the candidate hears of the end right after)."""
        stub = session_service_pb2_grpc.SessionServiceStub(self.channel)
        deadline = time.monotonic() + timeout_s
        while True:
            session: resources_pb2.Session = stub.GetSession(session_service_pb2.GetSessionRequest(
                tenant_id=tenant_id, session_id=session_id), metadata=self.md, timeout=CALL_TIMEOUT_S)
            if session.end_time.seconds or time.monotonic() > deadline:
                return session
            time.sleep(0.2)


def cmd_demo(args: argparse.Namespace) -> int:
    for noisy in ("httpx", "httpx2", "openai", "websockets"):  # a request log line per call: not for the demo
        logging.getLogger(noisy).setLevel(logging.WARNING)
    out = sys.stdout
    as_json = bool(args.json)
    supervisor = None
    try:
        if args.speed is not None and not 0.5 <= args.speed <= 50:
            raise invalid_input("--speed: between 0.5 and 50")
        settings = settings_for(args)
        stack, supervisor = find_or_start_stack(args, settings, sys.stderr if as_json else out)
        target = Target.resolve(stack.settings, address=stack.address, token=args.token)
        if not as_json:
            how = "a stack started for the demo" if stack.started_here else "the running stack"
            print(f"Using {how}: control service {stack.address}, edge {stack.edge}\n", file=out, flush=True)
        with target.channel() as channel:
            try:
                return Demo(args, stack, target, channel, out).run()
            except grpc.RpcError as exc:
                raise from_rpc_error(exc, target) from None
    except CommandError as exc:
        error = exc
    except ConfigError as exc:
        error = CommandError(f"configuration error: {exc}", code="CONFIGURATION", exit_code=EXIT_USAGE)
    finally:
        if supervisor is not None:
            print("stopping the stack started for the demo...", file=sys.stderr if as_json else out, flush=True)
            supervisor.stop_all()
    out.flush()
    if as_json:
        render.dump_json(error.as_json(), sys.stderr)
    else:
        print(error.line("interview demo"), file=sys.stderr)
    return error.exit_code


# -- interview say --------------------------------------------------------------------------------

def cmd_say(args: argparse.Namespace) -> int:
    """Writes `text`, spoken, as a WAV the candidate protocol takes (PCM16, 24 kHz, mono)."""
    try:
        answers = _synthesize([args.text], args.language)
        if not answers[0].pcm:
            raise invalid_input("nothing to say: the text is empty")
        path = Path(args.output)
        try:
            with wave.open(str(path), "wb") as wav:
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(24_000)
                wav.writeframes(answers[0].pcm)
        except OSError as exc:
            raise CommandError(f"cannot write {path}: {exc.strerror or exc}", code="IO_ERROR",
                               exit_code=EXIT_FAILURE) from None
    except CommandError as exc:
        if args.json:
            render.dump_json(exc.as_json(), sys.stderr)
        else:
            print(exc.line("interview say"), file=sys.stderr)
        return exc.exit_code
    seconds = round(answers[0].seconds, 2)
    if args.json:
        print(json.dumps({"path": str(path), "seconds": seconds, "sample_rate": 24000, "channels": 1,
                          "sample_width": 2}))
    else:
        print(f"wrote {path}: {seconds:.1f} s of speech (PCM16, 24 kHz, mono)")
    return 0


def register(sub: Any) -> None:
    demo = sub.add_parser(
        "demo", help="run a whole interview with a simulated candidate, and show its transcript",
        description="Against the running stack (or one started for the demo, on embedded defaults, and stopped "
        "afterwards): creates a demo tenant, template, candidate and invitation, redeems it, and runs a whole "
        "interview with a simulated candidate built on the official `openai` SDK, which speaks synthesised "
        "answers. Prints the conversation as it happens, then the transcript stored by the control service.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  interview demo           # real time, about a minute\n"
               "  interview demo --fast    # the candidate's answers 4x faster than real time")
    demo.add_argument("--fast", action="store_true", help=f"speak the answers {FAST_SPEED:g}x faster than real time")
    demo.add_argument("--speed", type=float, help="speak the answers this many times faster than real time")
    demo.add_argument("--template", help="use this template file (YAML or JSON, as `templates create` takes) "
                      "instead of the demo's")
    demo.add_argument("--tenant", help="run in this existing tenant instead of the demo tenant")
    demo.add_argument("--edge", help="the edge's base URL (default http://INTERVIEW_EDGE_HOST:INTERVIEW_EDGE_PORT)")
    demo.add_argument("--address", help="the control service (host:port); given, no stack is started")
    demo.add_argument("--token", help="admin token or tenant API key (default: as the admin commands find it)")
    demo.add_argument("--no-start", action="store_true", help="fail instead of starting a stack when none runs")
    demo.add_argument("--data-dir", help="INTERVIEW_DATA_DIR (default .interview)")
    demo.add_argument("--json", action="store_true", help="print one JSON summary at the end instead")
    demo.set_defaults(func=cmd_demo)

    say = sub.add_parser(
        "say", help="synthesise speech into a WAV file a candidate client can stream",
        description="Speaks TEXT with the offline speech engine (espeak-ng) into a WAV file in the candidate "
        "protocol's format: PCM16, 24 kHz, mono.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='example:\n  interview say "I have built APIs in Python for six years." -o answer.wav')
    say.add_argument("text")
    say.add_argument("-o", "--output", required=True, help="the WAV file to write")
    say.add_argument("--language", default="en-US", help="BCP 47, e.g. en-US, en-GB, de-DE (default en-US)")
    say.add_argument("--json", action="store_true", help="print a JSON description of the file")
    say.set_defaults(func=cmd_say)
