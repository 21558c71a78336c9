"""Polling helpers for the fault-injection tests."""

import time
from collections.abc import Callable

import httpx


def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def job_state(client: httpx.Client, job_id: str) -> dict:
    return client.get(f"/v1/jobs/{job_id}").json()


def wait_all_done(client: httpx.Client, job_ids: list[str], timeout: float) -> dict[str, dict]:
    done: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(job_ids) and time.monotonic() < deadline:
        for job_id in job_ids:
            if job_id not in done:
                body = job_state(client, job_id)
                if body.get("state") == "done":
                    done[job_id] = body["result"]
        time.sleep(0.2)
    missing = [j for j in job_ids if j not in done]
    assert not missing, f"{len(missing)} jobs never finished"
    return done


def readyz(client: httpx.Client) -> dict:
    """The verbose readiness answer: its checks and the live workers' heartbeats."""
    return client.get("/readyz", params={"verbose": "true"}).json()


def busy(client: httpx.Client, pid: int) -> int:
    """Executions running on the worker with this pid, from its last heartbeat."""
    return sum(int(w.get("busy", 0)) for w in readyz(client).get("workers", [])
               if int(w["pid"]) == pid)
