"""Exponential backoff for loops that retry what a failure of Redis or Docker interrupted, and
the check that lets such loops end when they are cancelled.

redis-py does not always let a cancellation through: now and then it turns the CancelledError
into one of its own errors, or swallows it and returns. A loop that caught that error (or got
that answer) and went on would never end, and a worker asked to stop would hang. So every loop
that runs until cancelled calls check_cancelled() on each turn, and the Redis error boundary
re-raises a cancellation it finds pending instead of reporting Redis as unavailable.
"""

import asyncio


def check_cancelled() -> None:
    """Raise CancelledError if the running task has been asked to stop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Backoff:
    def __init__(self, first_s: float = 0.1, max_s: float = 5.0):
        self.first_s = first_s
        self.max_s = max_s
        self.delay_s = first_s

    def reset(self) -> None:
        self.delay_s = self.first_s

    async def wait(self) -> None:
        """Sleep the current delay, then double it (up to the maximum)."""
        await asyncio.sleep(self.delay_s)
        self.delay_s = min(self.delay_s * 2, self.max_s)
