"""Submitting jobs from an API process: queue them, then await their results.

A caller waits on a future resolved by the process's one ReplyListener; no Redis connection is
held per waiting request. Jobs nobody waits for any more are cancelled: their caller hung up
(service/hangup.py), stopped reading a stream early, or gave up at the wait's end.
"""

import asyncio
import contextlib
import copy
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import TypeVar

from service import hangup, wire
from service.jobspec import TRANSIT_GRACE_S, JobSpec
from service.models import Priority
from service.result import sandbox_error
from service.store import QueueUnavailable, Store
from service.store.replies import ReplyListener
from service.tenants import ANONYMOUS_TENANT, Tenant

log = logging.getLogger(__name__)

T = TypeVar("T")
NO_RESULT_IN_TIME = "no result in time; the job was cancelled"
CALLER_GONE = "cancelled: its caller hung up"
NOT_WAITED_FOR = "cancelled: its caller stopped waiting for it"


class CallerGone(Exception):
    """The caller of a synchronous request hung up; its unfinished jobs were cancelled."""


def new_job_id() -> str:
    return uuid.uuid4().hex


class Submitter:
    def __init__(self, store: Store, replies: ReplyListener, api_id: str, queue_wait_s: float):
        self.store = store
        self.replies = replies
        self.api_id = api_id
        self.queue_wait_s = queue_wait_s
        self.tenant: Tenant = ANONYMOUS_TENANT
        self._cancelling: set[asyncio.Task[None]] = set()

    def for_tenant(self, tenant: Tenant) -> "Submitter":
        """This submitter, queuing as `tenant` (under its max_queued)."""
        bound = copy.copy(self)
        bound.tenant = tenant
        return bound

    async def submit(self, spec: JobSpec, lane: Priority = Priority.INTERACTIVE) -> str:
        """Queue one job for later collection by id."""
        job_id = new_job_id()
        await self._enqueue([(job_id, spec.model_dump_json().encode())], reply_to="",
                            deadline_ms=0, lane=lane)
        return job_id

    async def _enqueue(self, jobs: Sequence[tuple[str, bytes]], reply_to: str,
                       deadline_ms: float, lane: Priority) -> None:
        await self.store.jobs.enqueue(jobs, reply_to, deadline_ms, lane, self.tenant)

    async def run(self, spec: JobSpec, lane: Priority = Priority.INTERACTIVE) -> bytes:
        (result,) = await self.run_many([spec], lane)
        return result

    async def run_many(self, specs: Sequence[JobSpec],
                       lane: Priority = Priority.BULK) -> list[bytes]:
        """Queue jobs in one round trip and wait for all: results in the order given.

        All or nothing at admission: if the lane (or the tenant's quota) cannot take every job,
        QueueFull (QuotaExceeded) is raised and none is queued. If the caller hangs up first,
        the jobs are cancelled and CallerGone raised.
        """
        ids, futures, wait_s = await self._admit(specs, lane)
        return await self._collect(ids, futures, wait_s)

    async def start(self, spec: JobSpec, lane: Priority = Priority.INTERACTIVE
                    ) -> tuple[str, Awaitable[bytes]]:
        """Queue one job now (a refusal is raised here): its id, and its result to await (as
        run's: cancelled if the caller hangs up)."""
        ids, futures, wait_s = await self._admit([spec], lane)

        async def result() -> bytes:
            (body,) = await self._collect(ids, futures, wait_s)
            return body

        return ids[0], result()

    async def _collect(self, ids: list[str], futures: list[asyncio.Future[bytes]],
                       wait_s: float) -> list[bytes]:
        why = CALLER_GONE
        try:
            await self._unless_hung_up(asyncio.wait(futures, timeout=wait_s))
            why = NO_RESULT_IN_TIME
        finally:  # whatever ended the wait, nobody waits for the unfinished jobs any more
            self._abandon(ids, futures, why)
        return [
            f.result() if f.done() else sandbox_error(job_id, NO_RESULT_IN_TIME).encode()
            for job_id, f in zip(ids, futures, strict=True)
        ]

    async def run_as_completed(self, specs: Sequence[JobSpec], lane: Priority = Priority.BULK
                               ) -> AsyncIterator[tuple[int, bytes]]:
        """Queue jobs in one round trip (all or nothing, as run_many); then yield (index, result)
        as each completes.

        Admission happens when this is awaited, so QueueFull is raised before any result is
        yielded. Jobs with no result in time are yielded last, as sandbox errors. Stopping early
        is allowed (close the iterator): the jobs not yet done are cancelled. If the caller
        hangs up, they are cancelled and the iteration ends.
        """
        ids, futures, wait_s = await self._admit(specs, lane)
        return self._as_completed(ids, futures, wait_s)

    async def _admit(self, specs: Sequence[JobSpec], lane: Priority
                     ) -> tuple[list[str], list[asyncio.Future[bytes]], float]:
        """Queue every job or none; their ids, the futures of their results, how long to wait."""
        ids = [new_job_id() for _ in specs]
        futures = [self.replies.expect(job_id) for job_id in ids]
        payloads = [(job_id, spec.model_dump_json().encode())
                    for job_id, spec in zip(ids, specs, strict=True)]
        try:
            await self._enqueue(payloads, self.api_id, wire.now_ms() + self.queue_wait_s * 1000,
                                lane)
        except BaseException:
            self._forget(ids)
            raise
        longest = max((spec.runner_wait_s() for spec in specs), default=0.0)
        return ids, futures, self.queue_wait_s + longest + TRANSIT_GRACE_S

    async def _unless_hung_up(self, waiting: Awaitable[T]) -> T:
        """Await `waiting`, unless the caller hangs up first: then raise CallerGone."""
        gone = hangup.hung_up()
        if gone is None:
            return await waiting
        task = asyncio.ensure_future(waiting)
        try:
            await asyncio.wait([task, gone], return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not task.done():
                task.cancel()
        if not task.done() or task.cancelled():
            raise CallerGone
        return task.result()

    def _forget(self, ids: Sequence[str]) -> None:
        for job_id in ids:
            self.replies.forget(job_id)

    def _abandon(self, ids: Sequence[str], futures: Sequence[asyncio.Future[bytes]],
                 message: str) -> None:
        """Stop waiting for these jobs, and cancel those not done. The cancelling runs as a task
        of its own: the request's task may itself be being cancelled."""
        self._forget(ids)
        unfinished = [job_id for job_id, f in zip(ids, futures, strict=True) if not f.done()]
        if unfinished:
            task = asyncio.create_task(self._cancel(unfinished, message))
            self._cancelling.add(task)
            task.add_done_callback(self._cancelling.discard)

    async def _cancel(self, job_ids: Sequence[str], message: str) -> None:
        with contextlib.suppress(QueueUnavailable):
            await self.store.jobs.cancel(job_ids, message, self.tenant.name)

    async def _as_completed(self, ids: Sequence[str], futures: Sequence[asyncio.Future[bytes]],
                            wait_s: float) -> AsyncIterator[tuple[int, bytes]]:
        finished: asyncio.Queue[int] = asyncio.Queue()
        for i, future in enumerate(futures):
            future.add_done_callback(lambda _, i=i: finished.put_nowait(i))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        waiting = set(range(len(futures)))
        why = NOT_WAITED_FOR
        try:
            while waiting:
                try:
                    i = await self._unless_hung_up(
                        asyncio.wait_for(finished.get(), max(0.0, deadline - loop.time())))
                except TimeoutError:
                    break
                except CallerGone:
                    why = CALLER_GONE
                    return
                waiting.discard(i)
                yield i, futures[i].result()
            why = NO_RESULT_IN_TIME
            for i in sorted(waiting):
                yield i, sandbox_error(ids[i], NO_RESULT_IN_TIME).encode()
        finally:
            self._abandon(ids, futures, why)
