"""dockerd restarts: jobs in flight answer sandbox_error, queued jobs wait, the pool rebuilds."""

import subprocess
import time

import httpx

from tests.reliability.helpers import eventually, readyz, wait_all_done
from tests.support import ROOT, Service


def restart_dockerd() -> None:
    subprocess.run(["pkill", "-TERM", "-x", "dockerd"], check=False)
    deadline = time.monotonic() + 60
    while subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "dockerd did not stop"
        time.sleep(0.2)
    subprocess.run([ROOT / "deploy/local/ensure-docker.sh"], check=True)


def test_dockerd_restart_loses_no_job(redis_url: str, docker_engine: None) -> None:
    svc = Service(redis_url).start(workers=2, wait_idle=6)
    try:
        with httpx.Client(base_url=svc.base_url, timeout=30) as client:
            ids = [client.post("/v1/jobs", json={"code": f"import time; time.sleep(1); print({i})"}
                               ).json()["id"] for i in range(12)]
            time.sleep(0.5)  # six of them are running now
            subprocess.run(["pkill", "-TERM", "-x", "dockerd"], check=False)
            eventually(lambda: client.get("/readyz").status_code == 503, 60,
                       "not ready while Docker is away")
            eventually(lambda: readyz(client)["checks"]["starting_containers"] > 0, 30,
                       "the pools are starting containers again")
            restart_dockerd()
            results = wait_all_done(client, ids, timeout=180)
            outcomes = {r["outcome"] for r in results.values()}
            assert outcomes <= {"ok", "sandbox_error"}, outcomes
            for i, job_id in enumerate(ids):
                if results[job_id]["outcome"] == "ok":
                    assert results[job_id]["stdout"] == f"{i}\n"
            assert sum(r["outcome"] == "ok" for r in results.values()) >= 6  # the queued ones
            eventually(lambda: client.get("/readyz").status_code == 200, 120, "ready again")
            eventually(lambda: readyz(client)["checks"]["starting_containers"] == 0, 120,
                       "every pool warm again")
            workers = readyz(client)["workers"]
            assert [(int(w["containers"]), int(w["warm_sessions"])) for w in workers] == [
                (3, 2), (3, 2)], workers  # each worker's pool of 3, and 2 kept for sessions
            assert client.post("/v1/run", json={"code": "print(6*7)"}).json()["stdout"] == "42\n"
    finally:
        svc.stop()
