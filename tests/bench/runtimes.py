"""What another OCI runtime (gVisor's runsc) costs: L1 and L2, one request at a time, on the
engine's default runtime and on the one named, side by side in one run.

    python -m tests.bench.runtimes [--runtime runsc] [--count 200]
"""

import argparse
import asyncio

from tests.bench.stack import LocalStack
from tests.bench.workloads import NUMPY, PRINT_ONE, Load


async def latencies(stack: LocalStack, count: int) -> tuple[dict, dict]:
    load = Load("127.0.0.1", stack.port)
    try:
        l1 = await load.sequential("L1 print(1)", PRINT_ONE, count, warmup=20)
        l2 = await load.sequential("L2 numpy", NUMPY, count // 2, warmup=10)
    finally:
        await load.close()
    return l1, l2


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.runtimes", description=__doc__)
    parser.add_argument("--runtime", default="runsc")
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args(argv)
    for runtime in ("", args.runtime):
        env = {"SANDBOX_RUNTIME": runtime} if runtime else {}
        with LocalStack(workers=1, pool_size=2, env=env) as stack:
            l1, l2 = asyncio.run(latencies(stack, args.count))
        print(f"{runtime or 'default (runc)'}: print(1) p50 {l1['p50_ms']} ms, p95 "
              f"{l1['p95_ms']} ms; numpy p50 {l2['p50_ms']} ms, p95 {l2['p95_ms']} ms")


if __name__ == "__main__":
    main()
