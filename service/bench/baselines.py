"""What we compare against, measured in the same run: a container per snippet (R1), the runner
alone in a warm container with no HTTP and no Redis (F1, the floor), and what forking the
sandbox's interpreter costs by itself (the price of a fresh process per execution)."""

import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any

from service import runner_protocol as rp
from service.bench.cpu import CLOCK_TICKS
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


# Measuring code (ours, not a snippet), run inside a sandbox container: CPU and page faults of
# fork + _exit, and of fork + compiling and running print(1), for an interpreter that has
# imported the modules named in argv[1] (the runner's SANDBOX_PRELOAD).
FORK_PROBE = """
import gc, json, os, resource, sys
for name in filter(None, sys.argv[1].split(",")):
    __import__(name)
null = os.open(os.devnull, os.O_WRONLY)
exec(compile("print(1)", "probe", "exec"), {})  # warm, as the runner is
gc.collect()
gc.freeze()
def run():
    os.dup2(null, 1)
    exec(compile("print(1)", "probe", "exec"), {})
    sys.stdout.flush()
def measure(body, count):
    before = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            body()
            os._exit(0)
        os.waitpid(pid, 0)
    after = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime for a, b in zip(after, before))
    faults = sum(a.ru_minflt - b.ru_minflt for a, b in zip(after, before))
    return {"cpu_ms": round(cpu * 1000 / count, 3), "page_faults": round(faults / count)}
count = int(sys.argv[2])
print(json.dumps({"fork_exit": measure(lambda: None, count), "fork_print": measure(run, count)}))
"""


def fork_floor(image: str, preloads: list[str], count: int) -> dict[str, Any]:
    """CPU per fork of the sandbox's interpreter, as bare as it gets, with each preload."""
    figures = {}
    for preload in preloads:
        argv = ["docker", "run", "--rm", "--network", "none", "--read-only", "--entrypoint",
                "python3", image, "-c", FORK_PROBE, preload, str(count)]
        out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
        figures[preload or "(none)"] = json.loads(out.splitlines()[-1])
        progress("fork floor", len(figures), len(preloads))
    return figures


class ProcessCounters:
    """CPU and minor page faults of one process and the children it reaped (from /proc)."""

    def __init__(self, pid: int):
        self.path = Path(f"/proc/{pid}/stat")

    def read(self) -> tuple[float, int, int]:
        fields = self.path.read_text().rsplit(")", 1)[1].split()
        cpu = sum(int(v) for v in fields[11:15]) / CLOCK_TICKS
        return cpu, int(fields[7]), int(fields[8])  # CPU s, own faults, reaped children's faults


def runner_pid(container_id: str) -> int:
    """The runner: the only child of the container's init (docker-init)."""
    init = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", container_id],
                          check=True, capture_output=True, text=True).stdout.strip()
    return int(Path(f"/proc/{init}/task/{init}/children").read_text().split()[0])


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
        counters = ProcessCounters(runner_pid(started[0][0]))
        cpu0, own0, children0 = counters.read()
        samples = []
        for i in range(count):
            samples.append(await once(channels[0]))
            progress("F1 runner alone", i + 1, count)
        cpu1, own1, children1 = counters.read()
        figures = percentiles(samples)
        figures["cpu_ms_per_execution"] = round((cpu1 - cpu0) * 1000 / count, 2)
        figures["page_faults_per_execution"] = {"runner": round((own1 - own0) / count),
                                                "child": round((children1 - children0) / count)}

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
