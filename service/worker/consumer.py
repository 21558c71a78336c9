"""The consumer loop: claim as many jobs as there are free containers, run them, answer.
Every few heartbeats the same loop also takes over jobs of silent workers (and dead-letters
those delivered too often), so that the two never take more jobs than there are containers.

Behind a backlog, the answers of jobs and the claim of the jobs that take their containers
are one script (_send_answers), and the answers of bulk jobs that end within a few
milliseconds of each other share it (_answer): about two bulk jobs per round trip to Redis
on a pool of four, not two round trips per job. While the held answers wait, the other
containers keep the cores busy; a worker with none running sends at once.

Bulk jobs are claimed only a few ahead of what CPU admission lets start (BULK_AHEAD per
admission slot): a worker behind a batch would otherwise hold a container's worth of bulk jobs
claimed and waiting, and an interactive job queued after them would wait in Redis for one of
them to end. With the bulk lane capped, the loop has room left, and claims the interactive job
the moment a watcher of the jobs-queued stream says one was queued.

Alongside it: a heartbeat (keeps this worker's running jobs claimed and tells the dashboard it
lives), and a reader of this worker's cancel stream: a cancelled job running here is killed by
its runner, the container kept (or, if the runner does not end it, its task is cancelled and
the container replaced, see executor.py). A job cancelled before it started never gets here:
claiming drops it.
"""

import asyncio
import collections
import contextlib
import logging
import os
import random
import time
from collections import Counter

import orjson

from service import logs, wire
from service.backoff import Backoff
from service.batched import answer_each
from service.models import Priority
from service.result import ExecutionResult, cancelled, sandbox_error
from service.settings import Settings
from service.stats import Recorder
from service.store import QueueUnavailable, Store
from service.store.jobs import Claimed
from service.worker.executor import Executor
from service.worker.outcome import CANCELLED_WHILE_RUNNING
from service.worker.pool import ContainerPool
from service.worker.sessions import SessionHost

log = logging.getLogger(__name__)

QUEUED_BLOCK_MS = 1000
CLAIM_AGAIN_S = 1.0  # claim at least this often, woken or not
BULK_AHEAD = 1  # bulk jobs claimed and not yet started, per CPU admission slot
CANCEL_BLOCK_MS = 1000
CANCEL_GRACE_S = 5.0  # for a runner to end a cancelled run before its container is replaced
ANSWER_LINGER_S = 0.005  # the longest a bulk job's answer waits for others to share its script
ANSWERS_PER_SCRIPT = 32
CANCELS_REMEMBERED = 1024  # ids of cancelled jobs kept, should one arrive before its task


