"""Saves transcript items in order, exactly once, as each turn completes.

Items are queued in memory and appended through the control service (which retries through its
restarts); appends are idempotent by (session, sequence), so a retry after a lost response
cannot duplicate an item. `flush()` waits until everything queued so far is stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from actors.interview_flow import Record
from interview.v1 import resources_pb2
from interview_core.errors import PlatformError

log = logging.getLogger(__name__)

SPEAKERS = {"interviewer": resources_pb2.SPEAKER_INTERVIEWER, "candidate": resources_pb2.SPEAKER_CANDIDATE}

AppendFn = Callable[[str, list[resources_pb2.TranscriptItem]], Awaitable[object]]


def to_item(record: Record) -> resources_pb2.TranscriptItem:
    return resources_pb2.TranscriptItem(
        sequence=record.sequence, speaker=SPEAKERS[record.speaker], text=record.text,  # type: ignore[arg-type]
        audio_start_ms=record.start_ms, audio_end_ms=record.end_ms)


class TranscriptWriter:
    def __init__(self, session_id: str, append: AppendFn, *, batch: int = 20) -> None:
        self._session_id = session_id
        self._append = append
        self._batch = batch
        self._queue: list[Record] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.saved = 0
        self.failed: PlatformError | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"transcript-{self._session_id}")

    def add(self, record: Record) -> None:
        self._queue.append(record)
        self._idle.clear()
        self._wake.set()

    async def flush(self) -> None:
        await self._idle.wait()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = self._queue[: self._batch]
                try:
                    await self._append(self._session_id, [to_item(r) for r in batch])
                except PlatformError as exc:
                    # Retryable errors were retried by the client for a minute: keep the items
                    # and try again, never drop them.
                    self.failed = exc
                    log.warning("session %s: saving transcript failed (%s); will retry",
                                self._session_id, exc.code.code)
                    await asyncio.sleep(2.0)
                    continue
                del self._queue[: len(batch)]
                self.saved += len(batch)
                self.failed = None
            self._idle.set()
