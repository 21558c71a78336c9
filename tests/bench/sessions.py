"""N1 of BENCHMARK.md: sessions at rollout scale, on this machine. `--sessions` sessions are
opened at once (as a trainer opens one per rollout), each is used twice, and then, while they
sit idle, the memory each one's container holds is read from the engine.

    python -m tests.bench.sessions [--sessions 64] [--warm 64] [--api-processes 1] [--json PATH]

`--warm 0` opens them with no warm container kept for sessions: each starts one.
"""

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import docker
import httpx
import redis

from service.store.keys import Keys
from service.worker.session_pool import REFILL_QUIET_S
from tests.bench.cpu import CpuMeter, container_ids
from tests.bench.http import Connection
from tests.bench.stack import LocalStack
from tests.bench.workloads import percentiles

FIRST_CELL = "rollout = [i * i for i in range(1000)]\nlen(rollout)"
SECOND_CELL = "sum(rollout)"
WARM_TIMEOUT_S = 300.0


async def timed(conn: Connection, path: str, body: object) -> tuple[float, int, dict]:
    started = time.perf_counter()
    status, answer = await conn.post(path, body)
    return (time.perf_counter() - started) * 1000, status, answer


async def open_and_use(stack: LocalStack, count: int) -> tuple[list[str], dict[str, Any]]:
    """Open `count` sessions at once, on connections opened beforehand (a cheap client: the
    machine's two cores are the service's), then run two cells in each, all at once."""
    conns = await asyncio.gather(*(Connection.open("127.0.0.1", stack.port)
                                   for _ in range(count)))
    meter = stack.cpu_meter()
    warm = container_ids(stack.prefix)  # the sessions' containers are among these already
    try:
        before = meter.snapshot(warm)
        opened = await asyncio.gather(*(timed(c, "/v1/sessions", {}) for c in conns))
        # The worker binds each claimed container to its session after the open is answered:
        # counted too, before the warm containers are replaced (once claims pause).
        await asyncio.sleep(REFILL_QUIET_S / 2)
        cpu = CpuMeter.per_request_ms(before, meter.snapshot(warm), count)
        ids = [answer["id"] for _, status, answer in opened if status == 201]
        first = await asyncio.gather(*(timed(c, f"/v1/sessions/{i}/run", {"code": FIRST_CELL})
                                       for c, i in zip(conns, ids, strict=False)))
        second = await asyncio.gather(*(timed(c, f"/v1/sessions/{i}/run", {"code": SECOND_CELL})
                                        for c, i in zip(conns, ids, strict=False)))
    finally:
        for conn in conns:
            await conn.close()
    expected = str(sum(i * i for i in range(1000)))
    return ids, {
        "opened": len(ids),
        "open_ms": percentiles([ms for ms, _, _ in opened]),
        "open_cpu_ms": cpu,
        "first_call_ms": percentiles([ms for ms, _, _ in first]),
        "second_call_ms": percentiles([ms for ms, _, _ in second]),
        "both_calls_right": sum(a.get("value") == "1000" and b.get("value") == expected
                                for (_, _, a), (_, _, b) in zip(first, second, strict=True)),
    }


def container_memory(container: Any) -> int:
    """What the engine counts as the container's memory use (as `docker stats` shows it)."""
    stats = container.stats(stream=False, one_shot=True)["memory_stats"]
    detail = stats.get("stats", {})
    inactive = detail.get("inactive_file", detail.get("total_inactive_file", 0))
    return int(stats["usage"]) - int(inactive)


def shim_memory(container: Any) -> int:
    """The proportional set size of the process that holds the container on the host (its
    containerd shim, the parent of its first process): memory of the host outside the
    container's own count."""
    pid = container.attrs["State"]["Pid"]
    parent = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
    for line in Path(f"/proc/{parent}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no Pss for process {parent}")


def idle_memory(stack: LocalStack, ids: list[str]) -> dict[str, Any]:
    keys = Keys(stack.prefix)
    with redis.Redis(port=stack.redis_port) as store:
        containers = [store.hget(keys.session(i), "container") for i in ids]
    engine = docker.from_env()
    try:
        found = [engine.containers.get(c.decode()) for c in containers if c]
        used = [container_memory(c) / 2**20 for c in found]
        shims = [shim_memory(c) / 2**20 for c in found]
    finally:
        engine.close()
    return {"containers": len(used), "per_session_mib": percentiles(used),
            "shim_per_session_mib": percentiles(shims),
            "all_sessions_mib": round(sum(used) + sum(shims), 1)}


async def close_all(base_url: str, ids: list[str]) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        await asyncio.gather(*(client.delete(f"/v1/sessions/{i}") for i in ids))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=64)
    parser.add_argument("--warm", type=int, default=64)
    parser.add_argument("--api-processes", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    env = {"SANDBOX_SESSION_WARM": str(args.warm),
           "SANDBOX_MAX_SESSIONS": str(max(args.sessions, 64)),
           "SANDBOX_MAX_SESSIONS_PER_WORKER": str(max(args.sessions, args.warm))}
    with LocalStack(workers=1, env=env, api_processes=args.api_processes) as stack:
        figures: dict[str, Any] = {"sessions": args.sessions, "warm": args.warm,
                                   "api_processes": args.api_processes}
        figures["load_average_1m"] = os.getloadavg()[0]  # the machine is shared: say how busy
        started = time.monotonic()
        stack.wait_warmed_up(WARM_TIMEOUT_S)  # the containers kept for sessions too
        figures["warm_up_s"] = round(time.monotonic() - started, 1)
        ids, figures["N1"] = asyncio.run(open_and_use(stack, args.sessions))
        time.sleep(2)  # idle
        figures["idle_memory"] = idle_memory(stack, ids)
        asyncio.run(close_all(stack.base_url, ids))
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
