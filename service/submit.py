"""Submitting jobs from an API process: queue them, then await their results.

A caller waits on a future resolved by the process's one ReplyListener; no Redis connection is
held per waiting request.
"""

import asyncio
import copy
import uuid
from collections.abc import AsyncIterator, Sequence

from service import wire
from service.jobspec import TRANSIT_GRACE_S, JobSpec
from service.queue import JobQueue, ReplyListener
from service.tenants import ANONYMOUS_TENANT, Tenant


def new_job_id() -> str:
    return uuid.uuid4().hex


class Submitter:
    def __init__(self, queue: JobQueue, replies: ReplyListener, api_id: str, queue_wait_s: float):
        self.queue = queue
        self.replies = replies
        self.api_id = api_id
        self.queue_wait_s = queue_wait_s
        self.tenant: Tenant = ANONYMOUS_TENANT

    def for_tenant(self, tenant: Tenant) -> "Submitter":
        """This submitter, queuing as `tenant` (under its max_queued)."""
        bound = copy.copy(self)
        bound.tenant = tenant
        return bound

    async def submit(self, spec: JobSpec) -> str:
        """Queue one job for later collection by id."""
        job_id = new_job_id()
        await self._enqueue([(job_id, spec.model_dump_json().encode())], reply_to="",
                            deadline_ms=0)
        return job_id

    async def _enqueue(self, jobs: Sequence[tuple[str, bytes]], reply_to: str,
                       deadline_ms: float) -> None:
        await self.queue.enqueue(jobs, reply_to, deadline_ms, self.tenant.name,
                                 self.tenant.max_queued)

    async def run(self, spec: JobSpec) -> bytes:
        (result,) = await self.run_many([spec])
        return result

    async def run_many(self, specs: Sequence[JobSpec]) -> list[bytes]:
        """Queue jobs in one round trip and wait for all: results in the order given.

        All or nothing at admission: if the queue (or the tenant's quota) cannot take every job,
        QueueFull (QuotaExceeded) is raised and none is queued.
        """
        ids, futures, wait_s = await self._admit(specs)
        try:
            done, _ = await asyncio.wait(futures, timeout=wait_s)
        finally:  # the caller may go away (cancelled): nobody waits for these any more
            self._forget(ids)
        return [
            f.result() if f in done else
            wire.sandbox_error(job_id, "no result in time; the job may still run")
            for job_id, f in zip(ids, futures, strict=True)
        ]

    async def run_as_completed(self, specs: Sequence[JobSpec]) -> AsyncIterator[tuple[int, bytes]]:
        """Queue jobs in one round trip (all or nothing, as run_many); then yield (index, result)
        as each completes.

        Admission happens when this is awaited, so QueueFull is raised before any result is
        yielded. Jobs with no result in time are yielded last, as sandbox errors. Stopping early
        is allowed (close the iterator): the jobs still run, their results are not waited for.
        """
        ids, futures, wait_s = await self._admit(specs)
        return self._as_completed(ids, futures, wait_s)

    async def _admit(self, specs: Sequence[JobSpec]
                     ) -> tuple[list[str], list[asyncio.Future[bytes]], float]:
        """Queue every job or none; their ids, the futures of their results, how long to wait."""
        ids = [new_job_id() for _ in specs]
        futures = [self.replies.expect(job_id) for job_id in ids]
        payloads = [(job_id, spec.model_dump_json().encode())
                    for job_id, spec in zip(ids, specs, strict=True)]
        try:
            await self._enqueue(payloads, self.api_id, wire.now_ms() + self.queue_wait_s * 1000)
        except BaseException:
            self._forget(ids)
            raise
        longest = max((spec.runner_wait_s() for spec in specs), default=0.0)
        return ids, futures, self.queue_wait_s + longest + TRANSIT_GRACE_S

    def _forget(self, ids: Sequence[str]) -> None:
        for job_id in ids:
            self.replies.forget(job_id)

    async def _as_completed(self, ids: Sequence[str], futures: Sequence[asyncio.Future[bytes]],
                            wait_s: float) -> AsyncIterator[tuple[int, bytes]]:
        finished: asyncio.Queue[int] = asyncio.Queue()
        for i, future in enumerate(futures):
            future.add_done_callback(lambda _, i=i: finished.put_nowait(i))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        waiting = set(range(len(futures)))
        try:
            while waiting:
                try:
                    i = await asyncio.wait_for(finished.get(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    break
                waiting.discard(i)
                yield i, futures[i].result()
            for i in sorted(waiting):
                yield i, wire.sandbox_error(ids[i], "no result in time; the job may still run")
        finally:
            self._forget(ids)
