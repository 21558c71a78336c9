"""Redis goes away and comes back: 503 meanwhile, and no accepted job is lost (append-only file)."""

import subprocess
from pathlib import Path

import httpx
import pytest

from tests.reliability.helpers import eventually, wait_all_done
from tests.support import ROOT, Service, free_port


def start_redis(port: int, data_dir: Path) -> str:
    return subprocess.run([ROOT / "deploy/local/ensure-redis.sh", str(port), str(data_dir)],
                          check=True, capture_output=True, text=True).stdout.strip()


def stop_redis(port: int) -> None:
    subprocess.run(["redis-cli", "-p", str(port), "shutdown"], capture_output=True, check=False)


@pytest.fixture
def own_redis(tmp_path: Path):
    port = free_port()
    url = start_redis(port, tmp_path)
    yield port, tmp_path, url
    stop_redis(port)


@pytest.mark.parametrize("lane", ["interactive", "bulk"])
def test_redis_restart_loses_no_accepted_job(own_redis, docker_engine: None, lane: str) -> None:
    """Either lane: a bulk job's answer waits for others to share its script (consumer.py),
    and those held when Redis goes are sent again once it is back."""
    port, data_dir, url = own_redis
    svc = Service(url).start(workers=2, wait_idle=6)
    try:
        with httpx.Client(base_url=svc.base_url, timeout=30) as client:
            ids = [client.post("/v1/jobs", json={"code": f"import time; time.sleep(0.3); print({i})",
                                                 "priority": lane}).json()["id"]
                   for i in range(40)]
            stop_redis(port)
            refused = client.post("/v1/run", json={"code": "print(1)"})
            assert refused.status_code == 503
            assert refused.json()["error"] == "queue_unavailable"
            assert int(refused.headers["retry-after"]) > 0
            assert client.get("/readyz").status_code == 503
            assert client.get("/livez").status_code == 200
            start_redis(port, data_dir)
            results = wait_all_done(client, ids, timeout=120)
            for i, job_id in enumerate(ids):
                assert results[job_id]["outcome"] == "ok", results[job_id]
                assert results[job_id]["stdout"] == f"{i}\n"
            eventually(lambda: client.get("/readyz").status_code == 200, 30, "ready again")
            assert client.post("/v1/run", json={"code": "print(2)"}).json()["stdout"] == "2\n"
    finally:
        svc.stop()


def test_redis_that_lost_its_data_is_served_again(own_redis, docker_engine: None) -> None:
    """Redis restarted without its data (here: flushed): the workers' consumer group is gone,
    and is made again by the first worker that reads."""
    port, _, url = own_redis
    svc = Service(url).start(workers=1, wait_idle=3)
    try:
        with httpx.Client(base_url=svc.base_url, timeout=60) as client:
            assert client.post("/v1/run", json={"code": "print(1)"}).json()["outcome"] == "ok"
            subprocess.run(["redis-cli", "-p", str(port), "flushall"], check=True,
                           capture_output=True)
            after = client.post("/v1/run", json={"code": "print(2)"}).json()
            assert (after["outcome"], after["stdout"]) == ("ok", "2\n"), after
    finally:
        svc.stop()
