"""Warm containers per sandbox image: Python's pool, and an elastic one per other image.

A worker runs at most `pool_size` executions at once, whatever their languages (the consumer
claims no more). Python's pool keeps `pool_size` containers warm, as it always has, so a burst of
another language never leaves Python without warm containers. Every other image served keeps
`language_warm` containers warm (a floor), starts more when a job waits for one (up to
`pool_size`, the most that can run at once), and stops those above the floor once idle for
`language_idle_s`. C and C++ share one image, JavaScript and TypeScript another, so they share
containers.
"""

import asyncio
import time

from service.imports import Kind
from service.jobspec import JobSpec
from service.languages import REGISTRY, spec_of
from service.settings import Settings
from service.worker.docker_engine import Owner
from service.worker.engine import Engine
from service.worker.pool import ContainerPool, Sandbox

SHRINK_INTERVAL_S = 5.0
# Images whose compiled programs are executed from the working directory: their tmpfs allows it.
EXECUTABLE_IMAGES = frozenset(spec.image for spec in REGISTRY if spec.executables)


class ElasticPool(ContainerPool):
    """A pool that keeps `floor` containers and grows on demand up to `ceiling`."""

    def __init__(self, engine: Engine, settings: Settings, owner: Owner, image: str,
                 floor: int, ceiling: int):
        super().__init__(engine, settings, owner, image)
        self.size = floor
        self.ceiling = max(floor, ceiling)
        self._idle_since: dict[str, float] = {}
        self._waiting = 0  # leases waiting for a container

    def start(self) -> None:
        super().start()
        self._background(self._shrink_forever())

    async def lease(self, timeout: float, template: str | None = None) -> Sandbox:
        """An idle container, or the first one to become idle. Another is started only for a
        lease that no container now cleaning up after its run will serve: that takes
        milliseconds, a start seconds (the scientific stack's imports, tens of seconds of CPU)."""
        self._prune()
        if (not self._idle and self._waiting >= self.cleaning
                and self.live + self._spawns < self.ceiling):
            self._background(self._spawn())
        self._waiting += 1
        try:
            return await super().lease(timeout, template)
        finally:
            self._waiting -= 1

    def _put_idle(self, sandbox: Sandbox) -> None:
        self._idle_since[sandbox.container_id] = time.monotonic()
        super()._put_idle(sandbox)

    async def _shrink_forever(self) -> None:
        while True:
            await asyncio.sleep(SHRINK_INTERVAL_S)
            self._shrink(time.monotonic() - self.settings.language_idle_s)

    def _shrink(self, idle_before: float) -> None:
        """Stop containers above the floor that have been idle since before `idle_before`."""
        for sandbox in list(self._idle):
            if self.live <= self.size:
                return
            if self._idle_since.get(sandbox.container_id, 0.0) < idle_before:
                self._idle.remove(sandbox)
                self._idle_since.pop(sandbox.container_id, None)
                self._background(self._destroy(sandbox))


class LanguagePools:
    """The pools of one worker, by image, seen by the consumer as one pool of `pool_size`."""

    def __init__(self, python: ContainerPool, others: dict[str, ContainerPool], size: int,
                 scientific: ContainerPool | None = None):
        self.python = python
        self.by_image = {"python": python, **others}
        self.scientific = scientific
        self.size = size

    @classmethod
    def build(cls, engine: Engine, settings: Settings, owner: Owner) -> "LanguagePools":
        python = ContainerPool(engine, settings, owner, settings.image_for("python"))
        others: dict[str, ContainerPool] = {}
        for name in settings.languages:
            image = spec_of(name).image
            if image not in others and image != "python":
                others[image] = ElasticPool(engine, settings, owner, settings.image_for(name),
                                            settings.language_warm, settings.pool_size)
                others[image].executable_tmpfs = image in EXECUTABLE_IMAGES
        return cls(python, others, settings.pool_size, scientific_pool(engine, settings, owner))

    def for_language(self, language: str) -> ContainerPool | None:
        """The pool of a language's image; None when this worker does not serve it."""
        return self.by_image.get(spec_of(language).image)

    def for_job(self, spec: JobSpec, kind: Kind) -> ContainerPool | None:
        """The scientific pool for code of that kind (when there is one), else its language's."""
        if kind is Kind.SCIENTIFIC and self.scientific is not None:
            return self.scientific
        return self.for_language(spec.language)

    @property
    def pools(self) -> list[ContainerPool]:
        return [*self.by_image.values(), *filter(None, [self.scientific])]

    @property
    def on_idle(self):  # type: ignore[no-untyped-def]
        return self.python.on_idle

    @on_idle.setter
    def on_idle(self, callback) -> None:  # type: ignore[no-untyped-def]
        for pool in self.pools:
            pool.on_idle = callback

    @property
    def idle(self) -> int:
        return sum(pool.idle for pool in self.pools)

    @property
    def cleaning(self) -> int:
        return sum(pool.cleaning for pool in self.pools)

    @property
    def live(self) -> int:
        return sum(pool.live for pool in self.pools)

    @property
    def replaced(self) -> int:
        return sum(pool.replaced for pool in self.pools)

    @property
    def starting(self) -> int:
        return sum(pool.starting for pool in self.pools)

    @property
    def last_error(self) -> str | None:
        return next((pool.last_error for pool in self.pools if pool.last_error), None)

    def start(self) -> None:
        for pool in self.pools:
            pool.start()

    async def close(self) -> None:
        await asyncio.gather(*(pool.close() for pool in self.pools))


def scientific_pool(engine: Engine, settings: Settings, owner: Owner) -> ContainerPool | None:
    """Containers of the Python image that preload the scientific stack; None when sized 0."""
    if not settings.scientific_pool_size:
        return None
    variant = settings.model_copy(update={"preload": settings.scientific_preload,
                                          "runner_memory_mb": settings.scientific_runner_memory_mb})
    return ElasticPool(engine, variant, owner, settings.image_for("python"),
                       settings.scientific_pool_size, settings.scientific_pool_max)
