"""Workers in Redis: their heartbeats and self-descriptions, and the one rule of when a worker
counts as gone (HEARTBEATS_OF_SILENCE heartbeats without one).

The API processes read the live workers to send sessions where there is room, to answer the
probes and to fill the dashboard.
"""

from redis import asyncio as aioredis

from service import wire
from service.store.errors import translate_errors
from service.store.keys import Keys

HEARTBEATS_OF_SILENCE = 3  # a worker silent this many heartbeats counts as gone


class WorkerRegistry:
    def __init__(self, redis: aioredis.Redis, keys: Keys, heartbeat_s: float):
        self._redis = redis
        self.keys = keys
        self.silence_s = heartbeat_s * HEARTBEATS_OF_SILENCE

    async def heartbeat(self, worker_id: str, info: dict[str, str | int | float]) -> None:
        """The worker lives, as `info` describes it; its description expires with its silence."""
        with translate_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hset(self.keys.worker(worker_id), mapping=info)
                pipe.expire(self.keys.worker(worker_id), max(1, round(self.silence_s)))
                pipe.zadd(self.keys.workers, {worker_id: wire.now_ms()})
                await pipe.execute()

    def live_since_ms(self) -> float:
        """A worker whose last heartbeat is older than this (ms since the epoch) is gone."""
        return wire.now_ms() - self.silence_s * 1000

    async def live(self) -> list[dict[str, str]]:
        """Self-descriptions of the workers not silent."""
        with translate_errors():
            ids = await self._redis.zrangebyscore(self.keys.workers, self.live_since_ms(), "+inf")
            if not ids:
                return []
            async with self._redis.pipeline(transaction=False) as pipe:
                for worker_id in ids:
                    pipe.hgetall(self.keys.worker(worker_id.decode()))
                found = await pipe.execute()
        return [
            {"id": wid.decode(), **{k.decode(): v.decode() for k, v in info.items()}}
            for wid, info in zip(ids, found, strict=True) if info
        ]

    async def alive(self, worker_id: str) -> bool:
        """Whether the worker's last heartbeat is younger than its silence."""
        with translate_errors():
            last = await self._redis.zscore(self.keys.workers, worker_id)
        return last is not None and last > self.live_since_ms()

    async def forget(self, worker_id: str) -> None:
        with translate_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.delete(self.keys.worker(worker_id))
                pipe.zrem(self.keys.workers, worker_id)
                await pipe.execute()

