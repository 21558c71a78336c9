"""A worker killed while it runs jobs of both lanes: each is taken over and answered once."""

import signal

import httpx

from tests.reliability.helpers import busy, eventually, wait_all_done
from tests.support import Service

FAST_RECLAIM = {"SANDBOX_RECLAIM_IDLE_S": "2", "SANDBOX_HEARTBEAT_S": "0.5",
                "SANDBOX_POOL_SIZE": "2"}


def test_jobs_of_both_lanes_are_reclaimed(redis_url: str, docker_engine: None) -> None:
    svc = Service(redis_url, FAST_RECLAIM).start(workers=1, wait_idle=2)
    try:
        with httpx.Client(base_url=svc.base_url, timeout=30) as client:
            ids = {lane: client.post("/v1/jobs", json={
                "code": f"import time; time.sleep(4); print('{lane}')", "priority": lane,
            }).json()["id"] for lane in ("interactive", "bulk")}
            victim = svc.workers[0]
            eventually(lambda: busy(client, victim.pid) == 2, 60, "both jobs run")
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            svc.add_worker()
            done = wait_all_done(client, list(ids.values()), 90)
            for lane, job_id in ids.items():
                assert (done[job_id]["outcome"], done[job_id]["stdout"]) == ("ok", f"{lane}\n")
            stats = client.get("/v1/stats").json()
            assert stats["totals"]["reclaimed"] == 2
            assert stats["lanes"] == {"interactive": 0, "bulk": 0}
    finally:
        svc.stop()
