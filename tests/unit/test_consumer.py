"""The consumer on a real Redis and a fake engine (tests/unit/fake_engine.py): a fault of the
worker's own is answered at once as a sandbox_error, never left for a reclaim to retry."""

import asyncio
import uuid

import orjson

from service.models import Outcome, Priority
from service.settings import Settings
from service.store import Store
from service.worker.consumer import Consumer
from service.worker.docker_engine import Owner
from service.worker.executor import Executor
from service.worker.pool import ContainerPool
from service.worker.pools import LanguagePools
from tests.unit.fake_engine import FakeEngine


async def test_a_fault_in_the_worker_is_answered_as_a_sandbox_error(redis_url: str) -> None:
    settings = Settings(redis_url=redis_url, key_prefix=f"unit-{uuid.uuid4().hex[:8]}",
                        pool_size=1)
    store = Store.connect(settings)
    pool = ContainerPool(FakeEngine(), settings, Owner("unit", "w", "h", 1), "sandbox-python")
    pool.start()
    executor = Executor(LanguagePools(pool, {}, 1), settings, store.output)

    async def broken(*_: object) -> None:
        raise RuntimeError("a bug")

    executor.run = broken  # type: ignore[method-assign]
    consumer = Consumer(store, pool, executor, settings, "w1", "h")
    serving = asyncio.create_task(consumer.run(grace_s=1))
    await store.jobs.enqueue([("job-1", b"{}")], "", 0, Priority.INTERACTIVE)
    result = None
    for _ in range(500):  # until answered
        _, result, _ = await store.jobs.status("job-1") or (None, None, None)
        if result:
            break
        await asyncio.sleep(0.01)
    consumer.stop()
    await asyncio.wait_for(serving, 10)
    await pool.close()
    await store.close()
    assert result is not None
    body = orjson.loads(result)
    assert (body["outcome"], body["message"]) == (Outcome.SANDBOX_ERROR,
                                                  "internal error in the worker")
