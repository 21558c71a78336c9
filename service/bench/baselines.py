"""What we compare against, measured in the same run: a container per snippet (R1), and the
runner alone in a warm container with no HTTP and no Redis (F1, the floor)."""

import asyncio
import subprocess
import time
from typing import Any

from service import runner_protocol as rp
from service.bench.workloads import percentiles, progress
from service.jobspec import JobSpec
from service.models import Language
from service.settings import Settings
from service.worker.docker_engine import DockerEngine, Owner, container_spec
from service.worker.runner_channel import RunnerChannel


def docker_run_baseline(image: str, code: str, count: int) -> dict[str, Any]:
    """R1: `docker run --rm` per snippet, as peers that start a container per request do."""
    argv = ["docker", "run", "--rm", "--network", "none", "--entrypoint", "python3", image,
            "-c", code]
    subprocess.run(argv, check=True, capture_output=True)  # warm the engine's caches
    samples = []
    for i in range(count):
        started = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        samples.append((time.perf_counter() - started) * 1000)
        progress("R1 docker run", i + 1, count)
    figures = percentiles(samples)
    figures["per_second"] = round(1000 / figures["mean_ms"], 1)
    return figures


def _spec(code: str) -> JobSpec:
    return JobSpec(language=Language.PYTHON, code=code, stdin_b64=None, files_b64={},
                   timeout_s=10, memory_mb=512, max_output_bytes=1 << 20,
                   max_file_bytes=64 << 20, fresh_interpreter=False)


async def runner_floor(settings: Settings, code: str, count: int, containers: int) -> dict[str, Any]:
    """F1: the runner alone, driven over its attach stream, one execution per container at a
    time; latency from one container, rate from `containers` used in parallel."""
    engine = DockerEngine(settings)
    owner = Owner(f"bench-floor-{time.time_ns()}", "floor", "bench", 0)
    specs = [container_spec(settings, settings.image_for("python"), owner, 512,
                            socket_dir=engine.new_socket_dir(owner.deployment))
             for _ in range(containers)]
    started = [await asyncio.to_thread(engine.start, spec) for spec in specs]
    channels = [await RunnerChannel.open(sock, multiplexed) for _, sock, multiplexed in started]
    try:
        for channel in channels:
            await channel.receive()  # ready
        message = rp.run_message("floor", _spec(code))

        async def once(channel: RunnerChannel) -> float:
            t0 = time.perf_counter()
            await channel.send(message)
            await channel.receive()  # the result
            elapsed = (time.perf_counter() - t0) * 1000
            await channel.receive()  # ready again, after clean-up
            return elapsed

        for _ in range(20):
            await once(channels[0])
        samples = []
        for i in range(count):
            samples.append(await once(channels[0]))
            progress("F1 runner alone", i + 1, count)
        figures = percentiles(samples)

        async def drive(channel: RunnerChannel, n: int) -> None:
            for _ in range(n):
                await once(channel)

        per_container = max(1, count // containers)
        t0 = time.perf_counter()
        await asyncio.gather(*(drive(c, per_container) for c in channels))
        figures["per_second"] = round(per_container * containers / (time.perf_counter() - t0), 1)
        figures["containers"] = containers
        return figures
    finally:
        for channel in channels:
            await channel.close()
        for container_id, _, _ in started:
            await asyncio.to_thread(engine.remove, container_id)
        engine.close()
