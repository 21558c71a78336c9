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
from service.imports import ImportKinds, template_of
from service.jobspec import JobSpec
from service.models import Language
from service.settings import Settings
from service.worker.docker_engine import DockerEngine, Owner, container_spec
from service.worker.runner_channel import RunnerChannel
from tests.bench.cpu import process_usage
from tests.bench.workloads import percentiles, progress


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
        argv = ["docker", "run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp",
                "--entrypoint", "python3", image, "-c", FORK_PROBE, preload, str(count)]
        out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
        figures[preload or "(none)"] = json.loads(out.splitlines()[-1])
        progress("fork floor", len(figures), len(preloads))
    return figures


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def runner_pids(container_id: str) -> tuple[int, list[int]]:
    """The runner (the only child of the container's init, docker-init) and its templates (the
    runner's children while no request is in hand: they fork every execution's child)."""
    init = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", container_id],
                          check=True, capture_output=True, text=True).stdout.strip()
    runner = children(int(init))[0]
    return runner, children(runner)


def _spec(code: str) -> JobSpec:
    return JobSpec(language=Language.PYTHON, code=code, stdin_b64=None, files_b64={},
                   timeout_s=10, memory_mb=512, max_output_bytes=1 << 20,
                   max_file_bytes=64 << 20, fresh_interpreter=False)


class RunnerFloor:
    """F1: the runner alone in warm containers, driven over its own stream, no HTTP, no Redis.

    `once` times one execution on the first container (so that it can alternate with the
    service's L1 requests, both seeing the same machine); `rate` drives every container at once.
    The first container's CPU (runner, template and the children) and page faults are counted
    per execution.
    """

    def __init__(self, settings: Settings, code: str, containers: int):
        self.settings = settings
        self.engine = DockerEngine(settings)
        self.owner = Owner(f"bench-floor-{time.time_ns()}", "floor", "bench", 0)
        kinds = ImportKinds(settings.preload, settings.scientific_preload)
        self.message = rp.run_message("floor", _spec(code), template_of(kinds.of(code)))
        self.count = containers
        self.started: list[tuple[str, Any, bool]] = []
        self.channels: list[RunnerChannel] = []
        self.pids: tuple[int, list[int]] = (0, [])  # the first container's runner and templates

    async def __aenter__(self) -> "RunnerFloor":
        for _ in range(self.count):
            spec = container_spec(self.settings, self.settings.image_for("python"), self.owner,
                                  512, socket_dir=self.engine.new_socket_dir(self.owner.deployment))
            self.started.append(await asyncio.to_thread(self.engine.start, spec))
        for _, sock, multiplexed in self.started:
            channel = await RunnerChannel.open(sock, multiplexed)
            self.channels.append(channel)
            await channel.receive()  # ready
        for _ in range(20):
            await self.once()
        self.pids = runner_pids(self.started[0][0])
        return self

    async def __aexit__(self, *exc: object) -> None:
        for channel in self.channels:
            await channel.close()
        for container_id, _, _ in self.started:
            await asyncio.to_thread(self.engine.remove, container_id)
        self.engine.close()

    async def once(self, index: int = 0) -> float:
        """One execution's latency in ms; returns once the runner is ready again."""
        channel = self.channels[index]
        t0 = time.perf_counter()
        await channel.send(self.message)
        await channel.receive()  # the result
        elapsed = (time.perf_counter() - t0) * 1000
        await channel.receive()  # ready again, after clean-up
        return elapsed

    def usage(self) -> tuple[float, int, int, int]:
        """The first container's CPU seconds (runner, templates and the children they reaped),
        and the page faults of the runner, the templates and those children."""
        runner_cpu, runner_faults, _ = process_usage(self.pids[0])
        templates = [process_usage(pid) for pid in self.pids[1]]
        return (runner_cpu + sum(t[0] for t in templates), runner_faults,
                sum(t[1] for t in templates), sum(t[2] for t in templates))

    @staticmethod
    def per_execution(before: tuple[float, ...], after: tuple[float, ...],
                      executions: int) -> dict[str, Any]:
        cpu, *faults = (a - b for a, b in zip(after, before, strict=True))
        return {"cpu_ms_per_execution": round(cpu * 1000 / executions, 2),
                "page_faults_per_execution": {
                    part: round(count / executions)
                    for part, count in zip(("runner", "template", "child"), faults, strict=True)}}

    async def rate(self, count: int) -> dict[str, Any]:
        """Executions per second with every container driven at once."""
        per_container = max(1, count // self.count)

        async def drive(index: int) -> None:
            for i in range(per_container):
                await self.once(index)
                if index == 0:
                    progress("F1 rate", i + 1, per_container)

        t0 = time.perf_counter()
        await asyncio.gather(*(drive(i) for i in range(self.count)))
        return {"per_second": round(per_container * self.count / (time.perf_counter() - t0), 1),
                "containers": self.count}
