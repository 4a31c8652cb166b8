"""Event-loop lag: how late a timer fires on this process's loop. Every candidate's audio
waits behind whatever holds the loop, so a stall here is added latency for all of them; stalls
above a threshold are logged with their length, so they can be told from network delays."""

from __future__ import annotations

import asyncio
import logging
import time

log = logging.getLogger(__name__)


class LoopLag:
    def __init__(self, *, interval_s: float = 0.01, report_ms: float = 50.0) -> None:
        self.interval_s = interval_s
        self.report_ms = report_ms
        self.worst_ms = 0.0  # since the last `take_worst()`
        self.stalls = 0  # lags above report_ms
        self._task: asyncio.Task[None] | None = None

    def start(self, name: str) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(name), name="loop-lag")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def take_worst(self) -> float:
        worst, self.worst_ms = self.worst_ms, 0.0
        return worst

    async def _run(self, name: str) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            lag_ms = (time.perf_counter() - before - self.interval_s) * 1000
            self.worst_ms = max(self.worst_ms, lag_ms)
            if lag_ms > self.report_ms:
                self.stalls += 1
                log.warning("%s: event loop stalled %.0f ms", name, lag_ms)
