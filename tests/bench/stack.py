"""A whole local deployment for measuring: its own Redis, API and worker processes."""

import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

from tests.bench.cpu import CpuMeter
from tests.support import (
    ROOT,
    deployment_env,
    free_port,
    stop_processes,
    wait_ready,
    wait_warmed_up,
)


class LocalStack:
    def __init__(self, workers: int = 1, pool_size: int = 4, env: dict[str, str] | None = None,
                 ready_timeout: float = 120, api_processes: int = 1):
        self.workers = workers
        self.api_processes = api_processes
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
        self.procs.append(self._spawn("api", "--workers", str(self.api_processes)))
        self.wait_ready(self.workers * self.pool_size, self.ready_timeout)
        return self

    def _spawn(self, role: str, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "service.cli", role, *args],
                                env=self.env(), cwd=ROOT, stdout=subprocess.DEVNULL)

    def wait_ready(self, idle: int, timeout: float = 120) -> None:
        wait_ready(self.base_url, idle, timeout)

    def wait_warmed_up(self, timeout: float = 300) -> None:
        wait_warmed_up(self.base_url, timeout)

    def cpu_meter(self) -> CpuMeter:
        """A meter of this stack's processes: the API's (with uvicorn's worker processes, if
        it has more than one), the workers', Redis's, the sandboxes'."""
        api = self.procs[-1].pid
        children = subprocess.run(["pgrep", "-P", str(api)], capture_output=True, text=True)
        return CpuMeter(api_pids=[api, *map(int, children.stdout.split())],
                        worker_pids=[p.pid for p in self.procs[:-1]],
                        redis_pids=[self.redis_pid()], prefix=self.prefix)

    def redis_pid(self) -> int:
        return int((self.data_dir / "redis.pid").read_text())

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        stop_processes(self.procs)
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
