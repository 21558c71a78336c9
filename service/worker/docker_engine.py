"""The only module that imports docker: hardened container specs and their lifecycle.

Docker's exceptions become EngineUnavailable here, so the rest of the worker can report them as
sandbox errors (our failure), never as the code's.
"""

import contextlib
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import requests.exceptions

from service.settings import MIB, Settings

LABEL_ROLE = "sandbox.role"
LABEL_DEPLOYMENT = "sandbox.deployment"
LABEL_WORKER = "sandbox.worker"
LABEL_HOST = "sandbox.host"
LABEL_PID = "sandbox.pid"
LABEL_SESSION = "sandbox.session"  # on a container kept for sessions
LABEL_SOCKET_DIR = "sandbox.socket-dir"
RUNNER_SOCKET_DIR = "/run/runner"  # where a container sees its socket directory
RUNNER_SOCKET = "runner.sock"
CONNECT_TIMEOUT_S = 60.0
ROLE_SANDBOX = "sandbox"
RUNNER_CAPABILITIES = ("SETUID", "SETGID", "KILL")  # switch to the sandbox uid, clean up


class EngineUnavailable(Exception):
    """The Docker engine failed us: the execution was not the code's fault."""


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    try:
        yield
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
        raise EngineUnavailable(str(exc) or type(exc).__name__) from exc


@dataclass(frozen=True)
class Owner:
    """Who a container belongs to, written in its labels."""

    deployment: str
    worker_id: str
    host: str
    pid: int

    def labels(self) -> dict[str, str]:
        return {
            LABEL_ROLE: ROLE_SANDBOX,
            LABEL_DEPLOYMENT: self.deployment,
            LABEL_WORKER: self.worker_id,
            LABEL_HOST: self.host,
            LABEL_PID: str(self.pid),
        }


def container_memory_bytes(settings: Settings, memory_mb: int) -> int:
    """The code's memory plus the runner's own (its preloaded modules are shared by the child)."""
    return (memory_mb + settings.runner_memory_mb) * MIB


# Under another runtime (gVisor) the container's pids count that runtime's own: the sandbox
# kernel's threads and, on gVisor's ptrace platform, a host process per address space of the code.
# A runner with five processes of its own was seen at 149; at the limit the sandbox kernel cannot
# make a new address space and panics, and the container exits with status 2 (at the default of
# 128: about 1 in 150 executions of a batch). A fork bomb there stops at about 500 processes.
RUNTIME_PIDS = 384


def container_spec(settings: Settings, image: str, owner: Owner, memory_mb: int,
                   network: str | None = None, socket_dir: str | None = None,
                   executable_tmpfs: bool = False) -> dict[str, Any]:
    """Arguments of the engine's container create call for one hardened, warm sandbox.

    Pure, so the flags are testable without Docker; `host_config` holds the limits. Without a
    `network` (the Docker network to join) the container has only a loopback interface. With
    `executable_tmpfs` files on the tmpfs may be executed (a compiled program). With a
    `socket_dir` (a fresh host directory) the runner listens on a unix socket there; without,
    it speaks on its attached stdin/stdout.
    """
    memory = container_memory_bytes(settings, memory_mb)
    # noexec (the engine's default) but where compiled programs run from the working directory
    tmpfs_opts = (f"rw,nosuid,nodev,{'exec' if executable_tmpfs else 'noexec'},"
                  f"size={settings.container_tmpfs_mb}m,mode=1777")
    host_config = {
        "auto_remove": True,  # once its runner exits, the stopped container goes
        "network_mode": network or "none",
        "read_only": True,
        "tmpfs": {"/tmp": tmpfs_opts, "/mnt": tmpfs_opts},  # /mnt: where SandboxFusion's programs write
        "shm_size": f"{min(settings.container_tmpfs_mb, 64)}m",
        "cap_drop": ["ALL"],
        "cap_add": list(RUNNER_CAPABILITIES),
        "security_opt": ["no-new-privileges"],
        "pids_limit": settings.container_pids + (RUNTIME_PIDS if settings.runtime else 0),
        "mem_limit": memory,
        "memswap_limit": memory,
        "mem_swappiness": 0,
        "nano_cpus": int(settings.container_cpus * 1e9),
        "ulimits": [
            docker.types.Ulimit(name="nofile", soft=1024, hard=1024),
            docker.types.Ulimit(name="core", soft=0, hard=0),
        ],
        "ipc_mode": "private",
        "init": True,
        "log_config": docker.types.LogConfig(type="none"),
    }
    if settings.runtime:
        host_config["runtime"] = settings.runtime
    labels = owner.labels()
    environment = {"SANDBOX_PRELOAD": settings.preload}
    if socket_dir:
        host_config["binds"] = {socket_dir: {"bind": RUNNER_SOCKET_DIR, "mode": "rw"}}
        labels[LABEL_SOCKET_DIR] = socket_dir
        environment["SANDBOX_SOCKET"] = f"{RUNNER_SOCKET_DIR}/{RUNNER_SOCKET}"
    return {
        "image": image,
        "command": None,  # the image's entrypoint: the runner
        "labels": labels,
        "environment": environment,
        "hostname": "sandbox",
        "stdin_open": not socket_dir,
        "host_config": host_config,
    }


