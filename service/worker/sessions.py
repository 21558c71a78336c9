"""The sessions one worker holds: a container of its own each, outside the one-shot pool.

Calls reach this worker on its own session-call stream (store/session_calls.py): `bind` makes a warm
container an API process claimed (session_pool.py), whose runner's waiting child is ready to keep
a namespace from cell to cell, the session's; `open` does the same with a container started for
it when none was warm; `run` runs one cell (after the bind, if it
is still under way), `close` removes the container. A session idle past its TTL is closed here
too. Answers go to the caller's reply stream (a bind has none: its caller did not wait).
"""

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from service import runner_protocol as rp
from service import wire
from service.backoff import Backoff
from service.jobspec import JobSpec
from service.models import SessionState
from service.result import from_report, sandbox_error
from service.sessions import BindSpec, SessionSpec
from service.settings import Settings
from service.store import QueueUnavailable, Store
from service.worker.docker_engine import EngineUnavailable
from service.worker.exchange import exchange
from service.worker.pool import ContainerPool, Sandbox
from service.worker.runner_channel import RunnerGone
from service.worker.session_pool import SessionPool

log = logging.getLogger(__name__)

READ_BLOCK_MS = 1000
REAP_INTERVAL_S = 1.0


@dataclass
class LiveSession:
    id: str
    spec: SessionSpec
    sandbox: Sandbox
    last_used: float = field(default_factory=time.monotonic)
    busy: bool = False


