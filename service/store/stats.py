"""Counters in Redis, shared by every API and worker process: each process's increments
(a Tally) written in one pipelined round trip, and the sums read back for /metrics and the
dashboard.
"""

from collections import defaultdict, deque
from dataclasses import dataclass, field

import orjson
from redis import asyncio as aioredis

from service.metrics import TENANT_JOBS, Family, Labels, SampleKey, bucket_bound, stored_field
from service.store.errors import translate_errors
from service.store.keys import Keys

# (bucket width in seconds, buckets kept): the last minute and the last hour.
MINUTE_WINDOW = (5, 12)
HOUR_WINDOW = (60, 60)
WINDOWS = {"minute": MINUTE_WINDOW, "hour": HOUR_WINDOW}
RECENT_LATENCIES = 2000
RECENT_ERRORS = 50


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


@dataclass(frozen=True)
class Overview:
    """What the dashboard reads in one round trip."""

    stored: dict[SampleKey, float]
    throughput: dict[str, dict[str, object]]
    latencies: list[bytes]
    errors: list[bytes]


class StatsStore:
    def __init__(self, redis: aioredis.Redis, keys: Keys):
        self._redis = redis
        self.keys = keys

    async def add(self, sent: Tally) -> None:
        """Add a process's increments to the sums, in one round trip."""
        with translate_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                self._queue_commands(pipe, sent)
                await pipe.execute()

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

    async def stored(self) -> dict[SampleKey, float]:
        with translate_errors():
            raw = await self._redis.hgetall(self.keys.metrics)
        return {_sample_key(k): float(v) for k, v in raw.items()}

    async def overview(self, now: float) -> Overview:
        """Totals, throughput windows, recent latencies and errors: one round trip."""
        buckets = {name: [int(now // width) - i for i in range(kept - 1, -1, -1)]
                   for name, (width, kept) in WINDOWS.items()}
        with translate_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(self.keys.metrics)
                pipe.lrange(self.keys.recent_latencies, 0, -1)
                pipe.lrange(self.keys.recent_errors, 0, -1)
                for name, (width, _) in WINDOWS.items():
                    for bucket in buckets[name]:
                        pipe.hgetall(self.keys.throughput(width, bucket))
                stored, latencies, errors, *counts = await pipe.execute()
        throughput: dict[str, dict[str, object]] = {}
        for name, (width, kept) in WINDOWS.items():
            mine, counts = counts[:kept], counts[kept:]
            throughput[name] = {"bucket_s": width, "start": buckets[name][0] * width,
                                "counts": [{k.decode(): int(v) for k, v in c.items()} for c in mine]}
        return Overview({_sample_key(k): float(v) for k, v in stored.items()}, throughput,
                        latencies, errors)

    async def last_minute_by_tenant(self, now: float) -> dict[str, int]:
        """Jobs answered in the last minute, per tenant."""
        width, kept = MINUTE_WINDOW
        with translate_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                for bucket in range(int(now // width) - kept + 1, int(now // width) + 1):
                    pipe.hgetall(self.keys.tenant_throughput(bucket))
                found = await pipe.execute()
        totals: dict[str, int] = defaultdict(int)
        for counts in found:
            for tenant, count in counts.items():
                totals[tenant.decode()] += int(count)
        return dict(totals)
