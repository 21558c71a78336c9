"""What the container pools need of a container engine. DockerEngine (docker_engine.py) is the
real one; the unit tests give the pools a fake. Its calls block (the pools run them in threads)
and raise EngineUnavailable (docker_engine.py) when the engine fails."""

import socket
from typing import Any, Protocol


class Engine(Protocol):
    def new_socket_dir(self, deployment: str) -> str | None:
        """A fresh host directory for one runner's socket, or None when runners are attached."""
        ...

    def start(self, spec: dict[str, Any]) -> tuple[str, socket.socket, bool]:
        """Create and start a container from `spec` (docker_engine.container_spec): its id, a
        connected stream to its runner, and whether that stream is Docker's multiplexed one."""
        ...

    def remove(self, container_id: str, socket_dir: str | None = None) -> None:
        """Remove a container (gone already is fine) and its socket directory."""
        ...

    def set_memory(self, container_id: str, memory_bytes: int) -> None:
        """Change a running container's memory limit."""
        ...