def uses_socket(settings: Settings) -> bool:
    """Whether runners are reached over unix sockets: asked for, or (auto) possible here."""
    if settings.runner_transport != "auto":
        return settings.runner_transport == "socket"
    local = not settings.docker_url or settings.docker_url.startswith("unix://")
    # Under another runtime (gVisor) a host socket in a bind-mounted directory is not shared.
    plain = not settings.runtime
    return local and plain and not os.environ.get("DOCKER_HOST") and os.geteuid() == 0


def connect_unix(path: str, timeout: float) -> socket.socket:
    """Connect to the runner's socket once it listens (it binds it when it starts)."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


class DockerEngine:
    """Blocking Docker calls; the pool runs them in threads."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._socket_dirs: dict[str, str | None] = {}
        with translate_errors():
            if settings.docker_url:
                self.client = docker.DockerClient(base_url=settings.docker_url, timeout=60)
            else:
                self.client = docker.from_env(timeout=60)

    def ping(self) -> None:
        with translate_errors():
            self.client.ping()

    def host_memory(self) -> int:
        """The memory of the engine's host, where the sandboxes live (bytes)."""
        with translate_errors():
            return int(self.client.info()["MemTotal"])

    def socket_root(self, deployment: str) -> str:
        return os.path.join(self.settings.runner_socket_dir, deployment)

    def new_socket_dir(self, deployment: str) -> str | None:
        """A fresh host directory for one runner's socket, or None when runners are attached."""
        if not uses_socket(self.settings):
            return None
        return os.path.join(self.socket_root(deployment), uuid.uuid4().hex)

    def start(self, spec: dict[str, Any]) -> tuple[str, socket.socket, bool]:
        """Create and start a container: its id, a connected stream to its runner, and whether
        that stream is Docker's multiplexed attach stream.

        Either way the runner exits when the worker's end closes (even if the worker is killed),
        and the container is then removed by the engine.
        """
        socket_dir = spec["labels"].get(LABEL_SOCKET_DIR)
        with translate_errors():
            if socket_dir:
                os.makedirs(os.path.dirname(socket_dir), mode=0o700, exist_ok=True)
                os.mkdir(socket_dir, mode=0o700)  # root only: the sandbox uid cannot enter
            api = self.client.api
            host_config = api.create_host_config(**spec["host_config"])
            config = api.create_container_config(**{**spec, "host_config": host_config})
            config["StdinOnce"] = not socket_dir  # a closed attach closes the runner's stdin
            container_id = api.create_container_from_config(config, None)["Id"]
            self._socket_dirs[container_id] = socket_dir
            try:
                if socket_dir:
                    api.start(container_id)
                    sock = connect_unix(os.path.join(socket_dir, RUNNER_SOCKET), CONNECT_TIMEOUT_S)
                else:
                    sock = self._attach(container_id)
                    api.start(container_id)
            except BaseException:
                self.remove(container_id)
                raise
        return container_id, sock, not socket_dir

    def _attach(self, container_id: str) -> socket.socket:
        attached = self.client.api.attach_socket(
            container_id, params={"stdin": 1, "stdout": 1, "stream": 1})
        raw = getattr(attached, "_sock", attached)
        sock = socket.socket(fileno=os.dup(raw.fileno()))
        attached.close()
        return sock

    def remove(self, container_id: str, socket_dir: str | None = None) -> None:
        """Remove a container and its socket directory; gone already, or going, is fine."""
        with translate_errors():
            try:
                self.client.api.remove_container(container_id, force=True)
            except docker.errors.APIError as exc:
                if exc.status_code not in (404, 409):
                    raise
        socket_dir = self._socket_dirs.pop(container_id, None) or socket_dir
        if socket_dir:
            shutil.rmtree(socket_dir, ignore_errors=True)

    def set_memory(self, container_id: str, memory_bytes: int) -> None:
        with translate_errors():
            self.client.api.update_container(container_id, mem_limit=memory_bytes,
                                             memswap_limit=memory_bytes)

    def list_sandboxes(self, deployment: str) -> list[tuple[str, dict[str, str]]]:
        """(id, labels) of every sandbox container of this deployment on this engine."""
        filters = {"label": [f"{LABEL_ROLE}={ROLE_SANDBOX}", f"{LABEL_DEPLOYMENT}={deployment}"]}
        with translate_errors():
            found = self.client.api.containers(all=True, filters=filters)
        return [(c["Id"], c.get("Labels") or {}) for c in found]

    def create_network(self, name: str, options: dict[str, str], labels: dict[str, str]) -> None:
        """A bridge network (IPv4 only) for sandboxes with network access."""
        with translate_errors():
            self.client.api.create_network(name, driver="bridge", options=options, labels=labels,
                                           enable_ipv6=False, internal=False)

    def remove_network(self, name: str) -> None:
        with contextlib.suppress(docker.errors.NotFound), translate_errors():
            self.client.api.remove_network(name)

    def list_networks(self, deployment: str) -> list[tuple[str, dict[str, str]]]:
        """(name, labels) of every sandbox network of this deployment on this engine."""
        filters = {"label": [f"{LABEL_ROLE}={ROLE_SANDBOX}", f"{LABEL_DEPLOYMENT}={deployment}"]}
        with translate_errors():
            found = self.client.api.networks(filters=filters)
        return [(n["Name"], n.get("Labels") or {}) for n in found]

    def close(self) -> None:
        self.client.close()
