"""A fake container engine (service/worker/engine.py's protocol) whose containers hold a fake
runner: a thread at the far end of a socket pair that speaks the runner's frames. What it does
with a request is read from the request's code, one of SCRIPTS' names (or "silent", "vanish":
no answer; "dirty": no `ready` after its result; "slow_clean": `ready` a while after it)."""

import asyncio
import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson

from service import runner_protocol as rp
from service.worker.docker_engine import EngineUnavailable

CLEAN = {"exit_code": 0, "signal": None, "stdout": "", "stderr": "", "stdout_truncated": False,
         "stderr_truncated": False, "timed_out": False, "output_limited": False,
         "oom_killed": False, "memory_limit_hit": False, "run_ms": 2.0, "cpu_ms": 1.0,
         "cpu_wait_ms": 0.0, "time_limit": None}
SCRIPTS: dict[str, dict[str, Any]] = {
    "ok": {"stdout": "hi\n"},
    "error": {"exit_code": 1, "stderr": "Traceback ...\nValueError: no\n"},
    "timeout": {"exit_code": None, "signal": 9, "timed_out": True, "time_limit": rp.LIMIT_TIMEOUT},
    "cpu_timeout": {"exit_code": None, "signal": 9, "timed_out": True,
                    "time_limit": rp.LIMIT_CPU},
    "oom": {"exit_code": None, "signal": 9, "oom_killed": True},
    "memory_error": {"exit_code": 1, "stderr": "Traceback ...\nMemoryError\n"},
    "output_limit": {"stdout": "x" * 10, "stdout_truncated": True, "output_limited": True},
    "segfault": {"exit_code": None, "signal": 11},
    "dirty": {"stdout": "hi\n"},
    "slow_clean": {"stdout": "hi\n"},
}
SLOW_CLEAN_S = 0.3


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Until `condition` holds (polled every 10 ms); TimeoutError past `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def receive(sock: socket.socket) -> dict[str, Any] | None:
    header = read_exact(sock, rp.HEADER.size)
    if header is None:
        return None
    body = read_exact(sock, rp.HEADER.unpack(header)[0])
    return None if body is None else orjson.loads(body)


def read_exact(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        try:
            chunk = sock.recv(size - len(data))
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    return data


class FakeRunner(threading.Thread):
    def __init__(self, sock: socket.socket, protocol: int):
        super().__init__(daemon=True)
        self.sock = sock
        self.protocol = protocol
        self.requests: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):  # the worker went away
            self.sock.sendall(rp.encode_frame(message))

    def run(self) -> None:
        self.send({"op": rp.OP_READY, "protocol": self.protocol, "pid": 1})
        while (request := receive(self.sock)) is not None:
            self.requests.append(request)
            code = request.get("code", "ok")
            if code == "vanish":
                break
            if code == "silent":
                continue
            self.send({"op": rp.OP_RESULT, "id": request["id"], **CLEAN, **SCRIPTS[code]})
            if code == "dirty":
                break
            if code == "slow_clean":
                time.sleep(SLOW_CLEAN_S)
            self.send({"op": rp.OP_READY, "protocol": self.protocol, "pid": 1})
        self.sock.close()


class FakeEngine:
    def __init__(self, protocol: int = rp.PROTOCOL_VERSION):
        self.protocol = protocol
        self.failing = False  # start() raises EngineUnavailable while set
        self.memory_fails = False  # set_memory() raises EngineUnavailable while set
        self.runners: dict[str, FakeRunner] = {}  # of every container started
        self.started: list[str] = []
        self.removed: list[str] = []
        self._ids = itertools.count()

    def new_socket_dir(self, deployment: str) -> str | None:
        return None

    def start(self, spec: dict[str, Any]) -> tuple[str, socket.socket, bool]:
        if self.failing:
            raise EngineUnavailable("the engine is away")
        container_id = f"c{next(self._ids)}"
        ours, theirs = socket.socketpair()
        self.runners[container_id] = FakeRunner(theirs, self.protocol)
        self.runners[container_id].start()
        self.started.append(container_id)
        return container_id, ours, False

    def remove(self, container_id: str, socket_dir: str | None = None) -> None:
        self.removed.append(container_id)
        if container_id in self.runners:  # the container goes, and its runner with it
            self.kill(container_id)

    def kill(self, container_id: str) -> None:
        """The container's runner dies (a Docker restart, say)."""
        with contextlib.suppress(OSError):
            self.runners[container_id].sock.shutdown(socket.SHUT_RDWR)

    def set_memory(self, container_id: str, memory_bytes: int) -> None:
        if self.memory_fails:
            raise EngineUnavailable("cannot update the container")

    @property
    def running(self) -> set[str]:
        return set(self.started) - set(self.removed)
