"""What the code's imports cost: the scientific snippets one at a time (the first hit and the
median per kind), the CPU of one execution in a batch of `print(i)` and of numpy snippets
(machine-wide from /proc/stat, and per component), and the memory of each warm container by the
modules its runner preloaded. On a stack of its own at a pool of 4.

    python -m tests.bench.templates [--json PATH] [--repeat N] [--batch N] [--scientific N]
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import docker

from tests.bench.cpu import SANDBOXES, ContainersCpu, CpuMeter
from tests.bench.sessions import container_memory
from tests.bench.stack import LocalStack
from tests.bench.workloads import Load, percentiles, progress

# Each snippet solves a small problem with one library (as tests/integration does); its answer.
SNIPPETS = {
    "print": ("print(1)", "1\n"),
    "numpy": ("import numpy as np; print(np.arange(10).sum())", "45\n"),
    "sympy": ("import sympy as sp\nx = sp.symbols('x')\nprint(sp.solve(x**2 - 5*x + 6, x))",
              "[2, 3]\n"),
    "pandas": ("import pandas as pd\nprint(pd.DataFrame({'a': [1, 2, 3]})['a'].sum())", "6\n"),
    "scipy": ("from scipy.optimize import brentq\nprint(round(brentq(lambda x: x**3 - 8, 0, 5), 6))",
              "2.0\n"),
    "networkx": ("import networkx as nx\nprint(nx.shortest_path_length(nx.path_graph(5), 0, 4))",
                 "4\n"),
    "z3": ("import z3\nx, y = z3.Ints('x y')\ns = z3.Solver()\ns.add(x + y == 10, x - y == 4)\n"
           "s.check()\nm = s.model()\nprint(m[x], m[y])", "7 3\n"),
    "ortools": ("from ortools.sat.python import cp_model\nm = cp_model.CpModel()\n"
                "x = m.NewIntVar(0, 10, 'x')\nm.Add(3 * x == 21)\ns = cp_model.CpSolver()\n"
                "s.parameters.num_workers = 1\ns.Solve(m)\nprint(s.Value(x))", "7\n"),
}


def busy_jiffies() -> int:
    """CPU time the whole machine spent, in clock ticks (/proc/stat: all but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4]


async def one_at_a_time(load: Load, repeat: int) -> dict[str, Any]:
    """Per kind: the first request's latency (nothing of it warm yet) and the median after."""
    figures = {}
    for kind, (code, expected) in SNIPPETS.items():
        samples = []
        for i in range(repeat + 1):
            elapsed, body = await load.run_one(code)
            if body["stdout"] != expected:
                raise RuntimeError(f"{kind} answered {body['stdout']!r}")
            samples.append(elapsed)
            progress(f"one at a time: {kind}", i + 1, repeat + 1)
        figures[kind] = {"first_ms": round(samples[0], 1), **percentiles(samples[1:])}
    return figures


async def batch_cpu(stack: LocalStack, load: Load, codes: list[str],
                    expected: list[str]) -> dict[str, Any]:
    """CPU per item of one /v1/batch, machine-wide and per component (the sandboxes' as
    ContainersCpu follows them: the scientific pool may stop one it started on demand)."""
    meter = stack.cpu_meter()
    sandboxes = ContainersCpu(stack.prefix)  # lists them before the machine-wide count starts
    before, jiffies = meter.snapshot([]), busy_jiffies()
    started = asyncio.get_running_loop().time()
    status, body = await load.pool.post("/v1/batch", {"items": [{"code": c} for c in codes]})
    seconds = asyncio.get_running_loop().time() - started
    machine_ms = (busy_jiffies() - jiffies) * 1000 / os.sysconf("SC_CLK_TCK") / len(codes)
    if status != 200:
        raise RuntimeError(f"batch refused: {status} {body}")
    after = meter.snapshot([])
    after[SANDBOXES] = await sandboxes.stop()
    correct = sum(r["stdout"] == e for r, e in zip(body["results"], expected, strict=True))
    return {"items": len(codes), "correct": correct, "per_second": round(len(codes) / seconds, 1),
            "machine_cpu_ms_per_item": round(machine_ms, 3),
            "cpu_ms_per_item": CpuMeter.per_request_ms(before, after, len(codes))}


