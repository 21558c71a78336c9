"""Sessions: a sandbox kept for one caller, whose variables, imports and files persist between
calls, as in a notebook.

A session lives in a container of its own, held by the worker that opened it. Its record in
Redis (a hash, plus a sorted set of the open ones for the cluster-wide cap) is kept by the
SessionRegistry, used by API processes and workers alike. The SessionBroker is the API side: it
admits a session under the caps, sends each call straight to the worker holding it, and waits for
the answer while watching that worker's heartbeat, so that a dead worker means `session_lost`,
never a hang.
"""

import asyncio
import contextlib
import random
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel
from redis import asyncio as aioredis

from service import wire
from service.claim_batches import ClaimBatcher
from service.jobspec import TRANSIT_GRACE_S, JobSpec, _bounded, build_job_spec
from service.keys import Keys
from service.live_workers import LiveWorkers
from service.models import (
    RunRequest,
    SessionInfo,
    SessionRequest,
    SessionRunRequest,
    SessionState,
)
from service.output_stream import OutputStream
from service.queue import JobQueue, translate_errors
from service.replies import ReplyListener
from service.session_claims import FULL, TENANT_FULL, Claim, WarmClaims
from service.settings import Settings
from service.tenants import Tenant

HEARTBEATS_OF_SILENCE = 3  # a worker silent this many heartbeats counts as gone
OPEN_WAIT_S = 120.0  # a new container imports the preloaded modules before it answers
CLOSE_WAIT_S = 15.0
RECORD_GRACE_S = 60.0  # an open session's record outlives its idle TTL by this much
ENDED = {SessionState.CLOSED: "session_closed", SessionState.EXPIRED: "session_expired",
         SessionState.LOST: "session_lost"}


class SessionSpec(BaseModel):
    """A session's limits, resolved against the settings: the payload of an open call."""

    timeout_s: float
    memory_mb: int
    idle_ttl_s: float
    max_file_bytes: int
    tenant: str = ""


class BindSpec(SessionSpec):
    """The payload of a bind call: the session's limits and the warm container claimed for it."""

    container: str


@dataclass(frozen=True)
class Cell:
    """A session call checked and ready to send."""

    session_id: str
    worker: str
    tenant: str
    spec: JobSpec


class SessionRefused(Exception):
    """A session request not carried out: an HTTP status, a machine reason and a message."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status = status
        self.reason = reason


REFUSAL_STATUS = {"session_limit": 429, "session_quota": 429, "session_busy": 409, "not_found": 404,
                  "session_lost": 410, "session_closed": 410, "session_expired": 410,
                  "sandbox_unavailable": 503}


def refused(body: dict[str, Any]) -> SessionRefused:
    """The exception for a worker's refusal ({"error", "message"})."""
    reason = str(body["error"])
    return SessionRefused(REFUSAL_STATUS.get(reason, 503), reason, str(body.get("message")))


def build_session_spec(req: SessionRequest, settings: Settings, tenant: str = "") -> SessionSpec:
    return SessionSpec(
        tenant=tenant,
        timeout_s=_bounded("timeout", req.timeout, settings.default_timeout_s, 0.001,
                           settings.max_timeout_s),
        memory_mb=int(_bounded("memory_mb", req.memory_mb, settings.default_memory_mb,
                               settings.min_memory_mb, settings.max_memory_mb)),
        idle_ttl_s=_bounded("idle_ttl_s", req.idle_ttl_s, settings.default_session_idle_s, 1,
                            settings.max_session_idle_s),
        max_file_bytes=settings.container_tmpfs_mb * 1024 * 1024,
    )


def build_cell_spec(req: SessionRunRequest, session_timeout_s: float,
                    settings: Settings) -> JobSpec:
    """A call's code and limits, checked as a run's are."""
    run = RunRequest(code=req.code, files=req.files, return_files=req.return_files,
                     timeout=req.timeout or session_timeout_s,
                     max_output_bytes=req.max_output_bytes)
    return build_job_spec(run, settings, wall_clock=True)  # a cell's timeout is wall-clock


def new_id() -> str:
    return uuid.uuid4().hex


# --- the record in Redis --------------------------------------------------------------------------

