"""Which actor serves which session, kept in Ray's key-value store (in the GCS), so it outlives
any edge and the pool actor, and a restarted actor can find the sessions it was serving.

Keys live in a key-value namespace named after the Ray namespace, so two deployments sharing a
cluster never count each other's interviews:

- `session/<session>` -> `<worker>`: where an interview lives;
- `worker/<worker>/<session>`: what a worker serves (a restarted worker resumes these);
- `pool/<worker>`: every worker the pool started, so a restarted pool adopts them;
- `secret/<session>/<token id>`: client secrets that opened an interview.
"""

from __future__ import annotations

from ray.experimental import internal_kv


def _ns(namespace: str) -> str:
    # No ':' in it: Ray prefixes keys with their namespace and a ':', and listing cuts at the
    # first ':' (a ':' here made every listing come back mangled).
    return f"interview-{namespace.replace(':', '-')}"


def _key(*parts: str) -> bytes:
    return "/".join(parts).encode()


def _list(namespace: str, prefix: bytes) -> list[str]:
    keys = internal_kv._internal_kv_list(prefix, namespace=_ns(namespace)) or []
    text = prefix.decode()
    return [key.decode().partition(text)[2] for key in keys]


def bind(namespace: str, session_id: str, worker: str) -> None:
    internal_kv._internal_kv_put(_key("session", session_id), worker.encode(), namespace=_ns(namespace))
    internal_kv._internal_kv_put(_key("worker", worker, session_id), b"1", namespace=_ns(namespace))


def unbind(namespace: str, session_id: str, worker: str) -> None:
    ns = _ns(namespace)
    internal_kv._internal_kv_del(_key("session", session_id), namespace=ns)
    internal_kv._internal_kv_del(_key("worker", worker, session_id), namespace=ns)
    internal_kv._internal_kv_del(_key("secret", session_id, ""), del_by_prefix=True, namespace=ns)


def worker_of(namespace: str, session_id: str) -> str | None:
    value = internal_kv._internal_kv_get(_key("session", session_id), namespace=_ns(namespace))
    return value.decode() if value else None


def sessions_of(namespace: str, worker: str) -> list[str]:
    return _list(namespace, _key("worker", worker, ""))


def all_sessions(namespace: str) -> dict[str, str]:
    ns = _ns(namespace)
    out: dict[str, str] = {}
    for session_id in _list(namespace, b"session/"):
        worker = internal_kv._internal_kv_get(_key("session", session_id), namespace=ns)
        if worker:
            out[session_id] = worker.decode()
    return out


def add_worker(namespace: str, worker: str) -> None:
    internal_kv._internal_kv_put(_key("pool", worker), b"1", namespace=_ns(namespace))


def remove_worker(namespace: str, worker: str) -> None:
    internal_kv._internal_kv_del(_key("pool", worker), namespace=_ns(namespace))


def all_workers(namespace: str) -> list[str]:
    return _list(namespace, b"pool/")


def remember_secret(namespace: str, session_id: str, token_id: str) -> None:
    """A client secret that opened an interview stays good for reconnecting to it, until it ends."""
    internal_kv._internal_kv_put(_key("secret", session_id, token_id), b"1", namespace=_ns(namespace))


def secret_opened(namespace: str, session_id: str, token_id: str) -> bool:
    return bool(internal_kv._internal_kv_exists(_key("secret", session_id, token_id), namespace=_ns(namespace)))
