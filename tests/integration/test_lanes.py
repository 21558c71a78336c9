"""Priority lanes: workers take interactive jobs first, bulk jobs fill the rest of their room,
and a bulk backlog never holds an interactive job back."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio
from redis import asyncio as aioredis

from service.models import JobState, Priority
from service.settings import Settings
from service.store import Store
from service.store.errors import QueueFull
from service.store.jobs import ENQUEUE_PER_SCRIPT, JobStore
from service.store.keys import WORKER_GROUP
from service.tenants import ANONYMOUS, Tenant
from tests.support import served, wait_done

INTERACTIVE, BULK = Priority.INTERACTIVE, Priority.BULK


@pytest_asyncio.fixture
async def queue(redis_url: str) -> AsyncIterator[JobStore]:
    store = Store.connect(Settings(redis_url=redis_url, key_prefix=f"test-{uuid.uuid4().hex[:8]}",
                                      result_ttl_s=60, max_queue_depth=1000))
    await store.jobs.ensure_group()
    yield store.jobs
    await store.close()


async def enqueue(queue: JobStore, lane: Priority, count: int) -> list[str]:
    ids = [uuid.uuid4().hex for _ in range(count)]
    for job_id in ids:
        await queue.enqueue([(job_id, b"{}")], "", 0, lane)
    return ids


async def test_a_claim_takes_interactive_jobs_first_and_fills_its_room_with_bulk(
        queue: JobStore) -> None:
    bulk = await enqueue(queue, BULK, 5)
    interactive = await enqueue(queue, INTERACTIVE, 2)
    jobs = (await queue.claim("w1", 3)).jobs
    assert [(job.lane, job.id) for job in jobs] == [
        (INTERACTIVE, interactive[0]), (INTERACTIVE, interactive[1]), (BULK, bulk[0])]
    for job in jobs:
        assert (await queue.status(job.id))[0] is JobState.RUNNING
    rest = (await queue.claim("w2", 10)).jobs
    assert [job.id for job in rest] == bulk[1:]
    assert await queue.depths() == {"interactive": 2, "bulk": 5}  # running, not yet answered


async def test_a_job_cancelled_while_queued_is_dropped_at_claim(queue: JobStore,
                                                                redis_url: str) -> None:
    first, second = await enqueue(queue, BULK, 2)
    assert await queue.tenant_jobs([ANONYMOUS]) == {ANONYMOUS: 2}
    assert await queue.cancel([first], "gone", ANONYMOUS) == [JobState.QUEUED]
    assert await queue.tenant_jobs([ANONYMOUS]) == {ANONYMOUS: 1}  # no longer counts against its quota
    claimed = await queue.claim("w1", 5)
    assert claimed.read == 2 and [job.id for job in claimed.jobs] == [second]
    assert await queue.depths() == {"interactive": 0, "bulk": 1}  # the cancelled one retired
    async with aioredis.from_url(redis_url) as redis:
        pending = await redis.xpending(queue.keys.jobs(BULK, ANONYMOUS), WORKER_GROUP)
    assert pending["pending"] == 1
    state, result, _ = await queue.status(first)
    assert state is JobState.DONE and b'"outcome":"cancelled"' in result


async def test_a_cancel_after_the_result_leaves_the_result(queue: JobStore) -> None:
    (job_id,) = await enqueue(queue, INTERACTIVE, 1)
    (job,) = (await queue.claim("w1", 1)).jobs
    assert await queue.complete(job, b'{"outcome":"ok"}')
    assert await queue.cancel([job_id, "unknown"], "late", ANONYMOUS) == [JobState.DONE, None]
    assert await queue.status(job_id) == (JobState.DONE, b'{"outcome":"ok"}', ANONYMOUS)


async def test_a_completion_after_a_cancel_is_not_a_second_answer(queue: JobStore) -> None:
    (job_id,) = await enqueue(queue, INTERACTIVE, 1)
    (job,) = (await queue.claim("w1", 1)).jobs
    assert await queue.cancel([job_id], "gone", ANONYMOUS) == [JobState.RUNNING]
    # The worker running it is told, on its own cancel stream.
    _, told = await queue.read_cancels("w1", "0", 100)
    assert told == [job_id]
    assert not await queue.complete(job, b'{"outcome":"ok"}')
    _, result, _ = await queue.status(job_id)
    assert b'"outcome":"cancelled"' in result
    assert await queue.depths() == {"interactive": 0, "bulk": 0}


async def test_a_lane_is_claimed_only_up_to_its_cap_and_what_is_left_is_said(queue: JobStore) -> None:
    bulk = await enqueue(queue, BULK, 5)
    interactive = await enqueue(queue, INTERACTIVE, 2)
    claimed = await queue.claim("w1", 10, {BULK: 1})
    assert [job.id for job in claimed.jobs] == [*interactive, bulk[0]]
    assert claimed.left == {BULK}
    assert (await queue.claim("w1", 10, {BULK: 0})).read == 0
    rest = await queue.claim("w2", 10)
    assert [job.id for job in rest.jobs] == bulk[1:] and rest.left == set()
    more = await enqueue(queue, INTERACTIVE, 2)
    claimed = await queue.claim("w1", 1)
    assert [job.id for job in claimed.jobs] == more[:1] and claimed.left == {INTERACTIVE}


async def test_a_wait_for_jobs_queued_is_woken_by_one(queue: JobStore) -> None:
    mark = await queue.queued_mark()
    assert await queue.wait_queued(mark, 100) == mark  # nothing queued: waited, same mark
    waiting = asyncio.create_task(queue.wait_queued(mark, 60_000))
    await asyncio.sleep(0.3)
    await enqueue(queue, BULK, 1)
    woken = await asyncio.wait_for(waiting, 30)  # woken, not left to its minute
    assert woken != mark and woken == await queue.queued_mark()
    await queue.enqueue([(uuid.uuid4().hex, b"{}"), (uuid.uuid4().hex, b"{}")], "", 0,
                        INTERACTIVE)
    assert await queue.wait_queued(woken, 100) != woken  # a batch wakes it too


@pytest.fixture(scope="module")
def one_container(redis_url: str, docker_engine: None) -> Iterator[httpx.Client]:
    with served(redis_url, {"SANDBOX_POOL_SIZE": "1", "SANDBOX_INTERACTIVE_MAX_ITEMS": "2"}) as c:
        yield c


async def test_a_claim_answers_the_jobs_it_is_given_before_it_claims(queue: JobStore) -> None:
    """A worker answers jobs and claims the next in one script: the answers are published
    first (the answered jobs no longer count as the tenant's), and an answer that comes after
    another (here, a cancel's) is not kept."""
    first, second, third = await enqueue(queue, BULK, 3)
    one, two = (await queue.claim("w1", 2)).jobs
    assert await queue.cancel([second], "gone", ANONYMOUS) == [JobState.RUNNING]
    claimed = await queue.claim("w1", 2, answered=[(one, b'{"outcome":"ok","n":1}'),
                                                   (two, b'{"outcome":"ok","n":2}')])
    assert claimed.kept == [True, False]
    assert [job.id for job in claimed.jobs] == [third] and claimed.left == set()
    assert await queue.status(first) == (JobState.DONE, b'{"outcome":"ok","n":1}', ANONYMOUS)
    _, result, _ = await queue.status(second)
    assert b'"outcome":"cancelled"' in result
    assert await queue.depths() == {"interactive": 0, "bulk": 1}  # the third, running
    assert await queue.tenant_jobs([ANONYMOUS]) == {ANONYMOUS: 1}


async def test_a_tenant_at_its_max_running_gets_the_next_jobs_of_the_claim_that_answers(
        queue: JobStore) -> None:
    team = Tenant("team", max_running=2)
    ids = [uuid.uuid4().hex for _ in range(4)]
    await queue.enqueue([(job_id, b"{}") for job_id in ids], "", 0, BULK, team)
    running = (await queue.claim("w1", 4)).jobs
    assert [job.id for job in running] == ids[:2]  # its max_running
    assert (await queue.claim("w1", 2)).jobs == []  # nothing more while both run
    claimed = await queue.claim("w1", 2, answered=[(job, b"{}") for job in running])
    assert claimed.kept == [True, True]
    assert [job.id for job in claimed.jobs] == ids[2:]  # the answers went first


async def test_results_answered_in_one_script_each_keep_their_own(queue: JobStore) -> None:
    ids = await enqueue(queue, BULK, 3)
    first, second, third = (await queue.claim("w1", 3)).jobs
    assert await queue.cancel([second.id], "gone", ANONYMOUS) == [JobState.RUNNING]
    kept = await queue.complete_many([(job, b'{"n":"%s"}' % job.id.encode())
                                      for job in (first, second, third)])
    assert kept == [True, False, True]  # the cancel answered the second first
    for job_id in (ids[0], ids[2]):
        assert await queue.status(job_id) == (JobState.DONE, b'{"n":"%s"}' % job_id.encode(),
                                              ANONYMOUS)
    assert b'"outcome":"cancelled"' in (await queue.status(ids[1]))[1]
    assert await queue.depths() == {"interactive": 0, "bulk": 0}
    assert await queue.tenant_jobs([ANONYMOUS]) == {ANONYMOUS: 0}


async def test_a_batch_larger_than_a_script_is_queued_whole_or_not_at_all(
        queue: JobStore) -> None:
    count = ENQUEUE_PER_SCRIPT * 2 + 7
    ids = [uuid.uuid4().hex for _ in range(count)]
    await queue.enqueue([(job_id, b"{}") for job_id in ids], "", 0, BULK)
    claimed = await queue.claim("w1", count)
    assert [job.id for job in claimed.jobs] == ids  # in order, each once
    with pytest.raises(QueueFull):  # the lane holds 1,000: this batch is refused whole
        await queue.enqueue([(uuid.uuid4().hex, b"{}") for _ in range(1000 - count + 1)], "", 0,
                            BULK)
    assert await queue.depths() == {"interactive": 0, "bulk": count}


def test_an_interactive_job_overtakes_a_bulk_backlog(one_container: httpx.Client) -> None:
    client = one_container
    code = "import time; time.sleep(0.3); print('b')"
    backlog = [client.post("/v1/jobs", json={"code": code, "priority": "bulk"}).json()["id"]
               for _ in range(12)]
    urgent = client.post("/v1/jobs", json={"code": "print('i')"}).json()["id"]
    assert wait_done(client, urgent)["result"]["stdout"] == "i\n"
    states = [client.get(f"/v1/jobs/{job_id}").json()["state"] for job_id in backlog]
    # One container: the bulk job running when the interactive one arrived may have ended
    # (and the next one started just before the urgent job was queued); the rest still wait.
    assert states.count("done") <= 2
    assert states.count("queued") >= 9
    for job_id in backlog:
        client.delete(f"/v1/jobs/{job_id}")


def test_priority_within_what_the_operator_allows(one_container: httpx.Client) -> None:
    client = one_container
    small = client.post("/v1/batch", json={"items": [{"code": "print(1)"}] * 2,
                                           "priority": "interactive"})
    assert [r["stdout"] for r in small.json()["results"]] == ["1\n", "1\n"]
    large = client.post("/v1/batch", json={"items": [{"code": "print(1)"}] * 3,
                                           "priority": "interactive"})
    assert large.status_code == 422
    assert large.json()["error"] == "priority_not_allowed"
    judged = client.post("/v1/judge", json={"code": "print(1)", "priority": "interactive",
                                            "cases": [{"expected_stdout": "1"}] * 3})
    assert judged.json()["error"] == "priority_not_allowed"
    per_item = client.post("/v1/batch", json={"items": [{"code": "", "priority": "bulk"}]})
    assert per_item.json()["error"] == "priority_per_item"
    assert per_item.json()["details"][0]["loc"] == ["body", "items", 0]
    bad = client.post("/v1/run", json={"code": "", "priority": "urgent"})
    assert (bad.status_code, bad.json()["error"]) == (422, "invalid_request")
    single = client.post("/v1/run", json={"code": "print(2)", "priority": "bulk"})
    assert single.json()["stdout"] == "2\n"


@pytest.fixture(scope="module")
def one_cpu_slot(redis_url: str, docker_engine: None) -> Iterator[httpx.Client]:
    with served(redis_url, {"SANDBOX_POOL_SIZE": "6", "SANDBOX_CPU_SLOTS": "1"}) as client:
        yield client


def test_bulk_jobs_are_claimed_only_a_few_ahead_of_what_can_start(
        one_cpu_slot: httpx.Client) -> None:
    """One CPU slot, six containers: of six busy bulk jobs, the worker holds the one running
    and one more (BULK_AHEAD per slot), not six (a third while the one that ended is being
    answered); the others wait in Redis, where an interactive job queued now is not behind
    them."""
    client = one_cpu_slot
    code = "import time\nend = time.time() + 0.5\nwhile time.time() < end: pass\nprint('b')"
    backlog = [client.post("/v1/jobs", json={"code": code, "priority": "bulk"}).json()["id"]
               for _ in range(6)]
    most_claimed, done = 0, 0
    while done < len(backlog):
        states = [client.get(f"/v1/jobs/{job_id}").json()["state"] for job_id in backlog]
        most_claimed, done = max(most_claimed, states.count("running")), states.count("done")
    assert 2 <= most_claimed <= 3
    assert all(wait_done(client, job_id)["result"]["stdout"] == "b\n" for job_id in backlog)


OWN_CPU_WEIGHT = (  # the run's container's CPU weight, as its own cgroup shows it (v1 or v2)
    "import os, time\n"
    "p = '/sys/fs/cgroup/cpu/cpu.shares'\n"
    "p = p if os.path.exists(p) else '/sys/fs/cgroup/cpu.weight'\n"
    "def weight():\n    return open(p).read().strip()\n"
    "first = weight()\n"
    "while {busy} and weight() == first and time.process_time() < 20:\n    pass\n"
    "print(weight())")


def test_bulk_runs_and_long_runs_yield_the_cpu_to_fresh_interactive_ones(
        one_container: httpx.Client) -> None:
    def weight(busy: bool = False, **fields: str) -> str:
        """The weight the run sees (`busy`: once it changes while the run computes)."""
        answer = one_container.post("/v1/run", json={"code": OWN_CPU_WEIGHT.format(busy=busy),
                                                     "timeout": 30, **fields}).json()
        assert answer["outcome"] == "ok", answer
        return answer["stdout"].strip()

    default = weight()
    assert default in ("1024", "100")  # the engine's default, v1 or v2
    low = {"1024": "64", "100": "6"}[default]
    assert weight(priority="bulk") == low
    assert weight() == default  # the same container (a pool of one), weighed again
    assert weight(busy=True) == low  # lowered once it has wanted the CPU for DEMOTE_AFTER_S
    assert weight() == default
