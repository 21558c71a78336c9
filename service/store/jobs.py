"""Jobs in Redis Streams: enqueue, claim, start, complete, cancel, requeue, reclaim, dead letters.

At-least-once delivery through the consumer group; exactly one visible result per job, because
completing (and cancelling) is a script that keeps the first result and ignores any later one.

Jobs wait in lanes (LANES, in the order they are served), in one stream per tenant and lane: a
worker's claim is one script (fair_share.py) that fills its free room from the
interactive lane first and only then from the bulk lane, and within a lane shares it between
tenants by weight under their max_running. The streams share the consumer group, reclaim and
dead letters; each lane has its own depth limit (all its tenants' jobs), so a bulk backlog never
shuts interactive callers out.
"""

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis import asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError

from service import metrics, wire
from service.models import JobState, Priority
from service.result import cancelled, sandbox_error
from service.store import fair_share, job_scripts
from service.store.errors import QueueUnavailable, raise_if_refused, translate_errors
from service.store.fair_share import LANES
from service.store.keys import WORKER_GROUP, Keys
from service.tenants import ANONYMOUS_TENANT, Tenant

log = logging.getLogger(__name__)

ENQUEUE_PER_SCRIPT = 256  # jobs queued in one script


@dataclass(frozen=True)
class Claimed:
    """What a claim took: `read` entries, of which `jobs` to run (the others were cancelled
    jobs, dropped on the way), and the lanes where jobs were `left` waiting; and for each job
    answered with it, whether its result is the one kept."""

    read: int
    jobs: list[wire.Job]
    left: frozenset[Priority]
    kept: list[bool]


