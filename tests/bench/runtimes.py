"""What another OCI runtime (gVisor's runsc) costs: L1 and L2, one request at a time, and the
CPU per item of a batch of `print(i)` (machine-wide and per component, as tests/bench/templates.py
measures it), on the engine's default runtime and on the one named, side by side in one run.

    python -m tests.bench.runtimes [--runtime runsc] [--count 200] [--batch 1000]
"""

import argparse
import asyncio
from typing import Any

from tests.bench.stack import LocalStack
from tests.bench.templates import batch_cpu, batch_env
from tests.bench.workloads import NUMPY, PRINT_ONE, Load

ENV = batch_env(scientific=0)  # as tests/bench/templates.py runs its batch, Python's pool only


async def measure(stack: LocalStack, count: int, batch: int) -> dict[str, Any]:
    load = Load("127.0.0.1", stack.port)
    try:
        l1 = await load.sequential("L1 print(1)", PRINT_ONE, count, warmup=20)
        l2 = await load.sequential("L2 numpy", NUMPY, count // 2, warmup=10)
        cpu = await batch_cpu(stack, load, [f"print({i})" for i in range(batch)],
                              [f"{i}\n" for i in range(batch)])
    finally:
        await load.close()
    return {"L1": l1, "L2": l2, "batch": cpu}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.runtimes", description=__doc__)
    parser.add_argument("--runtime", default="runsc")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args(argv)
    for runtime in ("", args.runtime):
        env = {**ENV, "SANDBOX_RUNTIME": runtime} if runtime else ENV
        with LocalStack(workers=1, pool_size=4, env=env) as stack:
            f = asyncio.run(measure(stack, args.count, args.batch))
        l1, l2, cpu = f["L1"], f["L2"], f["batch"]
        parts = " · ".join(f"{name} {ms}" for name, ms in cpu["cpu_ms_per_item"].items())
        print(f"{runtime or 'default (runc)'}: print(1) p50 {l1['p50_ms']} ms, p95 "
              f"{l1['p95_ms']} ms; numpy p50 {l2['p50_ms']} ms, p95 {l2['p95_ms']} ms; "
              f"batch of {cpu['items']} print(i): {cpu['correct']} right, "
              f"{cpu['per_second']}/s, CPU per item {cpu['machine_cpu_ms_per_item']} ms "
              f"machine-wide ({parts})")


if __name__ == "__main__":
    main()
