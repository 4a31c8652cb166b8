"""`interview bench-control`: the control service's throughput and latency, measured in one run.

Starts a private stack on embedded defaults: PostgreSQL in a temporary directory on a free port,
migrated, and the control service as its own process (as `interview up` runs it), with one
change: the per-credential rate limit is off (`rate_limit_per_s=0`), since the benchmark sends
everything with one API key. It sets up a tenant, a template, candidates and one session, then
measures, one after another, each as a closed loop with `concurrency` calls in flight for
`duration` seconds after a warm-up:

* a bare gRPC health Check (no auth, no database): the ceiling the gRPC stack allows;
* GetSession with a tenant API key (auth from the key cache, one read transaction);
* CreateInvitation with a tenant API key (one write transaction; no email).

It prints calls, calls/s, p50 and p99 latency per method, the ratios to Check with PASS/FAIL
against the targets, and the CPU each process used while measuring (100% = one core), which
shows what the bottleneck was. The load generator runs in separate, spawned processes (gRPC does
not survive fork), each with its own channels (HTTP/2 connections), so it shares no interpreter
with the server.

Exit status: 0 if every call succeeded and the targets were met, 1 otherwise, 130 on Ctrl-C.
Everything it starts is stopped on exit, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import multiprocessing
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

# The ratio of each method's throughput to the bare health Check's that counts as a pass.
TARGETS = {"GetSession": 0.5, "CreateInvitation": 0.25}
METHODS = ("Check", "GetSession", "CreateInvitation")
WARMUP_S = 1.0
CANDIDATES = 64  # CreateInvitation cycles through these
CALL_TIMEOUT_S = 10.0
# Measured on the 2-core reference machine (see docs/benchmarks.md): one load process with two
# channels drives the server as hard as two processes do, and leaves the most CPU to it.
DEFAULT_LOAD_PROCS = 1
DEFAULT_CHANNELS = 2


@dataclass(frozen=True)
class Target:
    address: str
    tenant_key: str
    session_id: str
    template_id: str
    candidate_ids: tuple[str, ...]


@dataclass
class LoadResult:
    """What one load process measured."""

    latencies: list[float]  # seconds, of the calls that completed inside the window
    errors: int
    first_error: str
    cpu_s: float  # this process's CPU time inside the window


@dataclass
class Measurement:
    method: str
    duration_s: float
    latencies: list[float]  # sorted
    errors: int
    first_error: str
    cpu: dict[str, float]  # process -> share of one core inside the window

    @property
    def calls(self) -> int:
        return len(self.latencies)

    @property
    def per_s(self) -> float:
        return self.calls / self.duration_s

    def percentile_ms(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        index = min(len(self.latencies) - 1, max(0, round(p / 100 * len(self.latencies)) - 1))
        return self.latencies[index] * 1000


# --- the load generator (runs in spawned processes) -------------------------------------------

async def _load(method: str, target: Target, concurrency: int, channels: int, warmup_s: float,
                duration_s: float, ready: Connection, go: Any) -> LoadResult:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from interview.v1 import (
        invitation_service_pb2,
        invitation_service_pb2_grpc,
        session_service_pb2,
        session_service_pb2_grpc,
    )

    # A local subchannel pool gives each channel its own connection.
    chans = [grpc.aio.insecure_channel(target.address, options=[("grpc.use_local_subchannel_pool", 1)])
             for _ in range(channels)]
    try:
        for ch in chans:
            await asyncio.wait_for(ch.channel_ready(), timeout=10)
        metadata: tuple[tuple[str, str], ...] | None = (("authorization", f"Bearer {target.tenant_key}"),)
        requests: list[Any]
        if method == "Check":
            callables = [health_pb2_grpc.HealthStub(ch).Check for ch in chans]
            requests = [health_pb2.HealthCheckRequest()]
            metadata = None
        elif method == "GetSession":
            callables = [session_service_pb2_grpc.SessionServiceStub(ch).GetSession for ch in chans]
            requests = [session_service_pb2.GetSessionRequest(session_id=target.session_id)]
        elif method == "CreateInvitation":
            callables = [invitation_service_pb2_grpc.InvitationServiceStub(ch).CreateInvitation for ch in chans]
            requests = [invitation_service_pb2.CreateInvitationRequest(candidate_id=c, template_id=target.template_id)
                        for c in target.candidate_ids]
        else:
            raise ValueError(method)
        next_request = itertools.cycle(requests)

        ready.send("ready")
        if not await asyncio.to_thread(go.wait, 90):  # all load processes start together
            raise TimeoutError("no go from the coordinator")
        start = time.perf_counter()
        window_start = start + warmup_s
        window_end = window_start + duration_s
        latencies: list[float] = []
        errors = 0
        first_error = ""

        async def closed_loop(index: int) -> None:
            nonlocal errors, first_error
            call = callables[index % len(callables)]
            while (t0 := time.perf_counter()) < window_end:
                try:
                    await call(next(next_request), metadata=metadata, timeout=CALL_TIMEOUT_S)
                except grpc.aio.AioRpcError as exc:
                    errors += 1
                    first_error = first_error or f"{method}: {exc.code().name}: {exc.details()}"
                    continue
                t1 = time.perf_counter()
                if window_start <= t1 <= window_end:
                    latencies.append(t1 - t0)

        async def cpu_in_window() -> float:
            await asyncio.sleep(window_start - time.perf_counter())
            before = time.process_time()
            await asyncio.sleep(window_end - time.perf_counter())
            return time.process_time() - before

        cpu_task = asyncio.create_task(cpu_in_window())
        await asyncio.gather(*(closed_loop(i) for i in range(concurrency)))
        return LoadResult(latencies, errors, first_error, await cpu_task)
    finally:
        for ch in chans:
            await ch.close(None)


def _load_process(method: str, target: Target, concurrency: int, channels: int, warmup_s: float,
                  duration_s: float, go: Any, out: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator handles Ctrl-C and stops us
    try:
        out.send(asyncio.run(_load(method, target, concurrency, channels, warmup_s, duration_s, out, go)))
    except BaseException as exc:  # reported by the coordinator
        out.send(f"{type(exc).__name__}: {exc}")
    finally:
        out.close()


# --- CPU accounting ------------------------------------------------------------------------------

def _cpu_seconds_of_tree(root: int) -> float:
    """CPU time (user + system) of a live process and its live descendants (PostgreSQL's
    backends, say; they call setsid(), so a session id would not find them)."""
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # fields[0] is field 3 of proc(5)
        pid = int(entry.name)
        parent[pid] = int(fields[1])
        ticks[pid] = int(fields[11]) + int(fields[12])
    total = 0
    for pid, pid_ticks in ticks.items():
        p = pid
        while p > 1 and p != root:
            p = parent.get(p, 0)
        if p == root:
            total += pid_ticks
    return total / os.sysconf("SC_CLK_TCK")


def _machine_cpu_seconds() -> tuple[float, float]:
    """CPU time the whole machine has spent busy, and the part of it in interrupt handlers (mostly
    the loopback network between our processes; no process is charged for it)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq + steal) / tick, (irq + softirq) / tick


