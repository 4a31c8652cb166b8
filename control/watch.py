"""Fan-out of session change notices to WatchSession streams in this process.

One database connection LISTENs for every watcher (control/db.py's Listener); a notice carries
only a session id and wakes that session's watchers, which then read what changed under their
own tenant's row-level security.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict

from interview_core.errors import ErrorCode, PlatformError

SESSION_EVENTS_CHANNEL = "interview_session_events"


class SessionEvents:
    def __init__(self, max_watchers_per_tenant: int) -> None:
        self._watchers: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._per_tenant: dict[uuid.UUID, int] = defaultdict(int)
        self._max_per_tenant = max_watchers_per_tenant

    def notify(self, session_id: str) -> None:
        for event in self._watchers.get(session_id, ()):
            event.set()

    def notify_all(self) -> None:
        """After the listener reconnects: notices may have been missed, so everyone looks."""
        for events in self._watchers.values():
            for event in events:
                event.set()

    def subscribe(self, tenant_id: uuid.UUID | None, session_id: str) -> asyncio.Event:
        """`tenant_id` None: the platform's own watcher (an actor), not counted against a tenant."""
        if tenant_id is not None:
            if self._per_tenant[tenant_id] >= self._max_per_tenant:
                raise PlatformError(ErrorCode.TOO_MANY_WATCHERS, "too many open WatchSession streams")
            self._per_tenant[tenant_id] += 1
        event = asyncio.Event()
        event.set()  # read the current state first
        self._watchers[session_id].add(event)
        return event

    def unsubscribe(self, tenant_id: uuid.UUID | None, session_id: str, event: asyncio.Event) -> None:
        if tenant_id is not None:
            self._per_tenant[tenant_id] -= 1
            if self._per_tenant[tenant_id] <= 0:
                del self._per_tenant[tenant_id]
        watchers = self._watchers.get(session_id)
        if watchers is not None:
            watchers.discard(event)
            if not watchers:
                del self._watchers[session_id]
