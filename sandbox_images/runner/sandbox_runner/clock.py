"""What an execution used of the CPU and of time, and which of its time limits it reached.

CPU time is the container cgroup's (every process and thread of the execution, those it
forked too), read from a file the runner keeps open; where the cgroup keeps no count, the main
process's own (/proc/<pid>/schedstat).

The run's time, measured against its `timeout_s`, is the wall-clock time less what its main
process spent runnable but waiting for a CPU: on a busy host a program is not charged for its
turns in the run queue. Yet never less than the container's CPU time over its CPU quota, so
that a program whose own processes keep its main one waiting (a fork bomb, busy threads) is
charged the wall clock. A hard wall-clock cap (`wall_limit_s`) ends it all the same, and an
optional CPU-time limit (`cpu_timeout_s`) ends it once it has used that much CPU, however
loaded the host is.
"""

import os
import time

from sandbox_runner.config import CPU_QUOTA_FILES, CPU_USAGE_FILES, LIMIT_CHECK_MIN_S

TIMEOUT, WALL_LIMIT, CPU_TIMEOUT = "timeout", "wall_limit", "cpu_timeout"


class CgroupCpu:
    """The container's CPU time in nanoseconds, from a file kept open and re-read in place
    (opened before the template forks: the sandbox uid never holds it)."""

    def __init__(self):
        self.fd = self.scale = self.key = None
        self.cpus = cpu_quota()
        for path, key, scale in CPU_USAGE_FILES:
            try:
                self.fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            self.key, self.scale = key, scale
            return

    @property
    def fds(self):
        return [] if self.fd is None else [self.fd]

    def read_ns(self):
        """The cgroup's CPU time so far, or None where it keeps no count."""
        if self.fd is None:
            return None
        text = os.pread(self.fd, 4096, 0).decode()
        if self.key is None:
            return int(text) * self.scale
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name == self.key:
                return int(value) * self.scale
        return None


def cpu_quota():
    """The CPUs the container may use at once (its CFS quota), else the host's count."""
    for path in CPU_QUOTA_FILES:
        try:
            with open(path) as f:
                quota, _, period = f.read().strip().partition(" ")
            if not period:
                with open(path.replace("quota", "period")) as f:
                    period = f.read().strip()
            if quota not in ("max", "-1"):
                return int(quota) / int(period)
        except (OSError, ValueError):
            continue
    return os.cpu_count() or 1


def schedstat(pid):
    """(CPU time, time runnable but waiting for a CPU) of a process's main thread, in ns; None
    once it is gone or where the kernel keeps no such count."""
    try:  # as bytes, without Python's file objects: read twice per execution
        fd = os.open("/proc/%d/schedstat" % pid, os.O_RDONLY)
        try:
            fields = os.read(fd, 256).split()
        finally:
            os.close(fd)
        return int(fields[0]), int(fields[1])
    except (OSError, ValueError, IndexError):
        return None


class ExecutionClock:
    """The CPU and time one execution has used, from its hand-over to the end."""

    def __init__(self, req, pid, cgroup):
        self.pid = pid
        self.cgroup = cgroup
        self.timeout = req["timeout_s"]
        self.started = time.monotonic()
        self.wall_limit = self.started + max(self.timeout, req.get("wall_limit_s") or 0)
        self.cpu_limit_ns = None
        if req.get("cpu_timeout_s"):
            self.cpu_limit_ns = req["cpu_timeout_s"] * 1e9
        self.cgroup_start = cgroup.read_ns()
        self.sched_start = self.sched = schedstat(pid) or (0, 0)

    def refresh(self):
        self.sched = schedstat(self.pid) or self.sched

    def cpu_ns(self):
        now = self.cgroup.read_ns()
        if now is not None and self.cgroup_start is not None:
            return now - self.cgroup_start
        return self.sched[0] - self.sched_start[0]

    def cpu_wait_s(self):
        return (self.sched[1] - self.sched_start[1]) / 1e9

    def run_s(self, now):
        """Time charged against the timeout: wall-clock time less the waits for a CPU, or the
        container's CPU time over its quota if more."""
        return max(now - self.started - self.cpu_wait_s(), self.cpu_ns() / 1e9 / self.cgroup.cpus)

    def reached(self, now):
        """The limit reached by now, or None (reads the counters afresh)."""
        self.refresh()
        if now >= self.wall_limit:
            return WALL_LIMIT if self.wall_limit > self.started + self.timeout else TIMEOUT
        if self.run_s(now) >= self.timeout:
            return TIMEOUT
        if self.cpu_limit_ns is not None and self.cpu_ns() >= self.cpu_limit_ns:
            return CPU_TIMEOUT
        return None

    def next_check(self, now):
        """When a limit can next be reached: the run's time grows no faster than the wall clock,
        its CPU time by the container's quota at most."""
        due = min(self.wall_limit, now + self.timeout - self.run_s(now))
        if self.cpu_limit_ns is not None:
            due = min(due, now + (self.cpu_limit_ns - self.cpu_ns()) / 1e9 / self.cgroup.cpus)
        return max(due, now + LIMIT_CHECK_MIN_S)

    def usage(self):
        """The result's figures: CPU time (to now) and the time spent waiting for a CPU (to the
        last refresh: a killed process waiting for a CPU to die is not still running), in ms."""
        return {"cpu_ms": round(self.cpu_ns() / 1e6, 3),
                "cpu_wait_ms": round(self.cpu_wait_s() * 1000, 3)}
