"""Server-sent events for a streamed request (`Accept: text/event-stream`): `stdout` and
`stderr` events carry output as it is produced ({"text": ...}), then one `result` event carries
the answer the request would have had (or an `error` event, the refusal it would have had). A
queued run says so first (`queued`, {"id": ...}: its job id, for GET /v1/jobs/{id})."""

import asyncio
import codecs
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from fastapi import Request

from service.store.output import OutputStream

EVENT_STREAM = "text/event-stream"
POLL_MS = 250  # the longest a read of the output waits before looking at the answer again
RESULT = "result"


def wants_events(request: Request) -> bool:
    accepted = (part.split(";")[0].strip() for part in request.headers.get("accept", "").split(","))
    return EVENT_STREAM in accepted


def event(name: str, data: bytes) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (name.encode(), data)


async def events(answer: Awaitable[bytes], output: OutputStream, request_id: str,
                 refusal: Callable[[BaseException], bytes | None],
                 first: bytes = b"") -> AsyncIterator[bytes]:
    """`first`, then the request's output pieces as they come, then its answer. `refusal` turns
    an exception of the answer into an error event's body (None: not a refusal, raised on)."""
    if first:
        yield first
    try:
        async for name, data in output_then_answer(answer, output, request_id):
            yield event(name, orjson.dumps({"text": data}) if name != RESULT else data)
    except Exception as exc:
        body = refusal(exc)
        if body is None:
            raise
        yield event("error", body)


async def output_then_answer(answer: Awaitable[bytes], output: OutputStream, request_id: str
                             ) -> AsyncIterator[tuple[str, Any]]:
    """("stdout" or "stderr", text) as the request's output comes, then (RESULT, its answer);
    the answer's exception is raised. The output stream is deleted at the end."""
    task = asyncio.ensure_future(answer)
    decoders = {name: codecs.getincrementaldecoder("utf-8")("replace")
                for name in ("stdout", "stderr")}
    after = "0"
    try:
        while True:
            done = task.done()
            pieces = await output.read(request_id, after, None if done else POLL_MS)
            for piece in pieces:
                after = piece.entry_id
                text = decoders[piece.stream].decode(piece.data)
                if text:
                    yield piece.stream, text
            if done and not pieces:
                break
        yield RESULT, task.result()
    finally:
        task.cancel()
        with contextlib.suppress(Exception):
            await output.forget(request_id)
