"""Several worker "hosts" on one machine: containers of the service image on one Docker network.

One Redis container, worker containers (each drives this machine's Docker engine through the
mounted socket, so each has its own sandbox pool) and API containers published on loopback.
Everything made here carries the label LABEL_TEST=<tag>, so it can all be found and removed.
"""

import contextlib
import os
import subprocess
import time
import uuid
from dataclasses import dataclass, field

import docker
import docker.errors
import httpx
from docker.models.containers import Container
from docker.models.networks import Network

from service.store.keys import Keys
from tests.support import ROOT, ensure_docker, free_port, remove_containers

LABEL_TEST = "sandbox.multihost"
SERVICE_IMAGE = "sandbox-service:latest"
REDIS_IMAGE = "sandbox-redis:latest"
API_PORT = 8000
STOP_TIMEOUT_S = 40


def build_images() -> None:
    """The sandbox image, then the service and Redis images from this tree."""
    ensure_docker()
    subprocess.run([ROOT / "deploy" / "build-images.sh"], check=True)


@dataclass
class Cluster:
    env_overrides: dict[str, str]
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    client: docker.DockerClient = field(default_factory=docker.from_env)
    network: Network | None = None
    redis: Container | None = None
    workers: list[Container] = field(default_factory=list)
    apis: list[Container] = field(default_factory=list)
    api_urls: list[str] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return f"mh-{self.tag}"

    def name(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    def env(self) -> dict[str, str]:
        return {
            "SANDBOX_REDIS_URL": f"redis://{self.name('redis')}:6379/0",
            "SANDBOX_KEY_PREFIX": self.prefix,
            "SANDBOX_API_KEYS": self.key,
            **self.env_overrides,
        }

    def _run(self, role: str, image: str, **kwargs) -> Container:  # type: ignore[no-untyped-def]
        return self.client.containers.run(
            image, name=self.name(role), hostname=self.name(role), network=self.network.name,
            labels={LABEL_TEST: self.tag}, detach=True, **kwargs)

    def start(self, workers: int, apis: int) -> "Cluster":
        self.network = self.client.networks.create(self.name("net"), driver="bridge",
                                                   labels={LABEL_TEST: self.tag})
        self.redis = self._run("redis", REDIS_IMAGE)
        socket_gid = str(os.stat("/var/run/docker.sock").st_gid)
        for i in range(workers):
            self.workers.append(self._run(
                f"worker-{i}", SERVICE_IMAGE, command=["sandbox", "worker"], environment=self.env(),
                group_add=[socket_gid], healthcheck={"test": ["NONE"]},
                volumes={"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"}}))
        for i in range(apis):
            port = free_port()
            self.apis.append(self._run(
                f"api-{i}", SERVICE_IMAGE, command=["sandbox", "api"], environment=self.env(),
                ports={f"{API_PORT}/tcp": ("127.0.0.1", port)}))
            self.api_urls.append(f"http://127.0.0.1:{port}")
        return self

    # --- observing -----------------------------------------------------------------------------

    def live_workers(self) -> list[dict[str, str]]:
        """The workers whose heartbeats are fresh, as the API's /readyz?verbose=true lists them."""
        for url in self.api_urls:
            with contextlib.suppress(httpx.HTTPError, KeyError):
                return httpx.get(f"{url}/readyz?verbose=true", timeout=5).json()["workers"]
        return []

    def wait_apis(self, timeout: float = 120) -> None:
        """Until every API container answers. (Its published port accepts connections before
        the server inside listens, and then closes them unanswered.)"""
        deadline = time.monotonic() + timeout
        for url in self.api_urls:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/livez", timeout=5).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the API at {url} does not answer")
                time.sleep(0.3)

    def wait_workers(self, hosts: set[str], min_idle: int, timeout: float = 120) -> list[dict]:
        """Until every named host has a live worker and min_idle containers are idle in all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            workers = self.live_workers()
            idle = sum(int(w["idle_containers"]) for w in workers)
            if hosts <= {w["host"] for w in workers} and idle >= min_idle:
                return workers
            time.sleep(0.3)
        raise TimeoutError(f"workers of {sorted(hosts)} not live; last seen: {self.live_workers()}")

    def dead_letters(self) -> int:
        code, out = self.redis.exec_run(["redis-cli", "xlen", Keys(self.prefix).dead_letters])
        assert code == 0, out
        return int(out)

    def logs(self, container: Container) -> str:
        return container.logs().decode(errors="replace")

    # --- faults --------------------------------------------------------------------------------

    def disconnect(self, container: Container) -> None:
        self.network.disconnect(container)

    def reconnect(self, container: Container) -> None:
        self.network.connect(container)

    # --- cleaning up ---------------------------------------------------------------------------

    def save_logs(self) -> None:
        log_dir = ROOT / ".run" / "test-logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        for container in [*self.workers, *self.apis]:
            with contextlib.suppress(docker.errors.APIError):
                (log_dir / f"{container.name}.log").write_text(self.logs(container))

    def remove(self) -> None:
        """Every container and the network made here, and the sandboxes of this deployment."""
        for worker in self.workers:  # gracefully first: each removes its own sandboxes
            with contextlib.suppress(docker.errors.APIError):
                worker.stop(timeout=STOP_TIMEOUT_S)
        for container in self.client.containers.list(all=True,
                                                     filters={"label": f"{LABEL_TEST}={self.tag}"}):
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True, v=True)
        # Sandboxes of a killed worker go by themselves (auto-remove); catch any straggler.
        remove_containers(self.prefix)
        if self.network is not None:
            with contextlib.suppress(docker.errors.APIError):
                self.network.remove()
        self.client.close()
