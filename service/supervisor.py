"""`sandbox serve`: runs the API and workers as child processes, restarting any that die.

Ctrl-C or SIGTERM stops them all; each worker removes its containers on the way out.
"""

import asyncio
import contextlib
import logging
import signal
import sys

log = logging.getLogger(__name__)

RESTART_DELAY_S = 1.0
STOP_TIMEOUT_S = 45.0


async def _keep_running(name: str, argv: list[str], stopping: asyncio.Event,
                        procs: dict[str, asyncio.subprocess.Process]) -> None:
    while not stopping.is_set():
        proc = await asyncio.create_subprocess_exec(*argv)
        procs[name] = proc
        code = await proc.wait()
        if stopping.is_set():
            return
        log.error("child exited; restarting", extra={"child": name, "code": code})
        await asyncio.sleep(RESTART_DELAY_S)


async def supervise(api_processes: int, workers: int) -> int:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    exe = [sys.executable, "-m", "service.cli"]
    children = {"api": [*exe, "api", "--workers", str(api_processes)]}
    children.update({f"worker-{i}": [*exe, "worker"] for i in range(workers)})
    procs: dict[str, asyncio.subprocess.Process] = {}
    keepers = [asyncio.create_task(_keep_running(name, argv, stopping, procs))
               for name, argv in children.items()]
    await stopping.wait()
    log.info("stopping")
    for proc in procs.values():
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    waits = [p.wait() for p in procs.values() if p.returncode is None]
    try:
        await asyncio.wait_for(asyncio.gather(*waits), STOP_TIMEOUT_S)
    except TimeoutError:
        for proc in procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    for task in keepers:
        task.cancel()
    await asyncio.gather(*keepers, return_exceptions=True)
    return 0
