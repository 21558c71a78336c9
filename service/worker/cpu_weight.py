"""CPU weights of the containers: short interactive runs first, bulk and long runs after.

Under contention the kernel shares the CPU between containers by their weight. A run of the
bulk lane, and any run still going DEMOTE_AFTER_S after it started, runs at the lowest weight;
the others at the engine's default. So a `print` sent while a hundred programs loop until their
timeouts, or beside a trainer's batch, is served as soon as it is ready, and those others take
whatever it leaves. The weight decides nothing when nobody else wants the CPU: alone, a low-weight
run gets all that its container's quota allows. A run's timeout (on the native routes) is
charged without its waits for a CPU, so a lower weight never turns a verdict into a timeout there.

The weight is written to the container's cgroup where this host shows it (a file write, a few
microseconds, against ~10 ms of the engine's own CPU for an update through its API); where it
does not (a remote engine, a worker in a pod) weights stay at the default.
"""

import contextlib
from pathlib import Path

DEMOTE_AFTER_S = 0.5
WEIGHT_FILES = (  # where the engine keeps a container's weight: (file, default, lowest)
    ("/sys/fs/cgroup/cpu/docker/{id}/cpu.shares", "1024", "2"),  # v1, cgroupfs driver
    ("/sys/fs/cgroup/system.slice/docker-{id}.scope/cpu.weight", "100", "1"),  # v2, systemd
    ("/sys/fs/cgroup/docker/{id}/cpu.weight", "100", "1"),  # v2, cgroupfs driver
)


def write_weight(container_id: str, low: bool) -> bool:
    """Set a container's weight to the lowest or to the default; False where it is not seen."""
    for pattern, default, lowest in WEIGHT_FILES:
        with contextlib.suppress(OSError):
            Path(pattern.format(id=container_id)).write_text(lowest if low else default)
            return True
    return False