# Every script keeps KEYS[3], the tenant's open sessions, as KEYS[1], everyone's, is kept.

# Admit a session if fewer than the cap are open, and fewer than the tenant's cap ARGV[6] of its
# own (-1: none), forgetting those whose time ran out. 1, or 0 past the cap, -1 past the tenant's.
_RESERVE = f"""
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
local quota = tonumber(ARGV[6])
if quota >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[1])
  if redis.call('ZCARD', KEYS[3]) >= quota then return -1 end
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
redis.call('HSET', KEYS[2], 'state', '{SessionState.OPENING}', unpack(ARGV, 7))
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 1
"""

# The worker's container is ready: it records itself as the owner, unless the caller gave up.
_ACTIVATE = f"""
if redis.call('HGET', KEYS[2], 'state') ~= '{SessionState.OPENING}' then return 0 end
redis.call('HSET', KEYS[2], 'state', '{SessionState.OPEN}', 'last_used_ms', ARGV[1],
           'worker', ARGV[5], 'container', ARGV[6])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return redis.call('HGETALL', KEYS[2])
"""

# A call ended: the session was used now (if it is still open).
_TOUCH = f"""
if redis.call('HGET', KEYS[2], 'state') ~= '{SessionState.OPEN}' then return 0 end
redis.call('HSET', KEYS[2], 'last_used_ms', ARGV[1])
redis.call('HINCRBY', KEYS[2], 'calls', 1)
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"""

# The session is over (first word wins); its record stays a while to say how it ended.
_END = f"""
local state = redis.call('HGET', KEYS[2], 'state')
if state ~= '{SessionState.OPENING}' and state ~= '{SessionState.OPEN}' then return 0 end
redis.call('HSET', KEYS[2], 'state', ARGV[1], 'message', ARGV[2], 'ended_ms', ARGV[4])
redis.call('ZREM', KEYS[1], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 1
"""

# An open request that failed: forget it as if it never was.
_DISCARD = f"""
if redis.call('HGET', KEYS[2], 'state') ~= '{SessionState.OPENING}' then return 0 end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
"""


class SessionRegistry:
    def __init__(self, redis: aioredis.Redis, keys: Keys, ended_ttl_s: int):
        self.redis = redis
        self.keys = keys
        self.ended_ttl_s = ended_ttl_s
        self._reserve = redis.register_script(_RESERVE)
        self._activate = redis.register_script(_ACTIVATE)
        self._touch = redis.register_script(_TOUCH)
        self._end = redis.register_script(_END)
        self._discard = redis.register_script(_DISCARD)

    def _keys(self, session_id: str, tenant: str) -> list[str]:
        return [self.keys.sessions, self.keys.session(session_id),
                self.keys.tenant_sessions(tenant)]

    async def reserve(self, session_id: str, spec: SessionSpec, worker_id: str, cap: int,
                      tenant_cap: int | None) -> int:
        """Record a session of spec.tenant being opened on worker_id: 1; 0 if `cap` sessions are
        open, -1 if `tenant_cap` of the tenant's are."""
        now = wire.now_ms()
        fields = {"worker": worker_id, "created_ms": now, "last_used_ms": now, "calls": 0,
                  "timeout_s": spec.timeout_s, "memory_mb": spec.memory_mb,
                  "idle_ttl_s": spec.idle_ttl_s, wire.F_TENANT: spec.tenant}
        flat = [part for pair in fields.items() for part in pair]
        with translate_errors():
            return int(await self._reserve(
                keys=self._keys(session_id, spec.tenant),
                args=[now, cap, now + OPEN_WAIT_S * 1000, session_id, round(OPEN_WAIT_S),
                      -1 if tenant_cap is None else tenant_cap, *flat]))

    async def activate(self, session_id: str, worker_id: str, idle_ttl_s: float,
                       tenant: str, container_id: str) -> SessionInfo | None:
        """The owner's container is ready: the session's record now; None if the session is no
        longer being opened."""
        now = wire.now_ms()
        with translate_errors():
            found = await self._activate(
                keys=self._keys(session_id, tenant),
                args=[now, now + idle_ttl_s * 1000, session_id, self._record_ttl(idle_ttl_s),
                      worker_id, container_id])
        if not found:
            return None
        return session_info(session_id, dict(zip(found[::2], found[1::2], strict=True)))

    async def touch(self, session_id: str, idle_ttl_s: float, tenant: str) -> bool:
        """A call ended now; False if the session is no longer open."""
        now = wire.now_ms()
        with translate_errors():
            return bool(await self._touch(
                keys=self._keys(session_id, tenant),
                args=[now, now + idle_ttl_s * 1000, session_id, self._record_ttl(idle_ttl_s)]))

    async def end(self, session_id: str, tenant: str, state: SessionState, message: str) -> bool:
        """Mark the session ended; False if it already was."""
        with translate_errors():
            return bool(await self._end(
                keys=self._keys(session_id, tenant),
                args=[state.value, message, session_id, wire.now_ms(), self.ended_ttl_s]))

    async def discard(self, session_id: str, tenant: str) -> None:
        with translate_errors():
            await self._discard(keys=self._keys(session_id, tenant), args=[session_id])

    async def get(self, session_id: str) -> SessionInfo | None:
        with translate_errors():
            fields = await self.redis.hgetall(self.keys.session(session_id))
        return session_info(session_id, fields) if fields else None

    async def listed(self) -> list[SessionInfo]:
        """Every session counted against the cap, oldest first."""
        with translate_errors():
            ids = [i.decode() for i in await self.redis.zrange(self.keys.sessions, 0, -1)]
            async with self.redis.pipeline(transaction=False) as pipe:
                for session_id in ids:
                    pipe.hgetall(self.keys.session(session_id))
                found = await pipe.execute()
        infos = [session_info(i, f) for i, f in zip(ids, found, strict=True) if f]
        return sorted(infos, key=lambda info: info.created_at)

    @staticmethod
    def _record_ttl(idle_ttl_s: float) -> int:
        return round(idle_ttl_s + RECORD_GRACE_S)


