"""Sessions: a sandbox kept for one caller, whose variables, imports and files persist between
calls, as in a notebook.

A session lives in a container of its own, held by the worker that opened it. Its record in
Redis is kept by the session registry (service/store/sessions.py), used by API processes and
workers alike. The SessionBroker here is the API side: it admits a session under the caps, sends
each call straight to the worker holding it, and waits for the answer while watching that
worker's heartbeat, so that a dead worker means `session_lost`, never a hang.
"""

import asyncio
import contextlib
import random
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel

from service import wire
from service.claim_batches import ClaimBatcher
from service.jobspec import TRANSIT_GRACE_S, JobSpec, _bounded, build_job_spec
from service.models import (
    RunRequest,
    SessionInfo,
    SessionRequest,
    SessionRunRequest,
    SessionState,
)
from service.settings import Settings
from service.store import Store
from service.store.replies import ReplyListener
from service.store.session_claims import FULL, TENANT_FULL, Claim
from service.store.sessions import Record, record_ttl_s, session_info
from service.tenants import Tenant

OPEN_WAIT_S = 120.0  # a new container imports the preloaded modules before it answers
CLOSE_WAIT_S = 15.0
ENDED = {SessionState.CLOSED: "session_closed", SessionState.EXPIRED: "session_expired",
         SessionState.LOST: "session_lost"}


class SessionSpec(BaseModel):
    """A session's limits, resolved against the settings: the payload of an open call."""

    timeout_s: float
    memory_mb: int
    idle_ttl_s: float
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


def record_fields(spec: SessionSpec, now: float) -> Record:
    """A new session's record, but for its owner and state."""
    return {"created_ms": now, "last_used_ms": now, "calls": 0, "timeout_s": spec.timeout_s,
            "memory_mb": spec.memory_mb, "idle_ttl_s": spec.idle_ttl_s,
            wire.F_TENANT: spec.tenant}


# --- the API side -----------------------------------------------------------------------------------

class WorkerGone(Exception):
    """The worker holding a session stopped sending heartbeats."""


class SessionBroker:
    def __init__(self, store: Store, replies: ReplyListener, api_id: str, settings: Settings):
        self.store = store
        self.replies = replies
        self.api_id = api_id
        self.settings = settings
        self.registry = store.sessions
        self.output = store.output
        self.batcher = ClaimBatcher(store.warm_claims, settings.max_sessions, store.workers)

    async def open(self, req: SessionRequest, tenant: Tenant, limits: Settings) -> bytes:
        """Open a session for the tenant, its limits checked against `limits` (its caps): a warm
        container claimed for it (answered at once; the worker makes it the session's before its
        first call), else one the worker with most room starts for it."""
        spec = build_session_spec(req, limits, tenant.name)
        session_id = new_id()
        claimed = await self._claim(session_id, spec, tenant)
        if claimed is not None:
            return claimed.model_dump_json().encode()
        workers = await self.store.workers.live()
        return await self._open_cold(session_id, spec, pick_worker(workers), tenant)

    async def _claim(self, session_id: str, spec: SessionSpec,
                     tenant: Tenant) -> SessionInfo | None:
        now = wire.now_ms()
        fields = record_fields(spec, now)
        found = await self.batcher.claim(Claim(
            session_id, spec.tenant, tenant.max_sessions, now + spec.idle_ttl_s * 1000,
            record_ttl_s(spec.idle_ttl_s), fields, spec.model_dump_json().encode()))
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
        now = wire.now_ms()
        admitted = await self.registry.reserve(
            session_id, spec.tenant, {"worker": worker_id, **record_fields(spec, now)}, now,
            OPEN_WAIT_S, self.settings.max_sessions, tenant.max_sessions)
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
        `stream`, its output is relayed as produced under the call's id (service/store/output.py)."""
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
                and not await self.store.workers.alive(info.worker):
            await self.registry.end(session_id, info.tenant, SessionState.LOST,
                                    "its worker stopped")
            info = await self.registry.get(session_id) or info
        return info

    async def listed(self, tenant: Tenant) -> list[SessionInfo]:
        """The open sessions the tenant may see: its own, or every one for an admin."""
        infos = [i for i in await self.registry.listed() if tenant.can_see(i.tenant)]
        live = {w["id"] for w in await self.store.workers.live()}
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
            await self.store.session_calls.send(
                worker_id, wire.SessionCall("", op, session_id, call_id, payload, self.api_id))
            return await self._await(future, worker_id, wait_s)
        except wire.Refused as exc:
            raise refused(orjson.loads(exc.body)) from None
        finally:
            self.replies.forget(call_id)

    async def _await(self, future: asyncio.Future[bytes], worker_id: str, wait_s: float) -> bytes:
        """The answer; WorkerGone as soon as the worker is seen dead, TimeoutError after wait_s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while not future.done():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            await asyncio.wait({future}, timeout=min(self.settings.heartbeat_s, remaining))
            if not future.done() and not await self.store.workers.alive(worker_id):
                raise WorkerGone(worker_id)
        return future.result()


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
