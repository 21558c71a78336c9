"""`make soak DURATION=600`: mixed load for a while, in both lanes (a bulk run's answer takes
another path out of the worker than an interactive one's), with a worker killed, Redis restarted
and dockerd restarted along the way; then the checks: every accepted job answered exactly once, no
container or sandbox process left behind, memory within 10 % of where it started.

    python -m tests.bench.soak --duration 600 [--rate 20] [--json PATH]
"""

import argparse
import asyncio
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.bench.__main__ import rss_bytes
from tests.bench.stack import ChaosStack

MIX = [  # (weight, code, timeout, expected outcome)
    (70, "print({i})", 2, "ok"),
    (10, "raise ValueError({i})", 2, "error"),
    (5, "while True: pass", 1, "timeout"),
    # A long timeout: on saturated cores the bomb must still reach its limit before its time.
    (5, "a = []\nwhile True: a.append(b'x' * (32 << 20))", 30, "memory_limit"),
    (5, "while True: print('y' * 1000)", 2, "output_limit"),
    (5, "import numpy as np; print(int(np.arange({i} % 100).sum()))", 2, "ok"),
]


LANES = ["interactive", "bulk"]


def pick(i: int) -> tuple[dict[str, Any], str]:
    _, code, timeout, outcome = random.choices(MIX, weights=[m[0] for m in MIX])[0]
    return ({"code": code.format(i=i), "timeout": timeout, "memory_mb": 128,
             "max_output_bytes": 20_000, "priority": random.choice(LANES)}, outcome)


class Tally:
    def __init__(self) -> None:
        self.sent = 0
        self.refused = 0  # 429/503 while Redis was away: never accepted
        self.answers: dict[str, int] = {}  # job id -> times answered
        self.outcomes: dict[str, int] = {}
        self.unexpected: list[str] = []

    def record(self, expected: str, body: dict[str, Any]) -> None:
        self.answers[body["id"]] = self.answers.get(body["id"], 0) + 1
        outcome = body["outcome"]
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        if outcome not in (expected, "sandbox_error"):
            self.unexpected.append(f"{expected} -> {outcome}: {body.get('stderr', '')[-200:]}")


async def drive(base_url: str, rate: float, seconds: float, tally: Tally) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=120,
                                 limits=httpx.Limits(max_connections=200)) as client:

        async def one(i: int) -> None:
            body, expected = pick(i)
            tally.sent += 1
            try:
                response = await client.post("/v1/run", json=body)
            except httpx.HTTPError:
                tally.refused += 1
                return
            if response.status_code in (429, 503):
                tally.refused += 1
                return
            tally.record(expected, response.json())

        tasks = []
        start = time.monotonic()
        i = 0
        while time.monotonic() - start < seconds:
            tasks.append(asyncio.create_task(one(i)))
            i += 1
            await asyncio.sleep(1 / rate)
        await asyncio.gather(*tasks)


async def chaos(stack: ChaosStack, seconds: float, events: list[str]) -> None:
    steps = [(0.25, "kill a worker", stack.kill_worker), (0.5, "restart Redis", stack.restart_redis),
             (0.75, "restart dockerd", stack.restart_docker)]
    start = time.monotonic()
    for at, name, action in steps:
        await asyncio.sleep(max(0.0, start + at * seconds - time.monotonic()))
        print(f"  {time.monotonic() - start:6.1f} s: {name}", file=sys.stderr)
        await asyncio.to_thread(action)
        events.append(f"{round(time.monotonic() - start)} s: {name}")


def leftovers(prefix: str) -> list[str]:
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=sandbox.deployment={prefix}"],
                         capture_output=True, text=True, check=False).stdout.split()
    return out


async def soak(stack: ChaosStack, seconds: float, rate: float) -> dict[str, Any]:
    tally = Tally()
    await drive(stack.base_url, rate, min(30.0, seconds / 10), Tally())  # warm-up
    rss_start = rss_bytes(stack.live_pids())
    events: list[str] = []
    await asyncio.gather(drive(stack.base_url, rate, seconds, tally),
                         chaos(stack, seconds, events))
    await asyncio.to_thread(stack.wait_ready, 1)
    await drive(stack.base_url, rate, min(30.0, seconds / 10), Tally())  # settle after chaos
    rss_end = rss_bytes(stack.live_pids())
    return {"tally": tally, "events": events, "rss_start": rss_start, "rss_end": rss_end}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.soak", description=__doc__)
    parser.add_argument("--duration", type=float, default=600)
    parser.add_argument("--rate", type=float, default=20, help="requests per second offered")
    parser.add_argument("--json", type=Path, default=Path(".run/soak.json"))
    args = parser.parse_args(argv)
    stack = ChaosStack(workers=2, pool_size=3)
    with stack:
        run = asyncio.run(soak(stack, args.duration, args.rate))
    time.sleep(3)
    tally: Tally = run["tally"]
    left = leftovers(stack.prefix)
    checks = {
        "every accepted job answered exactly once": all(n == 1 for n in tally.answers.values())
        and len(tally.answers) == tally.sent - tally.refused,
        "outcomes as expected (or sandbox_error)": not tally.unexpected,
        "no container left": not left,
        "memory within 10 %": run["rss_end"] <= run["rss_start"] * 1.10,
    }
    report = {"duration_s": args.duration, "rate": args.rate, "sent": tally.sent,
              "accepted": len(tally.answers), "refused_while_redis_down": tally.refused,
              "outcomes": tally.outcomes, "unexpected": tally.unexpected[:20],
              "events": run["events"], "rss_start_mib": round(run["rss_start"] / 2**20, 1),
              "rss_end_mib": round(run["rss_end"] / 2**20, 1), "containers_left": left,
              "checks": checks}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    sys.exit(0 if all(checks.values()) else 1)


if __name__ == "__main__":
    main()
