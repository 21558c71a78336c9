"""Callers that share one round trip to Redis: each waits on a future, and one call answers
them all in order (the session claims opened at once, a worker's held bulk answers)."""

import asyncio
from collections.abc import Awaitable, Sequence
from typing import TypeVar

Answer = TypeVar("Answer")


async def answer_each(futures: Sequence[asyncio.Future[Answer]],
                      call: Awaitable[Sequence[Answer]]) -> None:
    """Each future gets its answer from `call`, or `call`'s exception (QueueUnavailable,
    mostly: each caller raises it); one whose caller gave up meanwhile is left alone."""
    try:
        answers = await call
    except Exception as exc:
        for future in futures:
            if not future.done():
                future.set_exception(exc)
        return
    for future, answer in zip(futures, answers, strict=True):
        if not future.done():
            future.set_result(answer)
