"""Saves transcript items in order, exactly once, as each turn completes.

Items are queued in memory and appended through the control service (which retries through its
restarts); appends are idempotent by (session, sequence), so a retry after a lost response
cannot duplicate an item. `flush()` waits until everything queued so far is stored, and
`stored(sequence)` until the item with that sequence (and every one before it) is: the live
session tells the candidate about a turn only then, so a turn the candidate was told about
survives the actor process dying the moment after.
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
        self._progress = asyncio.Condition()
        self.saved = 0
        self.last_added = 0  # the sequence of the last item queued
        self.last_saved = 0  # every item up to this sequence is stored
        self.failed: PlatformError | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"transcript-{self._session_id}")

    def add(self, record: Record) -> None:
        self._queue.append(record)
        self.last_added = max(self.last_added, record.sequence)
        self._idle.clear()
        self._wake.set()

    async def flush(self) -> None:
        await self._idle.wait()

    async def stored(self, sequence: int) -> None:
        """Returns once the item `sequence` and all before it are stored (at once if they are)."""
        if self.last_saved >= sequence or (not self._queue and self._idle.is_set()):
            return
        async with self._progress:
            await self._progress.wait_for(lambda: self.last_saved >= sequence or self._idle.is_set())

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
                self.last_saved = max(self.last_saved, batch[-1].sequence)
                self.failed = None
                async with self._progress:
                    self._progress.notify_all()
            self._idle.set()
            async with self._progress:
                self._progress.notify_all()
