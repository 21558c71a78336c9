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

DEMOTE_AFTER_S = 0.25
RECHECK_S = 0.05  # the least time between two readings of a run's threads


class Demotion:
    """Lowers a run's weight once it has wanted the CPU for DEMOTE_AFTER_S: a long computation,
    or a loop waiting for its timeout. Sleepers and programs blocked on input are left alone.

    Wanting the CPU is read from its threads: the time they have run or waited to run (their
    schedstat), or a thread of it ready to run (state R) at two readings DEMOTE_AFTER_S apart
    with none in between saying otherwise. The second is for a crowded host: schedstat counts a
    wait only once it has ended, and a hundred loops on two cores each wait a fiftieth of a
    second and more for every turn. Its threads are read when the threshold could first have
    been reached, then again when what is left of it could have passed, every RECHECK_S at
    most."""

    def __init__(self, cgroup: Cgroup, started_ns: int, ready: bool,
                 lower: Callable[[], None]):
        self.cgroup = cgroup
        self.lower = lower
        self.started = started_ns  # its threads' run-and-wait time when the run started
        self.loop = asyncio.get_running_loop()
        self.ready_since = self.loop.time() if ready else None  # ready at every reading since
        self.handle = self.loop.call_later(DEMOTE_AFTER_S, self.check)

    def check(self) -> None:
        runnable, ready = self.cgroup.runnable()
        now = self.loop.time()
        if not ready:
            self.ready_since = None
        elif self.ready_since is None:
            self.ready_since = now
        left = DEMOTE_AFTER_S - (runnable - self.started) / 1e9
        if self.ready_since is not None:
            left = min(left, DEMOTE_AFTER_S - (now - self.ready_since))
        if left <= 0:
            self.lower()
            return
        self.handle = self.loop.call_later(max(RECHECK_S, left), self.check)

    def cancel(self) -> None:
        self.handle.cancel()
