"""A bounded queue: 429 past its depth; jobs whose caller stopped waiting are dropped unrun."""

import asyncio

import httpx

from tests.reliability.helpers import busy, eventually
from tests.support import Service, api_only

SLOW = {"code": "import time; time.sleep(4)", "timeout": 10}


def test_queue_full_answers_429(redis_url: str, docker_engine: None) -> None:
    svc = Service(redis_url, {"SANDBOX_MAX_QUEUE_DEPTH": "3", "SANDBOX_POOL_SIZE": "1"})
    svc.start(workers=1)
    try:
        with httpx.Client(base_url=svc.base_url, timeout=30) as client:
            accepted = [client.post("/v1/jobs", json=SLOW).status_code for _ in range(3)]
            assert accepted == [202, 202, 202]
            for path in ("/v1/jobs", "/v1/run"):
                refused = client.post(path, json={"code": "print(1)"})
                assert refused.status_code == 429
                assert refused.json()["error"] == "queue_full"
                assert int(refused.headers["retry-after"]) >= 1
    finally:
        svc.stop()


def test_job_past_its_deadline_is_not_run(redis_url: str, docker_engine: None) -> None:
    svc = Service(redis_url, {"SANDBOX_QUEUE_WAIT_S": "1", "SANDBOX_POOL_SIZE": "1"})
    svc.start(workers=1)
    try:
        with httpx.Client(base_url=svc.base_url, timeout=60) as client:
            client.post("/v1/jobs", json=SLOW)
            eventually(lambda: busy(client, svc.workers[0].pid) == 1, 30, "the slow job runs")
            result = client.post("/v1/run", json={"code": "print('never')"}).json()
            assert result["outcome"] == "sandbox_error"
            assert "deadline" in result["message"]
            assert result["stdout"] == ""
            assert result["timing"]["run_ms"] == 0
    finally:
        svc.stop()


def test_a_burst_past_the_redis_connections_waits_for_one(redis_url: str) -> None:
    """More requests at once than the API process has Redis connections: each waits for one,
    none is told that Redis is down."""
    with api_only(redis_url, SANDBOX_REDIS_CONNECTIONS="3") as service:
        async def burst() -> list[int]:
            async with httpx.AsyncClient(base_url=service.base_url, timeout=30,
                                         limits=httpx.Limits(max_connections=100)) as client:
                sent = [client.post("/v1/jobs", json={"code": "print(1)"}) for _ in range(100)]
                return [r.status_code for r in await asyncio.gather(*sent)]

        assert asyncio.run(burst()) == [202] * 100
