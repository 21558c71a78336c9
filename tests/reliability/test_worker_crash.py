"""A worker killed with SIGKILL: its jobs are taken over and answered exactly once."""

import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.reliability.helpers import busy, eventually, job_state
from tests.support import Service, sandbox_containers

FAST_RECLAIM = {"SANDBOX_RECLAIM_IDLE_S": "2", "SANDBOX_HEARTBEAT_S": "0.5"}


def test_thousand_jobs_survive_a_worker_killed_halfway(redis_url: str, docker_engine: None) -> None:
    # No warm session containers: the count below is of the one-shot pool's.
    svc = Service(redis_url, {**FAST_RECLAIM, "SANDBOX_SESSION_WARM": "0"}).start(
        workers=2, wait_idle=6)
    answered = 0
    lock = threading.Lock()
    victim = svc.workers[0]

    def one(i: int) -> tuple[int, dict]:
        nonlocal answered
        with httpx.Client(base_url=svc.base_url, timeout=120) as client:
            response = client.post("/v1/run", json={"code": f"import time; time.sleep(0.02); print({i})"})
        with lock:
            answered += 1
            if answered == 500:
                victim.send_signal(signal.SIGKILL)
        return i, response.json()

    try:
        with ThreadPoolExecutor(24) as pool:
            results = list(pool.map(one, range(1000)))
        assert victim.wait(timeout=5) == -signal.SIGKILL
        assert len(results) == 1000
        assert len({r["id"] for _, r in results}) == 1000
        wrong = [(i, r) for i, r in results if r["outcome"] != "ok" or r["stdout"] != f"{i}\n"]
        assert wrong == []
        # The killed worker's containers go with it: its attach streams closed.
        eventually(lambda: len(sandbox_containers(svc.prefix)) == 3, 30,
                   "only the surviving worker's containers remain")
    finally:
        svc.stop()


def test_job_that_keeps_killing_its_worker_is_dead_lettered(redis_url: str,
                                                            docker_engine: None) -> None:
    settings = {**FAST_RECLAIM, "SANDBOX_RECLAIM_IDLE_S": "1", "SANDBOX_MAX_DELIVERIES": "2",
                "SANDBOX_POOL_SIZE": "1"}
    svc = Service(redis_url, settings).start(workers=1)
    try:
        with httpx.Client(base_url=svc.base_url, timeout=30) as client:
            job_id = client.post("/v1/jobs", json={"code": "import time; time.sleep(100)",
                                                   "timeout": 120}).json()["id"]
            for _ in range(2):  # each delivery: the job is running, then its worker dies
                pid = svc.workers[-1].pid
                eventually(lambda c=client, p=pid: busy(c, p) == 1, 60, "the job is running")
                svc.workers[-1].send_signal(signal.SIGKILL)
                svc.workers[-1].wait()
                svc.add_worker()
            eventually(lambda: job_state(client, job_id)["state"] == "done", 60, "dead-lettered")
            result = job_state(client, job_id)["result"]
            assert result["outcome"] == "sandbox_error"
            assert "delivered 2 times" in result["message"]
            assert client.post("/v1/run", json={"code": "print('next')"}).json()["stdout"] == "next\n"
    finally:
        svc.stop()
