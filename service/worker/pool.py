"""A pool of warm sandbox containers, one execution at a time in each.

A container is leased only when its runner has said `ready` (warm and clean). After an execution
it goes back once the runner has cleaned up and said `ready` again; after an abnormal end, a
silent runner or its N-th execution it is destroyed and replaced in the background.
"""

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field

from service import runner_protocol as rp
from service.backoff import Backoff
from service.settings import Settings
from service.worker.cgroups import Cgroup, find_cgroup
from service.worker.docker_engine import (
    EngineUnavailable,
    Owner,
    container_memory_bytes,
    container_spec,
)
from service.worker.engine import Engine
from service.worker.runner_channel import RunnerChannel, RunnerGone

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 180.0  # a new container's runner imports the preloaded modules first (the
# scientific stack: half a minute on a busy host)
CLEANUP_TIMEOUT_S = 10.0
PRUNE_INTERVAL_S = 1.0


@dataclass
class Sandbox:
    container_id: str
    channel: RunnerChannel
    memory_mb: int
    executions: int = 0
    born: float = field(default_factory=time.monotonic)
    cgroup: Cgroup | None = None  # where this host shows it
    template: str | None = None  # of its runner's waiting child (the last run's), if known
    cpu_low: bool = False  # at the low CPU weight (see cpu_weight.py)

    def weigh(self, low: bool) -> None:
        if low != self.cpu_low and self.cgroup is not None and self.cgroup.weigh(low):
            self.cpu_low = low


class PoolUnavailable(Exception):
    """No container could be had in time: the engine is down or the pool cannot start them."""


