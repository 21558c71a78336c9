"""Sandboxes with network access, for requests that ask for it when the operator allows it.

The warm pool's containers have no network at all. A request with `network: true` runs instead
in a container of a second, small pool whose containers join a bridge network this worker
creates: inter-container communication off (sandboxes cannot reach each other), IPv4 only, and
walled off from this host by the firewall (service/worker/firewall.py), so the service's Redis
and API, the Docker engine and anything else on the host stay out of reach. Each of these
containers serves one execution and is then replaced: nothing of one caller's network state
(connections, caches) can meet the next.
"""

import asyncio
import hashlib
import logging
from collections.abc import Callable

from service import wire
from service.jobspec import JobSpec
from service.result import ExecutionResult
from service.settings import Settings
from service.store.output import OutputStream
from service.worker import firewall
from service.worker.docker_engine import LABEL_HOST, LABEL_PID, DockerEngine, EngineUnavailable, Owner
from service.worker.executor import Executor
from service.worker.pool import ContainerPool, PoolUnavailable
from service.worker.pools import LanguagePools

log = logging.getLogger(__name__)

LABEL_BRIDGE = "sandbox.bridge"
BRIDGE_PREFIX = "sbx"  # Linux interface names hold 15 characters at most


def bridge_name(worker_id: str) -> str:
    return BRIDGE_PREFIX + hashlib.sha256(worker_id.encode()).hexdigest()[:11]


def network_options(bridge: str) -> dict[str, str]:
    return {
        "com.docker.network.bridge.name": bridge,
        "com.docker.network.bridge.enable_icc": "false",
    }


class NetworkedPool(ContainerPool):
    """Single-use containers on this worker's own walled-off bridge network."""

    engine: DockerEngine  # networks too

    def __init__(self, engine: DockerEngine, settings: Settings, owner: Owner, image: str,
                 pid_alive: Callable[[int], bool]):
        self.bridge = bridge_name(owner.worker_id)
        single_use = settings.model_copy(update={"pool_size": settings.network_pool_size,
                                                 "executions_per_container": 1})
        super().__init__(engine, single_use, owner, image,
                         network=f"{owner.deployment}-{self.bridge}")
        self.pid_alive = pid_alive

    def start(self) -> None:
        self._background(self._open())

    async def _open(self) -> None:
        try:
            await asyncio.to_thread(self._create_network)
        except (EngineUnavailable, firewall.FirewallError) as exc:
            self.last_error = f"cannot create the sandbox network: {exc}"
            log.error(self.last_error)
            return
        super().start()

    def _create_network(self) -> None:
        self._sweep()
        firewall.wall_off(self.bridge)  # before the bridge exists: no moment without the wall
        labels = {**self.owner.labels(), LABEL_BRIDGE: self.bridge}
        self.engine.create_network(self.network, network_options(self.bridge), labels)

    def _sweep(self) -> None:
        """Networks (and walls) left on this host by workers of this deployment that died."""
        for name, labels in self.engine.list_networks(self.owner.deployment):
            pid = int(labels.get(LABEL_PID, "0") or 0)
            if labels.get(LABEL_HOST) != self.owner.host or self.pid_alive(pid):
                continue
            try:
                self.engine.remove_network(name)
            except EngineUnavailable:
                continue  # a container still holds it: keep its wall
            if labels.get(LABEL_BRIDGE):
                firewall.take_down(labels[LABEL_BRIDGE])

    async def close(self) -> None:
        await super().close()
        await asyncio.to_thread(self._remove_network)

    def _remove_network(self) -> None:
        try:
            self.engine.remove_network(self.network)
        except EngineUnavailable as exc:
            log.warning("cannot remove the sandbox network", extra={"error": str(exc)})
            return  # its containers may still be on it: keep the wall up
        firewall.take_down(self.bridge)


class RoutingExecutor(Executor):
    """Runs jobs that asked for network access on the networked pool, the others as usual."""

    def __init__(self, pools: LanguagePools, settings: Settings, output: OutputStream,
                 networked: NetworkedPool | None):
        super().__init__(pools, settings, output)
        self.networked = (Executor(LanguagePools(networked, {}, networked.size), settings, output)
                          if networked else None)

    async def _run(self, job: wire.Job, spec: JobSpec,
                   under_way: Callable[[], None]) -> ExecutionResult:
        if not spec.network:
            return await super()._run(job, spec, under_way)
        if self.networked is None:
            raise PoolUnavailable("this worker does not allow network access "
                                  "(SANDBOX_ALLOW_NETWORK)")
        self.executions += 1
        return await self.networked._run(job, spec, under_way)
