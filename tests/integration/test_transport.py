"""Both ways a worker reaches its runners: a unix socket (default here) and Docker's attach."""

from pathlib import Path

import httpx

from tests.support import Service, sandbox_containers

SOCKET_ROOT = Path("/var/lib/sandbox/sockets")


def test_attach_transport(redis_url: str, docker_engine: None) -> None:
    svc = Service(redis_url, {"SANDBOX_RUNNER_TRANSPORT": "attach", "SANDBOX_POOL_SIZE": "2"})
    svc.start(workers=1, wait_idle=2)
    try:
        with httpx.Client(base_url=svc.base_url, timeout=60) as client:
            ok = client.post("/v1/run", json={"code": "print(input()*2)", "stdin": "ab\n"}).json()
            assert (ok["outcome"], ok["stdout"]) == ("ok", "abab\n")
            late = client.post("/v1/run", json={"code": "while True: pass", "timeout": 1}).json()
            assert late["outcome"] == "timeout"
            again = client.post("/v1/run", json={"code": "print('again')"}).json()
            assert again["stdout"] == "again\n"
        assert not (SOCKET_ROOT / svc.prefix).exists()
    finally:
        svc.stop()


def test_socket_directory_is_closed_to_the_code_and_removed(client: httpx.Client,
                                                            service: Service) -> None:
    code = ("import os\n"
            "try:\n    os.listdir('/run/runner')\nexcept PermissionError:\n    print('denied')\n")
    assert client.post("/v1/run", json={"code": code}).json()["stdout"] == "denied\n"
    dirs = {str(p) for p in (SOCKET_ROOT / service.prefix).iterdir()}
    used = {c.labels["sandbox.socket-dir"] for c in sandbox_containers(service.prefix)}
    assert dirs <= used  # no directory outlives its container
    assert len(used) >= 1
