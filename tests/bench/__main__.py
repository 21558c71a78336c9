"""`make bench`: measure the service as BENCHMARK.md defines, in one run, on this machine.

Starts its own Redis, API and worker, runs the workloads (L1, L2, T1-T4; then, on a fresh
stack, the caller scenes S2 and S3 and the Redis commands per job) and the baselines in
the same run (R1: a container per snippet; F1: the runner alone, with its CPU and page faults
per execution; the bare fork of the sandbox's interpreter, per template), the snippets of each
import kind one at a time and the CPU of a batch (tests/bench/templates.py), then the scenes S1 and S4
(tests/bench/storm.py) on a stack of their own at the defaults of `make serve`, and P1 per
language (tests/bench/languages.py) on one serving every language; prints a
table with the ratios and writes the figures as JSON.

    python -m tests.bench [--short] [--json PATH] [--workers N] [--pool-size N]
"""

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from service.settings import Settings
from tests.bench import callers, languages, storm, templates
from tests.bench.baselines import RunnerFloor, docker_run_baseline, fork_floor
from tests.bench.cpu import SANDBOXES, ContainersCpu, CpuMeter
from tests.bench.stack import LocalStack
from tests.bench.workloads import CPU_BOUND, NUMPY, PRINT_ONE, Load, percentiles

FULL = {"cpu": 2000, "l1": 1000, "l2": 500, "t1": 2000, "t2": 2000, "t3": 200, "t4": 10_000, "r1": 20,
        "f1": 1000, "fork": 1000, "open_s": 10, "s3": 50, "kinds": 20, "kinds_batch": 3000}
SHORT = {"cpu": 500, "l1": 200, "l2": 100, "t1": 2000, "t2": 1000, "t3": 50, "t4": 2000, "r1": 5,
         "f1": 200, "fork": 200, "open_s": 3, "s3": 20, "kinds": 10, "kinds_batch": 1000}


def machine() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text().split()
    return {"cores": os.cpu_count(), "memory_gib": round(int(meminfo[1]) / 2**20, 1),
            "python": platform.python_version(), "kernel": platform.release()}


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def check_outputs(figures: dict[str, Any], expected: list[str]) -> dict[str, Any]:
    outputs = figures.pop("outputs")
    figures["correct"] = sum(outputs.get(i) == out for i, out in enumerate(expected))
    return figures


async def measure_service(stack: LocalStack, sizes: dict[str, int],
                          settings: Settings) -> dict[str, Any]:
    load = Load("127.0.0.1", stack.port)
    results: dict[str, Any] = {}
    try:
        async with RunnerFloor(settings, PRINT_ONE, stack.pool_size) as floor:
            results["L1"], results["F1"] = await l1_beside_f1(load, floor, sizes)
        results["L2"] = await load.sequential("L2 numpy", NUMPY, sizes["l2"], warmup=20)
        results["cpu_per_execution_ms"] = await cpu_breakdown(stack, load, sizes["cpu"])
        results["T1"] = await load.batch("T1 batch", sizes["t1"])
        codes = [f"print({i})" for i in range(sizes["t2"])]
        t2 = await load.closed_loop("T2 64 in flight", codes, in_flight=64)
        results["T2"] = check_outputs(t2, [f"{i}\n" for i in range(len(codes))])
        rate = max(1.0, round(results["T2"]["per_second"] * 0.7))
        results["T2_open"] = await load.open_loop("T2 open loop", PRINT_ONE, rate, sizes["open_s"])
        cpu = [CPU_BOUND] * sizes["t3"]
        results["T3"] = check_outputs(await load.closed_loop("T3 CPU-bound", cpu, in_flight=64),
                                      [f"{sum(i * i for i in range(10**6))}\n"] * len(cpu))
        results["T4"] = await load.backlog("T4 backlog", sizes["t4"], in_flight=32,
                                           memory=lambda: rss_bytes(stack.pids()))
    finally:
        await load.close()
    return results


async def l1_beside_f1(load: Load, floor: RunnerFloor,
                       sizes: dict[str, int]) -> tuple[dict[str, Any], dict[str, Any]]:
    """L1 and the floor F1 in alternation, so that their ratio is not a difference between two
    moments of a noisy machine; then F1's rate on every floor container."""
    before = floor.usage()
    l1 = await load.sequential("L1 print(1), alternating with F1", PRINT_ONE, sizes["l1"],
                               warmup=50, beside=floor.once)
    f1 = {**percentiles(l1.pop("beside_ms")), **floor.per_execution(before, floor.usage(),
                                                                     sizes["l1"])}
    f1.update(await floor.rate(sizes["f1"]))
    return l1, f1


async def cpu_breakdown(stack: LocalStack, load: Load, count: int) -> dict[str, float]:
    """CPU each component spends per print(1), with 16 requests in flight (containers
    replaced meanwhile counted too: see ContainersCpu)."""
    meter = stack.cpu_meter()
    before = meter.snapshot([])
    sandboxes = ContainersCpu(stack.prefix)
    await load.closed_loop("CPU breakdown", [PRINT_ONE] * count, in_flight=16)
    after = meter.snapshot([])
    after[SANDBOXES] = await sandboxes.stop()
    return CpuMeter.per_request_ms(before, after, count)


