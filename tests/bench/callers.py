"""Scenes of callers the queue must serve well: S2, callers that hang up (their jobs must not
run on), and S3, a single run sent while a 10,000-item batch waits (it must not queue behind
it). Also the Redis commands one job costs, from INFO commandstats around a batch."""

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import orjson
from redis import asyncio as aioredis

from service.settings import Settings
from service.store.jobs import LANES
from service.store.keys import Keys
from service.tenants import ANONYMOUS
from tests.bench.stack import LocalStack
from tests.bench.storm import READY_TIMEOUT_S
from tests.bench.workloads import PRINT_ONE, Load, median_stages, percentiles, progress, stages_of


def redis_of(stack: LocalStack) -> aioredis.Redis:
    return aioredis.from_url(f"redis://127.0.0.1:{stack.redis_port}/0")


async def send_and_hold(stack: LocalStack, path: str, body: object,
                        hold: asyncio.Event | float) -> None:
    """POST without reading the answer; hang up after `hold` seconds or when it is set."""
    data = orjson.dumps(body)
    _, writer = await asyncio.open_connection("127.0.0.1", stack.port)
    writer.write(f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    await writer.drain()
    if isinstance(hold, asyncio.Event):
        await hold.wait()
    else:
        await asyncio.sleep(hold)
    writer.close()
    await writer.wait_closed()


async def job_states(redis: aioredis.Redis, keys: Keys) -> dict[str, int]:
    """How many job records are in each state, and how many results are each outcome."""
    counts: dict[str, int] = {}
    async for key in redis.scan_iter(f"{keys.job('')}*", count=1000):
        state, result = await redis.hmget(key, "state", "result")
        name = state.decode() if state else "gone"
        if result:
            name = f"done:{orjson.loads(result)['outcome']}"
        counts[name] = counts.get(name, 0) + 1
    return counts


async def lane_entries(redis: aioredis.Redis, keys: Keys) -> int:
    """Entries of the lanes: jobs waiting, or running (retired once answered or dropped)."""
    tenants = [t.decode() for t in await redis.hkeys(keys.queues)]
    return sum([await redis.xlen(keys.jobs(lane, t)) for lane in LANES for t in tenants])


async def hung_up_callers(stack: LocalStack, callers: int = 200, hang_up_s: float = 1.0,
                          look_after_s: float = 15.0) -> dict[str, Any]:
    """S2: `callers` sync runs of time.sleep(5) whose callers hang up after hang_up_s; the jobs
    left (waiting or running) look_after_s later, and how many ran to their end."""
    redis, keys = redis_of(stack), Keys(stack.prefix)
    body = {"code": "import time; time.sleep(5); print('ran')", "timeout": 10}
    started = time.monotonic()
    await asyncio.gather(*(send_and_hold(stack, "/v1/run", body, hang_up_s)
                           for _ in range(callers)))
    await asyncio.sleep(max(0.0, started + hang_up_s + look_after_s - time.monotonic()))
    left = await lane_entries(redis, keys)
    states = await job_states(redis, keys)
    await redis.aclose()
    progress("S2 hung-up callers", callers, callers)
    return {"callers": callers, "hang_up_after_s": hang_up_s, "looked_after_s": look_after_s,
            "left": left, "states": states}


async def behind_a_batch(stack: LocalStack, items: int = 10_000,
                         samples: int = 50) -> dict[str, Any]:
    """S3: single print(1) runs, one at a time, while an `items` batch of print(i) is queued;
    the batch's caller then hangs up (its remaining jobs are cancelled)."""
    redis, keys = redis_of(stack), Keys(stack.prefix)
    load = Load("127.0.0.1", stack.port)
    for _ in range(10):  # warm-up
        await load.run_one(PRINT_ONE)
    idle = []  # the same runs with nothing queued, side by side
    for _ in range(samples):
        idle.append((await load.run_one(PRINT_ONE))[0])
        await asyncio.sleep(0.05)
    done = asyncio.Event()
    batch = {"items": [{"code": f"print({i})"} for i in range(items)]}
    bulk = keys.jobs(LANES[-1], ANONYMOUS)  # the stack has no keys
    added = (await redis.xinfo_stream(bulk))["entries-added"]
    holding = asyncio.create_task(send_and_hold(stack, "/v1/batch", batch, done))
    while (await redis.xinfo_stream(bulk))["entries-added"] < added + items:
        await asyncio.sleep(0.01)  # until wholly queued (the API done queuing it)
    latencies, backlog, stages = [], [], []
    for _ in range(samples):
        backlog.append(await redis.xlen(bulk))
        elapsed, body = await load.run_one(PRINT_ONE)
        latencies.append(elapsed)
        stages.append(stages_of(elapsed, body))
        await asyncio.sleep(0.05)
    done.set()
    await holding
    await load.close()
    await redis.aclose()
    progress("S3 single runs behind a batch", samples, samples)
    figures = percentiles(latencies)
    return {**figures, "max_ms": round(max(latencies), 3), "batch_items": items,
            "median_stages_ms": median_stages(stages),
            "bulk_backlog_min": min(backlog), "bulk_backlog_max": max(backlog),
            "idle_p50_ms": percentiles(idle)["p50_ms"], "idle_max_ms": round(max(idle), 3)}


async def commands_per_job(stack: LocalStack, jobs: int = 1000) -> dict[str, Any]:
    """Redis commands (INFO commandstats: those sent and those scripts ran) per job of a
    `jobs`-item batch of print(i); the idle traffic of heartbeats and blocked reads included."""
    redis = redis_of(stack)
    load = Load("127.0.0.1", stack.port)
    before = await redis.info("commandstats")
    started = time.perf_counter()
    status, _ = await load.pool.post("/v1/batch", {"items": [{"code": f"print({i})"}
                                                             for i in range(jobs)]})
    seconds = time.perf_counter() - started
    after = await redis.info("commandstats")
    await load.close()
    await redis.aclose()
    if status != 200:
        raise RuntimeError(f"batch refused: {status}")
    calls = {name.removeprefix("cmdstat_"): stats["calls"] - before.get(name, {}).get("calls", 0)
             for name, stats in after.items()}
    calls = {name: n for name, n in sorted(calls.items(), key=lambda kv: -kv[1]) if n}
    return {"jobs": jobs, "seconds": round(seconds, 3),
            "per_job": round(sum(calls.values()) / jobs, 2),
            "by_command_per_job": {name: round(n / jobs, 3) for name, n in calls.items()}}


async def measure_callers(stack: LocalStack, s3_samples: int) -> dict[str, Any]:
    """The commands per job, S2 and S3, on a stack of their own (nothing else queued)."""
    commands = await commands_per_job(stack)
    return {"S2": await hung_up_callers(stack),
            "S3": await behind_a_batch(stack, samples=s3_samples),
            "redis_commands": commands}


def rows(figures: dict[str, Any]) -> list[tuple[str, str]]:
    s2, s3, commands = figures["S2"], figures["S3"], figures["redis_commands"]
    return [
        (f"S2 {s2['callers']} sleep(5) callers hanging up",
         f"{s2['left']} jobs left after {s2['looked_after_s']:g} s · results: "
         + ", ".join(f"{name} {n}" for name, n in sorted(s2["states"].items()))),
        (f"S3 print(1) behind a {s3['batch_items']}-item batch",
         f"p50 {s3['p50_ms']} ms · p95 {s3['p95_ms']} · max {s3['max_ms']} ms (bulk backlog "
         f"{s3['bulk_backlog_min']}-{s3['bulk_backlog_max']}); nothing queued: p50 "
         f"{s3['idle_p50_ms']} ms · max {s3['idle_max_ms']} ms; median stages "
         + ", ".join(f"{stage.split(' (')[0]} {ms:g}" for stage, ms in s3["median_stages_ms"].items())),
        (f"Redis commands per job ({commands['jobs']}-item batch)", f"{commands['per_job']}"),
    ]


def measure(s3_samples: int) -> dict[str, Any]:
    """These scenes on a stack of their own at the defaults of `make serve`."""
    with LocalStack(pool_size=Settings().pool_size, ready_timeout=READY_TIMEOUT_S) as stack:
        stack.wait_warmed_up(READY_TIMEOUT_S)  # a deployment in service (see storm.py)
        figures = asyncio.run(measure_callers(stack, s3_samples))
    return {**figures, "load_average_after": os.getloadavg()}


def main() -> None:
    """`python -m tests.bench.callers`: these scenes alone."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.callers", description=__doc__)
    parser.add_argument("--samples", type=int, default=50, help="S3's single runs")
    parser.add_argument("--json", type=Path, default=Path(".run/bench-callers.json"))
    args = parser.parse_args()
    figures = measure(args.samples)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2))
    load = ", ".join(f"{x:.1f}" for x in figures["load_average_after"])
    print(f"{os.cpu_count()} cores, pool {Settings().pool_size} x 1 worker; load average after: "
          f"{load}")
    for name, value in rows(figures):
        print(f"  {name}: {value}")


if __name__ == "__main__":
    main()
