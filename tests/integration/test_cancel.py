"""Cancellation: a synchronous caller that hangs up cancels its jobs (dropped if not started,
killed if running); DELETE /v1/jobs/{id} cancels an async job; only one answer ever stands."""

import json
import random
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis

from service.store.keys import Keys
from tests.reliability.helpers import eventually
from tests.support import Service, sandbox_containers, sandbox_uid_processes, wait_done

# Runs until killed, with a child of its own: a process the host sees (sandbox_uid_processes)
# for as long as the execution lives.
LOOP = ("import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "while True:\n    print('tick', flush=True)\n    time.sleep(0.05)")


@pytest.fixture(scope="module")
def svc(redis_url: str, docker_engine: None) -> Iterator[Service]:
    """One worker with two containers: one for the caller who hangs up, one for another."""
    # No warm session container: the deployment's containers are the pool's alone.
    service = Service(redis_url, {"SANDBOX_POOL_SIZE": "2", "SANDBOX_SESSION_WARM": "0"}
                      ).start(workers=1, wait_idle=2)
    yield service
    service.stop()


@pytest.fixture(scope="module")
def client(svc: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=svc.base_url, timeout=60) as c:
        yield c


def jobs_of(svc: Service, redis_url: str) -> dict[str, dict[str, str]]:
    """Every job hash of the deployment: id → fields."""
    keys = Keys(svc.prefix)
    prefix = keys.job("")
    with redis.Redis.from_url(redis_url, decode_responses=True) as direct:
        return {key.removeprefix(prefix): direct.hgetall(key)
                for key in direct.scan_iter(f"{prefix}*")}


def hang_up_after(svc: Service, path: str, body: dict, seconds: float,
                  until: threading.Event | None = None) -> None:
    """Send a request, wait (`seconds`, or until `until` is set), and close the connection
    without reading the answer."""
    payload = json.dumps(body).encode()
    # /mcp answers only callers that take both forms of its answers
    accept = b"Accept: application/json, text/event-stream\r\n" if path == "/mcp" else b""
    with socket.create_connection(("127.0.0.1", svc.port)) as sock:
        sock.sendall(b"POST %s HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                     b"%sContent-Length: %d\r\n\r\n%s"
                     % (path.encode(), accept, len(payload), payload))
        if until is None:
            time.sleep(seconds)
        else:
            until.wait(seconds)


def cancelled(fields: dict[str, str]) -> bool:
    return fields.get("state") == "done" and json.loads(fields["result"])["outcome"] == "cancelled"


def container_ids(svc: Service) -> set[str]:
    """The deployment's sandbox containers: a run killed by its runner keeps its own."""
    return {c.id for c in sandbox_containers(svc.prefix)}


def outcome(client: httpx.Client, job_id: str) -> str:
    return client.get(f"/v1/jobs/{job_id}").json()["result"]["outcome"]


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/batch", {"items": [{"code": LOOP, "timeout": 60}] * 3}),
    ("/v1/batch?stream=true", {"items": [{"code": LOOP, "timeout": 60}] * 3}),
    ("/v1/judge", {"code": LOOP, "timeout": 60, "cases": [{"expected_stdout": "x"}] * 3}),
])
def test_a_caller_hanging_up_cancels_its_jobs_and_no_other(
        svc: Service, client: httpx.Client, redis_url: str, path: str, body: dict) -> None:
    other = client.post("/v1/jobs", json={"code": "import time; time.sleep(6); print('mine')"})
    other_id = other.json()["id"]
    eventually(lambda: jobs_of(svc, redis_url)[other_id]["state"] == "running", 30,
               "the other caller's job runs")
    before = set(jobs_of(svc, redis_url))
    seen = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        hanging = pool.submit(hang_up_after, svc, path, body, 60, seen)
        try:
            eventually(lambda: sum(f.get("state") == "running"
                                   for f in jobs_of(svc, redis_url).values()) == 2, 30,
                       "the caller's first job runs beside the other's")
            eventually(lambda: sandbox_uid_processes(svc.prefix), 30, "the loop's child runs")
        finally:
            seen.set()
        hanging.result()
    mine = {job_id for job_id in jobs_of(svc, redis_url) if job_id not in before}
    assert len(mine) == 3
    eventually(lambda: all(cancelled(jobs_of(svc, redis_url)[j]) for j in mine), 30,
               "the running job killed, the two waiting ones dropped")
    assert wait_done(client, other_id)["result"]["stdout"] == "mine\n"
    # The killed loop left no process behind.
    eventually(lambda: not sandbox_uid_processes(svc.prefix), 30, "no process of the loop left")
    assert client.post("/v1/run", json={"code": "print('next')"}).json()["stdout"] == "next\n"


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/run", {"code": LOOP, "timeout": 60}),
    ("/run_code", {"code": LOOP, "language": "python", "run_timeout": 60}),
    ("/api/v2/execute", {"language": "python", "version": "*", "run_timeout": 60000,
                         "files": [{"content": LOOP}]}),
    ("/v1/tools/run_python", {"code": LOOP}),
    ("/mcp", {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
              "params": {"name": "run_python", "arguments": {"code": LOOP, "timeout": 60}}}),
])
def test_a_single_run_whose_caller_hangs_up_is_killed(
        svc: Service, client: httpx.Client, redis_url: str, path: str, body: dict) -> None:
    before, containers = set(jobs_of(svc, redis_url)), container_ids(svc)
    hang_up_after(svc, path, body, 1.5)
    (mine,) = set(jobs_of(svc, redis_url)) - before
    eventually(lambda: cancelled(jobs_of(svc, redis_url)[mine]), 30, "the run cancelled")
    eventually(lambda: not sandbox_uid_processes(svc.prefix), 30, "no process of the loop left")
    assert container_ids(svc) == containers  # its runner killed it; the container stays


