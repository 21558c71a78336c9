"""Times every request by route template and status; flushes the counts on a timer.

The flush loop lives with the application's lifespan: it starts with the app and sends what is
left when the server announces the shutdown, before the app closes.
"""

import asyncio
import contextlib
import os
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.settings import Settings
from service.stats import Recorder
from service.store import Store

UNMATCHED = "unmatched"  # one label for every unknown path, so scanners cannot grow the series


class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings):
        self.app = app
        self.settings = settings
        self.recorder: Recorder | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
        elif scope["type"] == "http" and self.recorder is not None:
            await self._timed(scope, receive, send, self.recorder)
        else:
            await self.app(scope, receive, send)

    async def _timed(self, scope: Scope, receive: Receive, send: Send, recorder: Recorder) -> None:
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = scope.get("route")
            recorder.request(getattr(route, "path", UNMATCHED), status,
                             time.perf_counter() - started)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        store = Store.for_counters(self.settings)
        recorder = Recorder(store, f"api-{os.getpid()}")
        self.recorder = recorder
        flusher = asyncio.create_task(self._flush_forever(recorder), name="metrics-flush")

        async def receive_and_flush() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flusher
                await recorder.flush()
                await store.close()
            return message

        await self.app(scope, receive_and_flush, send)

    async def _flush_forever(self, recorder: Recorder) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            await recorder.flush()
