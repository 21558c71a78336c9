"""The only code that speaks Redis Streams: enqueue, claim, complete, reclaim, reply.

At-least-once delivery through the consumer group; exactly one visible result per job, because
completing is a script that keeps the first result and ignores any later one.
"""

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from redis import asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError, ResponseError

from service import wire
from service.backoff import Backoff
from service.keys import WORKER_GROUP, Keys
from service.models import JobState

log = logging.getLogger(__name__)

REPLY_STREAM_MAXLEN = 10_000
REPLY_STREAM_TTL_S = 3600
SESSION_CALLS_MAXLEN = 1000
SESSION_CALLS_TTL_S = 3600


class QueueUnavailable(Exception):
    """Redis cannot be reached or refused the command: our failure, retry later."""


class QueueFull(Exception):
    """The queue holds as many jobs as it may: back off and retry."""


class QuotaExceeded(Exception):
    """The tenant has as many jobs waiting or running as its max_queued: back off and retry."""


# ARGV[1]: the queue's depth limit, or 0 when the caller has already made room (a batch);
# ARGV[8]: the tenant's max_queued, or 0 (no limit, or room already made). KEYS[3]: the set of
# the tenant's jobs waiting or running, which the job joins until it completes.
# The job's record has no expiry while it waits or runs: completing gives it one.
_ENQUEUE = f"""
local limit = tonumber(ARGV[1])
if limit > 0 and redis.call('XLEN', KEYS[1]) >= limit then return 0 end
local quota = tonumber(ARGV[8])
if quota > 0 and redis.call('SCARD', KEYS[3]) >= quota then return -1 end
redis.call('XADD', KEYS[1], '*', '{wire.F_ID}', ARGV[2], '{wire.F_PAYLOAD}', ARGV[3],
           '{wire.F_REPLY_TO}', ARGV[4], '{wire.F_ENQUEUED_MS}', ARGV[5],
           '{wire.F_DEADLINE_MS}', ARGV[6], '{wire.F_TENANT}', ARGV[7])
redis.call('HSET', KEYS[2], '{wire.F_STATE}', '{JobState.QUEUED}', '{wire.F_TENANT}', ARGV[7])
redis.call('SADD', KEYS[3], ARGV[2])
return 1
"""

# Room for a batch of ARGV[1] jobs: 1, or 0 past the queue's depth, -1 past the tenant's quota.
_ROOM = """
if redis.call('XLEN', KEYS[1]) + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return 0 end
local quota = tonumber(ARGV[3])
if quota > 0 and redis.call('SCARD', KEYS[2]) + tonumber(ARGV[1]) > quota then return -1 end
return 1
"""

_MARK_RUNNING = f"""
if redis.call('HGET', KEYS[1], '{wire.F_STATE}') == '{JobState.QUEUED}' then
  redis.call('HSET', KEYS[1], '{wire.F_STATE}', '{JobState.RUNNING}')
end
return 1
"""

_COMPLETE = f"""
local first = redis.call('HGET', KEYS[1], '{wire.F_STATE}') ~= '{JobState.DONE}'
if first then
  redis.call('HSET', KEYS[1], '{wire.F_STATE}', '{JobState.DONE}', '{wire.F_RESULT}', ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  if ARGV[6] == '1' then
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', {REPLY_STREAM_MAXLEN}, '*',
               '{wire.F_ID}', ARGV[5], '{wire.F_RESULT}', ARGV[1])
    redis.call('EXPIRE', KEYS[3], {REPLY_STREAM_TTL_S})
  end
end
redis.call('XACK', KEYS[2], ARGV[4], ARGV[3])
redis.call('XDEL', KEYS[2], ARGV[3])
redis.call('SREM', KEYS[4], ARGV[5])
if first then return 1 end
return 0
"""


_REQUEUE = f"""
redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
redis.call('XACK', KEYS[1], ARGV[2], ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
if redis.call('HGET', KEYS[2], '{wire.F_STATE}') == '{JobState.RUNNING}' then
  redis.call('HSET', KEYS[2], '{wire.F_STATE}', '{JobState.QUEUED}')
end
return 1
"""


def raise_if_refused(admitted: int) -> None:
    """The exception for an admission script's answer: 1 admitted, 0 queue full, -1 quota."""
    if admitted == 0:
        raise QueueFull
    if admitted < 0:
        raise QuotaExceeded


