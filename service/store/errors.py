"""The Redis error boundary: every call to Redis passes translate_errors, which turns Redis's
exceptions into ours, and the refusals a store hands back to its callers."""

import asyncio
import contextlib
from collections.abc import Iterator

from redis.exceptions import RedisError


class QueueUnavailable(Exception):
    """Redis cannot be reached or refused the command: our failure, retry later."""


class QueueFull(Exception):
    """The lane holds as many jobs as it may: back off and retry."""


class QuotaExceeded(Exception):
    """The tenant has as many jobs waiting or running as its max_queued: back off and retry."""


def raise_if_refused(admitted: int) -> None:
    """The exception for an admission script's answer: 1 admitted, 0 queue full, -1 quota."""
    if admitted == 0:
        raise QueueFull
    if admitted < 0:
        raise QuotaExceeded


def raise_if_cancelled() -> None:
    """Raise CancelledError if the running task has been asked to stop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Redis's exceptions become ours at this boundary, which every Redis call passes.

    It also hands back a cancellation redis-py lost: now and then redis-py turns the
    CancelledError of a cancelled call into one of its own errors, or swallows it and returns.
    A loop that went on after that would never end (a worker asked to stop would hang), so a
    cancellation still pending when a call ends, either way, is raised here.
    """
    try:
        yield
    except (RedisError, OSError) as exc:
        raise_if_cancelled()
        raise QueueUnavailable(str(exc) or type(exc).__name__) from exc
    raise_if_cancelled()


@contextlib.contextmanager
def quietly() -> Iterator[None]:
    """For clean-ups that may fail unnoticed (a stream that expires anyway): Redis's
    exceptions are dropped, nothing is translated."""
    with contextlib.suppress(RedisError, OSError):
        yield
