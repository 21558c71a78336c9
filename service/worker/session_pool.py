"""Warm containers kept for sessions, so that opening one takes a ready sandbox.

Each holds a runner whose waiting child has already been made a session's (a `session` request)
but has run nothing. Each is offered in Redis (service/store/session_claims.py) as it comes up;
an API process opening a session claims one, and this worker then only records it as the
session's, instead of starting a container for it (300-370 ms, over a second when several start
at once) or waking its runner while a burst of opens is being answered. A container claimed is
replaced in the background. They are kept apart from the pool of one-shot runs: a session's
container never served anyone else, and leaves with it.
"""

import asyncio
import contextlib
import logging

from service import runner_protocol as rp
from service.backoff import Backoff
from service.settings import Settings
from service.store import QueueUnavailable
from service.store.session_claims import WarmClaims
from service.worker.docker_engine import LABEL_SESSION, EngineUnavailable
from service.worker.pool import ContainerPool, Sandbox
from service.worker.runner_channel import RunnerGone

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0  # for the runner's session_ready, once the container is up
CONCURRENT_STARTS = 2  # more only queue up in the engine, and slow the sessions being opened
REFILL_QUIET_S = 0.5  # refill once claims pause: starting containers amid a burst of opens
# takes the CPU the opens need


class SessionPool:
    def __init__(self, pool: ContainerPool, settings: Settings, claims: WarmClaims,
                 worker_id: str):
        self.pool = pool
        self.settings = settings
        self.claims = claims
        self.worker_id = worker_id
        self._warm: dict[str, Sandbox] = {}
        self._starting = 0
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._discarding: set[asyncio.Task[None]] = set()
        self._last_claim = 0.0
        self.room = lambda: settings.session_warm  # how many more sessions may open here

    @property
    def warm(self) -> int:
        return len(self._warm)

    @property
    def missing(self) -> int:
        """Warm containers wanted and not yet up (being started, or waiting for their turn)."""
        return max(0, self._target() - len(self._warm))

    def start(self) -> None:
        self._task = asyncio.create_task(self._fill_forever(), name="session-pool")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(QueueUnavailable):
            await self.claims.withdraw_all(self.worker_id)
        for container_id in list(self._warm):
            await self.pool.discard(self._warm.pop(container_id))
        await asyncio.gather(*self._discarding, return_exceptions=True)

    def claimed(self, container_id: str) -> Sandbox | None:
        """The warm container an API process claimed, if its runner is still alive; its place
        is refilled."""
        self._last_claim = asyncio.get_running_loop().time()
        self.nudge()
        sandbox = self._warm.pop(container_id, None)
        if sandbox is not None and not sandbox.channel.alive:
            self._discard(sandbox)
            return None
        return sandbox

    async def take_back(self) -> Sandbox | None:
        """A warm container withdrawn from offer before anyone claimed it, or None."""
        for container_id in list(self._warm):
            if await self._withdraw(container_id):
                return self.claimed(container_id)
        return None

    async def _withdraw(self, container_id: str) -> bool:
        """Take an offer back; False if it was claimed (its bind is on its way) or Redis failed."""
        try:
            return await self.claims.withdraw(self.worker_id, container_id)
        except QueueUnavailable:
            return False

    async def _shrink(self) -> None:
        """Withdraw warm containers beyond the target: sessions opened here without one left
        less room for sessions than there are offers."""
        for container_id in list(self._warm)[self._target():]:
            if await self._withdraw(container_id) and container_id in self._warm:
                await self.pool.discard(self._warm.pop(container_id))

    def nudge(self) -> None:
        """Sessions here changed: bring the warm containers back to the target soon."""
        self._wanted.set()

    def _target(self) -> int:
        return max(0, min(self.settings.session_warm, self.room()))

    async def _fill_forever(self) -> None:
        starts = asyncio.Semaphore(CONCURRENT_STARTS)
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                self._wanted.clear()
                self._prune()
                await self._shrink()
                quiet = self._last_claim + REFILL_QUIET_S - asyncio.get_running_loop().time()
                if quiet > 0:
                    await asyncio.sleep(quiet)
                    continue
                while len(self._warm) + self._starting < self._target():
                    await starts.acquire()
                    self._starting += 1
                    task = asyncio.create_task(self._start_one(starts))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wanted.wait(), self.settings.heartbeat_s)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _prune(self) -> None:
        """Withdraw warm containers whose runner went away (a Docker restart, say)."""
        for sandbox in [sb for sb in self._warm.values() if not sb.channel.alive]:
            self._warm.pop(sandbox.container_id)
            self._discard(sandbox, withdraw=True)

    def _discard(self, sandbox: Sandbox, withdraw: bool = False) -> None:
        task = asyncio.create_task(self._remove(sandbox, withdraw))
        self._discarding.add(task)
        task.add_done_callback(self._discarding.discard)

    async def _remove(self, sandbox: Sandbox, withdraw: bool) -> None:
        if withdraw:
            with contextlib.suppress(QueueUnavailable):
                await self.claims.withdraw(self.worker_id, sandbox.container_id)
        await self.pool.discard(sandbox)

    async def start_ready(self, memory_mb: int) -> Sandbox:
        """A container started for a session, its runner's waiting child made the session's.
        Raises EngineUnavailable, RunnerGone, TimeoutError or OSError (the container removed)."""
        sandbox = await self.pool.start_dedicated(memory_mb, {LABEL_SESSION: ""})
        try:
            await sandbox.channel.send(rp.session_message(sandbox.container_id,
                                                          self.settings.max_file_bytes))
            await sandbox.channel.expect(rp.OP_SESSION_READY, START_TIMEOUT_S)
        except BaseException:
            await asyncio.shield(self.pool.discard(sandbox))
            raise
        return sandbox

    async def _start_one(self, starts: asyncio.Semaphore) -> None:
        backoff = Backoff()
        try:
            while True:
                try:
                    sandbox = await self.start_ready(self.settings.default_memory_mb)
                    self._warm[sandbox.container_id] = sandbox
                    await self._offer(sandbox)
                    return
                except (EngineUnavailable, RunnerGone, TimeoutError, OSError) as exc:
                    log.warning("no warm container for sessions", extra={"error": str(exc)})
                    await backoff.wait()
        finally:
            self._starting -= 1
            starts.release()

    async def _offer(self, sandbox: Sandbox) -> None:
        """Offered once it is in _warm (a claim may come at once); kept back if Redis fails."""
        try:
            await self.claims.offer(self.worker_id, sandbox.container_id)
        except QueueUnavailable as exc:
            log.warning("a warm container could not be offered", extra={"error": str(exc)})
            if self._warm.pop(sandbox.container_id, None) is not None:
                await self.pool.discard(sandbox)
