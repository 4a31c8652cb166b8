"""A local Ray head for `interview up` and the tests: its own processes (so actors outlive an
edge restart), on loopback, stopped as a process group so nothing else's Ray is touched."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from launcher.supervisor import wait_for_port


def short_temp_dir(data_dir: Path) -> Path:
    """Ray's own temporary files, under a short path: its socket paths must fit in 107 bytes."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"interview-ray-{digest}"


def ray_command() -> str:
    found = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if found is None:
        raise RuntimeError("the `ray` command is not installed")
    return found


@dataclass
class RayHead:
    port: int
    temp_dir: Path
    num_cpus: int | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        argv = [ray_command(), "start", "--head", "--block", "--port", str(self.port),
                "--node-ip-address", "127.0.0.1", "--include-dashboard", "false",
                "--disable-usage-stats", "--temp-dir", str(self.temp_dir)]
        if self.num_cpus is not None:
            argv += ["--num-cpus", str(self.num_cpus)]
        return argv

    def popen(self) -> subprocess.Popen[bytes]:
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.temp_dir / "head.log", "ab")  # noqa: SIM115
        return subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})

    def wait_ready(self, timeout_s: float, proc: subprocess.Popen[bytes]) -> None:
        wait_for_port("127.0.0.1", self.port, timeout_s, proc)

    @staticmethod
    def stop(proc: subprocess.Popen[bytes], grace_s: float = 3.0) -> None:
        """SIGTERM to the head's process group, SIGKILL to what is left after `grace_s`
        (`ray start --block` takes half a minute to stop on its own, and holds nothing to save)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