def container_memory_by_preload(prefix: str) -> dict[str, Any]:
    """Memory of each warm container of the deployment (as `docker stats` counts it), grouped
    by what its runner preloads."""
    engine = docker.from_env()
    groups: dict[str, list[float]] = {}
    try:
        for container in engine.containers.list(filters={"label": f"sandbox.deployment={prefix}"}):
            env = dict(e.split("=", 1) for e in container.attrs["Config"]["Env"])
            preload = env.get("SANDBOX_PRELOAD", "")
            groups.setdefault(preload, []).append(container_memory(container) / 2**20)
    finally:
        engine.close()
    return {preload: {"containers": len(mib), "median_mib": percentiles(mib)["p50_ms"]}
            for preload, mib in groups.items()}


async def measure_stack(stack: LocalStack, repeat: int, batch: int) -> dict[str, Any]:
    load = Load("127.0.0.1", stack.port)
    try:
        figures: dict[str, Any] = {"memory_idle": container_memory_by_preload(stack.prefix)}
        figures["one_at_a_time"] = await one_at_a_time(load, repeat)
        figures["batch_print"] = await batch_cpu(stack, load, [f"print({i})" for i in range(batch)],
                                                 [f"{i}\n" for i in range(batch)])
        numpy_code, numpy_out = SNIPPETS["numpy"]
        figures["batch_numpy"] = await batch_cpu(stack, load, [numpy_code] * (batch // 3),
                                                 [numpy_out] * (batch // 3))
        await asyncio.sleep(2)  # the containers are back and clean
        figures["memory_after"] = container_memory_by_preload(stack.prefix)
    finally:
        await load.close()
    return figures


def batch_env(scientific: int) -> dict[str, str]:
    """Python's pool and `scientific` warm containers of the scientific pool, only the pools'
    containers (no session's), none replaced meanwhile."""
    return {"SANDBOX_LANGUAGES": "python", "SANDBOX_SCIENTIFIC_POOL_SIZE": str(scientific),
            "SANDBOX_SESSION_WARM": "0", "SANDBOX_EXECUTIONS_PER_CONTAINER": "1000000"}


def measure(repeat: int = 20, batch: int = 3000, scientific: int = 2) -> dict[str, Any]:
    """On a stack of Python's pool of 4 and `scientific` warm containers of the scientific
    pool, once every one is warm."""
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    with LocalStack(pool_size=4, env=batch_env(scientific), ready_timeout=300) as stack:
        stack.wait_ready(stack.pool_size + scientific, timeout=600)
        figures = asyncio.run(measure_stack(stack, repeat, batch))
    figures["uptime_before"] = uptime
    figures["uptime_after"] = subprocess.run(["uptime"], capture_output=True,
                                             text=True).stdout.strip()
    return figures


def rows(f: dict[str, Any]) -> list[tuple[str, str]]:
    out = [(f"  {kind}, one at a time", f"p50 {k['p50_ms']} ms · first {k['first_ms']} ms")
           for kind, k in f["one_at_a_time"].items()]
    for name in ("batch_print", "batch_numpy"):
        b = f[name]
        parts = ", ".join(f"{k} {v}" for k, v in b["cpu_ms_per_item"].items())
        out.append((f"  {name} ({b['items']} items)",
                    f"{b['machine_cpu_ms_per_item']} ms CPU per item machine-wide · {parts} · "
                    f"{b['per_second']} /s · {b['correct']} correct"))
    for when in ("memory_idle", "memory_after"):
        for preload, m in f[when].items():
            out.append((f"  {when}, preload {preload or '(none)'}",
                        f"{m['median_mib']} MiB, containers: {m['containers']}"))
    out.append(("  load", f"{f['uptime_before']} → {f['uptime_after']}"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=Path(".run/bench-templates.json"))
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--batch", type=int, default=3000)
    parser.add_argument("--scientific", type=int, default=2,
                        help="warm containers of the scientific pool (0: none)")
    args = parser.parse_args()
    print("measuring; progress on stderr", file=sys.stderr)
    figures = measure(args.repeat, args.batch, args.scientific)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2))
    print("\n".join(f"{name.ljust(44)}  {value}" for name, value in rows(figures)))


if __name__ == "__main__":
    main()
