"""Whether the caller of a synchronous request has hung up.

The API marks each synchronous request with `watch` (a router dependency); the Submitter,
while it waits for that request's results, races the wait against `hung_up()` and cancels the
request's jobs when the caller goes first. A request not marked (a test calling the
Submitter) never hangs up. An MCP call is not marked: the SDK cancels the call's task when its
caller goes, and the Submitter cancels the jobs of a wait that is itself cancelled. The mark is
a context variable, so it belongs to the request's own task.
"""

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from typing import Any

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]

_receive: ContextVar[Receive | None] = ContextVar("caller_receive", default=None)


def watch(receive: Receive) -> None:
    """Let waits in this request see its caller hang up (the ASGI `http.disconnect`).

    Only for requests whose body has been read whole before anything waits: the watcher reads
    the ASGI receive channel, where nothing but the disconnect is left to come."""
    _receive.set(receive)


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        continue


def hung_up() -> asyncio.Future[None] | None:
    """A future done once the caller of the current request hangs up; None outside of a watched
    request. Cancel it when done waiting."""
    receive = _receive.get()
    if receive is None:
        return None
    return asyncio.ensure_future(_disconnect(receive))
