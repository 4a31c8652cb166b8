"""Which actor serves which session, kept in Ray's key-value store (in the GCS), so it outlives
any edge and the pool actor, and a restarted actor can find the session it was serving.

Keys live in a key-value namespace named after the Ray namespace, so two deployments sharing a
cluster never count each other's interviews.
"""

from __future__ import annotations

from ray.experimental import internal_kv


def _ns(namespace: str) -> str:
    return f"interview:{namespace}"


def _key(*parts: str) -> bytes:
    return "/".join(parts).encode()


def bind(namespace: str, session_id: str, worker: str) -> None:
    internal_kv._internal_kv_put(_key("session", session_id), worker.encode(), namespace=_ns(namespace))
    internal_kv._internal_kv_put(_key("worker", worker), session_id.encode(), namespace=_ns(namespace))


def unbind(namespace: str, session_id: str, worker: str) -> None:
    ns = _ns(namespace)
    internal_kv._internal_kv_del(_key("session", session_id), namespace=ns)
    internal_kv._internal_kv_del(_key("worker", worker), namespace=ns)
    internal_kv._internal_kv_del(_key("secret", session_id, ""), del_by_prefix=True, namespace=ns)


def worker_of(namespace: str, session_id: str) -> str | None:
    value = internal_kv._internal_kv_get(_key("session", session_id), namespace=_ns(namespace))
    return value.decode() if value else None


def session_of(namespace: str, worker: str) -> str | None:
    value = internal_kv._internal_kv_get(_key("worker", worker), namespace=_ns(namespace))
    return value.decode() if value else None


def all_sessions(namespace: str) -> dict[str, str]:
    ns = _ns(namespace)
    out: dict[str, str] = {}
    for key in internal_kv._internal_kv_list(b"session/", namespace=ns) or []:
        worker = internal_kv._internal_kv_get(key, namespace=ns)
        if worker:
            out[key.decode().removeprefix("session/")] = worker.decode()
    return out


def remember_secret(namespace: str, session_id: str, token_id: str) -> None:
    """A client secret that opened an interview stays good for reconnecting to it, until it ends."""
    internal_kv._internal_kv_put(_key("secret", session_id, token_id), b"1", namespace=_ns(namespace))


def secret_opened(namespace: str, session_id: str, token_id: str) -> bool:
    return bool(internal_kv._internal_kv_exists(_key("secret", session_id, token_id), namespace=_ns(namespace)))