def test_delete_a_queued_and_a_running_job(svc: Service, client: httpx.Client,
                                           redis_url: str) -> None:
    running = [client.post("/v1/jobs", json={"code": LOOP, "timeout": 60}).json()["id"]
               for _ in range(2)]
    eventually(lambda: all(jobs_of(svc, redis_url)[j]["state"] == "running" for j in running),
               30, "both containers busy")
    queued = client.post("/v1/jobs", json={"code": "print('never')"}).json()["id"]
    assert client.get(f"/v1/jobs/{queued}").json()["state"] == "queued"
    containers = container_ids(svc)

    for job_id in (queued, *running):
        answer = client.delete(f"/v1/jobs/{job_id}")
        assert answer.status_code == 200
        body = answer.json()
        assert (body["id"], body["state"], body["cancelled"]) == (job_id, "done", True)
        assert body["result"]["outcome"] == "cancelled"
    eventually(lambda: not sandbox_uid_processes(svc.prefix), 30, "both loops killed")
    assert client.post("/v1/run", json={"code": "print(1)"}).json()["stdout"] == "1\n"
    assert container_ids(svc) == containers
    assert outcome(client, queued) == "cancelled"  # it never ran

    again = client.delete(f"/v1/jobs/{queued}").json()
    assert again["cancelled"] is False and again["result"]["outcome"] == "cancelled"
    missing = client.delete("/v1/jobs/no-such-job")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")


def test_a_cancel_racing_completion_leaves_one_answer(client: httpx.Client) -> None:
    def cancelled_total() -> float:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith("sandbox_jobs_cancelled_total "):
                return float(line.split()[1])
        raise AssertionError("no sandbox_jobs_cancelled_total")

    before = cancelled_total()
    ids = [client.post("/v1/jobs", json={"code": f"print({i})"}).json()["id"] for i in range(40)]
    answers = {}
    for job_id in ids:
        time.sleep(random.uniform(0, 0.02))
        answers[job_id] = client.delete(f"/v1/jobs/{job_id}").json()
    for i, job_id in enumerate(ids):
        final = wait_done(client, job_id)["result"]
        assert final == answers[job_id]["result"]  # what DELETE answered is what stands
        if answers[job_id]["cancelled"]:
            assert final["outcome"] == "cancelled"
        else:
            assert (final["outcome"], final["stdout"]) == ("ok", f"{i}\n")
    assert cancelled_total() - before == sum(a["cancelled"] for a in answers.values())