class Consumer:
    def __init__(self, store: Store, pool: ContainerPool, executor: Executor,
                 settings: Settings, worker_id: str, host: str,
                 sessions: SessionHost | None = None):
        self.store = store
        self.jobs = store.jobs
        self.sessions = sessions
        self.pool = pool
        self.executor = executor
        self.settings = settings
        self.worker_id = worker_id
        self.host = host
        self.started = time.time()
        self.inflight: dict[tuple[str, str, str], asyncio.Task[None]] = {}
        self._jobs: dict[tuple[str, str, str], wire.Job] = {}
        self._executing: set[tuple[str, str, str]] = set()  # claim keys of jobs not yet answered
        self._bulk_waiting: set[tuple[str, str, str]] = set()  # claimed bulk jobs not started
        self._cancelled: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._wake = asyncio.Event()  # a container freed, a bulk job started, a job queued
        self._queued = True  # a job was queued since the last claim (or may have been)
        self._left: frozenset[Priority] = frozenset()  # lanes the last claim left jobs in
        self._claiming = asyncio.Lock()  # one claim (or reclaim) at a time: see _claim_loop
        self._reclaim_at = 0.0  # when the claim loop takes over jobs of silent workers next
        self._held: list[tuple[wire.Job, bytes, asyncio.Future[bool]]] = []  # bulk answers
        self._answered: set[tuple[str, str, str]] = set()  # answers sent, tasks not yet ended
        self._flush_timer: asyncio.TimerHandle | None = None
        self._flushes: set[asyncio.Task[None]] = set()
        pool.on_idle = self._wake.set
        self._stopping = asyncio.Event()
        self.stats = Recorder(store, worker_id)

    @property
    def free_slots(self) -> int:
        """Jobs this worker can start now: never more than it has warm containers for, so that
        while Docker is away its jobs wait in the queue (for another worker) rather than here.
        Containers still cleaning up after a run are not counted here, only by the script that
        answers that run (_send_answers): counted here too, the loop claimed for them apart
        (Redis scripts per batch item 0.54 -> 0.63)."""
        return max(0, min(self.pool.size - len(self.inflight), self.pool.idle))

    @property
    def bulk_room(self) -> int:
        return self._bulk_room(self.free_slots)

    def _bulk_room(self, free: int) -> int:
        """Bulk jobs this worker may claim with `free` slots: a few more than CPU admission can
        start."""
        ahead = BULK_AHEAD * self.executor.admission.slots
        return max(0, min(free, ahead - len(self._bulk_waiting)))

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self, grace_s: float) -> None:
        """Serve until stop(); then let running jobs finish for up to grace_s."""
        await self._retry(self.jobs.ensure_group)
        helpers = [asyncio.create_task(self._heartbeat_loop()),
                   asyncio.create_task(self._cancel_loop()),
                   asyncio.create_task(self._queued_loop())]
        try:
            await self._claim_loop()
            await self._drain(grace_s)
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            with contextlib.suppress(QueueUnavailable):
                await self.store.workers.forget(self.worker_id)
            await self.stats.flush()

    async def _drain(self, grace_s: float) -> None:
        """Let running jobs finish within the grace period; hand the others back to the queue."""
        if self.inflight:
            await asyncio.wait(list(self.inflight.values()), timeout=grace_s)
        unfinished = [self._jobs[key] for key in list(self.inflight)]
        for task in list(self.inflight.values()):
            task.cancel()
        await asyncio.gather(*self.inflight.values(), return_exceptions=True)
        for job in unfinished:
            with contextlib.suppress(QueueUnavailable):
                await self.jobs.requeue(job)
                log.info("job handed back to the queue", extra={"job_id": job.id})

    # --- claiming and running ------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        """New jobs, and now and then those of silent workers: one at a time, so that the two
        never take more jobs between them than there are free containers. A claim is made
        when there is room for jobs that may be waiting: a job was queued since the last
        claim, or that claim left some behind in a lane this worker now has room for; and at
        least every CLAIM_AGAIN_S. Jobs that end while such a claim is due make it themselves,
        in the script that answers them (_send_answers), after this loop's claim if one is
        under way."""
        backoff = Backoff()
        self._reclaim_at = time.monotonic() + self._reclaim_interval()
        claim_at = 0.0
        progress = True  # the last claim took jobs: there may be more
        while not self._stopping.is_set():
            if not (progress and self._claim_due()):
                # Until something changes; with room, claim every CLAIM_AGAIN_S whatever.
                wait_s = max(0.0, claim_at - time.monotonic()) if self.free_slots else None
                try:
                    async with asyncio.timeout(wait_s):
                        await self._wake.wait()
                    timed_out = False
                except TimeoutError:
                    timed_out = True
                self._wake.clear()
                if not (self.free_slots and (timed_out or self._claim_due())):
                    progress = False
                    continue
            try:
                async with self._claiming:
                    if time.monotonic() >= self._reclaim_at:
                        self._reclaim_at = time.monotonic() + self._reclaim_interval()
                        await self._reclaim()
                        progress = True  # what was due is claimed next, without waiting
                        continue
                    self._queued = False
                    claimed = await self.jobs.claim(self.worker_id, self.free_slots,
                                                    {Priority.BULK: self.bulk_room})
                backoff.reset()
            except QueueUnavailable as exc:
                self._queued = progress = True
                log.warning("queue unavailable, retrying", extra={"error": str(exc)})
                await backoff.wait()
                continue
            progress = claimed.read > 0
            claim_at = time.monotonic() + CLAIM_AGAIN_S
            self._took(claimed)

    def _took(self, claimed: Claimed) -> None:
        self._left = claimed.left
        for job in claimed.jobs:
            self._start(job)

    def _claim_due(self, free: int | None = None) -> bool:
        """Whether a claim may find jobs for `free` slots (the free ones now by default)."""
        free = self.free_slots if free is None else free
        if not free:
            return False
        return (self._queued or Priority.INTERACTIVE in self._left
                or (Priority.BULK in self._left and self._bulk_room(free) > 0))

    async def _queued_loop(self) -> None:
        """Wake the claim loop whenever a job is queued."""
        mark = None
        backoff = Backoff()
        while True:
            try:
                if mark is None:
                    mark = await self.jobs.queued_mark()
                queued = await self.jobs.wait_queued(mark, QUEUED_BLOCK_MS)
                backoff.reset()
            except QueueUnavailable as exc:
                log.warning("queue unavailable, retrying", extra={"error": str(exc)})
                await backoff.wait()
                continue
            if queued != mark:
                mark = queued
                self._queued = True
                self._wake.set()

    def _start(self, job: wire.Job) -> None:
        if job.claim_key in self.inflight:  # reclaimed from ourselves (Redis was away a while)
            return
        task = asyncio.create_task(self._handle(job), name=f"job-{job.id}")
        self.inflight[job.claim_key] = task
        self._jobs[job.claim_key] = job
        if job.lane is Priority.BULK:
            self._bulk_waiting.add(job.claim_key)
        task.add_done_callback(lambda _: self._finished(job.claim_key))

    def _finished(self, key: tuple[str, str, str]) -> None:
        del self.inflight[key]
        del self._jobs[key]
        self._answered.discard(key)
        self._under_way(key)

    def _under_way(self, key: tuple[str, str, str]) -> None:
        """A claimed job has started (or ended): room for the next."""
        self._bulk_waiting.discard(key)
        self._wake.set()

    async def _handle(self, job: wire.Job) -> None:
        logs.bind_job(job.id, job.tenant)
        self._executing.add(job.claim_key)
        try:
            result = await self._execute(job)
        except asyncio.CancelledError:
            if job.id not in self._cancelled or self._stopping.is_set():
                raise
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
            log.info("running job cancelled", extra={"job_id": job.id})
            result = cancelled(job.id, CANCELLED_WHILE_RUNNING)
        except Exception:  # a fault of ours: answered as one, not left to be reclaimed
            log.exception("job failed in the worker", extra={"job_id": job.id})
            result = sandbox_error(job.id, "internal error in the worker", job.enqueued_ms)
        finally:
            self._executing.discard(job.claim_key)
        # Keep trying to answer; if we die meanwhile the job is reclaimed and run again. (A
        # cancelled job has its answer already: this only retires its entry.)
        body = result.encode()
        if await self._retry(lambda: self._answer(job, body)):
            self.stats.job_done(job, result)

    async def _answer(self, job: wire.Job, body: bytes) -> bool:
        """Publish a job's result (False if another answer was there first). A bulk job's
        answer is held for the answers of the jobs still running here, to share their script:
        sent once as many are held as are running (at once when none is running: nothing
        would come), or ANSWER_LINGER_S after the first was held. An interactive job's answer
        goes at once."""
        if job.lane is not Priority.BULK or self._stopping.is_set():
            return (await self._send_answers([(job, body)]))[0]
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._held.append((job, body, future))
        if len(self._held) >= min(ANSWERS_PER_SCRIPT, max(1, len(self._executing))):
            self._flush_held()
        elif self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(ANSWER_LINGER_S,
                                                                      self._flush_held)
        return await future

    def _flush_held(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        held, self._held = self._held, []
        if held:
            task = asyncio.create_task(self._send_held(held))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    async def _send_held(self, held: list[tuple[wire.Job, bytes, asyncio.Future[bool]]]) -> None:
        # Should Redis be away, each job's _retry answers again.
        await answer_each([future for _, _, future in held],
                          self._send_answers([(job, body) for job, body, _ in held]))

    async def _send_answers(self, answers: list[tuple[wire.Job, bytes]]) -> list[bool]:
        """When a claim is due (and no reclaim), the script that answers these jobs claims the
        next ones too, after any claim under way: one round trip to Redis for the answers and
        the claim."""
        if self._stopping.is_set() or time.monotonic() >= self._reclaim_at:
            return await self.jobs.complete_many(answers)
        keys = {job.claim_key for job, _ in answers}
        async with self._claiming:
            # The slots of answered jobs count as free (their tasks end once answered), and
            # their containers, still cleaning up, as warm.
            self._answered |= keys
            try:
                free = min(self.pool.size - len(self.inflight) + len(self._answered),
                           self.pool.idle + self.pool.cleaning)
                if not self._claim_due(free):
                    return await self.jobs.complete_many(answers)
                self._queued = False
                claimed = await self.jobs.claim(self.worker_id, free,
                                                {Priority.BULK: self._bulk_room(free)},
                                                answered=answers)
            except QueueUnavailable:
                self._answered -= keys  # not answered: each job's _retry tries again
                self._queued = True  # and so does the claim loop
                raise
        self._took(claimed)
        return claimed.kept

    async def _execute(self, job: wire.Job) -> ExecutionResult:
        if job.id in self._cancelled:  # its cancel came before its task
            raise asyncio.CancelledError
        if job.deadline_ms and wire.now_ms() > job.deadline_ms:
            return sandbox_error(job.id, "deadline passed before the job could run",
                                 job.enqueued_ms)
        return await self.executor.run(job, lambda: self._under_way(job.claim_key))

    async def _retry(self, call) -> object:  # type: ignore[no-untyped-def]
        backoff = Backoff()
        while True:
            try:
                return await call()
            except QueueUnavailable as exc:
                log.warning("queue unavailable, retrying", extra={"error": str(exc)})
                await backoff.wait()

    # --- heartbeat and reclaiming ---------------------------------------------------------------

    def describe(self) -> dict[str, str | int | float]:
        return {
            "host": self.host,
            "pid": os.getpid(),
            "started": self.started,
            "containers": self.pool.live,
            "busy": len(self.inflight),
            "tenants_busy": orjson.dumps(Counter(j.tenant for j in self._jobs.values())).decode(),
            "capacity": self.pool.size,
            "idle_containers": self.pool.idle,
            "starting": self.pool.starting + (self.sessions.warming if self.sessions else 0),
            "executions": self.executor.executions,
            "replaced": self.pool.replaced,
            "pool_error": self.pool.last_error or "",
            "heartbeat": time.time(),
            **(self.sessions.describe() if self.sessions else {}),
        }

    async def _heartbeat_loop(self) -> None:
        while True:
            with contextlib.suppress(QueueUnavailable):
                await self.store.workers.heartbeat(self.worker_id, self.describe())
                await self.jobs.keep_claimed(self.worker_id, list(self._jobs.values()))
            await self.stats.flush()
            await asyncio.sleep(self.settings.heartbeat_s)

    async def _cancel_loop(self) -> None:
        """Kill the running jobs this worker is told were cancelled."""
        after = "0"  # the stream is this worker's own, new with it
        backoff = Backoff()
        while True:
            try:
                after, job_ids = await self.jobs.read_cancels(self.worker_id, after,
                                                              CANCEL_BLOCK_MS)
                backoff.reset()
            except QueueUnavailable as exc:
                log.warning("cancel stream unreadable, retrying", extra={"error": str(exc)})
                await backoff.wait()
                continue
            for job_id in job_ids:
                self._cancel(job_id)

    def _cancel(self, job_id: str) -> None:
        self._cancelled[job_id] = None
        while len(self._cancelled) > CANCELS_REMEMBERED:
            self._cancelled.popitem(last=False)
        for key, job in self._jobs.items():
            if job.id == job_id and key in self._executing:
                self._kill(self.inflight[key], job_id)

    def _kill(self, task: asyncio.Task[None], job_id: str) -> None:
        """Its runner kills the run and the container stays; failing that within
        CANCEL_GRACE_S (or if the run has not reached its runner), its task is cancelled,
        which kills the run by replacing the container."""
        if not self.executor.cancel(job_id):
            task.cancel()
            return
        asyncio.get_running_loop().call_later(
            CANCEL_GRACE_S, lambda: None if task.done() else task.cancel())

    def _reclaim_interval(self) -> float:
        return self.settings.heartbeat_s * random.uniform(1, 2)

    async def _reclaim(self) -> None:
        """Take over jobs of workers silent for reclaim_idle_s (as many as there is room for);
        dead-letter those delivered too often."""
        retry, dead = await self.jobs.reclaim(
            self.worker_id, int(self.settings.reclaim_idle_s * 1000),
            self.settings.max_deliveries, self.free_slots)
        self.stats.reclaimed(len(retry))
        for job in retry:
            log.warning("job reclaimed from a silent worker", extra={"job_id": job.id})
            self._start(job)
        for job in dead:
            log.error("job dead-lettered", extra={"job_id": job.id})
            await self.jobs.dead_letter(
                job, f"delivered {self.settings.max_deliveries} times without an answer; "
                "its worker died each time")
            self.stats.dead_lettered(job, self.settings.max_deliveries)
