"""Sessions opened at once share one claim script: an API process sends the claims waiting at
that moment together, and those that arrive meanwhile go in the next one (coalesce.py).

Sixty-four opens at once then cost a few round trips to Redis instead of sixty-four, on one
connection instead of sixty-four opened for the burst (the Redis client opens a connection per
command in flight), and the script's own work is done in one go. A caller that gave up before
its claim's answer leaves its session to idle out unused.
"""

from service.coalesce import Coalescer
from service.store.session_claims import Claim, WarmClaims
from service.store.workers import WorkerRegistry

MAX_BATCH = 128  # claims per script: Redis serves nothing else while one runs


class ClaimBatcher:
    def __init__(self, claims: WarmClaims, cap: int, workers: WorkerRegistry):
        self.claims = claims
        self.cap = cap
        self.workers = workers  # a silent worker offers nothing
        self._coalescer: Coalescer[Claim, tuple[str, str] | int] = Coalescer(
            self._send, MAX_BATCH, "session-claims")

    async def claim(self, claim: Claim) -> tuple[str, str] | int:
        """What WarmClaims.claim answers for this claim, sent with those waiting beside it."""
        return await self._coalescer.submit(claim)

    async def _send(self, claims: list[Claim]) -> list[tuple[str, str] | int]:
        return await self.claims.claim(claims, self.cap, self.workers.live_since_ms())
