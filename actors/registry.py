"""Which actor serves which session, kept in Ray's key-value store (in the GCS), so it outlives
any edge and the pool actor, and a restarted actor can find the session it was serving."""

from __future__ import annotations

from ray.experimental import internal_kv

_NS = "interview"


def _key(kind: str, name: str) -> bytes:
    return f"{kind}/{name}".encode()


def bind(session_id: str, worker: str) -> None:
    internal_kv._internal_kv_put(_key("session", session_id), worker.encode(), namespace=_NS)
    internal_kv._internal_kv_put(_key("worker", worker), session_id.encode(), namespace=_NS)


def unbind(session_id: str, worker: str) -> None:
    internal_kv._internal_kv_del(_key("session", session_id), namespace=_NS)
    internal_kv._internal_kv_del(_key("worker", worker), namespace=_NS)


def worker_of(session_id: str) -> str | None:
    value = internal_kv._internal_kv_get(_key("session", session_id), namespace=_NS)
    return value.decode() if value else None


def session_of(worker: str) -> str | None:
    value = internal_kv._internal_kv_get(_key("worker", worker), namespace=_NS)
    return value.decode() if value else None


def all_sessions() -> dict[str, str]:
    keys = internal_kv._internal_kv_list(b"session/", namespace=_NS) or []
    out: dict[str, str] = {}
    for key in keys:
        worker = internal_kv._internal_kv_get(key, namespace=_NS)
        if worker:
            out[key.decode().removeprefix("session/")] = worker.decode()
    return out


def remember_secret(token_id: str, session_id: str) -> None:
    """A client secret that opened an interview stays good for reconnecting to it."""
    internal_kv._internal_kv_put(_key("secret", token_id), session_id.encode(), namespace=_NS)


def secret_opened(token_id: str) -> str | None:
    value = internal_kv._internal_kv_get(_key("secret", token_id), namespace=_NS)
    return value.decode() if value else None
