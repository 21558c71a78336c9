"""Wires a worker together: Docker engine, container pool, Redis queue, consumer loop."""

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import uuid
from pathlib import Path

from service.heap import freeze_startup_heap
from service.settings import Settings
from service.store import Store
from service.worker.consumer import Consumer
from service.worker.docker_engine import (
    LABEL_HOST,
    LABEL_PID,
    LABEL_SOCKET_DIR,
    DockerEngine,
    Owner,
)
from service.worker.networked import NetworkedPool, RoutingExecutor
from service.worker.pools import LanguagePools
from service.worker.session_capacity import session_capacity
from service.worker.sessions import SessionHost

log = logging.getLogger(__name__)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_orphans(engine: DockerEngine, owner: Owner) -> int:
    """Remove sandboxes left on this host by workers that no longer run, and socket directories
    no container uses any more."""
    removed = 0
    in_use = set()
    for container_id, labels in engine.list_sandboxes(owner.deployment):
        pid = int(labels.get(LABEL_PID, "0") or 0)
        if labels.get(LABEL_HOST) == owner.host and (pid == owner.pid or not pid_alive(pid)):
            engine.remove(container_id, labels.get(LABEL_SOCKET_DIR))
            removed += 1
        else:
            in_use.add(labels.get(LABEL_SOCKET_DIR))
    root = Path(engine.socket_root(owner.deployment))
    if root.is_dir():
        for stale in [d for d in root.iterdir() if str(d) not in in_use]:
            shutil.rmtree(stale, ignore_errors=True)
    return removed


async def serve_worker(settings: Settings) -> None:
    host = socket.gethostname()
    worker_id = f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    owner = Owner(settings.key_prefix, worker_id, host, os.getpid())
    engine = DockerEngine(settings)
    removed = await asyncio.to_thread(sweep_orphans, engine, owner)
    if removed:
        log.info("removed orphaned sandboxes", extra={"count": removed})
    pools = LanguagePools.build(engine, settings, owner)
    pool = pools.python
    networked = (NetworkedPool(engine, settings, owner, settings.image_for("python"), pid_alive)
                 if settings.allow_network else None)
    store = Store.connect(settings)
    capacity = session_capacity(settings, await asyncio.to_thread(engine.host_memory))
    sessions = SessionHost(store, pool, settings, worker_id, capacity)
    executor = RoutingExecutor(pools, settings, store.output, networked)
    consumer = Consumer(store, pools, executor, settings,  # type: ignore[arg-type]
                        worker_id, host, sessions)

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, consumer.stop)
    pools.start()
    if networked:
        networked.start()
    freeze_startup_heap()
    log.info("worker started", extra={"worker_id": worker_id, "pool_size": pools.size,
                                      "languages": settings.languages,
                                      "session_capacity": capacity})
    serving_sessions = asyncio.create_task(sessions.serve(), name="sessions")
    try:
        await consumer.run(grace_s=settings.shutdown_grace_s)
    finally:
        serving_sessions.cancel()
        await asyncio.gather(serving_sessions, return_exceptions=True)
        await sessions.close()
        await pools.close()
        if networked:
            await networked.close()
        with contextlib.suppress(Exception):
            await store.close()
        engine.close()
        log.info("worker stopped", extra={"worker_id": worker_id})
