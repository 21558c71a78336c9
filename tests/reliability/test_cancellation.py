"""A process asked to stop must stop. Its loops that talk to Redis end when cancelled, wherever
in a Redis call the cancellation lands, although redis-py now and then turns a cancellation
into one of its own errors or swallows it."""

import asyncio
import contextlib
import random
import uuid

from redis import asyncio as aioredis

from service.keys import Keys
from service.queue import JobQueue, QueueUnavailable
from service.replies import ReplyListener

ROUNDS = 300


def client(redis_url: str) -> aioredis.Redis:
    """As the worker and the API make theirs."""
    return aioredis.from_url(redis_url, socket_keepalive=True, socket_timeout=30,
                             health_check_interval=30)


async def test_a_retrying_loop_ends_wherever_it_is_cancelled(redis_url: str) -> None:
    redis = client(redis_url)
    queue = JobQueue(redis, Keys(f"test-{uuid.uuid4().hex[:8]}"), 60, 1000)

    async def heartbeat_forever() -> None:  # the shape of the worker's heartbeat loop
        while True:
            with contextlib.suppress(QueueUnavailable):
                await queue.heartbeat("w", {"busy": 0}, ttl_s=5)
                await queue.keep_claimed("w", [])

    for _ in range(ROUNDS):
        task = asyncio.create_task(heartbeat_forever())
        await asyncio.sleep(random.uniform(0, 0.005))
        task.cancel()
        await asyncio.wait([task], timeout=5)
        assert task.cancelled(), "the loop went on after its cancellation"
    await redis.aclose()


async def test_the_reply_listener_stops_wherever_it_is_cancelled(redis_url: str) -> None:
    redis = client(redis_url)
    keys = Keys(f"test-{uuid.uuid4().hex[:8]}")
    for i in range(ROUNDS // 3):
        listener = ReplyListener(redis, keys, f"api-{i}")
        listener.start()
        await asyncio.sleep(random.uniform(0, 0.005))
        await asyncio.wait_for(listener.stop(), 10)
    await redis.aclose()