def session_info(session_id: str, raw: dict[bytes, bytes]) -> SessionInfo:
    fields = {k.decode(): v.decode() for k, v in raw.items()}
    state = SessionState(fields["state"])
    last_used_s = float(fields["last_used_ms"]) / 1000
    idle_ttl_s = float(fields["idle_ttl_s"])
    return SessionInfo(
        id=session_id, state=state, timeout=float(fields["timeout_s"]),
        memory_mb=int(fields["memory_mb"]), idle_ttl_s=idle_ttl_s,
        created_at=float(fields["created_ms"]) / 1000, last_used_at=last_used_s,
        expires_at=last_used_s + idle_ttl_s if state is SessionState.OPEN else None,
        calls=int(fields.get("calls", 0)), worker=fields.get("worker"),
        message=fields.get("message"), tenant=fields.get(wire.F_TENANT, ""),
    )


# --- the API side -----------------------------------------------------------------------------------

class WorkerGone(Exception):
    """The worker holding a session stopped sending heartbeats."""


class SessionBroker:
    def __init__(self, queue: JobQueue, replies: ReplyListener, api_id: str, settings: Settings):
        self.queue = queue
        self.replies = replies
        self.api_id = api_id
        self.settings = settings
        self.registry = SessionRegistry(queue.redis, queue.keys, settings.result_ttl_s)
        self.claims = WarmClaims(queue.redis, queue.keys)
        self.output = OutputStream(queue.redis, queue.keys)
        self.silence_s = settings.heartbeat_s * HEARTBEATS_OF_SILENCE
        self.workers = LiveWorkers(queue, self.silence_s)
        self.batcher = ClaimBatcher(self.claims, settings.max_sessions, self.silence_s)

    async def open(self, req: SessionRequest, tenant: Tenant, limits: Settings) -> bytes:
        """Open a session for the tenant, its limits checked against `limits` (its caps): a warm
        container claimed for it (answered at once; the worker makes it the session's before its
        first call), else one the worker with most room starts for it."""
        spec = build_session_spec(req, limits, tenant.name)
        session_id = new_id()
        claimed = await self._claim(session_id, spec, tenant)
        if claimed is not None:
            return claimed.model_dump_json().encode()
        workers = await self.workers.read()
        return await self._open_cold(session_id, spec, pick_worker(workers), tenant)

    async def _claim(self, session_id: str, spec: SessionSpec,
                     tenant: Tenant) -> SessionInfo | None:
        now = wire.now_ms()
        fields = {"created_ms": now, "last_used_ms": now, "calls": 0,
                  "timeout_s": spec.timeout_s, "memory_mb": spec.memory_mb,
                  "idle_ttl_s": spec.idle_ttl_s, wire.F_TENANT: spec.tenant}
        found = await self.batcher.claim(Claim(
            session_id, spec.tenant, tenant.max_sessions, now + spec.idle_ttl_s * 1000,
            SessionRegistry._record_ttl(spec.idle_ttl_s), fields, spec.model_dump_json().encode()))
        if found in (FULL, TENANT_FULL):
            raise self._full(tenant, found == TENANT_FULL)
        if not isinstance(found, tuple):
            return None
        raw = {k.encode(): str(v).encode() for k, v in fields.items()}
        raw |= {b"state": SessionState.OPEN.encode(), b"worker": found[0].encode()}
        return session_info(session_id, raw)

    def _full(self, tenant: Tenant, tenant_full: bool) -> SessionRefused:
        if tenant_full:
            return SessionRefused(429, "session_quota", f"your tenant has {tenant.max_sessions} "
                                  "sessions open, as many as it may; close one or retry later")
        return SessionRefused(429, "session_limit", f"{self.settings.max_sessions} sessions are "
                              "open; close one or retry later")

    async def _open_cold(self, session_id: str, spec: SessionSpec, worker_id: str,
                         tenant: Tenant) -> bytes:
        admitted = await self.registry.reserve(session_id, spec, worker_id,
                                               self.settings.max_sessions, tenant.max_sessions)
        if admitted <= 0:
            raise self._full(tenant, admitted < 0)
        opened = False
        try:
            answer = await self._call(worker_id, wire.OP_OPEN, session_id,
                                      spec.model_dump_json().encode(), OPEN_WAIT_S)
            opened = True
            return answer
        except WorkerGone as exc:
            raise SessionRefused(503, "sandbox_unavailable",
                                 "the worker opening the session stopped; retry") from exc
        except TimeoutError as exc:
            raise SessionRefused(503, "sandbox_unavailable",
                                 "no sandbox for the session in time; retry") from exc
        finally:
            if not opened:  # forgotten, unless the worker opened it meanwhile
                await self.registry.discard(session_id, tenant.name)

    async def run(self, session_id: str, req: SessionRunRequest, tenant: Tenant,
                  limits: Settings, ipython: str | None = None) -> bytes:
        """Run a cell; `ipython` (a traceback mode) shows its value and traceback on stdout as
        IPython's shell does."""
        cell = await self.prepare(session_id, req, tenant, limits, ipython=ipython)
        return await self.run_prepared(cell, new_id())

    async def prepare(self, session_id: str, req: SessionRunRequest, tenant: Tenant,
                      limits: Settings, ipython: str | None = None, stream: bool = False) -> Cell:
        """A call checked (the session open, the code and limits valid), not yet sent; with
        `stream`, its output is relayed as produced under the call's id (output_stream.py)."""
        info = await self.info(session_id, tenant)
        require_open(info)
        spec = build_cell_spec(req, info.timeout, limits)
        spec.ipython, spec.stream = ipython, stream
        return Cell(session_id, str(info.worker), info.tenant, spec)

    async def run_prepared(self, cell: Cell, call_id: str) -> bytes:
        wait_s = (cell.spec.runner_wait_s() + self.settings.session_interrupt_grace_s
                  + TRANSIT_GRACE_S)
        try:
            return await self._call(cell.worker, wire.OP_RUN, cell.session_id,
                                    cell.spec.model_dump_json().encode(), wait_s, call_id)
        except WorkerGone as exc:
            await self.registry.end(cell.session_id, cell.tenant, SessionState.LOST,
                                    "its worker stopped")
            raise SessionRefused(410, "session_lost", "the worker holding the session stopped; "
                                 "its state is gone: open a new session") from exc
        except TimeoutError as exc:
            raise SessionRefused(503, "sandbox_unavailable",
                                 "the session's worker did not answer in time") from exc

    async def close(self, session_id: str, tenant: Tenant) -> SessionInfo:
        info = await self.info(session_id, tenant)
        if info.state in (SessionState.OPEN, SessionState.OPENING):
            # If the worker cannot say, its container goes with it (or with its idle check).
            with contextlib.suppress(WorkerGone, TimeoutError, SessionRefused):
                await self._call(str(info.worker), wire.OP_CLOSE, session_id, b"{}", CLOSE_WAIT_S)
            await self.registry.end(session_id, info.tenant, SessionState.CLOSED,
                                    "closed by its caller")
        return await self.info(session_id, tenant)

    async def info(self, session_id: str, tenant: Tenant) -> SessionInfo:
        """The session's record, if the tenant may see it (another's is as unknown); an open
        one whose worker has stopped is marked lost."""
        info = await self.registry.get(session_id)
        if info is None or not tenant.can_see(info.tenant):
            raise SessionRefused(404, "not_found", f"no session {session_id!r}: unknown, or "
                                 "ended long enough ago to be forgotten")
        if info.state in (SessionState.OPEN, SessionState.OPENING) and info.worker \
                and not await self._alive(info.worker):
            await self.registry.end(session_id, info.tenant, SessionState.LOST,
                                    "its worker stopped")
            info = await self.registry.get(session_id) or info
        return info

    async def listed(self, tenant: Tenant) -> list[SessionInfo]:
        """The open sessions the tenant may see: its own, or every one for an admin."""
        infos = [i for i in await self.registry.listed() if tenant.can_see(i.tenant)]
        live = {w["id"] for w in await self.queue.live_workers(self.silence_s)}
        lost = [i for i in infos if i.worker not in live]
        for info in lost:
            await self.registry.end(info.id, info.tenant, SessionState.LOST, "its worker stopped")
        return [i for i in infos if i.worker in live]

    async def _call(self, worker_id: str, op: str, session_id: str, payload: bytes,
                    wait_s: float, call_id: str | None = None) -> bytes:
        """Send a call to the worker and wait for its answer (a refusal is raised)."""
        call_id = call_id or new_id()
        future = self.replies.expect(call_id)
        try:
            await self.queue.send_session_call(
                worker_id, wire.SessionCall("", op, session_id, call_id, payload, self.api_id))
            body = await self._await(future, worker_id, wait_s)
        finally:
            self.replies.forget(call_id)
        if body.startswith(b'{"error"'):
            raise refused(orjson.loads(body))
        return body

    async def _await(self, future: asyncio.Future[bytes], worker_id: str, wait_s: float) -> bytes:
        """The answer; WorkerGone as soon as the worker is seen dead, TimeoutError after wait_s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while not future.done():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            await asyncio.wait({future}, timeout=min(self.settings.heartbeat_s, remaining))
            if not future.done() and not await self._alive(worker_id):
                raise WorkerGone(worker_id)
        return future.result()

    async def _alive(self, worker_id: str) -> bool:
        last = await self.queue.last_heartbeat_ms(worker_id)
        return last is not None and wire.now_ms() - last < self.silence_s * 1000


def pick_worker(workers: list[dict[str, str]]) -> str:
    """The live worker with the most room for sessions (by its last heartbeat)."""
    if not workers:
        raise SessionRefused(503, "sandbox_unavailable", "no worker is running; retry later")
    room = {w["id"]: int(w.get("session_capacity", 0)) - int(w.get("sessions", 0))
            for w in workers}
    best = max(room.values())
    if best <= 0:
        raise SessionRefused(429, "session_limit", "every worker holds as many sessions as it "
                             "may; close one or retry later")
    return random.choice([w for w, free in room.items() if free == best])


def require_open(info: SessionInfo) -> None:
    if info.state in ENDED:
        raise SessionRefused(410, ENDED[info.state], f"the session is {info.state.value}"
                             + (f": {info.message}" if info.message else ""))
    if info.state is SessionState.OPENING:
        raise SessionRefused(409, "session_busy", "the session is still opening")