class SessionHost:
    def __init__(self, store: Store, pool: ContainerPool, settings: Settings, worker_id: str,
                 capacity: int):
        self.store = store
        self.capacity = capacity  # sessions held at most (session_capacity.py)
        self.pool = pool
        self.settings = settings
        self.worker_id = worker_id
        self.registry = store.sessions
        self.output = store.output
        self.sessions: dict[str, LiveSession] = {}
        self._opening = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._binding: dict[str, asyncio.Event] = {}  # session id → set once bound (or not)
        self.warm = SessionPool(pool, settings, store.warm_claims, worker_id)
        self.warm.room = lambda: self.capacity - self._held()

    def describe(self) -> dict[str, int]:
        """For the heartbeat: API processes send new sessions where there is room."""
        return {"sessions": self._held(),
                "session_capacity": self.capacity,
                "warm_sessions": self.warm.warm}

    @property
    def warming(self) -> int:
        """Warm containers for sessions wanted and not yet up (the heartbeat's `starting`)."""
        return self.warm.missing

    def _held(self) -> int:
        return len(self.sessions) + self._opening + len(self._binding)

    async def serve(self) -> None:
        """Keep containers warm, read and answer calls, and close idle sessions, until
        cancelled."""
        self.warm.start()
        await asyncio.gather(self._read_forever(), self._reap_forever())

    async def close(self) -> None:
        """On shutdown: every session ends with this worker."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for live in list(self.sessions.values()):
            await self._end(live, SessionState.LOST, "its worker stopped")
        await self.warm.close()

    # --- calls ---------------------------------------------------------------------------------

    async def _read_forever(self) -> None:
        after, backoff = "0", Backoff()
        while True:
            try:
                calls = await self.store.session_calls.read(self.worker_id, after, READ_BLOCK_MS)
                backoff.reset()
            except QueueUnavailable as exc:
                log.warning("session calls unreadable, retrying", extra={"error": str(exc)})
                await backoff.wait()
                continue
            for call in calls:
                after = call.entry_id
                task = asyncio.create_task(self._answer(call), name=f"session-call-{call.id}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _answer(self, call: wire.SessionCall) -> None:
        if call.op == wire.OP_BIND:
            await self._bind(call)
            return
        handlers = {wire.OP_OPEN: self._open, wire.OP_RUN: self._run, wire.OP_CLOSE: self._close}
        handler = handlers.get(call.op)
        body: bytes | wire.Refusal
        try:
            body = await handler(call) if handler else wire.Refusal(
                "invalid_request", f"unknown session call {call.op!r}")
        except QueueUnavailable as exc:
            body = wire.Refusal("sandbox_unavailable", f"the queue failed: {exc}")
        except Exception as exc:  # a failure of ours: the caller is told, never left waiting
            log.exception("session call failed", extra={"session_id": call.session_id})
            body = wire.Refusal("sandbox_unavailable", f"the session call failed: {exc}")
        answer, refused = (body.encode(), True) if isinstance(body, wire.Refusal) else (body, False)
        for attempt in range(5):  # the caller waits; if we cannot answer, it sees a timeout
            try:
                await self.store.replies.send(call.reply_to, call.id, answer, refused)
                return
            except QueueUnavailable:
                await asyncio.sleep(0.1 * 2 ** attempt)

    async def _bind(self, call: wire.SessionCall) -> None:
        """Make the warm container claimed for the session the session's. Calls to the session
        wait for this (they are read after it, see _run); if it cannot be, the session is lost."""
        bound = self._binding[call.session_id] = asyncio.Event()
        try:
            spec = BindSpec.model_validate_json(call.payload)
            if not await self._bind_claimed(call.session_id, spec):
                await self._lose(call.session_id, spec.tenant, "its sandbox failed as it began")
        finally:
            del self._binding[call.session_id]
            bound.set()

    async def _bind_claimed(self, session_id: str, spec: BindSpec) -> bool:
        sandbox = self.warm.claimed(spec.container)
        try:
            if sandbox is None or not await self._set_memory(spec, sandbox):
                return False
        except Exception:  # a failure of ours: the session's calls are told it is lost
            log.exception("session bind failed", extra={"session_id": session_id})
            return False
        self.sessions[session_id] = LiveSession(session_id, spec, sandbox)
        log.info("session opened", extra={"session_id": session_id})
        return True

    async def _lose(self, session_id: str, tenant: str, message: str) -> None:
        with contextlib.suppress(QueueUnavailable):
            await self.registry.end(session_id, tenant, SessionState.LOST, message)

    async def _bound(self, session_id: str) -> None:
        """Once a bind of the session under way is done."""
        binding = self._binding.get(session_id)
        if binding is not None:
            await binding.wait()

    async def _open(self, call: wire.SessionCall) -> bytes | wire.Refusal:
        spec = SessionSpec.model_validate_json(call.payload)
        if self._held() >= self.capacity:
            return wire.Refusal("session_limit", "this worker holds as many sessions as it may; "
                                "retry")
        self._opening += 1
        try:
            sandbox = await self._start(spec)
            if sandbox is None:
                return wire.Refusal("sandbox_unavailable", "no sandbox could be started for the "
                                    "session; retry")
            try:
                activated = await self.registry.activate(call.session_id, self.worker_id,
                                                         spec.idle_ttl_s, spec.tenant,
                                                         sandbox.container_id)
            except BaseException:  # Redis failed (or we are stopping): the container goes
                await asyncio.shield(self.pool.discard(sandbox))
                raise
            if activated is None:
                await self.pool.discard(sandbox)
                return wire.Refusal("session_closed", "the caller stopped waiting")
            self.sessions[call.session_id] = LiveSession(call.session_id, spec, sandbox)
        finally:
            self._opening -= 1
            self.warm.nudge()
        log.info("session opened", extra={"session_id": call.session_id})
        return activated.model_dump_json().encode()

    async def _start(self, spec: SessionSpec) -> Sandbox | None:
        """A container whose runner's child is ready to be the session's: a warm one no API
        process claimed (taken back), else a new one; None if none could be."""
        try:
            sandbox = await self.warm.take_back()
            if sandbox is None:
                return await self.warm.start_ready(spec.memory_mb)
        except (EngineUnavailable, RunnerGone, TimeoutError, OSError) as exc:
            log.warning("no container for a session", extra={"error": str(exc)})
            return None
        return sandbox if await self._set_memory(spec, sandbox) else None

    async def _set_memory(self, spec: SessionSpec, sandbox: Sandbox) -> bool:
        """Give a warm container the session's memory (if not the default it was started
        with); False (the container removed) if the engine cannot."""
        try:
            await self.pool.set_memory(sandbox, spec.memory_mb)
        except EngineUnavailable as exc:
            log.warning("a session's memory could not be set", extra={"error": str(exc)})
            await self.pool.discard(sandbox)
            return False
        except BaseException:
            await asyncio.shield(self.pool.discard(sandbox))
            raise
        return True

    async def _run(self, call: wire.SessionCall) -> bytes | wire.Refusal:
        await self._bound(call.session_id)
        live = self.sessions.get(call.session_id)
        if live is None:
            return await self._gone(call.session_id)
        if live.busy:
            return wire.Refusal("session_busy", "a call is running in this session; wait for it")
        live.busy = True
        try:
            return await self._run_cell(live, call.id, JobSpec.model_validate_json(call.payload))
        finally:
            live.busy = False
            live.last_used = time.monotonic()

    async def _run_cell(self, live: LiveSession, call_id: str, spec: JobSpec) -> bytes:
        started_ms = wire.now_ms()
        grace = self.settings.session_interrupt_grace_s
        message = rp.cell_message(call_id, spec, grace)
        try:
            answer = await exchange(live.sandbox.channel, message, spec.runner_wait_s() + grace,
                                    self.output)
        except RunnerGone as exc:
            return await self._failed(live, call_id, str(exc))
        report, why = answer.report, answer.why
        state = SessionState.OPEN
        if report["session_ended"]:
            state, why = SessionState.LOST, ended_why(report, why)
            await self._end(live, state, why)
        elif report["timed_out"]:
            why = ("time limit reached: the call was interrupted (KeyboardInterrupt); "
                   "the session goes on")
        if state is SessionState.OPEN and not await self._touch(live):
            state = await self._drop_ended(live)
        result = from_report(call_id, report, answer.outcome, why, 0.0,
                             wire.now_ms() - started_ms)
        result.extra.update(value=report.get("value"), session_id=live.id, session_state=state)
        return result.encode()

    async def _touch(self, live: LiveSession) -> bool:
        """Push the session's idle expiry back; False if it has ended meanwhile. The cell has
        run: if Redis cannot be reached now, its result still goes back (the expiry is pushed
        back by the next call)."""
        try:
            return await self.registry.touch(live.id, live.spec.idle_ttl_s, live.spec.tenant)
        except QueueUnavailable:
            return True

    async def _failed(self, live: LiveSession, call_id: str, error: str) -> bytes:
        """The runner went away during a call: ours, not the code's; the session is over."""
        if live.id in self.sessions:
            state, message = SessionState.LOST, f"the session's sandbox failed: {error}"
            await self._end(live, state, message)
        else:
            state, message = SessionState.CLOSED, "the session was closed during the call"
        result = sandbox_error(call_id, message)
        result.extra.update(value=None, session_id=live.id, session_state=state)
        return result.encode()

    async def _close(self, call: wire.SessionCall) -> bytes | wire.Refusal:
        await self._bound(call.session_id)
        live = self.sessions.get(call.session_id)
        if live is not None:
            await self._end(live, SessionState.CLOSED, "closed by its caller")
        info = await self.registry.get(call.session_id)
        return info.model_dump_json().encode() if info else wire.Refusal(
            "not_found", "no such session")

    async def _gone(self, session_id: str) -> wire.Refusal:
        """The refusal for a call to a session this worker no longer holds."""
        info = await self.registry.get(session_id)
        state = info.state if info else SessionState.LOST
        reason = {SessionState.CLOSED: "session_closed",
                  SessionState.EXPIRED: "session_expired"}.get(state, "session_lost")
        return wire.Refusal(reason, f"the session is {state.value}")

    # --- ending ----------------------------------------------------------------------------------

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(REAP_INTERVAL_S)
            now = time.monotonic()
            for live in list(self.sessions.values()):
                if not live.busy and now - live.last_used > live.spec.idle_ttl_s:
                    log.info("session expired", extra={"session_id": live.id})
                    with contextlib.suppress(QueueUnavailable):
                        await self._end(live, SessionState.EXPIRED,
                                        f"idle for {live.spec.idle_ttl_s:g} s")

    async def _end(self, live: LiveSession, state: SessionState, message: str) -> None:
        """Remove the session's container and record how it ended (if not ended already)."""
        if self.sessions.pop(live.id, None) is None:
            return
        await self.pool.discard(live.sandbox)
        with contextlib.suppress(QueueUnavailable):
            await self.registry.end(live.id, live.spec.tenant, state, message)

    async def _drop_ended(self, live: LiveSession) -> SessionState:
        """The record says the session ended (declared lost by an API process): drop it here."""
        if self.sessions.pop(live.id, None) is not None:
            await self.pool.discard(live.sandbox)
        info = await self.registry.get(live.id)
        return info.state if info else SessionState.LOST


def ended_why(report: dict[str, Any], why: str | None) -> str:
    """Why the session's process ended during a call."""
    if report["timed_out"]:
        return ("time limit reached and the call did not stop when interrupted: the session's "
                "process was killed; the session is lost")
    return f"{why or 'the session process exited'}; the session is lost"

