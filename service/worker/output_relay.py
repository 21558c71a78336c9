"""The worker's half of streamed output: pieces a runner sends before its answer go to the
request's output stream (service/store/output.py) as they come."""

import contextlib
from typing import Any

from service import runner_protocol as rp
from service.store import QueueUnavailable
from service.store.output import OutputStream
from service.worker.runner_channel import RunnerChannel


async def answer_relaying(channel: RunnerChannel, request_id: str,
                          output: OutputStream) -> dict[str, Any]:
    """The runner's answer to a request; output pieces it sends first are relayed. A piece
    Redis cannot take is dropped: the answer still carries the whole output."""
    while True:
        message = await channel.receive()
        if message.get("op") != rp.OP_OUTPUT:
            return message
        with contextlib.suppress(QueueUnavailable):
            await output.append(request_id, str(message.get("stream")), str(message.get("data")))