def _measure(method: str, target: Target, *, concurrency: int, load_procs: int, channels: int,
             duration_s: float, roots: dict[str, int],
             procs: list[multiprocessing.process.BaseProcess]) -> Measurement:
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    pipes = []
    for i in range(load_procs):
        share = concurrency // load_procs + (1 if i < concurrency % load_procs else 0)
        receive, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_load_process, name=f"bench-load-{i}", daemon=True,
                           args=(method, target, share, channels, WARMUP_S, duration_s, go, send))
        proc.start()
        send.close()
        procs.append(proc)
        pipes.append(receive)
    for pipe in pipes:
        if (message := _receive(pipe, 90)) != "ready":
            raise RuntimeError(f"a load process failed to start: {message}")
    go.set()
    time.sleep(WARMUP_S)
    before = {name: _cpu_seconds_of_tree(pid) for name, pid in roots.items()}
    busy_before, irq_before = _machine_cpu_seconds()
    time.sleep(duration_s)
    busy_after, irq_after = _machine_cpu_seconds()
    after = {name: _cpu_seconds_of_tree(pid) for name, pid in roots.items()}

    latencies: list[float] = []
    errors = 0
    first_error = ""
    load_cpu = 0.0
    for pipe in pipes:
        result = _receive(pipe, WARMUP_S + CALL_TIMEOUT_S + 30)
        if isinstance(result, str):
            raise RuntimeError(f"a load process failed: {result}")
        latencies.extend(result.latencies)
        errors += result.errors
        first_error = first_error or result.first_error
        load_cpu += result.cpu_s
    for done in procs:
        done.join(10)
    procs.clear()
    cpu = {name: (after[name] - before[name]) / duration_s for name in roots}
    cpu["load"] = load_cpu / duration_s
    cpu["irq"] = (irq_after - irq_before) / duration_s
    # Everything else on the machine: other people's work, which skews the figures.
    cpu["other"] = max(0.0, (busy_after - busy_before) / duration_s - sum(cpu.values()))
    latencies.sort()
    return Measurement(method, duration_s, latencies, errors, first_error, cpu)


