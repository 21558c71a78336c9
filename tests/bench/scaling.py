"""Throughput against the number of workers, on this machine: `print(i)` snippets, a fixed
number in flight, with 1, 2 and 3 workers (each its own process and warm pool) behind one API.

Besides jobs per second it measures the CPU each part spends per job (unlike throughput, hardly
changed by whatever else runs on the machine): what one core of a worker host, of an API process
and of Redis (one serves every host) can serve, and the Redis commands per job.

    python -m tests.bench.scaling [--workers 1 2 3] [--jobs 3000] [--in-flight 32] [--pool-size 4]
"""

import argparse
import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.bench.cpu import CpuMeter
from tests.bench.stack import LocalStack
from tests.bench.workloads import Load

SCRIPT_CALLS = ("evalsha", "eval")
READ_CALLS = ("xreadgroup", "xread")


def redis_calls(stack: LocalStack) -> dict[str, int]:
    """Calls so far of each command (those run inside scripts included), from INFO."""
    client = redis.Redis(port=stack.redis_port)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def cpu_meter(stack: LocalStack) -> CpuMeter:
    return stack.cpu_meter()


@dataclass(frozen=True)
class Row:
    workers: int
    per_second: float
    p50_ms: float
    p95_ms: float
    correct: int
    jobs: int
    redis_calls_per_job: dict[str, float]
    cpu_ms_per_job: dict[str, float]

    @property
    def redis_commands_per_job(self) -> float:
        return round(sum(self.redis_calls_per_job.values()), 1)

    @property
    def worker_host_ms(self) -> float:
        """CPU per job on a worker's host: the worker, the Docker engine and the sandboxes."""
        cpu = self.cpu_ms_per_job
        return round(cpu["total"] - cpu["api"] - cpu["redis"], 3)


def per_job(before: dict[str, int], after: dict[str, int], jobs: int) -> dict[str, float]:
    calls = {name: (after.get(name, 0) - before.get(name, 0)) / jobs for name in after}
    return {name: round(n, 2) for name, n in sorted(calls.items()) if n > 0}


async def measure(workers: int, jobs: int, in_flight: int, pool_size: int) -> Row:
    with LocalStack(workers=workers, pool_size=pool_size) as stack:
        load = Load("127.0.0.1", stack.port)
        meter = cpu_meter(stack)
        try:
            await load.closed_loop("warm-up", ["print(0)"] * (in_flight * 10), in_flight)
            codes = [f"print({i})" for i in range(jobs)]
            calls_before, cpu_before = redis_calls(stack), meter.snapshot()
            figures = await load.closed_loop(f"{workers} worker(s)", codes, in_flight)
            calls_after, cpu_after = redis_calls(stack), meter.snapshot()
        finally:
            await load.close()
    correct = sum(figures["outputs"].get(i) == f"{i}\n" for i in range(jobs))
    return Row(workers=workers, per_second=figures["per_second"], p50_ms=figures["p50_ms"],
               p95_ms=figures["p95_ms"], correct=correct, jobs=jobs,
               redis_calls_per_job=per_job(calls_before, calls_after, jobs),
               cpu_ms_per_job=CpuMeter.per_request_ms(cpu_before, cpu_after, jobs))


def round_trips(row: Row) -> str:
    """Client calls per job: the scripts, and the stream reads (shared by several jobs each)."""
    calls = row.redis_calls_per_job
    scripts = sum(calls.get(n, 0) for n in SCRIPT_CALLS)
    reads = ", ".join(f"{n} {calls[n]:.2f}" for n in READ_CALLS if n in calls)
    return f"scripts {scripts:.2f}, {reads}"


def table(rows: list[Row], in_flight: int, pool_size: int) -> str:
    lines = [
        f"| workers (pool of {pool_size} each), {in_flight} in flight | jobs/s | p50 ms | p95 ms "
        "| CPU ms / job: API | Redis | worker host | Redis commands / job |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {r.workers} | {r.per_second:.0f} | {r.p50_ms:.0f} | {r.p95_ms:.0f} "
              f"| {r.cpu_ms_per_job['api']:.2f} | {r.cpu_ms_per_job['redis']:.2f} "
              f"| {r.worker_host_ms:.2f} | {r.redis_commands_per_job} |" for r in rows]
    return "\n".join(lines)


def summary(rows: list[Row]) -> str:
    """What one core of each part serves, from the CPU per job (the median over the rows)."""
    def per_core(ms: list[float]) -> float:
        return 1000 / sorted(ms)[len(ms) // 2]

    return "\n".join([
        f"client calls to Redis per job: {round_trips(rows[0])}",
        f"commands Redis runs per job (scripts' own included): {rows[0].redis_calls_per_job}",
        f"one core serves about: {per_core([r.worker_host_ms for r in rows]):.0f} jobs/s of a "
        f"worker host (worker + engine + sandboxes), "
        f"{per_core([r.cpu_ms_per_job['api'] for r in rows]):.0f} of an API process, "
        f"{per_core([r.cpu_ms_per_job['redis'] for r in rows]):.0f} of Redis",
        f"CPU ms per job by part (1 worker): {rows[0].cpu_ms_per_job}",
    ])


def load_average() -> str:
    """The machine's 1-minute load average: what else competed for the cores."""
    return Path("/proc/loadavg").read_text().split()[0]


async def main_async(args: argparse.Namespace) -> None:
    load_before = load_average()
    rows = []
    for workers in args.workers:
        row = await measure(workers, args.jobs, args.in_flight, args.pool_size)
        if row.correct != row.jobs:
            raise SystemExit(f"{row.jobs - row.correct} wrong answers with {workers} workers")
        rows.append(row)
    print(f"\nmachine: {os.cpu_count()} cores, load average {load_before} before and "
          f"{load_average()} after; {args.jobs} print(i) jobs per row\n")
    print(table(rows, args.in_flight, args.pool_size))
    print()
    print(summary(rows))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.scaling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--pool-size", type=int, default=4)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
