"""A container's cgroup, as the worker's host shows it: its threads and the time they have run or
waited to run (CPU admission, cpu_weight.py), and its CPU weight (cpu_weight.py).

Where the engine keeps a container's cgroup depends on the cgroup version and the engine's driver;
it is found once, when the container starts. Where this host does not show it (a remote engine,
a worker in a pod) there is none, and what reads or writes it is skipped.
"""

import os
from dataclasses import dataclass
from pathlib import Path

READ_SIZE = 4096


@dataclass(frozen=True)
class Layout:
    threads: str  # the file listing its threads (host ids)
    weight: str  # its CPU weight: the file, the engine's default, the low one
    default_weight: str
    low_weight: str


# The low weight is a sixteenth of the default, not the least possible: the run's own runner
# shares its container's weight, and at the least (2 of 1024) a runner on a busy host waited
# seconds for a turn to end its run at a time limit or a cancel.
LAYOUTS = (
    Layout("/sys/fs/cgroup/cpu/docker/{id}/tasks",  # v1, cgroupfs driver
           "/sys/fs/cgroup/cpu/docker/{id}/cpu.shares", "1024", "64"),
    Layout("/sys/fs/cgroup/system.slice/docker-{id}.scope/cgroup.threads",  # v2, systemd driver
           "/sys/fs/cgroup/system.slice/docker-{id}.scope/cpu.weight", "100", "6"),
    Layout("/sys/fs/cgroup/docker/{id}/cgroup.threads",  # v2, cgroupfs driver
           "/sys/fs/cgroup/docker/{id}/cpu.weight", "100", "6"),
)


@dataclass(frozen=True)
class Cgroup:
    layout: Layout
    container_id: str

    def _path(self, pattern: str) -> str:
        return pattern.format(id=self.container_id)

    def threads(self) -> list[bytes]:
        """Its threads' ids; none once it is gone."""
        return (read_small(self._path(self.layout.threads)) or b"").split()

    def runnable(self) -> tuple[int, bool]:
        """Of its threads: the time they have run or waited to run, in nanoseconds, summed
        (each one's /proc/<tid>/schedstat, which counts a wait once it has ended), and whether
        one of them is running or ready to run now (state R). Read as bytes, without Python's
        file objects: this is on every run's path, a dozen small files."""
        total, ready = 0, False
        for tid in self.threads():
            schedstat = read_small(b"/proc/%s/schedstat" % tid)
            stat = read_small(b"/proc/%s/stat" % tid)
            if schedstat is None or stat is None:
                continue  # it ended meanwhile
            fields = schedstat.split()
            try:
                total += int(fields[0]) + int(fields[1])
            except (IndexError, ValueError):
                continue
            ready = ready or stat.rpartition(b")")[2][1:2] == b"R"
        return total, ready

    def weigh(self, low: bool) -> bool:
        """Set its CPU weight to the low one or to the default; False if that failed."""
        layout = self.layout
        try:
            Path(self._path(layout.weight)).write_text(
                layout.low_weight if low else layout.default_weight)
        except OSError:
            return False
        return True


def read_small(path: str | bytes) -> bytes | None:
    """A small file of /proc or /sys, whole; None if it cannot be read. (A short read is its
    end: these files hand over all they have that fits.)"""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        chunks = [os.read(fd, READ_SIZE)]
        while len(chunks[-1]) == READ_SIZE:
            chunks.append(os.read(fd, READ_SIZE))
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def find_cgroup(container_id: str) -> Cgroup | None:
    """The container's cgroup, if this host shows it."""
    for layout in LAYOUTS:
        if Path(layout.threads.format(id=container_id)).exists():
            return Cgroup(layout, container_id)
    return None
