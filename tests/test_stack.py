"""`interview up` as a newcomer runs it: everything starts, a dead child is restarted, data
survives a restart, and Ctrl-C or SIGTERM leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from interview.v1 import tenant_service_pb2, tenant_service_pb2_grpc
from launcher.embedded_postgres import free_port


class Stack:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.control_port = free_port()
        self.pg_port = free_port()
        self.edge_port = free_port()
        self.ray_port = free_port()
        self.proc: subprocess.Popen[str] | None = None
        self.output = ""

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTERVIEW_") and k != "DATABASE_URL"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "launcher.cli", "up", "--data-dir", str(self.data_dir),
             "--control-port", str(self.control_port), "--pg-port", str(self.pg_port),
             "--edge-port", str(self.edge_port), "--ray-port", str(self.ray_port), "--warm-interviews", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output += line
            if "Press Ctrl-C to stop." in line:
                return
        raise AssertionError(f"interview up did not come up:\n{self.output}")

    def descendants(self) -> list[psutil.Process]:
        assert self.proc is not None
        return psutil.Process(self.proc.pid).children(recursive=True)

    def stop(self, sig: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        out, _ = self.proc.communicate(timeout=60)
        self.output += out
        return self.proc.returncode

    @property
    def admin_token(self) -> str:
        return str(json.loads((self.data_dir / "credentials.json").read_text())["admin_token"])

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(f"127.0.0.1:{self.control_port}")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path / "data")
    yield s
    if s.proc and s.proc.poll() is None:
        s.proc.kill()


def wait_serving(channel: grpc.Channel, timeout_s: float = 30) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        time.sleep(0.2)
    raise AssertionError("control service not serving")


def test_up_runs_supervises_and_stops_cleanly(stack: Stack) -> None:
    stack.start()
    assert f"127.0.0.1:{stack.control_port}" in stack.output
    assert stack.admin_token in stack.output  # generated, stored and printed
    children = stack.descendants()
    names = " ".join(" ".join(p.cmdline()) for p in children)
    assert "postgres" in names and "launcher.cli control" in names and "launcher.cli edge" in names
    assert "gcs_server" in names or "ray start" in names
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.edge_port}/healthz", timeout=10) as health:
        assert json.loads(health.read())["status"] == "ok"

    with stack.channel() as channel:
        wait_serving(channel)
        # Reflection lists our services, so any gRPC client can discover them.
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        answer = next(reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
        services = {s.name for s in answer.list_services_response.service}
        assert "interview.v1.InvitationService" in services and "grpc.health.v1.Health" in services

        md = (("authorization", f"Bearer {stack.admin_token}"),)
        tenants = tenant_service_pb2_grpc.TenantServiceStub(channel)
        tenants.CreateTenant(tenant_service_pb2.CreateTenantRequest(display_name="Persisted"), metadata=md, timeout=10)

        # A child that dies is restarted.
        control = next(p for p in children if "launcher.cli" in " ".join(p.cmdline()))
        control.kill()
        time.sleep(1.0)
        wait_serving(channel, 30)
        listed = tenants.ListTenants(tenant_service_pb2.ListTenantsRequest(), metadata=md, timeout=10)
        assert "Persisted" in [t.display_name for t in listed.tenants]

    children = stack.descendants()
    assert stack.stop(signal.SIGTERM) == 0, stack.output
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"left behind: {alive}"

    # Data survives a restart, and Ctrl-C stops everything too.
    stack.start()
    with stack.channel() as channel:
        wait_serving(channel)
        md = (("authorization", f"Bearer {stack.admin_token}"),)
        listed = tenant_service_pb2_grpc.TenantServiceStub(channel).ListTenants(
            tenant_service_pb2.ListTenantsRequest(), metadata=md, timeout=10)
        assert "Persisted" in [t.display_name for t in listed.tenants]
    outbox = subprocess.run(
        [sys.executable, "-m", "launcher.cli", "outbox", "--data-dir", str(stack.data_dir),
         "--address", f"127.0.0.1:{stack.control_port}"], capture_output=True, text=True, timeout=30)
    assert outbox.returncode == 0 and "the outbox is empty" in outbox.stdout, outbox.stderr
    children = stack.descendants()
    assert stack.stop(signal.SIGINT) == 0, stack.output
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"left behind: {alive}"