def ratios(figures: dict[str, Any]) -> dict[str, float]:
    l1, f1, r1 = figures["L1"]["p50_ms"], figures["F1"]["p50_ms"], figures["R1"]["p50_ms"]
    return {"speedup_over_docker_run": round(r1 / l1, 1),
            "overhead_over_floor": round(l1 / f1, 2)}


def table(result: dict[str, Any]) -> str:
    f = result["figures"]
    m = result["machine"]
    rows = [
        ("L1 print(1), one at a time", f"p50 {f['L1']['p50_ms']} ms · p95 {f['L1']['p95_ms']} · "
         f"p99 {f['L1']['p99_ms']}"),
        ("L2 numpy, one at a time", f"p50 {f['L2']['p50_ms']} ms · p95 {f['L2']['p95_ms']}"),
        ("T1 batch of print(i)", f"{f['T1'].get('per_second', 'n/a')} /s "
         f"({f['T1'].get('correct', 0)}/{f['T1'].get('executions', 0)} correct)"),
        ("T2 print(i), 64 in flight", f"{f['T2']['per_second']} /s · p50 {f['T2']['p50_ms']} ms "
         f"· p99 {f['T2']['p99_ms']} ms ({f['T2']['correct']}/{f['T2']['executions']} correct)"),
        ("T2 open loop", f"offered {f['T2_open']['offered_per_second']} /s · achieved "
         f"{f['T2_open']['achieved_per_second']} /s · p50 {f['T2_open']['p50_ms']} ms · "
         f"p99 {f['T2_open']['p99_ms']} ms"),
        ("T3 CPU-bound, 64 in flight", f"{f['T3']['per_second']} /s"),
        ("T4 backlog", f"first 1000: {f['T4']['first_thousand_per_second']} /s · last 1000: "
         f"{f['T4']['last_thousand_per_second']} /s · RSS {f['T4']['rss_before_mib']} → "
         f"{f['T4']['rss_after_mib']} MiB"),
        *callers.rows(f),
        ("R1 docker run --rm per snippet", f"p50 {f['R1']['p50_ms']} ms · "
         f"{f['R1']['per_second']} /s"),
        ("F1 runner alone (floor)", f"p50 {f['F1']['p50_ms']} ms · p99 {f['F1']['p99_ms']} ms · "
         f"{f['F1']['per_second']} /s on {f['F1']['containers']} containers"),
        ("speed-up over R1 (L1)", f"{result['ratios']['speedup_over_docker_run']}x"),
        ("overhead over F1 (L1)", f"{result['ratios']['overhead_over_floor']}x"),
    ]
    rows += [(f"  L1 stage: {stage}", f"{ms} ms")
             for stage, ms in f["L1"]["median_stages_ms"].items()]
    rows += [(f"  CPU per execution: {part}", f"{ms} ms")
             for part, ms in f["cpu_per_execution_ms"].items()]
    faults = f["F1"]["page_faults_per_execution"]
    rows.append(("  F1 per execution, runner + template + child",
                 f"{f['F1']['cpu_ms_per_execution']} ms CPU · page faults: "
                 + ", ".join(f"{part} {count}" for part, count in faults.items())))
    rows += [(f"  bare fork, preload {preload}", f"fork + exit {k['fork_exit']['cpu_ms']} ms CPU "
              f"({k['fork_exit']['page_faults']} faults) · fork + print(1) "
              f"{k['fork_print']['cpu_ms']} ms ({k['fork_print']['page_faults']} faults)")
             for preload, k in f["fork_floor"].items()]
    rows += templates.rows(f["templates"])
    width = max(len(r[0]) for r in rows)
    head = (f"machine: {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}, "
            f"pool {result['pool_size']} x {result['workers']} worker(s)")
    return "\n".join([head, *(f"  {name.ljust(width)}  {value}" for name, value in rows)])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--short", action="store_true", help="fewer samples, for quick checks")
    parser.add_argument("--json", type=Path, default=Path(".run/bench.json"))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--pool-size", type=int, default=4)
    args = parser.parse_args(argv)
    sizes = SHORT if args.short else FULL
    settings = Settings()
    print("measuring; progress on stderr", file=sys.stderr)
    with LocalStack(workers=args.workers, pool_size=args.pool_size) as stack:
        # Every pool warm first (the scientific one, the other languages', the containers kept
        # for sessions): their start-ups would run beside L1 and F1.
        stack.wait_warmed_up()
        figures = asyncio.run(measure_service(stack, sizes, settings))
    figures.update(callers.measure(sizes["s3"]))
    figures["R1"] = docker_run_baseline(settings.image_for("python"), PRINT_ONE, sizes["r1"])
    figures["fork_floor"] = fork_floor(settings.image_for("python"),
                                       ["", settings.preload, settings.scientific_preload],
                                       sizes["fork"])
    figures["templates"] = templates.measure(sizes["kinds"], sizes["kinds_batch"])
    figures["scenes"] = storm.measure()
    figures["P1"] = languages.measure()
    result = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(),
              "mode": "short" if args.short else "full", "workers": args.workers,
              "pool_size": args.pool_size, "command": " ".join(["python -m tests.bench",
                                                                *(argv or sys.argv[1:])]),
              "figures": figures, "ratios": ratios(figures)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(table(result))
    print(f"scenes at the defaults of `make serve`:\n{storm.table(figures['scenes'])}")
    print(f"P1 per language:\n{languages.table(figures['P1'])}")
    print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
