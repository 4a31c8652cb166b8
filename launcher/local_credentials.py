"""Credentials `interview up` generates when the environment does not set them, kept in the data
directory (mode 0600) so they survive restarts and the admin commands can find them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from interview_core.config import Settings
from interview_core.credentials import new_bootstrap_secret

GENERATED = ("admin_token", "service_token", "secret_key", "service_db_password")


def credentials_file(data_dir: Path) -> Path:
    return data_dir / "credentials.json"


def with_local_credentials(settings: Settings) -> Settings:
    """Fills unset credentials from the data directory, generating and storing what is missing."""
    path = credentials_file(settings.data_dir)
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    changed = False
    for name in GENERATED:
        if not stored.get(name):
            stored[name] = new_bootstrap_secret()
            changed = True
    if changed:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(stored, f, indent=2)
        tmp.replace(path)
    return settings.replace(**{name: getattr(settings, name) or stored[name] for name in GENERATED})


def derive_service_url(owner_url: str, password: str) -> str:
    """The owner's connection string with the service role's credentials instead."""
    parts = urlsplit(owner_url)
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"interview_service:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))
