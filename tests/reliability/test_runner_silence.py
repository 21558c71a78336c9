"""A runner that stops answering (its container frozen) costs its caller a sandbox_error once
the execution's limits and the grace have passed, never a hang; its container is replaced."""

import httpx

from tests.reliability.helpers import eventually, wait_all_done
from tests.support import Service, sandbox_containers


def test_a_frozen_runner_answers_sandbox_error(redis_url: str, docker_engine: None) -> None:
    # One container in all: the pool's, and no warm session container beside it.
    svc = Service(redis_url, {"SANDBOX_POOL_SIZE": "1", "SANDBOX_SESSION_WARM": "0"}).start(
        workers=1, wait_idle=1)
    try:
        (frozen,) = sandbox_containers(svc.prefix)
        with httpx.Client(base_url=svc.base_url, timeout=30) as client:
            frozen.pause()
            job = client.post("/v1/jobs", json={"code": "print(1)", "timeout": 1}).json()["id"]
            result = wait_all_done(client, [job], timeout=120)[job]
            assert result["outcome"] == "sandbox_error", result
            assert "did not answer" in result["message"]
            eventually(lambda: [c.id for c in sandbox_containers(svc.prefix)
                                if c.status == "running"] not in ([], [frozen.id]),
                       60, "a fresh container in its place")
            answer = client.post("/v1/run", json={"code": "print(6*7)"}).json()
            assert (answer["outcome"], answer["stdout"]) == ("ok", "42\n")
        assert frozen.id not in [c.id for c in sandbox_containers(svc.prefix)]
    finally:
        svc.stop()
