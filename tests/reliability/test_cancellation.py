"""A process asked to stop must stop. Its loops that talk to Redis end when cancelled, wherever
in a Redis call the cancellation lands, although redis-py now and then turns a cancellation
into one of its own errors or swallows it."""

import asyncio
import contextlib
import random
import uuid

from service.settings import Settings
from service.store import QueueUnavailable, Store

ROUNDS = 300


def store(redis_url: str) -> Store:
    """As a worker makes its own."""
    return Store.connect(Settings(redis_url=redis_url,
                                     key_prefix=f"test-{uuid.uuid4().hex[:8]}"))


async def test_a_retrying_loop_ends_wherever_it_is_cancelled(redis_url: str) -> None:
    worker = store(redis_url)

    async def heartbeat_forever() -> None:  # the shape of the worker's heartbeat loop
        while True:
            with contextlib.suppress(QueueUnavailable):
                await worker.workers.heartbeat("w", {"busy": 0})
                await worker.jobs.keep_claimed("w", [])

    for _ in range(ROUNDS):
        task = asyncio.create_task(heartbeat_forever())
        await asyncio.sleep(random.uniform(0, 0.005))
        task.cancel()
        await asyncio.wait([task], timeout=5)
        assert task.cancelled(), "the loop went on after its cancellation"
    await worker.close()


async def test_the_reply_listener_stops_wherever_it_is_cancelled(redis_url: str) -> None:
    api = store(redis_url)
    for i in range(ROUNDS // 3):
        listener = api.reply_listener(f"api-{i}")
        listener.start()
        await asyncio.sleep(random.uniform(0, 0.005))
        await asyncio.wait_for(listener.stop(), 10)
    await api.close()
