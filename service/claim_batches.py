"""Sessions opened at once share one claim script: an API process sends the claims waiting at
that moment together, and those that arrive meanwhile go in the next one.

Sixty-four opens at once then cost a few round trips to Redis instead of sixty-four, on one
connection instead of sixty-four opened for the burst (the Redis client opens a connection per
command in flight), and the script's own work is done in one go.
"""

import asyncio

from service.batched import answer_each
from service.store.session_claims import Claim, WarmClaims
from service.store.workers import WorkerRegistry

MAX_BATCH = 128  # claims per script: Redis serves nothing else while one runs


class ClaimBatcher:
    def __init__(self, claims: WarmClaims, cap: int, workers: WorkerRegistry):
        self.claims = claims
        self.cap = cap
        self.workers = workers  # a silent worker offers nothing
        self._waiting: list[tuple[Claim, asyncio.Future[tuple[str, str] | int]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def claim(self, claim: Claim) -> tuple[str, str] | int:
        """What WarmClaims.claim answers for this claim, sent with those waiting beside it."""
        future: asyncio.Future[tuple[str, str] | int] = asyncio.get_running_loop().create_future()
        self._waiting.append((claim, future))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_waiting(), name="session-claims")
        return await future

    async def _send_waiting(self) -> None:
        while self._waiting:
            batch = [(c, f) for c, f in self._waiting[:MAX_BATCH] if not f.done()]
            del self._waiting[:MAX_BATCH]
            if batch:  # a caller that gives up before its answer leaves its session to idle out
                await answer_each([f for _, f in batch],
                                  self.claims.claim([c for c, _ in batch], self.cap,
                                                    self.workers.live_since_ms()))
