"""Exponential backoff for loops that retry what a failure of Redis or Docker interrupted."""

import asyncio


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
