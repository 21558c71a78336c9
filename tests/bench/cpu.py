"""Where the CPU goes per execution: CPU seconds each component spent over a run, per request.

CPU time, unlike wall time, is hardly changed by what else runs on a shared machine, so this
breakdown is stable where latency figures are not.
"""

import asyncio
import os
import subprocess
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CGROUP_CPU = Path("/sys/fs/cgroup/cpuacct/docker")
SANDBOXES = "sandbox containers (runner + code)"  # the snapshots' name for them


def process_usage(pid: int) -> tuple[float, int, int]:
    """Of one process and the children it reaped: user + system CPU in seconds, its own minor
    page faults and its reaped children's (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / CLOCK_TICKS, int(fields[7]), int(fields[8])


def process_cpu_s(pid: int) -> float:
    """User + system CPU of one process and its reaped children, in seconds."""
    return process_usage(pid)[0]


def pids_named(name: str) -> list[int]:
    out = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


def container_ids(prefix: str) -> list[str]:
    """Full ids of the running sandbox containers of a deployment (an engine that cannot list
    them fails the measurement rather than counting none)."""
    return subprocess.run(["docker", "ps", "-q", "--no-trunc", "--filter",
                           f"label=sandbox.deployment={prefix}"], capture_output=True, text=True,
                          check=True).stdout.split()


def container_cpu_s(container_id: str) -> float | None:
    """CPU seconds of one container from its cgroup (cgroup v1); None once it is gone."""
    try:
        return int((CGROUP_CPU / container_id / "cpuacct.usage").read_text()) / 1e9
    except FileNotFoundError:
        return None


def containers_cpu(ids: list[str]) -> dict[str, float]:
    """CPU seconds of each of these containers still there."""
    usage = {c: container_cpu_s(c) for c in ids}
    return {c: seconds for c, seconds in usage.items() if seconds is not None}


def containers_cpu_s(ids: list[str]) -> float:
    """CPU seconds of these containers still there, together."""
    return sum(containers_cpu(ids).values())


class ContainersCpu:
    """The sandboxes' CPU over a window in which the pool may replace containers (after
    SANDBOX_EXECUTIONS_PER_CONTAINER runs each): the containers running at its start are read
    every `interval_s` until `stop`, so that one removed meanwhile counts up to its last
    reading; one started meanwhile counts whole (its start-up is part of what the runs cost at
    those settings)."""

    def __init__(self, prefix: str, interval_s: float = 0.1):
        self.prefix = prefix
        self.start = containers_cpu(container_ids(prefix))
        self.last = dict(self.start)
        self.task = asyncio.get_running_loop().create_task(self._poll(interval_s))

    async def _poll(self, interval_s: float) -> None:
        while True:
            self.last.update(containers_cpu(list(self.start)))
            await asyncio.sleep(interval_s)

    async def stop(self) -> float:
        """CPU seconds of the deployment's containers since the start."""
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        now = containers_cpu(container_ids(self.prefix))
        self.last.update(containers_cpu(list(self.start)))
        return (sum(self.last[c] - self.start[c] for c in self.start)
                + sum(seconds for c, seconds in now.items() if c not in self.start))


class CpuMeter:
    """Snapshots of the CPU of the API, worker, Redis, the Docker daemons and the sandboxes."""

    def __init__(self, api_pids: list[int], worker_pids: list[int], redis_pids: list[int],
                 prefix: str):
        self.groups = {
            "api": api_pids,
            "worker": worker_pids,
            "redis": redis_pids,
            "dockerd + containerd + shims": [*pids_named("dockerd"), *pids_named("containerd"),
                                             *pids_named("containerd-shim-runc-v2")],
        }
        self.prefix = prefix

    def snapshot(self, containers: list[str] | None = None) -> dict[str, float]:
        """CPU seconds so far of each component. The sandboxes are the deployment's containers
        running now, or `containers`: listing them costs the engine 20-50 ms of CPU, which a
        measurement of a few dozen requests would count as theirs."""
        snap = {}
        for name, pids in self.groups.items():
            total = 0.0
            for pid in pids:
                try:
                    total += process_cpu_s(pid)
                except (OSError, IndexError):
                    continue
            snap[name] = total
        snap[SANDBOXES] = containers_cpu_s(
            container_ids(self.prefix) if containers is None else containers)
        return snap

    @staticmethod
    def per_request_ms(before: dict[str, float], after: dict[str, float],
                       requests: int) -> dict[str, float]:
        per = {k: round((after[k] - before[k]) * 1000 / requests, 3) for k in before}
        per["total"] = round(sum(per.values()), 3)
        return per
