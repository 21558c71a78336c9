"""deploy/compose.yaml brought up for real: built images, Redis, two API replicas behind the
proxy, a worker driving this host's Docker engine; then taken down with nothing left behind."""

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import docker
import httpx
import pytest

from service.store.keys import Keys
from tests.support import ROOT, ensure_docker, free_port, sandbox_containers

COMPOSE_FILE = ROOT / "deploy" / "compose.yaml"
READY_TIMEOUT_S = 180
pytestmark = pytest.mark.slow


def compose_command() -> list[str]:
    """Debian's docker-compose (1.29), installed where neither it nor `docker compose` exists."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "docker-compose"], check=True,
                   capture_output=True)
    return ["docker-compose"]


@dataclass
class Deployment:
    command: list[str]
    env: dict[str, str]
    project: str
    prefix: str
    key: str
    base_url: str

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.command, "-p", self.project, "-f", str(COMPOSE_FILE), *args],
                              env=self.env, capture_output=True, text=True, timeout=timeout)

    def containers(self) -> list:
        client = docker.from_env()
        try:
            return client.containers.list(
                all=True, filters={"label": f"com.docker.compose.project={self.project}"})
        finally:
            client.close()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/readyz", timeout=3).status_code == 200:
                    return
            time.sleep(0.5)
        logs = self.compose("logs", "--tail", "30").stdout
        raise TimeoutError(f"the compose deployment did not become ready:\n{logs}")


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    ensure_docker()
    command = compose_command()
    subprocess.run([ROOT / "deploy" / "build-images.sh"], check=True)
    tag = uuid.uuid4().hex[:8]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
    key = uuid.uuid4().hex
    env.update({
        "SANDBOX_API_KEYS": key,
        "SANDBOX_KEY_PREFIX": f"compose-{tag}",
        "SANDBOX_PUBLISH_PORT": str(port),
        "SANDBOX_POOL_SIZE": "2",
        "SANDBOX_SESSION_WARM": "1",
        "SANDBOX_LANGUAGES": "python",
        "DOCKER_GID": str(os.stat("/var/run/docker.sock").st_gid),
    })
    dep = Deployment(command, env, f"sbxtest{tag}", f"compose-{tag}", key,
                     f"http://127.0.0.1:{port}")
    try:
        up = dep.compose("up", "-d")
        assert up.returncode == 0, up.stderr
        dep.wait_ready()
        yield dep
    finally:
        dep.compose("down", "-v", "--remove-orphans", "-t", "40")


def run(dep: Deployment, code: str, key: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key or dep.key}"}
    return httpx.post(f"{dep.base_url}/v1/run", json={"code": code}, headers=headers, timeout=60)


def test_run_through_the_published_port(deployment: Deployment) -> None:
    response = run(deployment, "print(6*7)")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["outcome"], body["stdout"]) == ("ok", "42\n")


def test_the_api_keys_are_enforced(deployment: Deployment) -> None:
    response = run(deployment, "print(1)", key="not-the-key")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


def reply_streams(dep: Deployment) -> list[str]:
    """Reply streams in Redis: each API process reads its callers' results from its own."""
    pattern = Keys(dep.prefix).replies("*")
    scan = dep.compose("exec", "-T", "redis", "redis-cli", "--scan", "--pattern", pattern)
    assert scan.returncode == 0, scan.stderr
    return scan.stdout.split()


def test_both_api_replicas_answer_behind_the_proxy(deployment: Deployment) -> None:
    # The proxy finds a replica once its DNS name resolves and its health check passes: keep
    # sending (a bounded while) until both have answered someone.
    deadline = time.monotonic() + 60
    sent = 0
    while len(reply_streams(deployment)) < 2 and time.monotonic() < deadline:
        for _ in range(6):
            assert run(deployment, f"print({sent})").json()["stdout"] == f"{sent}\n"
            sent += 1
    assert len(reply_streams(deployment)) == 2


def test_the_api_containers_report_healthy(deployment: Deployment) -> None:
    deadline = time.monotonic() + 60
    while True:
        api = [c for c in deployment.containers()
               if c.labels.get("com.docker.compose.service") == "api"]
        states = [c.attrs["State"].get("Health", {}).get("Status") for c in api]
        if states == ["healthy", "healthy"] or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert states == ["healthy", "healthy"]


def test_down_leaves_nothing_behind(deployment: Deployment) -> None:
    assert sandbox_containers(deployment.prefix), "the worker should hold warm sandboxes"
    down = deployment.compose("down", "-v", "-t", "40")
    assert down.returncode == 0, down.stderr
    assert deployment.containers() == []
    assert sandbox_containers(deployment.prefix) == []
    volumes = docker.from_env().volumes.list(
        filters={"label": f"com.docker.compose.project={deployment.project}"})
    assert volumes == []
