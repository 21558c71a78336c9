"""The warm pool: containers recycled after N executions, kept after a timeout (the runner
proved them clean), replaced after abnormal ends."""

import httpx

from tests.support import Service

WHICH_CONTAINER = "print(open('/proc/1/cgroup').read().split('/')[-1].strip()[:12])"


def container_of(client: httpx.Client) -> str:
    result = client.post("/v1/run", json={"code": WHICH_CONTAINER}).json()
    assert result["outcome"] == "ok", result
    return result["stdout"]


def test_recycled_after_n_executions_kept_after_a_timeout(redis_url: str,
                                                          docker_engine: None) -> None:
    svc = Service(redis_url, {"SANDBOX_POOL_SIZE": "1", "SANDBOX_EXECUTIONS_PER_CONTAINER": "3"})
    svc.start(workers=1)
    try:
        with httpx.Client(base_url=svc.base_url, timeout=60) as client:
            first = [container_of(client) for _ in range(3)]
            assert len(set(first)) == 1
            fourth = container_of(client)
            assert fourth != first[0]
            timed_out = client.post("/v1/run", json={"code": "while True: pass", "timeout": 0.5})
            assert timed_out.json()["outcome"] == "timeout"
            assert container_of(client) == fourth
            killed = client.post("/v1/run", json={"code": "import os; os.kill(os.getpid(), 11)"})
            assert killed.json()["outcome"] == "killed"
            assert container_of(client) not in (first[0], fourth)
            assert client.post("/v1/run", json={"code": "print(1)"}).json()["stdout"] == "1\n"
    finally:
        svc.stop()
