"""How many sessions a worker holds by default: as many idle ones as fit in its share of the
memory of its Docker host.

An idle session costs its host IDLE_SESSION_MIB, measured by `python -m tests.bench.sessions`
(README, Sessions at rollout scale): its container's memory as the engine counts it (the runner,
its bare and numpy templates and the session's process: 28.3 MiB after two small cells) plus
its containerd shim's own (2.7 MiB proportional set size), rounded up. A session that grows
holds more: the share left over is for that, the one-shot pool and the host itself.
"""

from service.settings import Settings

IDLE_SESSION_MIB = 31


def session_capacity(settings: Settings, host_memory_bytes: int) -> int:
    """max_sessions_per_worker if set, else the idle sessions that fit in the host's share."""
    if settings.max_sessions_per_worker is not None:
        return settings.max_sessions_per_worker
    share = host_memory_bytes * settings.session_memory_share
    return int(share // (IDLE_SESSION_MIB * 2**20))