def _receive(pipe: Connection, timeout_s: float) -> Any:
    try:
        if not pipe.poll(timeout_s):
            return "no answer in time"
        return pipe.recv()
    except (EOFError, OSError):
        return "it exited (see its traceback above)"


# --- the private stack ---------------------------------------------------------------------------

@dataclass
class Stack:
    settings: Any
    postgres: subprocess.Popen[bytes]
    control: subprocess.Popen[bytes]
    postgres_version: str
    log_file: Path


@contextlib.contextmanager
def private_stack(workdir: Path, **overrides: Any) -> Iterator[Stack]:
    """PostgreSQL and the control service on embedded defaults (plus `overrides`), stopped on exit."""
    from control.migrate import migrate
    from interview_core.config import Settings
    from launcher.embedded_postgres import EmbeddedPostgres, free_port
    from launcher.local_credentials import derive_service_url
    from launcher.supervisor import _die_with_parent, wait_for_port

    pg = EmbeddedPostgres(workdir / "postgres", free_port())
    pg.init()
    started: list[tuple[subprocess.Popen[bytes], int]] = []  # (process, stop signal)
    log_file = workdir / "control.log"
    try:
        pg_proc = subprocess.Popen(pg.command(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                   start_new_session=True, preexec_fn=_die_with_parent,
                                   **pg._run_as())  # type: ignore[call-overload]
        started.append((pg_proc, signal.SIGINT))  # PostgreSQL's fast shutdown
        pg.wait_ready(60, pg_proc)
        service_password = secrets.token_urlsafe(24)
        asyncio.run(migrate(pg.owner_dsn(), service_password=service_password))
        pg_version = asyncio.run(_server_version(pg.owner_dsn()))

        settings = Settings.from_env(
            {},
            data_dir=workdir / "data",
            database_url=pg.owner_dsn(),
            service_database_url=derive_service_url(pg.owner_dsn(), service_password),
            service_db_password=service_password,
            embedded_pg_port=pg.port,
            control_port=free_port(),
            admin_token=secrets.token_urlsafe(32),
            service_token=secrets.token_urlsafe(32),
            secret_key=secrets.token_urlsafe(32),
            rate_limit_per_s=0,  # off: the benchmark sends everything with one API key
            **overrides,
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTERVIEW_")} | settings.to_env()
        with open(log_file, "ab") as out:
            control = subprocess.Popen([sys.executable, "-m", "launcher.cli", "control"], env=env,
                                       stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                       preexec_fn=_die_with_parent)
        started.append((control, signal.SIGTERM))
        wait_for_port(settings.control_host, settings.control_port, 60, control)
        yield Stack(settings, pg_proc, control, pg_version, log_file)
    finally:
        for proc, stop_signal in reversed(started):
            _stop(proc, stop_signal)


def _stop(proc: subprocess.Popen[bytes], stop_signal: int) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(stop_signal)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


async def _server_version(dsn: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


async def _set_up(settings: Any) -> Target:
    """A tenant with an API key, a template, candidates, and one session (from a redeemed
    invitation) for GetSession to read."""
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

    def md(token: str) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {token}"),)

    async with grpc.aio.insecure_channel(settings.control_address) as ch:
        for _ in range(100):  # SERVING once the service's database listener is connected
            reply = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(), wait_for_ready=True, timeout=30)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                break
            await asyncio.sleep(0.1)
        tenants = tenant_service_pb2_grpc.TenantServiceStub(ch)
        admin = md(settings.admin_token)
        tenant = await tenants.CreateTenant(
            tenant_service_pb2.CreateTenantRequest(display_name="Bench Co"), metadata=admin)
        key = await tenants.CreateApiKey(
            tenant_service_pb2.CreateApiKeyRequest(tenant_id=tenant.id, display_name="bench"), metadata=admin)
        api = md(key.secret)
        template = await template_service_pb2_grpc.TemplateServiceStub(ch).CreateTemplate(
            template_service_pb2.CreateTemplateRequest(template=resources_pb2.Template(
                role="Backend Engineer", questions=["Tell me about yourself.", "Describe a hard bug."],
                time_limit_seconds=600, language="en-US", voice="alloy", instructions="Be kind.")),
            metadata=api)
        candidates = candidate_service_pb2_grpc.CandidateServiceStub(ch)
        candidate_ids = []
        for i in range(CANDIDATES):
            upserted = await candidates.UpsertCandidate(
                candidate_service_pb2.UpsertCandidateRequest(
                    email=f"bench-{i}-{uuid.uuid4().hex[:6]}@example.com", full_name=f"Candidate {i}"),
                metadata=api)
            candidate_ids.append(upserted.candidate.id)
        invitations = invitation_service_pb2_grpc.InvitationServiceStub(ch)
        invitation = await invitations.CreateInvitation(
            invitation_service_pb2.CreateInvitationRequest(candidate_id=candidate_ids[0], template_id=template.id),
            metadata=api)
        redeemed = await invitations.RedeemInvitation(
            invitation_service_pb2.RedeemInvitationRequest(token=invitation.token),
            metadata=md(settings.service_token))
        session = await session_service_pb2_grpc.SessionServiceStub(ch).GetSession(
            session_service_pb2.GetSessionRequest(session_id=redeemed.session.id), metadata=api)
        assert session.id == redeemed.session.id
    return Target(settings.control_address, key.secret, session.id, template.id, tuple(candidate_ids))


# --- the report ----------------------------------------------------------------------------------

def _versions(postgres_version: str) -> str:
    import asyncpg
    import grpc
    from google import protobuf

    return (f"Python {platform.python_version()}, grpcio {grpc.__version__}, protobuf {protobuf.__version__}, "
            f"asyncpg {asyncpg.__version__}, PostgreSQL {postgres_version}")


def _machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cores = len(os.sched_getaffinity(0))
    return f"{cores} CPUs (nproc), {model or platform.machine()}, {platform.system()} {platform.release()}"


def _report(results: dict[str, Measurement], *, duration_s: float, concurrency: int, load_procs: int,
            channels: int, settings: Any, postgres_version: str) -> bool:
    print()
    print(f"control plane benchmark: {concurrency} calls in flight (closed loop), "
          f"{duration_s:g} s per method after {WARMUP_S:g} s warm-up")
    print(f"machine:   {_machine()}")
    print(f"versions:  {_versions(postgres_version)}")
    print(f"settings:  embedded defaults; db pool {settings.db_pool_min_size}..{settings.db_pool_max_size}, "
          f"grpc_max_concurrent_rpcs {settings.grpc_max_concurrent_rpcs}, "
          f"rate limit OFF (rate_limit_per_s=0)")
    print(f"load:      {load_procs} load process(es) x {channels} channel(s), separate from the server")
    print()
    print(f"{'method':<18}{'calls':>7}{'calls/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'errors':>7}"
          f"{'server CPU':>12}   CPU, % of one core")
    print(f"{'':<57}{'us/call':>12}   control postgres load  irq other")
    for m in results.values():
        per_call = m.cpu["control"] / m.per_s * 1e6 if m.calls else float("nan")
        cpu = "".join(f"{m.cpu[k] * 100:>{w}.0f}" for k, w in
                      (("control", 7), ("postgres", 9), ("load", 5), ("irq", 5), ("other", 6)))
        print(f"{m.method:<18}{m.calls:>7}{m.per_s:>9.0f}{m.percentile_ms(50):>8.2f}"
              f"{m.percentile_ms(99):>8.2f}{m.errors:>7}{per_call:>12.0f}   {cpu}")
    print("(irq: interrupt handling, mostly the loopback network between these processes; other: the rest\n"
          " of the machine. Figures taken while `other` is well above 0 are disturbed by other work.)")
    print()
    ok = True
    check = results["Check"].per_s
    for method, target in TARGETS.items():
        ratio = results[method].per_s / check if check else 0.0
        passed = ratio >= target
        ok &= passed
        print(f"{method + ' / Check':<28}{ratio:>6.2f}   target >= {target:.2f}   {'PASS' if passed else 'FAIL'}")
    errors = sum(m.errors for m in results.values())
    if errors:
        ok = False
        first = next(m.first_error for m in results.values() if m.first_error)
        print(f"{errors} call(s) failed; the first: {first}")
    return ok


# --- entry points --------------------------------------------------------------------------------

def _raise_interrupt(_sig: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(duration_s: float = 5.0, concurrency: int = 32, *, load_procs: int = DEFAULT_LOAD_PROCS,
         channels: int = DEFAULT_CHANNELS) -> int:
    if duration_s <= 0 or concurrency < 1 or load_procs < 1 or channels < 1:
        print("bench-control: duration, concurrency, load processes and channels must be positive",
              file=sys.stderr)
        return 2
    load_procs = min(load_procs, concurrency)
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="interview-bench-"))
    load: list[multiprocessing.process.BaseProcess] = []
    stack: Stack | None = None
    try:
        with private_stack(workdir) as stack:
            print(f"control service pid {stack.control.pid} on {stack.settings.control_address}; "
                  f"setting up...", flush=True)
            target = asyncio.run(_set_up(stack.settings))
            roots = {"control": stack.control.pid, "postgres": stack.postgres.pid}
            results: dict[str, Measurement] = {}
            for method in METHODS:
                print(f"measuring {method}...", flush=True)
                results[method] = _measure(method, target, concurrency=concurrency, load_procs=load_procs,
                                           channels=channels, duration_s=duration_s, roots=roots,
                                           procs=load)
            ok = _report(results, duration_s=duration_s, concurrency=concurrency, load_procs=load_procs,
                         channels=channels, settings=stack.settings, postgres_version=stack.postgres_version)
            return 0 if ok else 1
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything", file=sys.stderr)
        return 130
    except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
        print(f"bench-control: {exc}", file=sys.stderr)
        if stack is not None and stack.log_file.exists():
            print("control service log (tail):\n" + stack.log_file.read_text()[-3000:], file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        for proc in load:
            if proc.is_alive():
                proc.terminate()
            proc.join(5)
        # (private_stack has stopped the control service and PostgreSQL by now)
        shutil.rmtree(workdir, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, previous_sigterm)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m loadtest.control_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per method")
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight")
    parser.add_argument("--load-procs", type=int, default=DEFAULT_LOAD_PROCS, help="load generator processes")
    parser.add_argument("--channels", type=int, default=DEFAULT_CHANNELS, help="channels per load process")
    args = parser.parse_args()
    # Through the module's own name, so the spawned load processes unpickle the same classes.
    from loadtest.control_bench import main as bench_main

    sys.exit(bench_main(args.duration, args.concurrency, load_procs=args.load_procs, channels=args.channels))