class JobStore:
    def __init__(self, redis: aioredis.Redis, keys: Keys, result_ttl_s: int, max_depth: int):
        self._redis = redis
        self.keys = keys
        self.result_ttl_s = result_ttl_s
        self.max_depth = max_depth
        self._enqueue = redis.register_script(job_scripts.ENQUEUE)
        self._claim = redis.register_script(fair_share.CLAIM)
        self._start = redis.register_script(job_scripts.START)
        self._complete = redis.register_script(job_scripts.COMPLETE)
        self._requeue = redis.register_script(job_scripts.REQUEUE)
        self._cancel = redis.register_script(job_scripts.CANCEL)

    # --- API side ------------------------------------------------------------------------------

    async def enqueue(self, jobs: Sequence[tuple[str, bytes]], reply_to: str,
                      deadline_ms: float, lane: Priority,
                      tenant: Tenant = ANONYMOUS_TENANT) -> None:
        """Queue (job id, payload) pairs of one tenant in a lane, all or none: QueueFull past
        the lane's depth, or QuotaExceeded past the tenant's max_queued (jobs waiting or
        running), with none queued.

        Up to ENQUEUE_PER_SCRIPT jobs: checked and queued in one script. More: the room is
        checked first, then all are queued in one round trip, unchecked, ENQUEUE_PER_SCRIPT
        to a script (one script queuing a 10,000-job batch would hold Redis for ~70 ms, every
        other client shut out; a pipeline lets them in between its scripts). Batches admitted
        at the same moment may together take the lane (or a tenant) past its limit by their
        sizes (it is a bound on backlog, not a hard cap), but no batch is ever queued in part.
        """
        checks = [self.max_depth, tenant.max_queued or 0, len(jobs)]
        keys = [self.keys.jobs(lane, tenant.name), self.keys.tenant_jobs(tenant.name),
                self.keys.queues, self.keys.jobs_queued,
                *(self.keys.jobs(each, tenant.name) for each in LANES)]
        shared = [reply_to, wire.now_ms(), deadline_ms, tenant.name,
                  fair_share.queue_entry(tenant.weight, tenant.max_running),
                  self.keys.lane_prefix(lane), self.keys.job("")]
        if len(jobs) > ENQUEUE_PER_SCRIPT:  # the room first, for all of them
            (room,) = await self._run_script(self._enqueue, [(keys, [*checks, *shared, "0"])])
            raise_if_refused(room)
            checks = [0, 0, 0]
        chunks = [jobs[i:i + ENQUEUE_PER_SCRIPT] for i in range(0, len(jobs), ENQUEUE_PER_SCRIPT)]
        calls = [(keys, [*checks, *shared, "1" if i == len(chunks) - 1 else "0",
                         *(part for job in chunk for part in job)])
                 for i, chunk in enumerate(chunks)]
        for queued in await self._run_script(self._enqueue, calls):
            raise_if_refused(queued)

    async def _run_script(self, script: AsyncScript,
                          calls: Sequence[tuple[list[Any], list[Any]]]) -> list[Any]:
        """Run a script once per (keys, args) in one round trip. A pipeline of Script calls
        would first ask SCRIPT EXISTS each time, so EVALSHA is sent directly, and the script
        loaded only when Redis says it does not have it (after a restart, say)."""
        with translate_errors():
            if len(calls) == 1:
                keys, args = calls[0]
                return [await script(keys=keys, args=args)]
            for _ in range(2):
                async with self._redis.pipeline(transaction=False) as pipe:
                    for keys, args in calls:
                        pipe.evalsha(script.sha, len(keys), *keys, *args)
                    try:
                        return await pipe.execute()
                    except NoScriptError:
                        await self._redis.script_load(script.script)
            raise QueueUnavailable("the script could not be loaded")

    async def status(self, job_id: str) -> tuple[JobState, bytes | None, str] | None:
        """A job's state, its result once done, and its tenant; None if unknown or expired."""
        with translate_errors():
            fields = await self._redis.hmget(self.keys.job(job_id), wire.F_STATE, wire.F_RESULT,
                                            wire.F_TENANT)
        state, result, tenant = fields
        if state is None:
            return None
        return JobState(state.decode()), result, (tenant or b"").decode()

    async def tenant_jobs(self, tenants: Sequence[str]) -> dict[str, int]:
        """Jobs waiting or running, per tenant."""
        with translate_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                for tenant in tenants:
                    pipe.scard(self.keys.tenant_jobs(tenant))
                counts = await pipe.execute()
        return dict(zip(tenants, counts, strict=True))

    async def queued_tenants(self) -> list[str]:
        """Every tenant that has job streams."""
        with translate_errors():
            return sorted(t.decode() for t in await self._redis.hkeys(self.keys.queues))

    async def depths(self) -> dict[str, int]:
        """Jobs in each lane (waiting or running), every tenant's."""
        tenants = await self.queued_tenants()
        with translate_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                for lane in LANES:
                    for tenant in tenants:
                        pipe.xlen(self.keys.jobs(lane, tenant))
                lengths = await pipe.execute()
        per_lane = len(tenants)
        return {lane.value: sum(lengths[i * per_lane:(i + 1) * per_lane])
                for i, lane in enumerate(LANES)}

    async def cancel(self, job_ids: Sequence[str], message: str,
                     tenant: str) -> list[JobState | None]:
        """Cancel jobs of a tenant not yet done, in one round trip: each answered `cancelled`
        (the first result wins, so one racing to complete is left be) and, if running, its
        worker told. Per job, the state it had: queued or running (cancelled now), done (left
        be), None (unknown). The caller has made sure the jobs are the tenant's."""
        counter = metrics.stored_field((metrics.CANCELLED.name, ()))
        calls = [([self.keys.job(job_id), self.keys.metrics, self.keys.tenant_jobs(tenant)],
                  [cancelled(job_id, message).encode(), self.result_ttl_s, job_id, counter])
                 for job_id in job_ids]
        states = await self._run_script(self._cancel, calls) if calls else []
        return [JobState(state.decode()) if state else None for state in states]

    # --- worker side ---------------------------------------------------------------------------

    async def ensure_group(self) -> None:
        """The consumer group on every tenant's streams (a new tenant's are made as it queues
        its first job, and a lost one by the claim)."""
        for tenant in await self.queued_tenants():
            for lane in LANES:
                with translate_errors():
                    try:
                        await self._redis.xgroup_create(self.keys.jobs(lane, tenant),
                                                       WORKER_GROUP, id="0", mkstream=True)
                    except ResponseError as exc:
                        if "BUSYGROUP" not in str(exc):
                            raise

    async def claim(self, consumer: str, room: int,
                    caps: Mapping[Priority, int] | None = None,
                    answered: Sequence[tuple[wire.Job, bytes]] = ()) -> Claimed:
        """New jobs for this consumer, at most `room` and at most caps[lane] of a lane,
        interactive ones first, shared between tenants by weight within their max_running
        (fair_share.py), each marked running here. `answered`: (job, result) pairs completed
        in the same script, before the claim (their containers are what the room is for)."""
        caps = caps or {}
        keys = [self.keys.cancels(consumer), self.keys.queues, self.keys.fair_pass]
        args: list[str | int | bytes] = [WORKER_GROUP, consumer, room, self.keys.job("")]
        for lane in LANES:
            args += [self.keys.lane_prefix(lane), caps.get(lane, room)]
        if answered:
            done_keys, done_args = self._completions_parts(answered)
            keys += done_keys
            args += [self.result_ttl_s, *done_args]
        (reply,) = await self._run_script(self._claim, [(keys, args)])
        read, taken, left, kept = reply
        return Claimed(read, [wire.Job.from_entry(entry_id,
                                                  dict(zip(flat[::2], flat[1::2], strict=True)),
                                                  LANES[lane])
                              for lane, entry_id, flat in taken],
                       frozenset(lane for lane, more in zip(LANES, left, strict=True) if more),
                       [bool(first) for first in kept])

    async def queued_mark(self) -> str:
        """Where to wait for the next job queued from (wait_queued)."""
        with translate_errors():
            last = await self._redis.xrevrange(self.keys.jobs_queued, count=1)
        return last[0][0].decode() if last else "0-0"

    async def wait_queued(self, mark: str, block_ms: int) -> str:
        """Wait up to block_ms for a job (of any lane and tenant) queued after `mark`: the new
        mark, or `mark` itself if none was."""
        with translate_errors():
            reply = await self._redis.xread({self.keys.jobs_queued: mark}, count=1,
                                           block=block_ms)
        for _, entries in reply or ():
            for entry_id, _ in entries:
                mark = entry_id.decode()
        return mark

    async def start(self, consumer: str, jobs: Sequence[wire.Job]) -> list[wire.Job]:
        """Mark jobs running on this consumer, in one round trip; those cancelled meanwhile are
        dropped (acknowledged and deleted) and left out."""
        calls = [([self.keys.cancels(consumer), self.keys.jobs(job.lane, job.tenant),
                   self.keys.job(job.id)],
                  [WORKER_GROUP, job.entry_id]) for job in jobs]
        started = await self._run_script(self._start, calls) if calls else []
        return [job for job, run in zip(jobs, started, strict=True) if run]

    async def read_cancels(self, consumer: str, after: str,
                           block_ms: int) -> tuple[str, list[str]]:
        """Ids of this consumer's running jobs cancelled after entry `after`, waiting up to
        block_ms: (the last entry read, the job ids)."""
        with translate_errors():
            reply = await self._redis.xread({self.keys.cancels(consumer): after}, count=100,
                                           block=block_ms)
        ids = []
        for _, entries in reply or ():
            for entry_id, fields in entries:
                after = entry_id.decode()
                ids.append(fields.get(wire.F_ID.encode(), b"").decode())
        return after, ids

    async def complete(self, job: wire.Job, result: bytes) -> bool:
        """Publish the result and retire the job; False when another delivery answered first
        (or the job was cancelled)."""
        return (await self.complete_many([(job, result)]))[0]

    async def complete_many(self, done: Sequence[tuple[wire.Job, bytes]]) -> list[bool]:
        """Publish several results in one script (see complete); per job, whether its result
        is the one kept."""
        keys, args = self._completions_parts(done)
        (kept,) = await self._run_script(self._complete, [(keys, [self.result_ttl_s,
                                                                   WORKER_GROUP, *args])])
        return [bool(first) for first in kept]

    def _completions_parts(self, done: Sequence[tuple[wire.Job, bytes]]
                           ) -> tuple[list[str], list[str | bytes]]:
        """The keys and arguments of completions, four each (job_scripts.COMPLETE_FUNCTION)."""
        keys: list[str] = []
        args: list[str | bytes] = []
        for job, result in done:
            lane = self.keys.jobs(job.lane, job.tenant)
            reply = self.keys.replies(job.reply_to) if job.reply_to else lane
            keys += [self.keys.job(job.id), lane, reply, self.keys.tenant_jobs(job.tenant)]
            args += [result, job.entry_id, job.id, "1" if job.reply_to else "0"]
        return keys, args

    async def requeue(self, job: wire.Job) -> None:
        """Hand an unfinished job back to its lane, atomically, for another worker to run."""
        flat = [part for pair in job.fields().items() for part in pair]
        with translate_errors():
            await self._requeue(keys=[self.keys.jobs(job.lane, job.tenant), self.keys.job(job.id)],
                                args=[job.entry_id, WORKER_GROUP, *flat])

    async def keep_claimed(self, consumer: str, jobs: Sequence[wire.Job]) -> None:
        """Reset the idle time of jobs still running here, so no other worker takes them."""
        by_stream: dict[str, list[str]] = {}
        for job in jobs:
            by_stream.setdefault(self.keys.jobs(job.lane, job.tenant), []).append(job.entry_id)
        if not by_stream:
            return
        with translate_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                for stream, ids in by_stream.items():
                    pipe.xclaim(stream, WORKER_GROUP, consumer, 0, ids, justid=True)
                await pipe.execute()

    async def reclaim(self, consumer: str, idle_ms: int, max_deliveries: int,
                      count: int) -> tuple[list[wire.Job], list[wire.Job]]:
        """Take over jobs of silent workers, lane by lane in order, tenant by tenant, at most
        `count`: (jobs to run again, marked running here; jobs delivered too often). Cancelled
        ones are dropped. They stay their tenants' running jobs throughout."""
        retry: list[wire.Job] = []
        dead: list[wire.Job] = []
        tenants = await self.queued_tenants()
        for lane, tenant in ((lane, tenant) for lane in LANES for tenant in tenants):
            if len(retry) + len(dead) >= count:
                break
            again, too_often = await self._reclaim_stream(
                lane, tenant, consumer, idle_ms, max_deliveries, count - len(retry) - len(dead))
            retry += again
            dead += too_often
        return await self.start(consumer, retry), dead

    async def _reclaim_stream(self, lane: Priority, tenant: str, consumer: str, idle_ms: int,
                              max_deliveries: int, count: int) -> tuple[list[wire.Job],
                                                                        list[wire.Job]]:
        stream = self.keys.jobs(lane, tenant)
        with translate_errors():
            pending = await self._redis.xpending_range(
                stream, WORKER_GROUP, min="-", max="+", count=count, idle=idle_ms)
            if not pending:
                return [], []
            ids = [p["message_id"] for p in pending]
            claimed = await self._redis.xclaim(stream, WORKER_GROUP, consumer, idle_ms, ids)
        deliveries = {p["message_id"]: p["times_delivered"] for p in pending}
        retry, dead = [], []
        for entry_id, fields in claimed:
            if not fields:  # deleted meanwhile: nothing left to run
                continue
            job = wire.Job.from_entry(entry_id, fields, lane)
            too_many = deliveries.get(entry_id, 0) >= max_deliveries
            (dead if too_many else retry).append(job)
        return retry, dead

    async def dead_letter(self, job: wire.Job, reason: str) -> None:
        """Keep the job for inspection and answer its caller with a sandbox_error."""
        with translate_errors():
            await self._redis.xadd(self.keys.dead_letters,
                                  {**job.fields(), "lane": job.lane.value, "reason": reason},
                                  maxlen=10_000, approximate=True)
        await self.complete(job, sandbox_error(job.id, reason, job.enqueued_ms).encode())
