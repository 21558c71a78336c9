"""One request to a runner and its answer: send, wait (relaying streamed output), check that the
answer is this request's result, classify it. A run, a session's cell and a compile all go
through here; a runner that fails to answer raises RunnerGone (ours, not the code's).
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from service import runner_protocol as rp
from service.models import Outcome
from service.store.output import OutputStream
from service.worker.outcome import ABNORMAL, classify
from service.worker.output_relay import answer_relaying
from service.worker.runner_channel import RunnerChannel, RunnerGone


@dataclass(frozen=True)
class Answer:
    """The runner's report of one execution, and what it means."""

    report: dict[str, Any]
    outcome: Outcome
    why: str | None

    @property
    def reusable(self) -> bool:
        """Whether the container may serve again once its runner says ready."""
        return self.outcome not in ABNORMAL


async def exchange(channel: RunnerChannel, message: dict[str, Any], wait_s: float,
                   output: OutputStream | None = None,
                   sent: Callable[[], None] | None = None) -> Answer:
    """Send `message` and await its result for up to `wait_s`; with `output`, pieces of output
    the runner streams first are relayed there. `sent` is called once the runner has the
    request (the code starts then)."""
    request_id = message["id"]
    await channel.send(message)
    if sent is not None:
        sent()
    answer = (channel.receive() if output is None
              else answer_relaying(channel, request_id, output))
    try:
        report = await asyncio.wait_for(answer, wait_s)
    except TimeoutError as exc:
        raise RunnerGone("runner did not answer in time") from exc
    if report.get("op") != rp.OP_RESULT or report.get("id") != request_id:
        raise RunnerGone(f"runner failed: {report.get('error') or report.get('op')}")
    return Answer(report, *classify(report))
