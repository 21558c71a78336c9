"""Counters shared by every API and worker process, kept in Redis.

Each process adds up what it sees in memory and flushes the increments in one pipelined round
trip (a worker at each heartbeat, an API process on a timer of the same period): nothing talks to
Redis per job or per request. Readers (/metrics, /v1/stats) see the sums of the whole deployment.
A process that dies loses at most one period of increments.
"""

import asyncio
import logging
import re
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

import orjson
from redis import asyncio as aioredis

from service import wire
from service.keys import Keys
from service.metrics import (
    CANCELLED,
    DEAD_LETTERED,
    HTTP_DURATION,
    JOBS,
    QUEUE_WAIT,
    RECLAIMED,
    RUN_TIME,
    TENANT_JOBS,
    Family,
    Labels,
    SampleKey,
    bucket_bound,
    stored_field,
)
from service.models import Outcome
from service.queue import QueueUnavailable, translate_errors

log = logging.getLogger(__name__)

# (bucket width in seconds, buckets kept): the last minute and the last hour.
MINUTE_WINDOW = (5, 12)
HOUR_WINDOW = (60, 60)
RECENT_LATENCIES = 2000
RECENT_ERRORS = 50

_LANGUAGE = re.compile(rb'"language":"([A-Za-z0-9_+.-]{1,32})"')
_OUTCOME = re.compile(rb'"outcome":"([a-z_]{1,32})"')
_TIMING_KEY = b'"timing":{'


@dataclass(frozen=True)
class JobSummary:
    language: str
    outcome: str
    queue_s: float
    run_s: float
    total_s: float


def job_language(payload: bytes) -> str:
    """A job's language without parsing its payload: JobSpec serializes `language` first."""
    found = _LANGUAGE.search(payload, 0, 128)
    return found.group(1).decode() if found else "unknown"


def summarize(job: wire.Job, result: bytes) -> JobSummary:
    """Outcome and timing of a result without parsing its (possibly megabytes of) output.

    `"timing":{` cannot occur inside a JSON string (its quotes would be escaped), and the
    fields before the result's own timing object are strings and scalars, so the first one is
    it (returned files come after it, and one of them may be named "timing").
    """
    found = _OUTCOME.search(result, 0, 512)
    start = result.find(_TIMING_KEY)
    if found is None or start < 0:
        body = orjson.loads(result)
        outcome, timing = body["outcome"], body["timing"]
    else:
        outcome = found.group(1).decode()
        start += len(_TIMING_KEY) - 1
        timing = orjson.loads(result[start:result.index(b"}", start) + 1])
    return JobSummary(job_language(job.payload), outcome, timing["queue_ms"] / 1000,
                      timing["run_ms"] / 1000, timing["total_ms"] / 1000)


def _sample_key(raw: bytes) -> SampleKey:
    name, labels = orjson.loads(raw)
    return name, tuple((k, v) for k, v in labels)


