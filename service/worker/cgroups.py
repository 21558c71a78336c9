"""A container's cgroup, as the worker's host shows it: its threads and the time they have run or
waited to run (CPU admission, cpu_weight.py), and its CPU weight (cpu_weight.py).

Where the engine keeps a container's cgroup depends on the cgroup version and the engine's driver;
it is found once, when the container starts. Where this host does not show it (a remote engine,
a worker in a pod) there is none, and what reads or writes it is skipped.
"""

from dataclasses import dataclass
from pathlib import Path


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

    def _file(self, pattern: str) -> Path:
        return Path(pattern.format(id=self.container_id))

    def threads(self) -> list[str]:
        """Its threads' ids; none once it is gone."""
        try:
            return self._file(self.layout.threads).read_text().split()
        except OSError:
            return []

    def runnable(self) -> tuple[int, bool]:
        """Of its threads: the time they have run or waited to run, in nanoseconds, summed
        (each one's /proc/<tid>/schedstat, which counts a wait once it has ended), and whether
        one of them is running or ready to run now (state R)."""
        total, ready = 0, False
        for tid in self.threads():
            try:
                fields = Path(f"/proc/{tid}/schedstat").read_text().split()
                state = Path(f"/proc/{tid}/stat").read_text().rpartition(")")[2].split()[0]
            except (OSError, IndexError):
                continue  # it ended meanwhile
            total += int(fields[0]) + int(fields[1])
            ready = ready or state == "R"
        return total, ready

    def weigh(self, low: bool) -> bool:
        """Set its CPU weight to the low one or to the default; False if that failed."""
        layout = self.layout
        try:
            self._file(layout.weight).write_text(layout.low_weight if low
                                                 else layout.default_weight)
        except OSError:
            return False
        return True


def find_cgroup(container_id: str) -> Cgroup | None:
    """The container's cgroup, if this host shows it."""
    for layout in LAYOUTS:
        if Path(layout.threads.format(id=container_id)).exists():
            return Cgroup(layout, container_id)
    return None
