"""Tenants under load: the fair share, and what queuing by tenant costs Redis.

    python -m tests.bench.tenants [--big 2000] [--small 100] [--delay 1] [--cost 1000]
                                    [--workers 1] [--pool-size 4] [--json PATH]

Fair share: two tenants of equal weight; one sends a `--big` batch of print(i), the other a
`--small` batch `--delay` seconds later; each batch's time from its own submission to its last
result. Cost: one tenant (SANDBOX_API_KEYS) sends a `--cost` batch; Redis's command counts
(INFO commandstats) and CPU (INFO cpu), and the API's and workers' CPU, before and after,
divided by the jobs. The cost scene runs on any version of the service, so the same figures can
be taken before and after a change.
"""

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import redis

from tests.bench.cpu import process_cpu_s
from tests.bench.stack import LocalStack

BIG_KEY, SMALL_KEY = "bench-key-of-the-big-tenant", "bench-key-of-the-small-tenant"
TENANTS = f"""
[[tenants]]
name = "big"
key = "{BIG_KEY}"

[[tenants]]
name = "small"
key = "{SMALL_KEY}"
"""


async def timed_batch(client: httpx.AsyncClient, key: str, count: int, offset: int) -> float:
    """Send a batch of print(i) and check every answer; the seconds it took."""
    started = time.perf_counter()
    items = [{"code": f"print({offset + i})"} for i in range(count)]
    response = await client.post("/v1/batch", json={"items": items},
                                 headers={"authorization": f"Bearer {key}"})
    response.raise_for_status()
    results = response.json()["results"]
    wrong = [i for i, r in enumerate(results) if r["stdout"] != f"{offset + i}\n"]
    if wrong:
        raise RuntimeError(f"{len(wrong)} wrong answers, the first at {wrong[0]}")
    return time.perf_counter() - started


async def fair_share(stack: LocalStack, big: int, small: int, delay_s: float) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=3600) as client:
        await timed_batch(client, BIG_KEY, stack.workers * stack.pool_size, 0)  # warm up
        big_task = asyncio.create_task(timed_batch(client, BIG_KEY, big, 0))
        await asyncio.sleep(delay_s)
        small_s = await timed_batch(client, SMALL_KEY, small, big)
        big_s = await big_task
    return {"big_jobs": big, "small_jobs": small, "small_sent_after_s": delay_s,
            "big_batch_s": round(big_s, 2), "small_batch_s": round(small_s, 2),
            "small_over_big": round(small_s / big_s, 3)}


def redis_usage(db: redis.Redis) -> tuple[dict[str, int], float]:
    """Calls per command so far, and Redis's CPU seconds."""
    stats = db.info("commandstats")
    cpu = db.info("cpu")
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    return calls, float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def cost(stack: LocalStack, jobs: int) -> dict[str, Any]:
    """Redis commands and CPU per job of a batch, and the API's and workers' CPU per job."""
    db = redis.Redis(port=stack.redis_port)
    key = stack.extra_env["SANDBOX_API_KEYS"]
    with httpx.Client(base_url=stack.base_url, timeout=3600) as client:
        calls_before, redis_before = redis_usage(db)
        procs_before = sum(process_cpu_s(pid) for pid in stack.pids())
        items = [{"code": f"print({i})"} for i in range(jobs)]
        response = client.post("/v1/batch", json={"items": items},
                               headers={"authorization": f"Bearer {key}"})
        response.raise_for_status()
        procs_after = sum(process_cpu_s(pid) for pid in stack.pids())
        calls_after, redis_after = redis_usage(db)
    db.close()
    per_command = {name: round((calls_after[name] - calls_before.get(name, 0)) / jobs, 2)
                   for name in calls_after if calls_after[name] > calls_before.get(name, 0)}
    return {"jobs": jobs,
            "redis_commands_per_job": round(sum(per_command.values()), 2),
            "by_command": dict(sorted(per_command.items(), key=lambda kv: -kv[1])),
            "redis_cpu_ms_per_job": round((redis_after - redis_before) * 1000 / jobs, 3),
            "api_and_worker_cpu_ms_per_job": round((procs_after - procs_before) * 1000 / jobs, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--big", type=int, default=2000)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--delay", type=float, default=1.0)
    parser.add_argument("--cost", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--pool-size", type=int, default=4)
    parser.add_argument("--skip-fair-share", action="store_true",
                        help="only the cost scene (for versions without tenants files)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    with LocalStack(args.workers, args.pool_size,
                    {"SANDBOX_API_KEYS": "bench-key-of-the-only-tenant"}) as stack:
        figures["cost"] = cost(stack, args.cost)
    if not args.skip_fair_share:
        stack = LocalStack(args.workers, args.pool_size)
        path = stack.data_dir / "tenants.toml"
        path.write_text(TENANTS)
        stack.extra_env["SANDBOX_TENANTS_FILE"] = str(path)
        with stack:
            figures["fair_share"] = asyncio.run(fair_share(stack, args.big, args.small,
                                                           args.delay))
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
