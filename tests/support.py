"""Starting the real thing for tests: Redis, Docker, the sandbox image, API and worker processes."""

import contextlib
import importlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import docker
import httpx

from service.languages import REGISTRY
from service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
RUNNER_DIR = ROOT / "sandbox_images" / "runner"
LABEL_DEPLOYMENT = "sandbox.deployment"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def deployment_env(redis_url: str, prefix: str, port: int,
                   settings: dict[str, str]) -> dict[str, str]:
    """The environment of one deployment's processes: this one's, less any SANDBOX_ setting but
    the tag of the sandbox images this checkout built, plus the deployment's own."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SANDBOX_") or k == "SANDBOX_IMAGE_TAG"}
    env.update({"SANDBOX_REDIS_URL": redis_url, "SANDBOX_KEY_PREFIX": prefix,
                "SANDBOX_PORT": str(port), **settings})
    return env


def wait_checks(base_url: str, holds: Callable[[dict], bool], timeout: float, what: str) -> None:
    """Until the deployment's API answers ready with checks (/readyz?verbose=true) for which
    `holds` is true; TimeoutError saying it did not `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, KeyError):
            r = httpx.get(f"{base_url}/readyz?verbose=true", timeout=2)
            if r.status_code == 200 and holds(r.json()["checks"]):
                return
        time.sleep(0.2)
    raise TimeoutError(f"the service at {base_url} did not {what}")


def wait_ready(base_url: str, min_idle: int, timeout: float) -> None:
    """Until the deployment's API answers ready with at least `min_idle` warm containers."""
    wait_checks(base_url, lambda c: c["idle_containers"] >= min_idle, timeout, "become ready")


def wait_warmed_up(base_url: str, timeout: float) -> None:
    """Until no container of the deployment is on its way: every pool and the containers kept
    for sessions are warm (their fill goes on in the background after the API says ready)."""
    wait_checks(base_url, lambda c: c["starting_containers"] == 0, timeout, "warm up")


def stop_processes(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each process still running, then wait for each; one that outlives 40 s is
    killed and reaped."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def runner_module(name: str) -> ModuleType:
    """The runner's module sandbox_runner.<name> (standard library only, so importable here as
    it is), imported from sandbox_images/runner without leaving that on sys.path."""
    sys.path.insert(0, str(RUNNER_DIR))
    try:
        return importlib.import_module(f"sandbox_runner.{name}")
    finally:
        sys.path.remove(str(RUNNER_DIR))


def run(client: httpx.Client, code: str, **fields) -> dict:
    """The result of POST /v1/run, which must answer 200."""
    response = client.post("/v1/run", json={"code": code, **fields})
    assert response.status_code == 200, response.text
    return response.json()


def ensure_docker() -> None:
    subprocess.run([ROOT / "deploy/local/ensure-docker.sh"], check=True)
    client = docker.from_env()
    settings = Settings()
    try:
        for spec in REGISTRY:
            client.images.get(settings.image_for(spec.name))
    except docker.errors.ImageNotFound:
        subprocess.run([ROOT / "sandbox_images/build.sh"], check=True)
    finally:
        client.close()


@contextlib.contextmanager
def redis_server(data_dir: Path) -> Iterator[str]:
    """A throwaway Redis on a free loopback port."""
    port = free_port()
    url = subprocess.run([ROOT / "deploy/local/ensure-redis.sh", str(port), str(data_dir)],
                         check=True, capture_output=True, text=True).stdout.strip()
    try:
        yield url
    finally:
        subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"],
                       capture_output=True, check=False)


@dataclass
class Service:
    """API and worker processes of one test deployment (its own key prefix and containers)."""

    redis_url: str
    env_overrides: dict[str, str] = field(default_factory=dict)
    prefix: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:8]}")
    port: int = field(default_factory=free_port)
    workers: list[subprocess.Popen] = field(default_factory=list)
    api: subprocess.Popen | None = None
    log_dir: Path = field(default_factory=lambda: ROOT / ".run" / "test-logs")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return deployment_env(self.redis_url, self.prefix, self.port, {
            "SANDBOX_POOL_SIZE": "3",
            "SANDBOX_SESSION_WARM": "2",
            "SANDBOX_HEARTBEAT_S": "0.5",
            "SANDBOX_RECLAIM_IDLE_S": "3",
            "SANDBOX_LOG_LEVEL": "INFO",
            "SANDBOX_LANGUAGES": "python",  # tests of other languages ask for them
            "SANDBOX_SCIENTIFIC_POOL_SIZE": "0",  # tests of the scientific pool ask for it
            **self.env_overrides,
        })

    def _spawn(self, role: str) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{self.prefix}-{role}-{time.time_ns()}.log", "wb")  # noqa: SIM115
        return subprocess.Popen([sys.executable, "-m", "service.cli", role], env=self.env(),
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def add_worker(self) -> subprocess.Popen:
        proc = self._spawn("worker")
        self.workers.append(proc)
        return proc

    def start(self, workers: int = 2, wait_idle: int = 1) -> "Service":
        try:
            for _ in range(workers):
                self.add_worker()
            self.api = self._spawn("api")
            self.wait_ready(min_idle=wait_idle)
        except BaseException:
            self.stop()  # a service that never became ready leaves nothing running
            raise
        return self

    def restart_api(self) -> None:
        """Stop the API process (SIGTERM: it finishes what it serves) and start a new one."""
        assert self.api is not None
        self.api.terminate()
        self.api.wait(timeout=60)
        self.api = self._spawn("api")
        self.wait_ready()

    def wait_ready(self, min_idle: int = 1, timeout: float = 90) -> None:
        wait_ready(self.base_url, min_idle, timeout)

    def stop_serving(self) -> None:
        """Stop API and workers the way an operator would (SIGTERM), leaving containers alone."""
        stop_processes([p for p in [*self.workers, self.api] if p is not None])

    def stop(self) -> None:
        self.stop_serving()
        remove_containers(self.prefix)


def sandbox_containers(prefix: str) -> list:
    client = docker.from_env()
    try:
        return client.containers.list(all=True, ignore_removed=True,
                                      filters={"label": f"{LABEL_DEPLOYMENT}={prefix}"})
    finally:
        client.close()


def remove_containers(prefix: str) -> None:
    for container in sandbox_containers(prefix):
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)


def sandbox_uid_processes(prefix: str, uid: int = 10001) -> list[str]:
    """Processes of the sandbox uid in this deployment's containers, seen from the host.

    The runner's own waiting child (forked ahead for the next execution) is not counted: any
    other process of that uid is something an execution left behind.
    """
    found = []
    for container in sandbox_containers(prefix):
        with contextlib.suppress(docker.errors.APIError):
            top = container.top(ps_args="-eo uid,pid,ppid,args")
            rows = [p for p in top.get("Processes") or [] if len(p) >= 4]
            runners = {p[1] for p in rows if p[0] == "0" and "/opt/runner/runner.py" in p[3]}
            found += [" ".join(p) for p in rows if p[0] == str(uid) and p[2] not in runners]
    return found


@contextlib.contextmanager
def served(redis_url: str, env: dict[str, str], workers: int = 1) -> Iterator[httpx.Client]:
    """A service of its own (env over the test defaults), and a client of it."""
    svc = Service(redis_url, env)
    svc.start(workers=workers)
    try:
        with httpx.Client(base_url=svc.base_url, timeout=60) as client:
            yield client
    finally:
        svc.stop()


@contextlib.contextmanager
def api_only(redis_url: str, **env: str) -> Iterator[Service]:
    """An API process with no worker: what it queues stays queued, so a small queue stays full."""
    service = Service(redis_url, env)
    service.api = service._spawn("api")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{service.base_url}/livez", timeout=2).status_code == 200:
                    break
            time.sleep(0.1)
        yield service
    finally:
        service.stop()


QUEUE_DEPTH = 4


@contextlib.contextmanager
def queue_holding(redis_url: str, jobs: int) -> Iterator[tuple[Service, httpx.Client]]:
    """A service whose lanes (depth QUEUE_DEPTH each) hold `jobs` jobs each, that no worker
    will take."""
    with api_only(redis_url, SANDBOX_MAX_QUEUE_DEPTH=str(QUEUE_DEPTH)) as service, \
            httpx.Client(base_url=service.base_url, timeout=30) as client:
        for lane in ("interactive", "bulk"):
            for _ in range(jobs):
                response = client.post("/v1/jobs", json={"code": "print(1)", "priority": lane})
                assert response.status_code == 202
        yield service, client


@contextlib.contextmanager
def full_queue(redis_url: str) -> Iterator[httpx.Client]:
    """A client of a service whose queue is full."""
    with queue_holding(redis_url, QUEUE_DEPTH) as (_, client):
        yield client


def wait_done(client: httpx.Client, job_id: str, timeout: float = 60) -> dict:
    """GET /v1/jobs/{id} until the job is done: its last answer, with the states seen on the way."""
    deadline = time.monotonic() + timeout
    states = []
    while time.monotonic() < deadline:
        body = client.get(f"/v1/jobs/{job_id}").json()
        states.append(body["state"])
        if body["state"] == "done":
            return {**body, "seen": states}
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not done: {states[-5:]}")
