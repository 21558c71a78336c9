"""CPU weights of the containers: short interactive runs first, bulk and long runs after.

Under contention the kernel shares the CPU between containers by their weight. A run of the
bulk lane, and any run that has wanted the CPU for DEMOTE_AFTER_S (run, or waited for a turn to
run), runs at a low weight (a sixteenth of the default); the others at the engine's default. So
a `print` sent while a hundred programs loop until their timeouts, or beside a trainer's batch,
is served as soon as it is ready, and those others take whatever it leaves. Waits count as well
as CPU used: a hundred loops sharing two cores each get a fiftieth of a core, and counting their
CPU alone they would take 25 s to be demoted, every `print` meanwhile one of a hundred equals.
(A run's time is counted from its container's first reading, 50 ms in: executor.py.)
The weight decides nothing when nobody else wants the CPU: alone, a low-weight run gets all
that its container's quota allows. A run's timeout (on the native routes) is charged without
its waits for a CPU, so a lower weight never turns a verdict into a timeout there.

The weight is written to the container's cgroup where this host shows it (a file write, a few
microseconds, against ~10 ms of the engine's own CPU for an update through its API); where it
does not (a remote engine, a worker in a pod) weights stay at the default.
"""

import asyncio
from collections.abc import Callable

from service.worker.cgroups import Cgroup

DEMOTE_AFTER_S = 0.5
CHECK_EVERY_S = 0.25


class Demotion:
    """Lowers a run's weight once its threads have run or waited to run for DEMOTE_AFTER_S
    (looked at every CHECK_EVERY_S): a long computation, or a loop waiting for its timeout.
    Sleepers and programs blocked on input are left alone."""

    def __init__(self, cgroup: Cgroup, started_ns: int, lower: Callable[[], None]):
        self.cgroup = cgroup
        self.lower = lower
        self.started = started_ns  # its threads' run-and-wait time when the run started
        self.loop = asyncio.get_running_loop()
        self.handle = self.loop.call_later(CHECK_EVERY_S, self.check)

    def check(self) -> None:
        if (self.cgroup.runnable()[0] - self.started) / 1e9 >= DEMOTE_AFTER_S:
            self.lower()
            return
        self.handle = self.loop.call_later(CHECK_EVERY_S, self.check)

    def cancel(self) -> None:
        self.handle.cancel()
