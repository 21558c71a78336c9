"""The consumer on a real Redis and a fake engine (tests/unit/fake_engine.py): a fault of the
worker's own is answered at once as a sandbox_error, never left for a reclaim to retry."""

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from service import wire
from service.models import Outcome, Priority
from service.result import ExecutionResult, Timing
from service.settings import Settings
from service.store import Store
from service.store.jobs import Claimed
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


async def test_behind_a_backlog_answers_go_together_in_the_script_that_claims_the_next(
        redis_url: str) -> None:
    settings = Settings(redis_url=redis_url, key_prefix=f"unit-{uuid.uuid4().hex[:8]}",
                        pool_size=4)
    store = Store.connect(settings)
    pool = ContainerPool(FakeEngine(), settings, Owner("unit", "w", "h", 1), "sandbox-python")
    pool.start()
    executor = Executor(LanguagePools(pool, {}, 1), settings, store.output)

    async def quick(job: wire.Job, under_way: Callable[[], None]) -> ExecutionResult:
        under_way()
        await asyncio.sleep(0.005)
        return ExecutionResult(id=job.id, outcome=Outcome.OK, timing=Timing(0, 5, 5, 0, 5),
                               stdout=job.id)

    executor.run = quick  # type: ignore[method-assign]
    answered_with_claims: list[str] = []
    scripts_answering = 0
    claim = store.jobs.claim

    async def counting_claim(*args: Any, **kwargs: Any) -> Claimed:
        nonlocal scripts_answering
        answered = [job.id for job, _ in kwargs.get("answered", ())]
        answered_with_claims.extend(answered)
        scripts_answering += bool(answered)
        return await claim(*args, **kwargs)

    store.jobs.claim = counting_claim  # type: ignore[method-assign]
    ids = [f"job-{i}" for i in range(30)]
    await store.jobs.enqueue([(job_id, b"{}") for job_id in ids], "", 0, Priority.BULK)
    consumer = Consumer(store, pool, executor, settings, "w1", "h")
    serving = asyncio.create_task(consumer.run(grace_s=1))
    results = {}
    for _ in range(500):  # until all are answered
        results = {job_id: (await store.jobs.status(job_id) or (None, None, None))[1]
                   for job_id in ids}
        if all(results.values()):
            break
        await asyncio.sleep(0.01)
    consumer.stop()
    await asyncio.wait_for(serving, 10)
    await pool.close()
    await store.close()
    assert {job_id: orjson.loads(body)["stdout"] for job_id, body in results.items()} == {
        job_id: job_id for job_id in ids}
    # While jobs were waiting, the answers claimed the next: all but the last few jobs; and
    # the answers of jobs that ended together went in one script.
    assert len(answered_with_claims) >= 20
    assert len(set(answered_with_claims)) == len(answered_with_claims)
    assert scripts_answering < len(answered_with_claims)
