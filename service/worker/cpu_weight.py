"""CPU weights of the containers: short interactive runs first, bulk and long runs after.

Under contention the kernel shares the CPU between containers by their weight. A run of the
bulk lane, and any run that has used DEMOTE_AFTER_CPU_S of CPU, runs at a low weight (a
sixteenth of the default); the others at the engine's default. So a `print` sent while a
hundred programs loop until their timeouts, or beside a trainer's batch, is served as soon as
it is ready, and those others take whatever it leaves. The weight decides nothing when nobody
else wants the CPU: alone, a low-weight run gets all that its container's quota allows. A run's
timeout (on the native routes) is charged without its waits for a CPU, so a lower weight never
turns a verdict into a timeout there.

The weight is written to the container's cgroup where this host shows it (a file write, a few
microseconds, against ~10 ms of the engine's own CPU for an update through its API); where it
does not (a remote engine, a worker in a pod) weights stay at the default.
"""

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

DEMOTE_AFTER_CPU_S = 0.5
CHECK_EVERY_S = 0.25
# Where the engine keeps a container's weight: (file, default, low). Low is a sixteenth of the
# default, not the least possible: the run's own runner shares its container's weight, and at
# the least (2 of 1024) a runner on a busy host waited seconds for a turn to end its run at a
# time limit or a cancel.
CPU_USAGE_FILES = (  # a container's CPU time: (file, the line's prefix, seconds per unit)
    ("/sys/fs/cgroup/cpuacct/docker/{id}/cpuacct.usage", "", 1e-9),  # v1, cgroupfs driver
    ("/sys/fs/cgroup/system.slice/docker-{id}.scope/cpu.stat", "usage_usec ", 1e-6),  # v2
    ("/sys/fs/cgroup/docker/{id}/cpu.stat", "usage_usec ", 1e-6),  # v2, cgroupfs driver
)
WEIGHT_FILES = (
    ("/sys/fs/cgroup/cpu/docker/{id}/cpu.shares", "1024", "64"),  # v1, cgroupfs driver
    ("/sys/fs/cgroup/system.slice/docker-{id}.scope/cpu.weight", "100", "6"),  # v2, systemd
    ("/sys/fs/cgroup/docker/{id}/cpu.weight", "100", "6"),  # v2, cgroupfs driver
)


def write_weight(container_id: str, low: bool) -> bool:
    """Set a container's weight to the low one or to the default; False where it is not seen."""
    for pattern, default, low_weight in WEIGHT_FILES:
        with contextlib.suppress(OSError):
            Path(pattern.format(id=container_id)).write_text(low_weight if low else default)
            return True
    return False


def cpu_used_s(container_id: str) -> float | None:
    """The CPU time a container has used, in seconds; None where this host does not show it."""
    for pattern, prefix, unit in CPU_USAGE_FILES:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(pattern.format(id=container_id)).read_text().splitlines():
                if line.startswith(prefix):
                    return int(line.removeprefix(prefix)) * unit
    return None


class Demotion:
    """Lowers a run's weight once it has used DEMOTE_AFTER_CPU_S of CPU (looked at every
    CHECK_EVERY_S): a long computation, or a loop waiting for its timeout. Sleepers and programs
    blocked on input are left alone, as is a run slowed by a busy host."""

    def __init__(self, container_id: str, lower: Callable[[], None]):
        self.container_id = container_id
        self.lower = lower
        self.started = cpu_used_s(container_id)
        self.loop = asyncio.get_running_loop()
        self.handle = self.loop.call_later(CHECK_EVERY_S, self.check)

    def check(self) -> None:
        used = cpu_used_s(self.container_id)
        if used is None or self.started is None:
            return
        if used - self.started >= DEMOTE_AFTER_CPU_S:
            self.lower()
            return
        self.handle = self.loop.call_later(CHECK_EVERY_S, self.check)

    def cancel(self) -> None:
        self.handle.cancel()
