"""The measured workloads of BENCHMARK.md, each returning a dict of figures."""

import asyncio
import collections
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from tests.bench.http import ConnectionPool

PRINT_ONE = "print(1)"
NUMPY = "import numpy as np; print(np.arange(10).sum())"
CPU_BOUND = "print(sum(i*i for i in range(10**6)))"


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"p50_ms": pick(0.50), "p95_ms": pick(0.95), "p99_ms": pick(0.99),
            "mean_ms": round(statistics.fmean(ordered), 3), "n": len(ordered)}


def stages_of(elapsed_ms: float, body: dict) -> dict[str, float]:
    """Where one answered run's time went, from the result's own timing."""
    timing = body["timing"]
    return {
        "http + api (client round trip minus total_ms)": elapsed_ms - timing["total_ms"],
        "enqueue -> execution starts (queue_ms)": timing["queue_ms"],
        "execution in the runner (run_ms)": timing["run_ms"],
        "result -> api (total - queue - run)":
            timing["total_ms"] - timing["queue_ms"] - timing["run_ms"],
    }


def median_stages(stages: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(s[k] for s in stages), 3) for k in stages[0]}


def progress(label: str, done: int, total: int) -> None:
    if done == total or done % max(1, total // 20) == 0:
        print(f"\r  {label}: {done}/{total}", end="\n" if done == total else "", file=sys.stderr,
              flush=True)


class Load:
    """Drives the HTTP API of a running service."""

    def __init__(self, host: str, port: int):
        self.pool = ConnectionPool(host, port)

    async def run_one(self, code: str) -> tuple[float, dict]:
        started = time.perf_counter()
        status, body = await self.pool.post("/v1/run", {"code": code})
        elapsed = (time.perf_counter() - started) * 1000
        if status != 200 or body.get("outcome") != "ok":
            raise RuntimeError(f"unexpected answer {status}: {body}")
        return elapsed, body

    async def sequential(self, label: str, code: str, count: int, warmup: int,
                         beside: Callable[[], Awaitable[float]] | None = None) -> dict[str, Any]:
        """One request at a time; also where its time went, from the result's own timing. With
        `beside`, each request alternates with one call of it (a baseline measured side by
        side, under the same conditions); its samples are returned as `beside_ms`."""
        for _ in range(warmup):
            await self.run_one(code)
        samples, stages, beside_ms = [], [], []
        for i in range(count):
            elapsed, body = await self.run_one(code)
            samples.append(elapsed)
            if beside is not None:
                beside_ms.append(await beside())
            stages.append(stages_of(elapsed, body))
            progress(label, i + 1, count)
        figures = percentiles(samples)
        figures["median_stages_ms"] = median_stages(stages)
        if beside is not None:
            figures["beside_ms"] = beside_ms
        return figures

    async def closed_loop(self, label: str, codes: list[str], in_flight: int) -> dict[str, Any]:
        """`in_flight` callers each sending the next request when the last one is answered."""
        pending = iter(enumerate(codes))
        samples: list[float] = []
        outputs: dict[int, str] = {}

        async def caller() -> None:
            for i, code in pending:
                elapsed, body = await self.run_one(code)
                samples.append(elapsed)
                outputs[i] = body["stdout"]
                progress(label, len(samples), len(codes))

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(in_flight)))
        seconds = time.perf_counter() - started
        return {"executions": len(codes), "in_flight": in_flight, "seconds": round(seconds, 3),
                "per_second": round(len(codes) / seconds, 1), **percentiles(samples),
                "outputs": outputs}

    async def open_loop(self, label: str, code: str, rate: float, seconds: float) -> dict[str, Any]:
        """Requests at a fixed arrival rate; latency counted from each one's scheduled time."""
        total = int(rate * seconds)
        samples: list[float] = []
        start = time.perf_counter()

        async def one(scheduled: float) -> None:
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            await self.run_one(code)
            samples.append((time.perf_counter() - scheduled) * 1000)
            progress(label, len(samples), total)

        await asyncio.gather(*(one(start + i / rate) for i in range(total)))
        achieved = total / (time.perf_counter() - start)
        return {"offered_per_second": rate, "achieved_per_second": round(achieved, 1),
                **percentiles(samples)}

    async def batch(self, label: str, count: int) -> dict[str, Any]:
        items = [{"code": f"print({i})"} for i in range(count)]
        started = time.perf_counter()
        status, body = await self.pool.post("/v1/batch", {"items": items})
        seconds = time.perf_counter() - started
        progress(label, count, count)
        if status != 200:
            return {"available": False, "status": status}
        correct = sum(r["stdout"] == f"{i}\n" for i, r in enumerate(body["results"]))
        return {"executions": count, "seconds": round(seconds, 3), "correct": correct,
                "per_second": round(count / seconds, 1)}

    async def backlog(self, label: str, count: int, in_flight: int,
                      memory: Callable[[], int]) -> dict[str, Any]:
        """Queue `count` jobs at once, wait for all; compare the first and last thousand."""
        rss_before = memory()
        submitted: dict[str, float] = {}
        codes = iter(range(count))

        async def submitter() -> None:
            for i in codes:
                status, body = await self.pool.post("/v1/jobs", {"code": f"print({i})"})
                if status != 202:
                    raise RuntimeError(f"submission refused: {status} {body}")
                submitted[body["id"]] = time.perf_counter()
                progress(f"{label} submit", len(submitted), count)

        await asyncio.gather(*(submitter() for _ in range(in_flight)))
        finished = await self._collect(label, submitted)
        rss_after = memory()
        ordered = sorted(finished)
        first, last = ordered[:1000], ordered[-1000:]
        first_rate = 1000 / max(1e-9, first[-1] - first[0])
        last_rate = 1000 / max(1e-9, last[-1] - last[0])
        return {"jobs": count, "first_thousand_per_second": round(first_rate, 1),
                "last_thousand_per_second": round(last_rate, 1),
                "last_over_first": round(last_rate / first_rate, 3),
                "rss_before_mib": round(rss_before / 2**20, 1),
                "rss_after_mib": round(rss_after / 2**20, 1),
                "rss_change": round(rss_after / rss_before - 1, 3)}

    async def _collect(self, label: str, submitted: dict[str, float]) -> list[float]:
        """Completion times of every job (its submission on the client's clock plus its own
        total_ms), following the queue's head: the oldest unfinished job is asked for until it
        is done, so the collector costs about one request per job, spread over the run, and
        does not load the service more at the end of the backlog than at its start."""
        finished: list[float] = []
        waiting = collections.deque(submitted)
        base_url = f"http://{self.pool.host}:{self.pool.port}"
        async with httpx.AsyncClient(base_url=base_url) as client:
            while waiting:
                body = (await client.get(f"/v1/jobs/{waiting[0]}")).json()
                if body["state"] != "done":
                    await asyncio.sleep(0.05)
                    continue
                job_id = waiting.popleft()
                finished.append(submitted[job_id] + body["result"]["timing"]["total_ms"] / 1000)
                progress(f"{label} done", len(finished), len(submitted))
        return finished

    async def close(self) -> None:
        await self.pool.close()


async def timed(call: Callable[[], Awaitable[Any]], count: int) -> list[float]:
    """Latencies of `count` sequential calls, in ms."""
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples
