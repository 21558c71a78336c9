"""A whole local deployment for measuring: its own Redis, API and worker processes."""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

import httpx

ROOT = Path(__file__).resolve().parents[2]


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


class LocalStack:
    def __init__(self, workers: int = 1, pool_size: int = 4, env: dict[str, str] | None = None,
                 ready_timeout: float = 120):
        self.workers = workers
        self.ready_timeout = ready_timeout
        self.pool_size = pool_size
        self.extra_env = env or {}
        self.port = free_port()
        self.redis_port = free_port()
        self.prefix = f"bench-{uuid.uuid4().hex[:8]}"
        self.procs: list[subprocess.Popen] = []
        self.data_dir = Path(tempfile.mkdtemp(prefix="sandbox-bench-"))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return deployment_env(f"redis://127.0.0.1:{self.redis_port}/0", self.prefix, self.port,
                              {"SANDBOX_POOL_SIZE": str(self.pool_size),
                               "SANDBOX_LOG_LEVEL": "WARNING", **self.extra_env})

    def __enter__(self) -> "LocalStack":
        subprocess.run([ROOT / "deploy/local/ensure-redis.sh", str(self.redis_port),
                        str(self.data_dir)], check=True, capture_output=True)
        for _ in range(self.workers):
            self.procs.append(self._spawn("worker"))
        self.procs.append(self._spawn("api"))
        self.wait_ready(self.workers * self.pool_size, self.ready_timeout)
        return self

    def _spawn(self, role: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "service.cli", role], env=self.env(),
                                cwd=ROOT, stdout=subprocess.DEVNULL)

    def wait_ready(self, idle: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, KeyError):
                r = httpx.get(f"{self.base_url}/readyz?verbose=true", timeout=2)
                if r.status_code == 200 and r.json()["checks"]["idle_containers"] >= idle:
                    return
            time.sleep(0.2)
        raise TimeoutError("the local stack did not become ready")

    def redis_pid(self) -> int:
        return int((self.data_dir / "redis.pid").read_text())

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
        subprocess.run(["redis-cli", "-p", str(self.redis_port), "shutdown", "nosave"],
                       capture_output=True, check=False)
        shutil.rmtree(self.data_dir, ignore_errors=True)


class ChaosStack(LocalStack):
    """A LocalStack whose parts can be broken on purpose: workers, Redis, the Docker engine."""

    def kill_worker(self) -> int:
        """SIGKILL the oldest worker and start a replacement; the killed pid."""
        victim = next(p for p in self.procs if p.args[-1] == "worker" and p.poll() is None)
        victim.kill()
        victim.wait()
        self.procs.append(self._spawn("worker"))
        return victim.pid

    def restart_redis(self, down_s: float = 2.0) -> None:
        subprocess.run(["redis-cli", "-p", str(self.redis_port), "shutdown"],
                       capture_output=True, check=False)
        time.sleep(down_s)
        subprocess.run([ROOT / "deploy/local/ensure-redis.sh", str(self.redis_port),
                        str(self.data_dir)], check=True, capture_output=True)

    def restart_docker(self) -> None:
        subprocess.run(["pkill", "-TERM", "-x", "dockerd"], check=False)
        while subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True).returncode == 0:
            time.sleep(0.2)
        subprocess.run([ROOT / "deploy/local/ensure-docker.sh"], check=True)

    def live_pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.poll() is None]
