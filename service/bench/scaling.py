"""Throughput against the number of workers, on this machine: `print(i)` snippets, a fixed
number in flight, with 1, 2 and 3 workers (each its own process and warm pool) behind one API.

Besides jobs per second it measures what a cluster would run out of first: the Redis commands
and Redis CPU per job (one Redis serves every host) and the API's CPU per job.

    python -m service.bench.scaling [--workers 1 2 3] [--jobs 3000] [--in-flight 32] [--pool-size 4]
"""

import argparse
import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import redis

from service.bench.stack import LocalStack
from service.bench.workloads import Load

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SCRIPT_CALLS = ("evalsha", "eval")
READ_CALLS = ("xreadgroup", "xread")


@dataclass(frozen=True)
class Counters:
    """Cumulative figures read before and after a measured run."""

    redis_commands: dict[str, int]
    redis_cpu_s: float
    api_cpu_s: float

    @classmethod
    def read(cls, stack: LocalStack) -> "Counters":
        client = redis.Redis(port=stack.redis_port)
        try:
            stats = client.info("commandstats")
            cpu = client.info("cpu")
        finally:
            client.close()
        commands = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
        return cls(commands, cpu["used_cpu_sys"] + cpu["used_cpu_user"],
                   process_cpu_s(stack.procs[-1].pid))


def process_cpu_s(pid: int) -> float:
    """User + system CPU of one process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass(frozen=True)
class Row:
    workers: int
    per_second: float
    p50_ms: float
    p95_ms: float
    correct: int
    jobs: int
    redis_calls_per_job: dict[str, float]
    redis_commands_per_job: float
    redis_cpu_us_per_job: float
    api_cpu_us_per_job: float


def per_job(before: Counters, after: Counters, jobs: int) -> dict[str, float]:
    calls = {name: (after.redis_commands.get(name, 0) - before.redis_commands.get(name, 0)) / jobs
             for name in after.redis_commands}
    return {name: round(n, 2) for name, n in sorted(calls.items()) if n > 0}


async def measure(workers: int, jobs: int, in_flight: int, pool_size: int) -> Row:
    with LocalStack(workers=workers, pool_size=pool_size) as stack:
        load = Load("127.0.0.1", stack.port)
        try:
            await load.closed_loop("warm-up", ["print(0)"] * (in_flight * 10), in_flight)
            codes = [f"print({i})" for i in range(jobs)]
            before = Counters.read(stack)
            figures = await load.closed_loop(f"{workers} worker(s)", codes, in_flight)
            after = Counters.read(stack)
        finally:
            await load.close()
    calls = per_job(before, after, jobs)
    correct = sum(figures["outputs"].get(i) == f"{i}\n" for i in range(jobs))
    return Row(
        workers=workers, per_second=figures["per_second"], p50_ms=figures["p50_ms"],
        p95_ms=figures["p95_ms"], correct=correct, jobs=jobs, redis_calls_per_job=calls,
        redis_commands_per_job=round(sum(calls.values()), 1),
        redis_cpu_us_per_job=round((after.redis_cpu_s - before.redis_cpu_s) * 1e6 / jobs, 1),
        api_cpu_us_per_job=round((after.api_cpu_s - before.api_cpu_s) * 1e6 / jobs, 1),
    )


def round_trips(row: Row) -> str:
    """Client calls per job: the scripts, and the stream reads (shared by several jobs each)."""
    calls = row.redis_calls_per_job
    scripts = sum(calls.get(n, 0) for n in SCRIPT_CALLS)
    reads = ", ".join(f"{n} {calls[n]:.2f}" for n in READ_CALLS if n in calls)
    return f"scripts {scripts:.2f}, {reads}"


def table(rows: list[Row], in_flight: int, pool_size: int) -> str:
    lines = [
        f"| workers (pool of {pool_size} each), {in_flight} in flight | jobs/s | p50 ms | p95 ms "
        "| Redis commands / job | Redis CPU µs / job | API CPU µs / job |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {r.workers} | {r.per_second:.0f} | {r.p50_ms:.1f} | {r.p95_ms:.1f} "
              f"| {r.redis_commands_per_job} | {r.redis_cpu_us_per_job} | {r.api_cpu_us_per_job} |"
              for r in rows]
    return "\n".join(lines)


def summary(rows: list[Row]) -> str:
    first = rows[0]
    redis_ceiling = 1e6 / first.redis_cpu_us_per_job if first.redis_cpu_us_per_job else 0
    api_per_core = 1e6 / first.api_cpu_us_per_job if first.api_cpu_us_per_job else 0
    return (f"client calls to Redis per job: {round_trips(first)}\n"
            f"commands Redis runs per job (scripts' inside included): "
            f"{first.redis_calls_per_job}\n"
            f"one Redis core would serve about {redis_ceiling:.0f} jobs/s; "
            f"one API process about {api_per_core:.0f} jobs/s per core")


async def main_async(args: argparse.Namespace) -> None:
    rows = []
    for workers in args.workers:
        row = await measure(workers, args.jobs, args.in_flight, args.pool_size)
        if row.correct != row.jobs:
            raise SystemExit(f"{row.jobs - row.correct} wrong answers with {workers} workers")
        rows.append(row)
    print(f"\nmachine: {os.cpu_count()} cores; {args.jobs} print(i) jobs per row\n")
    print(table(rows, args.in_flight, args.pool_size))
    print()
    print(summary(rows))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m service.bench.scaling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--pool-size", type=int, default=4)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