@dataclass
class Tally:
    """Increments not yet flushed."""

    counts: defaultdict[SampleKey, float] = field(default_factory=lambda: defaultdict(int))
    throughput: defaultdict[tuple[int, int, str], int] = field(
        default_factory=lambda: defaultdict(int))
    by_tenant: defaultdict[tuple[int, str], int] = field(default_factory=lambda: defaultdict(int))
    latencies: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT_LATENCIES))
    errors: deque[bytes] = field(default_factory=lambda: deque(maxlen=RECENT_ERRORS))

    def add(self, family: Family, labels: Labels = (), amount: float = 1) -> None:
        self.counts[(family.name, labels)] += amount

    def observe(self, family: Family, labels: Labels, seconds: float) -> None:
        le = bucket_bound(family, seconds)
        self.counts[(f"{family.name}_bucket", (*labels, ("le", le)))] += 1
        self.counts[(f"{family.name}_sum", labels)] += float(seconds)

    def answered(self, outcome: str, tenant: str, at: float) -> None:
        for width, _ in (MINUTE_WINDOW, HOUR_WINDOW):
            self.throughput[(width, int(at // width), outcome)] += 1
        self.by_tenant[(int(at // MINUTE_WINDOW[0]), tenant)] += 1
        self.counts[(TENANT_JOBS.name, (("tenant", tenant), ("outcome", outcome)))] += 1

    def merge(self, older: "Tally") -> None:
        """Take back the increments of a flush that failed."""
        for key, amount in older.counts.items():
            self.counts[key] += amount
        for key, count in older.throughput.items():
            self.throughput[key] += count
        for tenant_key, count in older.by_tenant.items():
            self.by_tenant[tenant_key] += count
        self.latencies.extendleft(reversed(older.latencies))
        self.errors.extendleft(reversed(older.errors))

    def __bool__(self) -> bool:
        return bool(self.counts or self.throughput or self.latencies or self.errors)


class Recorder:
    """One per process: records in memory, flush() sends the increments in one round trip."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, source: str):
        self.redis = redis
        self.keys = keys
        self.source = source
        self.tally = Tally()

    def job_done(self, job: wire.Job, result: bytes) -> None:
        job_sum = summarize(job, result)
        labels = (("language", job_sum.language), ("outcome", job_sum.outcome))
        self.tally.add(JOBS, labels)
        self.tally.observe(QUEUE_WAIT, labels, job_sum.queue_s)
        self.tally.observe(RUN_TIME, labels, job_sum.run_s)
        self.tally.answered(job_sum.outcome, job.tenant, time.time())
        self.tally.latencies.append(f"{job_sum.queue_s:.6f} {job_sum.run_s:.6f} {job_sum.total_s:.6f}")
        if job_sum.outcome == Outcome.SANDBOX_ERROR:
            self._error(job.id, orjson.loads(result).get("message") or "")

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
            with translate_errors():
                async with self.redis.pipeline(transaction=False) as pipe:
                    self._queue_commands(pipe, sent)
                    await pipe.execute()
        except QueueUnavailable as exc:
            self.tally.merge(sent)
            log.warning("metrics not flushed, keeping them", extra={"error": str(exc)})
        except asyncio.CancelledError:
            self.tally.merge(sent)  # the final flush at shutdown sends them
            raise

    def _queue_commands(self, pipe: aioredis.client.Pipeline, sent: Tally) -> None:
        for key, amount in sent.counts.items():
            if isinstance(amount, int):
                pipe.hincrby(self.keys.metrics, stored_field(key), amount)
            else:
                pipe.hincrbyfloat(self.keys.metrics, stored_field(key), amount)
        for (width, bucket, outcome), count in sent.throughput.items():
            key = self.keys.throughput(width, bucket)
            pipe.hincrby(key, outcome, count)
            pipe.expire(key, width * (HOUR_WINDOW[1] + 1))
        for (bucket, tenant), count in sent.by_tenant.items():
            key = self.keys.tenant_throughput(bucket)
            pipe.hincrby(key, tenant, count)
            pipe.expire(key, MINUTE_WINDOW[0] * (MINUTE_WINDOW[1] + 1))
        for key, items, cap in ((self.keys.recent_latencies, sent.latencies, RECENT_LATENCIES),
                                (self.keys.recent_errors, sent.errors, RECENT_ERRORS)):
            if items:
                pipe.lpush(key, *items)
                pipe.ltrim(key, 0, cap - 1)


def percentiles(values: list[float], points: tuple[int, ...] = (50, 95, 99)) -> dict[str, float]:
    """Nearest-rank percentiles; empty when there is nothing to rank."""
    if not values:
        return {}
    ranked = sorted(values)
    return {f"p{p}": ranked[max(0, -(-p * len(ranked) // 100) - 1)] for p in points}


class StatsReader:
    """The cluster-wide sums, for /metrics and the dashboard."""

    def __init__(self, redis: aioredis.Redis, keys: Keys):
        self.redis = redis
        self.keys = keys

    async def stored(self) -> dict[SampleKey, float]:
        with translate_errors():
            raw = await self.redis.hgetall(self.keys.metrics)
        return {_sample_key(k): float(v) for k, v in raw.items()}

    async def overview(self, now: float) -> dict[str, object]:
        """Totals, throughput windows, recent latency percentiles and errors: one round trip."""
        windows = {"minute": MINUTE_WINDOW, "hour": HOUR_WINDOW}
        buckets = {name: [int(now // width) - i for i in range(kept - 1, -1, -1)]
                   for name, (width, kept) in windows.items()}
        with translate_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(self.keys.metrics)
                pipe.lrange(self.keys.recent_latencies, 0, -1)
                pipe.lrange(self.keys.recent_errors, 0, -1)
                for name, (width, _) in windows.items():
                    for bucket in buckets[name]:
                        pipe.hgetall(self.keys.throughput(width, bucket))
                stored, latencies, errors, *counts = await pipe.execute()
        throughput = {}
        for name, (width, kept) in windows.items():
            mine, counts = counts[:kept], counts[kept:]
            throughput[name] = {"bucket_s": width, "start": buckets[name][0] * width,
                                "counts": [{k.decode(): int(v) for k, v in c.items()} for c in mine]}
        return {
            "totals": _totals({_sample_key(k): float(v) for k, v in stored.items()}),
            "throughput": throughput,
            "latency": _latency(latencies),
            "errors": [orjson.loads(e) for e in errors],
        }


async def last_minute_by_tenant(redis: aioredis.Redis, keys: Keys, now: float) -> dict[str, int]:
    """Jobs answered in the last minute, per tenant."""
    width, kept = MINUTE_WINDOW
    with translate_errors():
        async with redis.pipeline(transaction=False) as pipe:
            for bucket in range(int(now // width) - kept + 1, int(now // width) + 1):
                pipe.hgetall(keys.tenant_throughput(bucket))
            found = await pipe.execute()
    totals: dict[str, int] = defaultdict(int)
    for counts in found:
        for tenant, count in counts.items():
            totals[tenant.decode()] += int(count)
    return dict(totals)


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
