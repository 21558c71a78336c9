"""Counters shared by every API and worker process, kept in Redis (service/store/stats.py).

Each process adds up what it sees in memory and flushes the increments in one pipelined round
trip (a worker at each heartbeat, an API process on a timer of the same period): nothing talks to
Redis per job or per request. Readers (/metrics, /v1/stats) see the sums of the whole deployment.
A process that dies loses at most one period of increments.
"""

import asyncio
import logging
import re
import time
from collections import defaultdict

import orjson

from service import wire
from service.metrics import (
    CANCELLED,
    DEAD_LETTERED,
    HTTP_DURATION,
    JOBS,
    QUEUE_WAIT,
    RECLAIMED,
    RUN_TIME,
    SampleKey,
)
from service.models import Outcome
from service.result import ExecutionResult
from service.store import Store
from service.store.errors import QueueUnavailable
from service.store.stats import Tally

log = logging.getLogger(__name__)

_LANGUAGE = re.compile(rb'"language":"([A-Za-z0-9_+.-]{1,32})"')


def job_language(payload: bytes) -> str:
    """A job's language without parsing its payload: JobSpec serializes `language` first."""
    found = _LANGUAGE.search(payload, 0, 128)
    return found.group(1).decode() if found else "unknown"


class Recorder:
    """One per process: records in memory, flush() sends the increments in one round trip."""

    def __init__(self, store: Store, source: str):
        self.store = store
        self.source = source
        self.tally = Tally()

    def job_done(self, job: wire.Job, result: ExecutionResult) -> None:
        outcome, timing = result.outcome.value, result.timing
        queue_s, run_s, total_s = timing.queue_ms / 1000, timing.run_ms / 1000, timing.total_ms / 1000
        labels = (("language", job_language(job.payload)), ("outcome", outcome))
        self.tally.add(JOBS, labels)
        self.tally.observe(QUEUE_WAIT, labels, queue_s)
        self.tally.observe(RUN_TIME, labels, run_s)
        self.tally.answered(outcome, job.tenant, time.time())
        self.tally.latencies.append(f"{queue_s:.6f} {run_s:.6f} {total_s:.6f}")
        if result.outcome is Outcome.SANDBOX_ERROR:
            self._error(job.id, result.message or "")

    def reclaimed(self, count: int) -> None:
        if count:
            self.tally.add(RECLAIMED, (), count)

    def dead_lettered(self, job: wire.Job, deliveries: int) -> None:
        self.tally.add(DEAD_LETTERED)
        self.tally.add(JOBS, (("language", job_language(job.payload)),
                              ("outcome", str(Outcome.SANDBOX_ERROR))))
        self.tally.answered(str(Outcome.SANDBOX_ERROR), job.tenant, time.time())
        self._error(job.id, f"dead-lettered after {deliveries} deliveries without an answer")

    def request(self, route: str, status: int, seconds: float) -> None:
        self.tally.observe(HTTP_DURATION, (("route", route), ("status", str(status))), seconds)

    def _error(self, job_id: str, message: str) -> None:
        self.tally.errors.append(orjson.dumps(
            {"time": time.time(), "job_id": job_id, "source": self.source, "message": message}))

    async def flush(self) -> None:
        """Send what was recorded since the last flush; on failure keep it for the next one."""
        if not self.tally:
            return
        sent, self.tally = self.tally, Tally()
        try:
            await self.store.stats.add(sent)
        except QueueUnavailable as exc:
            self.tally.merge(sent)
            log.warning("metrics not flushed, keeping them", extra={"error": str(exc)})
        except asyncio.CancelledError:
            self.tally.merge(sent)  # the final flush at shutdown sends them
            raise

def percentiles(values: list[float], points: tuple[int, ...] = (50, 95, 99)) -> dict[str, float]:
    """Nearest-rank percentiles; empty when there is nothing to rank."""
    if not values:
        return {}
    ranked = sorted(values)
    return {f"p{p}": ranked[max(0, -(-p * len(ranked) // 100) - 1)] for p in points}


async def dashboard_overview(store: Store, now: float) -> dict[str, object]:
    """The cluster-wide totals, throughput windows, recent latency percentiles and errors, for
    the dashboard: one round trip."""
    found = await store.stats.overview(now)
    return {
        "totals": _totals(found.stored),
        "throughput": found.throughput,
        "latency": _latency(found.latencies),
        "errors": [orjson.loads(e) for e in found.errors],
    }


def _totals(stored: dict[SampleKey, float]) -> dict[str, object]:
    outcomes: dict[str, int] = defaultdict(int)
    for (name, labels), value in stored.items():
        if name == JOBS.name:
            outcomes[dict(labels)["outcome"]] += int(value)
    return {
        "jobs": sum(outcomes.values()),
        "outcomes": dict(outcomes),
        "reclaimed": int(stored.get((RECLAIMED.name, ()), 0)),
        "dead_lettered": int(stored.get((DEAD_LETTERED.name, ()), 0)),
        "cancelled": int(stored.get((CANCELLED.name, ()), 0)),
    }


def _latency(raw: list[bytes]) -> dict[str, object]:
    columns: list[list[float]] = [[], [], []]
    for entry in raw:
        for column, value in zip(columns, entry.split(), strict=False):
            column.append(float(value))
    queue_s, run_s, total_s = columns
    return {"samples": len(raw), "queue_s": percentiles(queue_s), "run_s": percentiles(run_s),
            "total_s": percentiles(total_s)}