class ContainerPool:
    def __init__(self, engine: Engine, settings: Settings, owner: Owner, image: str,
                 network: str | None = None):
        self.engine = engine
        self.settings = settings
        self.owner = owner
        self.image = image
        self.network = network  # the Docker network its containers join; None: no network
        self.executable_tmpfs = False  # compiled programs run from the tmpfs (see pools.py)
        self.size = settings.pool_size
        self._idle: collections.deque[Sandbox] = collections.deque()
        self._idle_event = asyncio.Event()
        self.on_idle: Callable[[], None] = lambda: None  # the consumer's cue to claim more
        self._all: dict[str, Sandbox] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self.last_error: str | None = None
        self.replaced = 0
        self._spawns = 0  # containers being started for the pool (not yet idle)
        self.cleaning = 0  # containers back from a run, until their runner's next child is clean

    # --- state for heartbeats and readiness ----------------------------------------------------

    @property
    def idle(self) -> int:
        """Warm containers ready for a job (a dead one is not counted)."""
        return sum(sb.channel.alive for sb in self._idle)

    @property
    def live(self) -> int:
        return len(self._all)

    @property
    def starting(self) -> int:
        """Containers on their way: being started, or idle ones found dead and about to be
        replaced."""
        return self._spawns + sum(not sb.channel.alive for sb in self._idle)

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        for _ in range(self.size):
            self._background(self._spawn())
        self._background(self._prune_forever())

    async def close(self) -> None:
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(self._destroy(sb) for sb in list(self._all.values())))

    # --- leasing -------------------------------------------------------------------------------

    async def lease(self, timeout: float, template: str | None = None) -> Sandbox:
        """An idle container; one whose waiting child is of `template` if there is one (the
        runner of another replaces its child first: a fork and a clean-up on the run's path)."""
        deadline = time.monotonic() + timeout
        while True:
            self._prune()
            if self._idle:
                return self._take_idle(template)
            self._idle_event.clear()
            try:
                await asyncio.wait_for(self._idle_event.wait(), deadline - time.monotonic())
            except TimeoutError as exc:
                raise PoolUnavailable(self.last_error or "no warm container became free") from exc

    def _take_idle(self, template: str | None) -> Sandbox:
        if template is not None:
            for sandbox in self._idle:
                if sandbox.template == template:
                    self._idle.remove(sandbox)
                    return sandbox
        return self._idle.popleft()

    def _put_idle(self, sandbox: Sandbox) -> None:
        self._idle.append(sandbox)
        self._idle_event.set()
        self.on_idle()

    def _prune(self) -> None:
        """Replace idle containers whose runner went away (a Docker restart, say)."""
        for sandbox in [sb for sb in self._idle if not sb.channel.alive]:
            self._idle.remove(sandbox)
            self.last_error = "a warm container died while idle"
            self._background(self._replace(sandbox))

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_INTERVAL_S)
            self._prune()

    def release(self, sandbox: Sandbox, reusable: bool) -> None:
        """Back to the pool once clean, or replaced."""
        if self._closing:
            self._background(self._destroy(sandbox))
        elif reusable and sandbox.executions < self.settings.executions_per_container:
            self.cleaning += 1
            self._background(self._await_clean(sandbox))
        else:
            self._background(self._replace(sandbox))

    async def set_memory(self, sandbox: Sandbox, memory_mb: int) -> None:
        if sandbox.memory_mb != memory_mb:
            memory = container_memory_bytes(self.settings, memory_mb)
            await asyncio.to_thread(self.engine.set_memory, sandbox.container_id, memory)
            sandbox.memory_mb = memory_mb

    # --- containers kept outside the pool (a session's) ----------------------------------------

    async def start_dedicated(self, memory_mb: int, labels: dict[str, str]) -> Sandbox:
        """A warm container like the pool's, for a caller that keeps it: the pool's own capacity
        is unchanged. Raises EngineUnavailable, RunnerGone, TimeoutError or OSError."""
        return await self._start(memory_mb, labels, pooled=False)

    async def discard(self, sandbox: Sandbox) -> None:
        """Remove a container kept outside the pool."""
        await self._destroy(sandbox)

    # --- behind the scenes ---------------------------------------------------------------------

    def _background(self, coro) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _await_clean(self, sandbox: Sandbox) -> None:
        try:
            await sandbox.channel.ready(CLEANUP_TIMEOUT_S)
            clean = True
        except RunnerGone as exc:
            log.warning("runner did not come back clean", extra={"error": str(exc)})
            clean = False
        finally:
            self.cleaning -= 1
        if clean:
            self._put_idle(sandbox)
        else:
            await self._replace(sandbox)

    async def _replace(self, sandbox: Sandbox) -> None:
        self.replaced += 1
        await self._destroy(sandbox)
        if not self._closing:
            await self._spawn()

    async def _destroy(self, sandbox: Sandbox) -> None:
        self._all.pop(sandbox.container_id, None)
        await sandbox.channel.close()
        with contextlib.suppress(EngineUnavailable):
            await asyncio.to_thread(self.engine.remove, sandbox.container_id)

    def _spawn(self) -> Coroutine[None, None, None]:
        """Start one container for the pool (counted among `starting` from now on); retry with
        backoff while that fails."""
        self._spawns += 1
        return self._spawning()

    async def _spawning(self) -> None:
        backoff = Backoff()
        try:
            while not self._closing:
                try:
                    sandbox = await self._start(self.settings.default_memory_mb, {}, pooled=True)
                except Exception as exc:  # whatever it is, keep the pool trying to fill itself
                    self.last_error = f"cannot start a sandbox container: {exc}"
                    log.warning(self.last_error, exc_info=not isinstance(
                        exc, EngineUnavailable | RunnerGone | TimeoutError | OSError))
                    await backoff.wait()
                    continue
                self.last_error = None
                self._put_idle(sandbox)
                return
        finally:
            self._spawns -= 1

    async def _start(self, memory_mb: int, labels: dict[str, str], pooled: bool) -> Sandbox:
        """Start a container and wait for its runner's hello; on failure it is removed. A
        `pooled` one counts among the pool's containers from the moment it exists."""
        spec = container_spec(self.settings, self.image, self.owner, memory_mb, self.network,
                              self.engine.new_socket_dir(self.owner.deployment),
                              self.executable_tmpfs)
        spec["labels"].update(labels)
        container_id, sock, multiplexed = await asyncio.to_thread(self.engine.start, spec)
        try:
            channel = await RunnerChannel.open(sock, multiplexed)
        except BaseException:
            sock.close()
            with contextlib.suppress(EngineUnavailable):
                await asyncio.to_thread(self.engine.remove, container_id)
            raise
        sandbox = Sandbox(container_id, channel, memory_mb, cgroup=find_cgroup(container_id))
        if pooled:
            self._all[container_id] = sandbox
        try:
            hello = await channel.ready(READY_TIMEOUT_S)
            if hello.get("protocol") != rp.PROTOCOL_VERSION:
                raise RunnerGone(f"unexpected hello from runner: {hello}")
        except BaseException:
            await self._destroy(sandbox)
            raise
        return sandbox
