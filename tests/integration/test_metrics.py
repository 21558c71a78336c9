"""/metrics and /v1/stats on a real deployment: two API processes and two workers sharing one Redis.

Each process flushes its own increments; any API process must render the sum of all of them.
"""

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import Service

FLUSH_WAIT_S = 30


@pytest.fixture(scope="module")
def cluster(redis_url: str, docker_engine: None) -> Iterator[tuple[Service, Service]]:
    """Two workers and API `a`; API `b` is a second process of the same deployment."""
    a = Service(redis_url)
    b = Service(redis_url, prefix=a.prefix)
    try:
        a.start(workers=2, wait_idle=6)
        b.start(workers=0, wait_idle=1)
        yield a, b
    finally:
        a.stop()  # first: its workers remove the deployment's containers
        b.stop()


def scrape(base_url: str) -> dict[str, list]:
    """Samples by series name, parsed by Prometheus's own client library."""
    response = httpx.get(f"{base_url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def value(samples: dict[str, list], name: str, **labels: str) -> float:
    return sum(s.value for s in samples.get(name, []) if labels.items() <= s.labels.items())


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + FLUSH_WAIT_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not seen in {FLUSH_WAIT_S} s: {what}")


def run(base_url: str, body: dict) -> dict:
    response = httpx.post(f"{base_url}/v1/run", json=body, timeout=120)
    assert response.status_code == 200
    return response.json()


def test_counters_sum_every_process(cluster: tuple[Service, Service]) -> None:
    a, b = cluster
    # Four sleepers at once through `a`: a worker holds at most three, so both workers run jobs.
    plan = ([(a, {"code": "import time; time.sleep(1); print('slept')"})] * 4
            + [(b, {"code": "print(1)"})] * 3
            + [(a, {"code": "raise ValueError('no')"})] * 2
            + [(b, {"code": "while True: pass", "timeout": 0.5})])
    with ThreadPoolExecutor(len(plan)) as pool:
        results = list(pool.map(lambda p: run(p[0].base_url, p[1]), plan))
    outcomes = Counter(r["outcome"] for r in results)
    assert outcomes == {"ok": 7, "error": 2, "timeout": 1}

    wait_for(lambda: value(scrape(a.base_url), "sandbox_jobs_total") == 10, "10 jobs counted")
    wait_for(lambda: value(scrape(a.base_url), "sandbox_http_request_duration_seconds_count",
                           route="/v1/run") == 10, "10 requests counted over both API processes")
    seen_a = scrape(a.base_url)
    seen_b = scrape(b.base_url)
    for outcome, count in outcomes.items():
        for seen in (seen_a, seen_b):
            assert value(seen, "sandbox_jobs_total", language="python", outcome=outcome) == count
            for family in ("sandbox_job_queue_wait_seconds", "sandbox_job_run_seconds"):
                assert value(seen, f"{family}_count", outcome=outcome) == count
                assert value(seen, f"{family}_bucket", outcome=outcome, le="+Inf") == count
    assert value(seen_b, "sandbox_http_request_duration_seconds_count",
                 route="/v1/run", status="200") == 10
    assert value(seen_a, "sandbox_jobs_reclaimed_total") == 0
    assert value(seen_a, "sandbox_jobs_dead_lettered_total") == 0
    assert value(seen_a, "sandbox_workers") == 2
    assert value(seen_a, "sandbox_pool_size") == 6
    assert value(seen_a, "sandbox_queue_depth") == 0

    stats = httpx.get(f"{b.base_url}/v1/stats", timeout=10).json()
    assert stats["totals"]["outcomes"] == dict(outcomes)
    assert all(w["executions"] > 0 for w in stats["workers"]), "both workers ran jobs"
    assert sum(map(sum, (c.values() for c in stats["throughput"]["minute"]["counts"]))) == 10
    assert stats["latency"]["samples"] == 10


def test_histogram_buckets_are_cumulative(cluster: tuple[Service, Service]) -> None:
    a, _ = cluster
    run(a.base_url, {"code": "print('x')"})
    wait_for(lambda: value(scrape(a.base_url), "sandbox_jobs_total") >= 1, "a job counted")
    buckets = [s for s in scrape(a.base_url)["sandbox_job_run_seconds_bucket"]
               if s.labels["outcome"] == "ok"]
    bounds = [float(s.labels["le"]) for s in buckets]
    assert bounds == sorted(bounds) and bounds[-1] == float("inf")
    counts = [s.value for s in buckets]
    assert counts == sorted(counts)


def test_job_log_lines_carry_the_job_id(cluster: tuple[Service, Service]) -> None:
    a, _ = cluster
    job_id = run(a.base_url, {"code": "while True: pass", "timeout": 0.3})["id"]

    def logged() -> bool:
        for path in a.log_dir.glob(f"{a.prefix}-worker-*.log"):
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith("{") and json.loads(line).get("job_id") == job_id:
                    return True
        return False

    wait_for(logged, f"a worker log line with job_id {job_id}")


def holder_pid(svc: Service) -> int:
    """The pid of the worker running the one job in flight."""
    found: list[int] = []

    def busy_worker() -> bool:
        workers = httpx.get(f"{svc.base_url}/v1/stats", timeout=10).json()["workers"]
        found[:] = [w["pid"] for w in workers if w["busy"] > 0]
        return len(found) == 1

    wait_for(busy_worker, "one busy worker")
    return found[0]


def test_reclaimed_then_dead_lettered(redis_url: str, docker_engine: None) -> None:
    """A job whose worker dies is reclaimed; when its second worker dies too, dead-lettered."""
    svc = Service(redis_url, {"SANDBOX_MAX_DELIVERIES": "2"})
    try:
        svc.start(workers=2, wait_idle=6)
        job = {"code": "import time; time.sleep(120)", "timeout": 200}
        job_id = httpx.post(f"{svc.base_url}/v1/jobs", json=job, timeout=10).json()["id"]
        os.kill(holder_pid(svc), signal.SIGKILL)
        svc.add_worker()
        wait_for(lambda: value(scrape(svc.base_url), "sandbox_jobs_reclaimed_total") == 1,
                 "one job reclaimed")
        os.kill(holder_pid(svc), signal.SIGKILL)
        wait_for(lambda: value(scrape(svc.base_url), "sandbox_jobs_dead_lettered_total") == 1,
                 "one job dead-lettered")
        seen = scrape(svc.base_url)
        assert value(seen, "sandbox_jobs_total", outcome="sandbox_error") == 1
        assert value(seen, "sandbox_jobs_reclaimed_total") == 1
        status = httpx.get(f"{svc.base_url}/v1/jobs/{job_id}", timeout=10).json()
        assert status["result"]["outcome"] == "sandbox_error"
        errors = httpx.get(f"{svc.base_url}/v1/stats", timeout=10).json()["errors"]
        assert [e["job_id"] for e in errors] == [job_id]
    finally:
        svc.stop()
