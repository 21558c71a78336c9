"""Scenes of RL traffic, with the service at its `make serve` defaults (BENCHMARK.md S1, S4).

The machine's load average is recorded with the figures: on a shared host the sandboxes'
share of the CPU is what the others leave.

S1, a timeout storm: 100 SandboxFusion `/run_code` calls of `while True: pass` with
`run_timeout` 10 at once, each caller giving up at 30 s as verl's reward code does, and 20
`print(i)` sent beside them. S4, verdicts under load: a program needing about 1 s of CPU (sized
on this machine from its own `cpu_ms`), `timeout` 3, 16 at once. Also what a warm container
costs: memory when idle, and the CPU of starting one (the engine's and its own), which is what
replacing a container after each timeout would cost.

    python -m tests.bench.storm [--json PATH]
"""

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from service.settings import Settings
from tests.bench.cpu import container_ids, containers_cpu_s, pids_named, process_cpu_s
from tests.bench.stack import LocalStack
from tests.bench.workloads import percentiles

STORM_LOOPS, STORM_PRINTS, STORM_TIMEOUT_S, CALLER_GIVES_UP_S = 100, 20, 10, 30.0
VERDICT_RUNS, VERDICT_TIMEOUT_S, VERDICT_CPU_S = 16, 3, 1.0
CALIBRATION = "for _ in range({n}): pass"
CALIBRATION_N = 10**7
CGROUP_MEMORY = Path("/sys/fs/cgroup/memory/docker")
COMPARED_POOL = 4
READY_TIMEOUT_S = 900  # a pool of the default size warms up in minutes on a busy 2-core host


def engine_cpu_s() -> float:
    return sum(process_cpu_s(pid) for pid in [
        *pids_named("dockerd"), *pids_named("containerd"), *pids_named("containerd-shim-runc-v2")])


def idle_memory_mib(prefix: str) -> dict[str, float]:
    """Memory of the deployment's idle warm containers, from their cgroups (cgroup v1)."""
    usage, rss = [], []
    for container_id in container_ids(prefix):
        group = CGROUP_MEMORY / container_id
        if not group.exists():
            continue
        usage.append(int((group / "memory.usage_in_bytes").read_text()))
        stat = dict(line.split() for line in (group / "memory.stat").read_text().splitlines())
        rss.append(int(stat["total_rss"]))
    return {"containers": len(usage), "usage_mean_mib": round(sum(usage) / len(usage) / 2**20, 1),
            "rss_mean_mib": round(sum(rss) / len(rss) / 2**20, 1)}


async def timed_post(client: httpx.AsyncClient, path: str, body: dict) -> tuple[float, dict | None]:
    """Seconds until the answer, and the answer (None if the caller gave up or it failed)."""
    started = time.perf_counter()
    try:
        response = await client.post(path, json=body)
        answer = response.json() if response.status_code == 200 else None
    except httpx.HTTPError:
        answer = None
    return time.perf_counter() - started, answer


async def storm(base_url: str) -> dict[str, Any]:
    loop = {"code": "while True: pass", "language": "python", "run_timeout": STORM_TIMEOUT_S}
    limits = httpx.Limits(max_connections=STORM_LOOPS + STORM_PRINTS)
    async with httpx.AsyncClient(base_url=base_url, timeout=CALLER_GIVES_UP_S,
                                 limits=limits) as client:
        started = time.perf_counter()
        loops = [asyncio.create_task(timed_post(client, "/run_code", loop))
                 for _ in range(STORM_LOOPS)]
        await asyncio.sleep(0.5)  # the prints arrive once the storm is under way
        prints = [asyncio.create_task(timed_post(
            client, "/run_code", {"code": f"print({i})", "language": "python"}))
            for i in range(STORM_PRINTS)]
        loop_answers = await asyncio.gather(*loops)
        print_answers = await asyncio.gather(*prints)
        elapsed = time.perf_counter() - started
    answered = [s for s, a in loop_answers if a is not None and s <= CALLER_GIVES_UP_S
                and (a.get("run_result") or {}).get("status") == "TimeLimitExceeded"]
    correct = [s for i, (s, a) in enumerate(print_answers)
               if a is not None and (a.get("run_result") or {}).get("stdout") == f"{i}\n"]
    return {"loops": STORM_LOOPS, "timeouts_within_30s": len(answered),
            "loop_answer_s": percentiles([s * 1000 for s in answered]) if answered else None,
            "prints": STORM_PRINTS, "prints_correct": len(correct),
            "print_latency": percentiles([s * 1000 for s, _ in print_answers]),
            "elapsed_s": round(elapsed, 1)}


async def run_v1(client: httpx.AsyncClient, code: str, **fields: object) -> dict:
    response = await client.post("/v1/run", json={"code": code, **fields})
    response.raise_for_status()
    return response.json()


async def verdicts(base_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
        probe = await run_v1(client, CALIBRATION.format(n=CALIBRATION_N))
        n = int(CALIBRATION_N * VERDICT_CPU_S * 1000 / probe["timing"]["cpu_ms"])
        code = CALIBRATION.format(n=n)
        alone = await run_v1(client, code, timeout=VERDICT_TIMEOUT_S * 10)
        results = await asyncio.gather(*(run_v1(client, code, timeout=VERDICT_TIMEOUT_S)
                                         for _ in range(VERDICT_RUNS)))
    outcomes = [r["outcome"] for r in results]

    def spread(key: str) -> list[float]:
        values = [r["timing"][key] or 0.0 for r in results]
        return [round(min(values) / 1000, 2), round(max(values) / 1000, 2)]

    return {"runs": VERDICT_RUNS, "ok": outcomes.count("ok"),
            "outcomes": {o: outcomes.count(o) for o in set(outcomes)},
            "alone_cpu_s": round(alone["timing"]["cpu_ms"] / 1000, 2),
            "run_s": spread("run_ms"), "cpu_s": spread("cpu_ms"),
            "cpu_wait_s": spread("cpu_wait_ms"),
            "messages": sorted({r["message"] for r in results if r["message"]})}


def measure() -> dict[str, Any]:
    """The scenes on a stack of its own at the defaults (those of `make serve`)."""
    pool_size = Settings().pool_size
    load_before = os.getloadavg()
    engine_before, started = engine_cpu_s(), time.monotonic()
    with LocalStack(pool_size=pool_size, ready_timeout=READY_TIMEOUT_S) as stack:
        warm_s = time.monotonic() - started
        engine_s = engine_cpu_s() - engine_before
        own_s = containers_cpu_s(container_ids(stack.prefix))
        # The scenes are of a deployment in service: the containers kept for sessions (and
        # other languages' and the scientific pool's) are still starting when Python's pool is
        # warm, and a storm amid that start measures the start.
        stack.wait_warmed_up(READY_TIMEOUT_S)
        all_warm_s = time.monotonic() - started
        time.sleep(3)
        figures: dict[str, Any] = {
            "pool_size": pool_size,
            "container_start": {"engine_cpu_ms": round(engine_s / pool_size * 1000),
                                "container_cpu_ms": round(own_s / pool_size * 1000),
                                "pool_warm_s": round(warm_s, 1),
                                "all_warm_s": round(all_warm_s, 1)},
            "idle_memory": idle_memory_mib(stack.prefix),
        }
        print("  S1 timeout storm", file=sys.stderr)
        figures["S1"] = asyncio.run(storm(stack.base_url))
        stack.wait_ready(pool_size, READY_TIMEOUT_S)
        print("  S4 verdicts under load", file=sys.stderr)
        figures["S4"] = asyncio.run(verdicts(stack.base_url))
        figures["replaced"] = replaced(stack.base_url)
    print("  S4 again, 4 at a time (a pool of 4, the former default)", file=sys.stderr)
    with LocalStack(pool_size=COMPARED_POOL, ready_timeout=READY_TIMEOUT_S) as small:
        small.wait_warmed_up(READY_TIMEOUT_S)
        figures["S4_pool_4"] = asyncio.run(verdicts(small.base_url))
    figures["load_average_before"], figures["load_average_after"] = load_before, os.getloadavg()
    return figures


def replaced(base_url: str) -> int:
    """Containers the workers replaced so far (after abnormal ends)."""
    body = httpx.get(f"{base_url}/readyz?verbose=true", timeout=5).json()
    return sum(int(float(w.get("replaced") or 0)) for w in body["workers"])


def verdict_row(name: str, s4: dict[str, Any]) -> tuple[str, str]:
    return (name, f"{s4['ok']}/{s4['runs']} ok · run {s4['run_s'][0]}-{s4['run_s'][1]} s · CPU "
            f"{s4['cpu_s'][0]}-{s4['cpu_s'][1]} s · waiting for a CPU {s4['cpu_wait_s'][0]}-"
            f"{s4['cpu_wait_s'][1]} s · alone {s4['alone_cpu_s']} s of CPU")


def rows(f: dict[str, Any]) -> list[tuple[str, str]]:
    s1, s4, start, memory = f["S1"], f["S4"], f["container_start"], f["idle_memory"]
    loop_p50 = s1["loop_answer_s"]["p50_ms"] if s1["loop_answer_s"] else "n/a"
    return [
        (f"S1 timeout storm ({s1['loops']} loops + {s1['prints']} prints)",
         f"{s1['timeouts_within_30s']}/{s1['loops']} TimeLimitExceeded within 30 s (p50 "
         f"{loop_p50} ms) · prints {s1['prints_correct']}/{s1['prints']} correct, p50 "
         f"{s1['print_latency']['p50_ms']} ms, max {s1['print_latency']['p99_ms']} ms"),
        *(verdict_row(f"S4 ~1 s of CPU, timeout 3 s, {s['runs']} at once, pool {pool}", s)
          for pool, s in ((f["pool_size"], s4), (COMPARED_POOL, f["S4_pool_4"]))),
        ("warm container, idle", f"{memory['usage_mean_mib']} MiB (RSS {memory['rss_mean_mib']}) "
         f"x {memory['containers']}"),
        ("container start (a replacement)", f"engine {start['engine_cpu_ms']} ms CPU + its own "
         f"{start['container_cpu_ms']} ms CPU; pool of {f['pool_size']} warm in "
         f"{start['pool_warm_s']} s, every container (sessions' too) in {start['all_warm_s']} s"),
        ("containers replaced during the scenes", str(f["replaced"])),
        ("host load average (1 min), before / after", f"{f['load_average_before'][0]:.1f} / "
         f"{f['load_average_after'][0]:.1f} on {os.cpu_count()} cores"),
    ]


def table(figures: dict[str, Any]) -> str:
    width = max(len(name) for name, _ in rows(figures))
    return "\n".join(f"  {name.ljust(width)}  {value}" for name, value in rows(figures))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.storm", description=__doc__)
    parser.add_argument("--json", type=Path, default=Path(".run/bench-storm.json"))
    args = parser.parse_args(argv)
    figures = measure()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2))
    print(table(figures))
    print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
