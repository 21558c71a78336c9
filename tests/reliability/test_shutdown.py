"""SIGTERM: intake stops, running jobs get a grace period, the rest go back to the queue."""

import signal

import httpx

from tests.reliability.helpers import busy, eventually, wait_all_done
from tests.support import Service, sandbox_containers


def test_sigterm_finishes_or_hands_back(redis_url: str, docker_engine: None) -> None:
    svc = Service(redis_url, {"SANDBOX_SHUTDOWN_GRACE_S": "1.5", "SANDBOX_POOL_SIZE": "2"})
    svc.start(workers=1, wait_idle=2)
    try:
        with httpx.Client(base_url=svc.base_url, timeout=30) as client:
            quick = client.post("/v1/jobs", json={"code": "import time; time.sleep(0.5); print('q')"})
            slow = client.post("/v1/jobs", json={"code": "import time; time.sleep(4); print('s')"})
            first = svc.workers[0]
            eventually(lambda: busy(client, first.pid) == 2, 30, "both jobs run on the first worker")
            first.send_signal(signal.SIGTERM)
            assert first.wait(timeout=30) == 0
            svc.add_worker()
            ids = [quick.json()["id"], slow.json()["id"]]
            results = wait_all_done(client, ids, timeout=60)
            assert [results[job_id]["stdout"] for job_id in ids] == ["q\n", "s\n"]
            assert all(r["outcome"] == "ok" for r in results.values())
            first_host_pid = str(first.pid)
            eventually(lambda: all(c.labels.get("sandbox.pid") != first_host_pid
                                   for c in sandbox_containers(svc.prefix)), 20,
                       "the stopped worker's containers are gone")
    finally:
        svc.stop()
