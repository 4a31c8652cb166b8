"""Runs the stack's processes as children: starts them in order, restarts one that dies (with
backoff), and stops them all in reverse order on Ctrl-C or SIGTERM. It only ever signals the
processes it started itself."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: if the supervisor is killed outright, so is the child."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def wait_for_port(host: str, port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} while starting")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s:.0f}s")


def wait_for_log_line(path: Path, text: str, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """For children that share a port with another (nothing new to connect to): ready when the
    log gets `text`, after what it held when the wait began (logs are appended across restarts)."""
    start = path.stat().st_size if path.exists() else 0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} while starting")
        if path.exists():
            with open(path, "rb") as log_file:
                log_file.seek(start)
                if text.encode() in log_file.read():
                    return
        time.sleep(0.1)
    raise TimeoutError(f"{path.name} did not say {text!r} within {timeout_s:.0f}s")


@dataclass
class Child:
    name: str
    argv: list[str]
    ready: Callable[[subprocess.Popen[bytes]], None]
    env: dict[str, str] | None = None
    popen_kwargs: dict[str, Any] = field(default_factory=dict)
    stop_signal: int = signal.SIGTERM
    stop_timeout_s: float = 15.0
    # Lines of the child's output also shown on the console (the rest go to its log only).
    show_on_console: Callable[[str], bool] = lambda _line: False
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_restart_at: float = 0.0


class Supervisor:
    def log_path(self, name: str) -> Path:
        return self._log_dir / f"{name}.log"

    def __init__(self, log_dir: Path) -> None:
        self._children: list[Child] = []
        self._log_dir = log_dir
        self._stopping = False

    def _spawn(self, child: Child) -> None:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        child.proc = subprocess.Popen(
            child.argv, env=child.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
            preexec_fn=_die_with_parent, **child.popen_kwargs)
        threading.Thread(target=self._copy_output, args=(child, child.proc), daemon=True,
                         name=f"{child.name}-output").start()

    def _copy_output(self, child: Child, proc: subprocess.Popen[bytes]) -> None:
        """Writes the child's output to its log, and what it flags to the console."""
        assert proc.stdout is not None
        show = False
        with open(self._log_dir / f"{child.name}.log", "ab") as log_file:
            for raw in proc.stdout:
                log_file.write(raw)
                log_file.flush()
                line = raw.decode("utf-8", "replace").rstrip("\n")
                # A flagged record's continuation lines (no timestamp) are shown with it.
                show = child.show_on_console(line) or (show and not line[:4].isdigit())
                if show:
                    print(f"[{child.name}] {line}", flush=True)

    def start(self, child: Child, timeout_s: float = 60.0) -> None:
        self._spawn(child)
        assert child.proc is not None
        try:
            child.ready(child.proc)
        except Exception:
            self._terminate(child)
            raise
        self._children.append(child)

    def poll(self) -> None:
        """Restarts children that died, with exponential backoff."""
        now = time.monotonic()
        for child in self._children:
            if self._stopping or child.proc is None or child.proc.poll() is None:
                continue
            if child.next_restart_at == 0.0:
                delay = min(30.0, 0.5 * 2 ** child.restarts)
                child.next_restart_at = now + delay
                log.warning("%s exited with %s; restarting in %.1fs (see %s)", child.name,
                            child.proc.returncode, delay, self._log_dir / f"{child.name}.log")
            elif now >= child.next_restart_at:
                child.restarts += 1
                child.next_restart_at = 0.0
                self._spawn(child)
                log.warning("%s restarted (pid %d)", child.name, child.proc.pid)

    def _terminate(self, child: Child) -> None:
        proc = child.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, child.stop_signal)
        try:
            proc.wait(child.stop_timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0fs; killing it", child.name, child.stop_timeout_s)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop_all(self) -> None:
        self._stopping = True
        for child in reversed(self._children):
            log.info("stopping %s", child.name)
            self._terminate(child)