def raise_if_cancelled() -> None:
    """Raise CancelledError if the running task has been asked to stop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


@contextlib.contextmanager
def translate_errors():
    """Redis's exceptions become ours at this boundary, which every Redis call passes.

    It also hands back a cancellation redis-py lost: now and then redis-py turns the
    CancelledError of a cancelled call into one of its own errors, or swallows it and returns.
    A loop that went on after that would never end (a worker asked to stop would hang), so a
    cancellation still pending when a call ends, either way, is raised here.
    """
    try:
        yield
    except (RedisError, OSError) as exc:
        raise_if_cancelled()
        raise QueueUnavailable(str(exc) or type(exc).__name__) from exc
    raise_if_cancelled()


class JobQueue:
    def __init__(self, redis: aioredis.Redis, keys: Keys, result_ttl_s: int, max_depth: int):
        self.redis = redis
        self.keys = keys
        self.result_ttl_s = result_ttl_s
        self.max_depth = max_depth
        self._enqueue = redis.register_script(_ENQUEUE)
        self._room = redis.register_script(_ROOM)
        self._mark_running_script = redis.register_script(_MARK_RUNNING)
        self._complete = redis.register_script(_COMPLETE)
        self._requeue = redis.register_script(_REQUEUE)
        self._background: set[asyncio.Task[None]] = set()

    # --- API side ------------------------------------------------------------------------------

    async def enqueue(self, jobs: Sequence[tuple[str, bytes]], reply_to: str,
                      deadline_ms: float, tenant: str = "", max_queued: int | None = None) -> None:
        """Queue (job id, payload) pairs of one tenant, all or none: QueueFull, or QuotaExceeded
        past the tenant's max_queued (jobs waiting or running), with none queued.

        One job: checked and queued in one script. Several: the room is checked first, then
        all are queued in one round trip, unchecked (one script queuing a 10,000-job batch would
        hold Redis for ~70 ms, every other client shut out; a pipeline lets them in between
        its commands). Batches admitted at the same moment may
        together take the queue (or a tenant) past its limit by their sizes (it is a bound on
        backlog, not a hard cap), but no batch is ever queued in part.
        """
        limit, quota = self.max_depth, max_queued or 0
        if len(jobs) > 1:
            with translate_errors():
                room = await self._room(keys=[self.keys.jobs, self.keys.tenant_jobs(tenant)],
                                        args=[len(jobs), self.max_depth, quota])
            raise_if_refused(room)
            limit = quota = 0
        now = wire.now_ms()
        calls = [([self.keys.jobs, self.keys.job(job_id), self.keys.tenant_jobs(tenant)],
                  [limit, job_id, payload, reply_to, now, deadline_ms, tenant, quota])
                 for job_id, payload in jobs]
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
                async with self.redis.pipeline(transaction=False) as pipe:
                    for keys, args in calls:
                        pipe.evalsha(script.sha, len(keys), *keys, *args)
                    try:
                        return await pipe.execute()
                    except NoScriptError:
                        await self.redis.script_load(script.script)
            raise QueueUnavailable("the script could not be loaded")

    async def status(self, job_id: str) -> tuple[JobState, bytes | None, str] | None:
        """A job's state, its result once done, and its tenant; None if unknown or expired."""
        with translate_errors():
            fields = await self.redis.hmget(self.keys.job(job_id), wire.F_STATE, wire.F_RESULT,
                                            wire.F_TENANT)
        state, result, tenant = fields
        if state is None:
            return None
        return JobState(state.decode()), result, (tenant or b"").decode()

    async def tenant_jobs(self, tenants: Sequence[str]) -> dict[str, int]:
        """Jobs waiting or running, per tenant."""
        with translate_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                for tenant in tenants:
                    pipe.scard(self.keys.tenant_jobs(tenant))
                counts = await pipe.execute()
        return dict(zip(tenants, counts, strict=True))

    async def depth(self) -> int:
        with translate_errors():
            return await self.redis.xlen(self.keys.jobs)

    # --- worker side ---------------------------------------------------------------------------

    async def ensure_group(self) -> None:
        with translate_errors():
            try:
                await self.redis.xgroup_create(self.keys.jobs, WORKER_GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def claim(self, consumer: str, count: int, block_ms: int) -> list[wire.Job]:
        """New jobs for this consumer, as many as it has room for, waiting up to block_ms."""
        with translate_errors():
            try:
                reply = await self.redis.xreadgroup(
                    WORKER_GROUP, consumer, {self.keys.jobs: ">"}, count=count, block=block_ms
                )
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # Redis lost the group (restarted without its data, the key deleted): make it
                # again, from the stream's start, so jobs queued since are claimed.
                log.warning("the workers' consumer group was gone; created again")
                await self.ensure_group()
                return []
        jobs = [wire.Job.from_entry(eid, fields) for _, entries in reply or ()
                for eid, fields in entries if fields]
        self._mark_running(jobs)
        return jobs

    def _mark_running(self, jobs: list[wire.Job]) -> None:
        """Mark the jobs running, in the background: the state is for pollers, the execution
        need not wait for it, nor fail when it cannot be written."""
        if jobs:
            task = asyncio.create_task(self._set_running_quietly(jobs))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _set_running_quietly(self, jobs: list[wire.Job]) -> None:
        with contextlib.suppress(QueueUnavailable):
            await self._run_script(self._mark_running_script,
                                   [([self.keys.job(job.id)], []) for job in jobs])

    async def complete(self, job: wire.Job, result: bytes) -> bool:
        """Publish the result and retire the job; False when another delivery answered first."""
        reply = self.keys.replies(job.reply_to) if job.reply_to else self.keys.jobs
        with translate_errors():
            first = await self._complete(
                keys=[self.keys.job(job.id), self.keys.jobs, reply,
                      self.keys.tenant_jobs(job.tenant)],
                args=[result, self.result_ttl_s, job.entry_id, WORKER_GROUP, job.id,
                      "1" if job.reply_to else "0"],
            )
        return bool(first)

    async def requeue(self, job: wire.Job) -> None:
        """Hand an unfinished job back to the queue, atomically, for another worker to run."""
        flat = [part for pair in job.fields().items() for part in pair]
        with translate_errors():
            await self._requeue(keys=[self.keys.jobs, self.keys.job(job.id)],
                                args=[job.entry_id, WORKER_GROUP, *flat])

    async def keep_claimed(self, consumer: str, entry_ids: Sequence[str]) -> None:
        """Reset the idle time of jobs still running here, so no other worker takes them."""
        if not entry_ids:
            return
        with translate_errors():
            await self.redis.xclaim(self.keys.jobs, WORKER_GROUP, consumer, 0, list(entry_ids),
                                    justid=True)

    async def reclaim(self, consumer: str, idle_ms: int, max_deliveries: int,
                      count: int) -> tuple[list[wire.Job], list[wire.Job]]:
        """Take over jobs of silent workers: (jobs to run again, jobs delivered too often)."""
        with translate_errors():
            pending = await self.redis.xpending_range(
                self.keys.jobs, WORKER_GROUP, min="-", max="+", count=count, idle=idle_ms
            )
            if not pending:
                return [], []
            ids = [p["message_id"] for p in pending]
            claimed = await self.redis.xclaim(self.keys.jobs, WORKER_GROUP, consumer, idle_ms, ids)
        deliveries = {p["message_id"]: p["times_delivered"] for p in pending}
        retry, dead = [], []
        for entry_id, fields in claimed:
            if not fields:  # deleted meanwhile: nothing left to run
                continue
            job = wire.Job.from_entry(entry_id, fields)
            too_many = deliveries.get(entry_id, 0) >= max_deliveries
            (dead if too_many else retry).append(job)
        self._mark_running(retry)
        return retry, dead

    async def dead_letter(self, job: wire.Job, reason: str) -> None:
        """Keep the job for inspection and answer its caller with a sandbox_error."""
        with translate_errors():
            await self.redis.xadd(self.keys.dead_letters, {**job.fields(), "reason": reason},
                                  maxlen=10_000, approximate=True)
        await self.complete(job, wire.sandbox_error(job.id, reason, job.enqueued_ms))

    async def heartbeat(self, worker_id: str, info: dict[str, str | int | float],
                        ttl_s: float) -> None:
        with translate_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hset(self.keys.worker(worker_id), mapping=info)
                pipe.expire(self.keys.worker(worker_id), max(1, round(ttl_s)))
                pipe.zadd(self.keys.workers, {worker_id: wire.now_ms()})
                await pipe.execute()

    async def live_workers(self, max_age_s: float) -> list[dict[str, str]]:
        """Self-descriptions of workers whose last heartbeat is younger than max_age_s."""
        since = wire.now_ms() - max_age_s * 1000
        with translate_errors():
            ids = await self.redis.zrangebyscore(self.keys.workers, since, "+inf")
            if not ids:
                return []
            async with self.redis.pipeline(transaction=False) as pipe:
                for worker_id in ids:
                    pipe.hgetall(self.keys.worker(worker_id.decode()))
                found = await pipe.execute()
        return [
            {"id": wid.decode(), **{k.decode(): v.decode() for k, v in info.items()}}
            for wid, info in zip(ids, found, strict=True) if info
        ]

    async def forget_worker(self, worker_id: str) -> None:
        with translate_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.delete(self.keys.worker(worker_id))
                pipe.zrem(self.keys.workers, worker_id)
                await pipe.execute()

    async def last_heartbeat_ms(self, worker_id: str) -> float | None:
        """When the worker last said it lives (ms); None if it never did or has stopped."""
        with translate_errors():
            return await self.redis.zscore(self.keys.workers, worker_id)

    # --- session calls: straight to the worker holding the session -----------------------------

    async def send_session_call(self, worker_id: str, call: wire.SessionCall) -> None:
        stream = self.keys.session_calls(worker_id)
        with translate_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xadd(stream, call.fields(), maxlen=SESSION_CALLS_MAXLEN, approximate=True)
                pipe.expire(stream, SESSION_CALLS_TTL_S)
                await pipe.execute()

    async def read_session_calls(self, worker_id: str, after: str,
                                 block_ms: int) -> list[wire.SessionCall]:
        """This worker's session calls after entry `after`, waiting up to block_ms; those read
        are deleted (a worker that dies loses its sessions anyway)."""
        stream = self.keys.session_calls(worker_id)
        with translate_errors():
            reply = await self.redis.xread({stream: after}, count=100, block=block_ms)
        calls = [wire.SessionCall.from_entry(eid, fields) for _, entries in reply or ()
                 for eid, fields in entries]
        if calls:
            with contextlib.suppress(RedisError, OSError):
                await self.redis.xdel(stream, *[call.entry_id for call in calls])
        return calls

    async def reply(self, reply_to: str, call_id: str, body: bytes) -> None:
        """Answer one waiting caller on its API process's reply stream."""
        stream = self.keys.replies(reply_to)
        with translate_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xadd(stream, {wire.F_ID: call_id, wire.F_RESULT: body},
                          maxlen=REPLY_STREAM_MAXLEN, approximate=True)
                pipe.expire(stream, REPLY_STREAM_TTL_S)
                await pipe.execute()


class ReplyListener:
    """One reader per API process: resolves the futures of waiting callers by job id."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, api_id: str):
        self.redis = redis
        self.stream = keys.replies(api_id)
        self.waiters: dict[str, asyncio.Future[bytes]] = {}
        self._task: asyncio.Task[None] | None = None

    def expect(self, job_id: str) -> asyncio.Future[bytes]:
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.waiters[job_id] = future
        return future

    def forget(self, job_id: str) -> None:
        self.waiters.pop(job_id, None)

    def start(self) -> None:
        self._task = asyncio.create_task(self._read_forever(), name="reply-listener")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(RedisError, OSError):
            await self.redis.delete(self.stream)

    async def _read_forever(self) -> None:
        last_id = "0"
        backoff = Backoff(0.05, 2.0)
        while True:
            try:
                with translate_errors():
                    reply = await self.redis.xread({self.stream: last_id}, count=1000, block=5000)
                backoff.reset()
            except QueueUnavailable as exc:
                log.warning("reply stream unreadable, retrying", extra={"error": str(exc)})
                await backoff.wait()
                continue
            for _, entries in reply or ():
                for entry_id, fields in entries:
                    last_id = entry_id
                    self._resolve(fields)

    def _resolve(self, fields: dict[bytes, bytes]) -> None:
        job_id = fields.get(wire.F_ID.encode(), b"").decode()
        future = self.waiters.pop(job_id, None)
        if future is not None and not future.done():
            future.set_result(fields.get(wire.F_RESULT.encode(), b""))

