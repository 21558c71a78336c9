"""`sandbox serve` (what `make serve` runs): restarts a worker that dies; Ctrl-C leaves nothing."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.reliability.helpers import eventually
from tests.support import ROOT, Service, sandbox_containers


def worker_pids(supervisor_pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == supervisor_pid and b"worker" in cmdline:
            found.add(int(entry.name))
    return found


def live_workers(base_url: str) -> int:
    try:
        return httpx.get(f"{base_url}/readyz?verbose=true", timeout=2).json()["checks"]["workers"]
    except (httpx.HTTPError, KeyError, ValueError):
        return 0


def test_serve_restarts_workers_and_ctrl_c_cleans_up(redis_url: str, docker_engine: None) -> None:
    svc = Service(redis_url)  # only for its settings: serve starts the processes
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--workers", "2"],
                            env=svc.env(), cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        svc.wait_ready(min_idle=6)
        eventually(lambda: len(worker_pids(proc.pid)) == 2, 30, "two workers")
        victim = sorted(worker_pids(proc.pid))[0]
        os.kill(victim, signal.SIGKILL)
        eventually(lambda: victim not in worker_pids(proc.pid)
                   and len(worker_pids(proc.pid)) == 2, 30, "the worker was restarted")
        eventually(lambda: live_workers(svc.base_url) == 2, 30, "two live workers again")
        result = httpx.post(f"{svc.base_url}/v1/run", json={"code": "print(6*7)"}, timeout=30)
        assert result.json()["stdout"] == "42\n"

        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does to the foreground process group
        assert proc.wait(timeout=60) == 0
        eventually(lambda: sandbox_containers(svc.prefix) == [], 30, "no container left")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        svc.stop()
