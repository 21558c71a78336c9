"""The live workers as an API process sees them when it opens sessions: read from their
heartbeats at most every WORKERS_FRESH_S, so that a burst of opens reads them once."""

import asyncio

from service.queue import JobQueue

WORKERS_FRESH_S = 0.5  # how long an API process uses the live workers it read


class LiveWorkers:
    def __init__(self, queue: JobQueue, silence_s: float):
        self.queue = queue
        self.silence_s = silence_s
        self._workers_read: asyncio.Future[list[dict[str, str]]] | None = None
        self._workers_at = 0.0

    async def read(self) -> list[dict[str, str]]:
        """The live workers' descriptions; callers at once all wait on the same read."""
        loop = asyncio.get_running_loop()
        if self._workers_read is None or (self._workers_read.done()
                                          and loop.time() - self._workers_at >= WORKERS_FRESH_S):
            self._workers_at = loop.time()
            self._workers_read = asyncio.ensure_future(self.queue.live_workers(self.silence_s))
        try:
            return await asyncio.shield(self._workers_read)
        except BaseException:
            if self._workers_read.done():
                self._workers_read = None  # a failed read is not kept
            raise
