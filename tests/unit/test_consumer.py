"""The consumer on a real Redis and a fake engine (tests/unit/fake_engine.py): a fault of the
worker's own is answered at once as a sandbox_error, never left for a reclaim to retry; behind a
backlog, answers go together in the script that claims the next jobs."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
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


@contextlib.asynccontextmanager
async def consumer_serving(redis_url: str, pool_size: int,
                           run: Callable[..., Any]) -> AsyncIterator[Store]:
    """A consumer serving a fresh key prefix, its executions done by `run` in place of the
    executor's; its store, until it has stopped."""
    settings = Settings(redis_url=redis_url, key_prefix=f"unit-{uuid.uuid4().hex[:8]}",
                        pool_size=pool_size)
    store = Store.connect(settings)
    pool = ContainerPool(FakeEngine(), settings, Owner("unit", "w", "h", 1), "sandbox-python")
    pool.start()
    executor = Executor(LanguagePools(pool, {}, 1), settings, store.output)
    executor.run = run  # type: ignore[method-assign]
    consumer = Consumer(store, pool, executor, settings, "w1", "h")
    serving = asyncio.create_task(consumer.run(grace_s=1))
    try:
        yield store
    finally:
        consumer.stop()
        await asyncio.wait_for(serving, 10)
        await pool.close()
        await store.close()


async def results(store: Store, ids: list[str]) -> dict[str, bytes | None]:
    """The jobs' results once all are answered (or after 5 s, what there is)."""
    found: dict[str, bytes | None] = {}
    for _ in range(500):
        found = {job_id: (await store.jobs.status(job_id) or (None, None, None))[1]
                 for job_id in ids}
        if all(found.values()):
            break
        await asyncio.sleep(0.01)
    return found


async def test_a_fault_in_the_worker_is_answered_as_a_sandbox_error(redis_url: str) -> None:
    async def broken(*_: object) -> None:
        raise RuntimeError("a bug")

    async with consumer_serving(redis_url, 1, broken) as store:
        await store.jobs.enqueue([("job-1", b"{}")], "", 0, Priority.INTERACTIVE)
        result = (await results(store, ["job-1"]))["job-1"]
    assert result is not None
    body = orjson.loads(result)
    assert (body["outcome"], body["message"]) == (Outcome.SANDBOX_ERROR,
                                                  "internal error in the worker")


async def test_behind_a_backlog_answers_go_together_in_the_script_that_claims_the_next(
        redis_url: str) -> None:
    async def quick(job: wire.Job, under_way: Callable[[], None]) -> ExecutionResult:
        under_way()
        await asyncio.sleep(0.005)
        return ExecutionResult(id=job.id, outcome=Outcome.OK, timing=Timing(0, 5, 5, 0, 5),
                               stdout=job.id)

    answered_with_claims: list[str] = []
    scripts_answering = 0
    ids = [f"job-{i}" for i in range(30)]
    async with consumer_serving(redis_url, 4, quick) as store:
        claim = store.jobs.claim

        async def counting_claim(*args: Any, **kwargs: Any) -> Claimed:
            nonlocal scripts_answering
            answered = [job.id for job, _ in kwargs.get("answered", ())]
            answered_with_claims.extend(answered)
            scripts_answering += bool(answered)
            return await claim(*args, **kwargs)

        store.jobs.claim = counting_claim  # type: ignore[method-assign]
        await store.jobs.enqueue([(job_id, b"{}") for job_id in ids], "", 0, Priority.BULK)
        found = await results(store, ids)
    assert {job_id: orjson.loads(body or b"{}").get("stdout") for job_id, body in found.items()
            } == {job_id: job_id for job_id in ids}
    # While jobs were waiting, the answers claimed the next: all but the last few jobs; and
    # the answers of jobs that ended together went in one script.
    assert len(answered_with_claims) >= 20
    assert len(set(answered_with_claims)) == len(answered_with_claims)
    assert scripts_answering < len(answered_with_claims)
